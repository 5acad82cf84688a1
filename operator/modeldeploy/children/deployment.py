"""The per-revision Deployment ``<md-name>-<revision>`` running the model server.

Volume layout (identical for both runtimes; paths come from the runtime):

* ``model-store`` emptyDir at ``/models`` (the model repository / model store);
* remote storage (s3/gs/https): the ``storage-initializer`` init container downloads
  ``storageUri`` to ``runtime.model_path`` (Triton: ``/models/<name>/<version dir>/``;
  TorchServe: ``/models/<name>.mar``), with credentials only through ``envFrom: secretRef``;
* ``pvc://claim/path``: no init container; the claim is mounted read-only with ``subPath: path``
  at ``runtime.model_path``, nested inside ``/models``;
* ``config`` (the revision's ConfigMap) at ``/config``, plus the runtime's extra subPath mounts
  (Triton: ``/models/<name>/config.pbtxt``);
* ``dshm`` memory-backed emptyDir at ``/dev/shm`` (spec ``shmSize`` or the runtime default; it counts
  against the memory limit).

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


def _init_container(spec: ModelDeploymentSpec, runtime: Runtime, settings: BuildSettings) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": INITIALIZER_CONTAINER,
        "image": settings.initializer_image(),
        "args": [spec.model.storage_uri, runtime.model_path(spec)],
        "resources": INITIALIZER_RESOURCES,
        "volumeMounts": [{"name": MODEL_STORE_VOLUME, "mountPath": runtime.model_repository}],
        "securityContext": container_security_context(),
        # a failed download's last log lines become the termination message the operator reports
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
    return {
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
        "securityContext": container_security_context(),
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }


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
    volumes.append({"name": CONFIG_VOLUME, "configMap": {"name": configmap_name(md_name, revision)}})
    shm = _shm_size(spec, runtime)
    if shm is not None:
        volumes.append({"name": SHM_VOLUME, "emptyDir": {"medium": "Memory", "sizeLimit": shm}})
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
