"""The per-revision Deployment ``<md-name>-<revision>`` running the model server.

Volume layout (identical for both runtimes; paths come from the runtime):

* ``model-store`` emptyDir at ``/models`` (the model repository / model store);
* remote storage (s3/gs/https): the ``storage-initializer`` init container
  (``modeldeploy-storage-initializer URI DEST --layout ...``) downloads ``storageUri`` to the
  runtime's ``storage_layout`` destination (Triton: the model directory ``/models/<name>`` with the
  version folder ``<version dir>/``; TorchServe: ``/models/<name>.mar``), with credentials only
  through ``envFrom: secretRef`` and an optional CA bundle from a ConfigMap (``storage-ca``);
* ``pvc://claim/path``: no init container; the claim is mounted read-only with ``subPath: path``
  at ``runtime.model_path``, nested inside ``/models``;
* ``config`` (the revision's ConfigMap) at ``/config``, plus the runtime's extra subPath mounts
  (Triton: ``/models/<name>/config.pbtxt``);
* ``dshm`` memory-backed emptyDir at ``/dev/shm`` (spec ``shmSize`` or the runtime default; it counts
  against the memory limit);
* one emptyDir per ``runtime.writable_dirs`` entry (named by its key): the server container's root
  filesystem is read-only, and ``runtime.working_dir`` / ``runtime.environment`` point the server there.

Pods meet Pod Security Standard ``restricted``.
"""

from __future__ import annotations

from typing import Any

from modeldeploy.api.spec import ModelDeploymentSpec
from modeldeploy.children.configmap import configmap_name
from modeldeploy.children.labels import revision_labels, selector_revision
from modeldeploy.children.owner import OwnerInfo, metadata
from modeldeploy.children.settings import BuildSettings
from modeldeploy.children.storage import pvc_source
from modeldeploy.runtimes.base import Runtime

SERVER_CONTAINER = "model-server"
INITIALIZER_CONTAINER = "storage-initializer"
RUN_AS = 1000
GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
GPU_PRODUCT_LABEL = "nvidia.com/gpu.product"
INITIALIZER_RESOURCES = {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}}

INITIALIZER_COMMAND = "modeldeploy-storage-initializer"
STORAGE_CA_VOLUME = "storage-ca"
STORAGE_CA_DIR = "/etc/modeldeploy/storage-ca"
STORAGE_CA_KEY = "ca.crt"

MODEL_STORE_VOLUME = "model-store"
MODEL_SOURCE_VOLUME = "model-source"
CONFIG_VOLUME = "config"
SHM_VOLUME = "dshm"


def deployment_name(md_name: str, revision: str) -> str:
    return f"{md_name}-{revision}"


def container_security_context() -> dict[str, Any]:
    return {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "runAsNonRoot": True,
    }


def pod_security_context() -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": RUN_AS,
        "runAsGroup": RUN_AS,
        "fsGroup": RUN_AS,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_resources(spec: ModelDeploymentSpec) -> dict[str, Any]:
    """CPU/memory requests, memory limit (no CPU limit: no throttling); GPUs in requests and limits."""
    res = spec.resources
    requests: dict[str, Any] = {"cpu": res.cpu, "memory": res.memory}
    limits: dict[str, Any] = {"memory": res.memory}
    if res.gpu is not None:
        requests[res.gpu.resource_name] = str(res.gpu.quantity)
        limits[res.gpu.resource_name] = str(res.gpu.quantity)
    return {"requests": requests, "limits": limits}


def _scheduling(spec: ModelDeploymentSpec) -> dict[str, Any]:
    gpu = spec.resources.gpu
    if gpu is None:
        return {}
    out: dict[str, Any] = {"tolerations": [dict(GPU_TOLERATION)]}
    if gpu.product:
        term = {"matchExpressions": [{"key": GPU_PRODUCT_LABEL, "operator": "In", "values": [gpu.product]}]}
        out["affinity"] = {
            "nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [term]}}
        }
    return out


def initializer_args(spec: ModelDeploymentSpec, runtime: Runtime) -> list[str]:
    """``URI DEST --layout ... [--sha256 H] [--archive F] [--ca-bundle PATH]`` for the initializer."""
    model = spec.model
    destination, layout = runtime.storage_layout(spec)
    args = [model.storage_uri, destination, *layout]
    if model.sha256:
        args += ["--sha256", model.sha256]
    if model.archive:
        args += ["--archive", model.archive]
    if model.ca_bundle_config_map:
        args += ["--ca-bundle", f"{STORAGE_CA_DIR}/{STORAGE_CA_KEY}"]
    return args


def _init_container(spec: ModelDeploymentSpec, runtime: Runtime, settings: BuildSettings) -> dict[str, Any]:
    mounts: list[dict[str, Any]] = [{"name": MODEL_STORE_VOLUME, "mountPath": runtime.model_repository}]
    if spec.model.ca_bundle_config_map:
        mounts.append({"name": STORAGE_CA_VOLUME, "mountPath": STORAGE_CA_DIR, "readOnly": True})
    container: dict[str, Any] = {
        "name": INITIALIZER_CONTAINER,
        "image": settings.initializer_image(),
        "command": [INITIALIZER_COMMAND],
        "args": initializer_args(spec, runtime),
        "resources": INITIALIZER_RESOURCES,
        "volumeMounts": mounts,
        # it writes only into the model store (temporary names there, renamed when complete)
        "securityContext": {**container_security_context(), "readOnlyRootFilesystem": True},
        # the initializer writes one line (not found, access denied, checksum mismatch...) to the
        # termination log; the operator puts it in the ModelDeployment's condition
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    if spec.model.credentials_secret:
        container["envFrom"] = [{"secretRef": {"name": spec.model.credentials_secret}}]
    return container


def _server_container(spec: ModelDeploymentSpec, runtime: Runtime, settings: BuildSettings) -> dict[str, Any]:
    probes = runtime.probes(spec)
    mounts: list[dict[str, Any]] = [{"name": MODEL_STORE_VOLUME, "mountPath": runtime.model_repository}]
    pvc = pvc_source(spec.model.storage_uri)
    if pvc is not None:
        if runtime.model_path_is_file and not pvc.sub_path:
            raise ValueError(
                f"{runtime.name}: storageUri {spec.model.storage_uri!r} must name the model file "
                "inside the claim, e.g. pvc://claim/path/model.mar"
            )
        mount: dict[str, Any] = {
            "name": MODEL_SOURCE_VOLUME,
            "mountPath": runtime.model_path(spec),
            "readOnly": True,
        }
        if pvc.sub_path:
            mount["subPath"] = pvc.sub_path
        mounts.append(mount)
    mounts.append({"name": CONFIG_VOLUME, "mountPath": runtime.config_dir, "readOnly": True})
    for file_name, path in runtime.config_file_mounts(spec).items():
        mounts.append({"name": CONFIG_VOLUME, "mountPath": path, "subPath": file_name, "readOnly": True})
    if _shm_size(spec, runtime) is not None:
        mounts.append({"name": SHM_VOLUME, "mountPath": "/dev/shm"})
    for volume, path in runtime.writable_dirs.items():
        mounts.append({"name": volume, "mountPath": path})
    container: dict[str, Any] = {
        "name": SERVER_CONTAINER,
        "image": runtime.image(spec, settings.images),
        "command": runtime.command(spec),
        "args": runtime.args(spec),
        "ports": [
            {"name": name, "containerPort": port, "protocol": "TCP"} for name, port in runtime.ports.items()
        ],
        "startupProbe": probes.startup,
        "readinessProbe": probes.readiness,
        "livenessProbe": probes.liveness,
        "resources": container_resources(spec),
        "volumeMounts": mounts,
        # the server writes only to its emptyDirs (runtime.writable_dirs)
        "securityContext": {**container_security_context(), "readOnlyRootFilesystem": True},
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    if runtime.working_dir:
        container["workingDir"] = runtime.working_dir
    if runtime.environment:
        container["env"] = [{"name": name, "value": value} for name, value in runtime.environment.items()]
    return container


def _shm_size(spec: ModelDeploymentSpec, runtime: Runtime) -> str | None:
    return spec.resources.shm_size or runtime.default_shm_size


def _volumes(
    spec: ModelDeploymentSpec, revision: str, runtime: Runtime, md_name: str
) -> list[dict[str, Any]]:
    volumes: list[dict[str, Any]] = [{"name": MODEL_STORE_VOLUME, "emptyDir": {}}]
    pvc = pvc_source(spec.model.storage_uri)
    if pvc is not None:
        volumes.append(
            {"name": MODEL_SOURCE_VOLUME, "persistentVolumeClaim": {"claimName": pvc.claim, "readOnly": True}}
        )
    if spec.model.ca_bundle_config_map:
        volumes.append(
            {
                "name": STORAGE_CA_VOLUME,
                "configMap": {
                    "name": spec.model.ca_bundle_config_map,
                    "items": [{"key": STORAGE_CA_KEY, "path": STORAGE_CA_KEY}],
                },
            }
        )
    volumes.append({"name": CONFIG_VOLUME, "configMap": {"name": configmap_name(md_name, revision)}})
    shm = _shm_size(spec, runtime)
    if shm is not None:
        volumes.append({"name": SHM_VOLUME, "emptyDir": {"medium": "Memory", "sizeLimit": shm}})
    volumes.extend({"name": volume, "emptyDir": {}} for volume in runtime.writable_dirs)
    return volumes


def build_pod_spec(
    owner: OwnerInfo, spec: ModelDeploymentSpec, revision: str, runtime: Runtime, settings: BuildSettings
) -> dict[str, Any]:
    pod: dict[str, Any] = {}
    if spec.service_account_name:
        pod["serviceAccountName"] = spec.service_account_name
    else:
        pod["automountServiceAccountToken"] = False
    pod["enableServiceLinks"] = False
    pod["securityContext"] = pod_security_context()
    if pvc_source(spec.model.storage_uri) is None:
        pod["initContainers"] = [_init_container(spec, runtime, settings)]
    pod["containers"] = [_server_container(spec, runtime, settings)]
    pod["volumes"] = _volumes(spec, revision, runtime, owner.name)
    pod.update(_scheduling(spec))
    return pod


def build_deployment(
    owner: OwnerInfo,
    spec: ModelDeploymentSpec,
    revision: str,
    replicas: int,
    runtime: Runtime,
    settings: BuildSettings,
) -> dict[str, Any]:
    labels = revision_labels(owner.name, runtime.name, revision)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata(owner, deployment_name(owner.name, revision), labels),
        "spec": {
            "replicas": replicas,
            "revisionHistoryLimit": settings.revision_history_limit,
            "selector": {"matchLabels": selector_revision(owner.name, revision)},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": {
                "metadata": {
                    "labels": labels,
                    "annotations": {
                        "prometheus.io/scrape": "true",
                        "prometheus.io/port": str(runtime.metrics_port),
                        "prometheus.io/path": runtime.metrics_path,
                    },
                },
                "spec": build_pod_spec(owner, spec, revision, runtime, settings),
            },
        },
    }
