"""Child object builders: Deployment, Services, ConfigMap, HPA, labels and the revision hash."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from modeldeploy.api.spec import ModelDeploymentSpec
from modeldeploy.children import (
    BuildSettings,
    OwnerInfo,
    build_configmap,
    build_deployment,
    build_hpa,
    build_service,
    revision_hash,
    selector_string,
)
from modeldeploy.children.labels import REVISION
from modeldeploy.children.storage import pvc_source
from modeldeploy.runtimes import get_runtime

pytestmark = pytest.mark.unit

OWNER = OwnerInfo("modeldeploy.dev/v1alpha1", "ModelDeployment", "resnet", "ml-team", "0a1b-uid")
SECRET = "s3-credentials"


def make_spec(runtime: str = "triton", **overrides: Any) -> ModelDeploymentSpec:
    uri = "s3://models-bucket/resnet/3" if runtime == "triton" else "s3://models-bucket/resnet-3.mar"
    model = {"name": "resnet", "version": "3", "storageUri": uri}
    model.update(overrides.pop("model", {}))
    return ModelDeploymentSpec.model_validate({"runtime": runtime, "model": model, **overrides})


def deployment(
    spec: ModelDeploymentSpec, replicas: int = 2, settings: BuildSettings | None = None
) -> dict[str, Any]:
    settings = settings or BuildSettings()
    revision = revision_hash(spec, settings)
    return build_deployment(OWNER, spec, revision, replicas, get_runtime(spec.runtime), settings)


def pod(dep: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = dep["spec"]["template"]["spec"]
    return spec


def server(dep: dict[str, Any]) -> dict[str, Any]:
    (container,) = pod(dep)["containers"]
    return dict(container)


def all_containers(dep: dict[str, Any]) -> list[dict[str, Any]]:
    return [*pod(dep).get("initContainers", []), *pod(dep)["containers"]]


def mounts(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {m["mountPath"]: m for m in container["volumeMounts"]}


def volumes(dep: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {v["name"]: v for v in pod(dep)["volumes"]}


def assert_child_metadata(obj: dict[str, Any], name: str) -> None:
    meta = obj["metadata"]
    assert meta["name"] == name
    assert meta["namespace"] == "ml-team"
    assert meta["ownerReferences"] == [
        {
            "apiVersion": "modeldeploy.dev/v1alpha1",
            "kind": "ModelDeployment",
            "name": "resnet",
            "uid": "0a1b-uid",
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    assert meta["labels"]["app.kubernetes.io/managed-by"] == "modeldeploy"
    assert meta["labels"]["modeldeploy.dev/deployment"] == "resnet"
    assert "status" not in obj


# --- Deployment --------------------------------------------------------------------------------


def test_deployment_identity_labels_and_selector() -> None:
    spec = make_spec()
    rev = revision_hash(spec)
    dep = deployment(spec, replicas=3)
    assert (dep["apiVersion"], dep["kind"]) == ("apps/v1", "Deployment")
    assert_child_metadata(dep, f"resnet-{rev}")
    expected_labels = {
        "app.kubernetes.io/name": "resnet",
        "app.kubernetes.io/managed-by": "modeldeploy",
        "app.kubernetes.io/component": "model-server",
        "modeldeploy.dev/deployment": "resnet",
        "modeldeploy.dev/revision": rev,
        "modeldeploy.dev/runtime": "triton",
    }
    assert dep["metadata"]["labels"] == expected_labels
    assert dep["spec"]["template"]["metadata"]["labels"] == expected_labels
    selector = dep["spec"]["selector"]["matchLabels"]
    assert selector[REVISION] == rev
    assert selector.items() <= expected_labels.items()
    assert dep["spec"]["replicas"] == 3
    assert dep["spec"]["strategy"]["type"] == "RollingUpdate"
    assert 0 < dep["spec"]["revisionHistoryLimit"] <= 3
    assert dep["spec"]["template"]["metadata"]["annotations"] == {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": "8002",
        "prometheus.io/path": "/metrics",
    }


@pytest.mark.parametrize(
    "spec",
    [
        make_spec(model={"credentialsSecret": SECRET}),
        make_spec("torchserve", model={"credentialsSecret": SECRET}),
        make_spec(model={"storageUri": "pvc://models/resnet/3"}),
        make_spec("torchserve", serviceAccountName="model-reader", resources={"gpu": {"count": 1}}),
    ],
    ids=["triton-s3", "torchserve-s3", "triton-pvc", "torchserve-gpu-sa"],
)
def test_pod_security_standard_restricted_on_every_container(spec: ModelDeploymentSpec) -> None:
    dep = deployment(spec)
    assert pod(dep)["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": 1000,
        "runAsGroup": 1000,
        "fsGroup": 1000,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    for container in all_containers(dep):
        ctx = container["securityContext"]
        assert ctx["allowPrivilegeEscalation"] is False, container["name"]
        assert ctx["capabilities"] == {"drop": ["ALL"]}, container["name"]
        assert ctx["runAsNonRoot"] is True, container["name"]
        assert "privileged" not in ctx
    for volume in pod(dep)["volumes"]:
        assert "hostPath" not in volume


def test_service_account_token_only_mounted_with_a_service_account() -> None:
    plain = pod(deployment(make_spec()))
    assert plain["automountServiceAccountToken"] is False
    assert "serviceAccountName" not in plain
    with_sa = pod(deployment(make_spec(serviceAccountName="model-reader")))
    assert with_sa["serviceAccountName"] == "model-reader"
    assert "automountServiceAccountToken" not in with_sa


def test_triton_server_container() -> None:
    dep = deployment(make_spec())
    c = server(dep)
    assert c["image"] == "nvcr.io/nvidia/tritonserver:24.10-py3"
    assert c["command"] == ["tritonserver"]
    assert "--model-repository=/models" in c["args"]
    assert c["ports"] == [
        {"name": "http", "containerPort": 8000, "protocol": "TCP"},
        {"name": "grpc", "containerPort": 8001, "protocol": "TCP"},
        {"name": "metrics", "containerPort": 8002, "protocol": "TCP"},
    ]
    assert c["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    assert c["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert "startupProbe" in c


def test_cpu_only_pod_has_no_gpu_scheduling() -> None:
    dep = deployment(make_spec(resources={"cpu": "500m", "memory": "3Gi"}))
    assert server(dep)["resources"] == {
        "requests": {"cpu": "500m", "memory": "3Gi"},
        "limits": {"memory": "3Gi"},
    }
    assert "tolerations" not in pod(dep)
    assert "affinity" not in pod(dep)


def test_gpu_requests_equal_limits_with_toleration_and_product_affinity() -> None:
    spec = make_spec(
        resources={"cpu": "4", "memory": "16Gi", "gpu": {"count": 2, "product": "NVIDIA-A100-SXM4-80GB"}}
    )
    dep = deployment(spec)
    res = server(dep)["resources"]
    assert res["requests"]["nvidia.com/gpu"] == res["limits"]["nvidia.com/gpu"] == "2"
    assert res["requests"]["cpu"] == "4"
    assert res["limits"]["memory"] == "16Gi"
    assert "cpu" not in res["limits"]
    assert pod(dep)["tolerations"] == [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    ]
    terms = pod(dep)["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert terms == {
        "nodeSelectorTerms": [
            {
                "matchExpressions": [
                    {"key": "nvidia.com/gpu.product", "operator": "In", "values": ["NVIDIA-A100-SXM4-80GB"]}
                ]
            }
        ]
    }


def test_gpu_without_product_has_toleration_but_no_affinity() -> None:
    dep = deployment(make_spec(resources={"gpu": {"count": 1}}))
    assert pod(dep)["tolerations"]
    assert "affinity" not in pod(dep)


def test_mig_profile_is_the_extended_resource_name() -> None:
    dep = deployment(make_spec(resources={"gpu": {"migProfile": "1g.10gb"}}))
    res = server(dep)["resources"]
    assert res["requests"]["nvidia.com/mig-1g.10gb"] == res["limits"]["nvidia.com/mig-1g.10gb"] == "1"
    assert "nvidia.com/gpu" not in res["requests"]
    assert pod(dep)["tolerations"][0]["key"] == "nvidia.com/gpu"


def test_shm_volume_triton_default_and_spec_override() -> None:
    triton = deployment(make_spec())
    assert volumes(triton)["dshm"]["emptyDir"] == {"medium": "Memory", "sizeLimit": "1Gi"}
    assert mounts(server(triton))["/dev/shm"]["name"] == "dshm"
    sized = deployment(make_spec("torchserve", resources={"shmSize": "4Gi"}))
    assert volumes(sized)["dshm"]["emptyDir"] == {"medium": "Memory", "sizeLimit": "4Gi"}
    plain_ts = deployment(make_spec("torchserve"))
    assert "dshm" not in volumes(plain_ts)
    assert "/dev/shm" not in mounts(server(plain_ts))


def test_remote_storage_init_container_gets_credentials_only_via_secret_ref() -> None:
    spec = make_spec(model={"credentialsSecret": SECRET})
    dep = deployment(spec)
    (init,) = pod(dep)["initContainers"]
    assert init["image"] == "modeldeploy/storage-initializer:0.1.0"
    assert init["command"] == ["modeldeploy-storage-initializer"]
    assert init["args"] == [
        "s3://models-bucket/resnet/3",
        "/models/resnet",
        "--layout",
        "triton",
        "--version-dir",
        "3",
    ]
    assert init["envFrom"] == [{"secretRef": {"name": SECRET}}]
    assert "env" not in init
    assert mounts(init) == {"/models": {"name": "model-store", "mountPath": "/models"}}
    for container in all_containers(dep):
        assert SECRET not in " ".join(container.get("args", []) + container.get("command", []))
    assert "envFrom" not in server(dep), "the model server never sees storage credentials"
    assert volumes(dep)["model-store"] == {"name": "model-store", "emptyDir": {}}


def test_download_options_reach_the_initializer() -> None:
    digest = "ab" * 32
    spec = make_spec(
        "torchserve",
        model={
            "storageUri": "https://models.example/resnet.tar.gz",
            "sha256": digest,
            "archive": "tar.gz",
            "caBundleConfigMap": "corp-ca",
        },
    )
    dep = deployment(spec)
    (init,) = pod(dep)["initContainers"]
    assert init["args"][:4] == [
        "https://models.example/resnet.tar.gz",
        "/models/resnet.mar",
        "--layout",
        "torchserve",
    ]
    assert init["args"][4:] == [
        "--sha256",
        digest,
        "--archive",
        "tar.gz",
        "--ca-bundle",
        "/etc/modeldeploy/storage-ca/ca.crt",
    ]
    assert mounts(init)["/etc/modeldeploy/storage-ca"]["readOnly"] is True
    assert volumes(dep)["storage-ca"]["configMap"] == {
        "name": "corp-ca",
        "items": [{"key": "ca.crt", "path": "ca.crt"}],
    }
    assert "/etc/modeldeploy/storage-ca" not in mounts(server(dep)), "only the initializer reads the CA"


def test_no_credentials_no_env_from() -> None:
    (init,) = pod(deployment(make_spec()))["initContainers"]
    assert "envFrom" not in init


def test_torchserve_init_container_downloads_the_mar_file() -> None:
    dep = deployment(make_spec("torchserve", model={"storageUri": "gs://models-bucket/resnet.mar"}))
    (init,) = pod(dep)["initContainers"]
    assert init["args"] == ["gs://models-bucket/resnet.mar", "/models/resnet.mar", "--layout", "torchserve"]
    c = server(dep)
    assert c["image"] == "pytorch/torchserve:0.12.0-cpu"
    assert c["command"] == ["torchserve"]
    assert c["ports"] == [
        {"name": "inference", "containerPort": 8080, "protocol": "TCP"},
        {"name": "metrics", "containerPort": 8082, "protocol": "TCP"},
    ]
    assert mounts(c)["/config"] == {"name": "config", "mountPath": "/config", "readOnly": True}


def test_pvc_storage_mounts_the_claim_read_only_without_an_init_container() -> None:
    spec = make_spec(model={"storageUri": "pvc://model-cache/resnet/3/"})
    dep = deployment(spec)
    assert "initContainers" not in pod(dep)
    assert volumes(dep)["model-source"] == {
        "name": "model-source",
        "persistentVolumeClaim": {"claimName": "model-cache", "readOnly": True},
    }
    assert mounts(server(dep))["/models/resnet/3"] == {
        "name": "model-source",
        "mountPath": "/models/resnet/3",
        "readOnly": True,
        "subPath": "resnet/3",
    }


def test_pvc_whole_claim_has_no_sub_path_and_dotdot_is_refused() -> None:
    dep = deployment(make_spec(model={"storageUri": "pvc://model-cache"}))
    assert "subPath" not in mounts(server(dep))["/models/resnet/3"]
    # refused by the spec itself (the CRD's CEL rule says the same), before any pod is built
    with pytest.raises(ValueError, match=r"must name a \.mar file"):
        deployment(make_spec("torchserve", model={"storageUri": "pvc://model-cache"}))
    ts = deployment(make_spec("torchserve", model={"storageUri": "pvc://model-cache/mars/resnet.mar"}))
    assert mounts(server(ts))["/models/resnet.mar"]["subPath"] == "mars/resnet.mar"
    with pytest.raises(ValueError, match=r"'\.\.'"):
        pvc_source("pvc://model-cache/a/../../etc")
    assert pvc_source("s3://models-bucket/x") is None


def test_triton_config_pbtxt_mounted_into_the_model_directory() -> None:
    spec = make_spec()
    rev = revision_hash(spec)
    dep = deployment(spec)
    assert volumes(dep)["config"] == {"name": "config", "configMap": {"name": f"resnet-{rev}-config"}}
    m = mounts(server(dep))
    assert m["/models/resnet/config.pbtxt"] == {
        "name": "config",
        "mountPath": "/models/resnet/config.pbtxt",
        "subPath": "config.pbtxt",
        "readOnly": True,
    }
    assert m["/config"]["readOnly"] is True
    assert m["/models"] == {"name": "model-store", "mountPath": "/models"}


def test_operator_image_overrides_reach_the_pod() -> None:
    settings = BuildSettings(
        images={"triton": "mirror/triton:24.12"}, storage_initializer_image="mirror/si:0.1.0"
    )
    dep = deployment(make_spec(), settings=settings)
    assert server(dep)["image"] == "mirror/triton:24.12"
    assert pod(dep)["initContainers"][0]["image"] == "mirror/si:0.1.0"


def test_ports_are_canonical_for_server_side_apply() -> None:
    dep = deployment(make_spec())
    for container in all_containers(dep):
        for port in container.get("ports", []):
            assert port["protocol"] == "TCP"
            assert isinstance(port["containerPort"], int)
    for runtime in ("triton", "torchserve"):
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            action = server(deployment(make_spec(runtime)))[probe]
            if "exec" in action:
                assert all(isinstance(arg, str) for arg in action["exec"]["command"])
            else:
                assert isinstance((action.get("httpGet") or action["tcpSocket"])["port"], int)


@pytest.mark.parametrize("runtime", ["triton", "torchserve"])
def test_server_root_filesystem_is_read_only_with_an_emptydir_per_writable_dir(runtime: str) -> None:
    dep = deployment(make_spec(runtime))
    c = server(dep)
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    (init,) = pod(dep)["initContainers"]
    assert init["securityContext"]["readOnlyRootFilesystem"] is True, "the initializer writes only /models"
    rt = get_runtime(runtime)
    assert rt.writable_dirs
    for volume, path in rt.writable_dirs.items():
        assert mounts(c)[path] == {"name": volume, "mountPath": path}
        assert volumes(dep)[volume] == {"name": volume, "emptyDir": {}}
    names = [v["name"] for v in pod(dep)["volumes"]]
    assert len(names) == len(set(names))
    assert c["env"] == [{"name": k, "value": v} for k, v in rt.environment.items()]
    # the storage initializer's mounts are its own
    (init,) = pod(dep)["initContainers"]
    assert not set(rt.writable_dirs.values()) & set(mounts(init))


def test_torchserve_runs_in_its_writable_working_dir_where_the_probe_finds_the_key_file() -> None:
    c = server(deployment(make_spec("torchserve")))
    assert c["workingDir"] == "/home/model-server/work"
    assert mounts(c)["/home/model-server/work"]["name"] == "work"
    env = {e["name"]: e["value"] for e in c["env"]}
    assert env["HOME"] == "/home/model-server/work"
    assert env["TEMP"] == env["TMPDIR"] == "/tmp"
    assert env["LOG_LOCATION"] == env["METRICS_LOCATION"] == "/home/model-server/logs"
    assert "/home/model-server/work/key_file.json" in c["readinessProbe"]["exec"]["command"]
    assert "workingDir" not in server(deployment(make_spec("triton")))


# --- Services ----------------------------------------------------------------------------------


def test_main_service_selects_every_revision() -> None:
    svc = build_service(OWNER, None, get_runtime("triton"), None)
    assert (svc["apiVersion"], svc["kind"]) == ("v1", "Service")
    assert_child_metadata(svc, "resnet")
    assert svc["spec"]["selector"] == {
        "modeldeploy.dev/deployment": "resnet",
        "app.kubernetes.io/component": "model-server",
    }
    assert REVISION not in svc["metadata"]["labels"]
    assert svc["spec"]["ports"] == [
        {"name": "http", "port": 8000, "targetPort": 8000, "protocol": "TCP"},
        {"name": "grpc", "port": 8001, "targetPort": 8001, "protocol": "TCP"},
        {"name": "metrics", "port": 8002, "targetPort": 8002, "protocol": "TCP"},
    ]
    assert "sessionAffinity" not in svc["spec"]


@pytest.mark.parametrize("role", ["stable", "canary", "active", "preview"])
def test_role_service_selects_one_revision(role: str) -> None:
    svc = build_service(OWNER, role, get_runtime("torchserve"), "abcdef0123")
    assert_child_metadata(svc, f"resnet-{role}")
    assert svc["spec"]["selector"][REVISION] == "abcdef0123"
    assert svc["metadata"]["labels"]["modeldeploy.dev/role"] == role
    assert [p["name"] for p in svc["spec"]["ports"]] == ["inference", "metrics"]


def test_unknown_service_role_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown service role"):
        build_service(OWNER, "blue", get_runtime("triton"), None)


# --- ConfigMap ---------------------------------------------------------------------------------


def test_configmap_holds_the_rendered_runtime_config() -> None:
    spec = make_spec("torchserve")
    rev = revision_hash(spec)
    runtime = get_runtime("torchserve")
    cm = build_configmap(OWNER, spec, rev, runtime)
    assert (cm["apiVersion"], cm["kind"]) == ("v1", "ConfigMap")
    assert_child_metadata(cm, f"resnet-{rev}-config")
    assert cm["metadata"]["labels"][REVISION] == rev
    assert cm["data"] == runtime.render_config(spec)
    assert cm["immutable"] is True


# --- HPA ---------------------------------------------------------------------------------------


def test_hpa_targets_the_modeldeployment_scale_subresource() -> None:
    spec = make_spec(
        replicas=2,
        autoscaling={
            "minReplicas": 2,
            "maxReplicas": 10,
            "metrics": [
                {"cpu": {"averageUtilization": 70}},
                {"memory": {"averageUtilization": 85}},
                {"pods": {"metric": "nv_inference_pending_request_count", "averageValue": "8"}},
            ],
        },
    )
    hpa = build_hpa(OWNER, spec)
    assert (hpa["apiVersion"], hpa["kind"]) == ("autoscaling/v2", "HorizontalPodAutoscaler")
    assert_child_metadata(hpa, "resnet")
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "modeldeploy.dev/v1alpha1",
        "kind": "ModelDeployment",
        "name": "resnet",
    }
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 10)
    assert hpa["spec"]["metrics"] == [
        {
            "type": "Resource",
            "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}},
        },
        {
            "type": "Resource",
            "resource": {"name": "memory", "target": {"type": "Utilization", "averageUtilization": 85}},
        },
        {
            "type": "Pods",
            "pods": {
                "metric": {"name": "nv_inference_pending_request_count"},
                "target": {"type": "AverageValue", "averageValue": "8"},
            },
        },
    ]


def test_hpa_default_metric_and_missing_autoscaling() -> None:
    hpa = build_hpa(OWNER, make_spec(autoscaling={"maxReplicas": 3}))
    assert hpa["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"] == 80
    with pytest.raises(ValueError, match="autoscaling"):
        build_hpa(OWNER, make_spec())


def test_selector_string_is_sorted_and_comma_joined() -> None:
    assert selector_string({"b": "2", "a": "1"}) == "a=1,b=2"


# --- revision hash -----------------------------------------------------------------------------

BASE = make_spec()


def test_revision_hash_shape_and_determinism() -> None:
    rev = revision_hash(BASE)
    assert len(rev) == 10
    assert int(rev, 16) >= 0
    assert revision_hash(make_spec()) == rev
    assert revision_hash(ModelDeploymentSpec.model_validate(BASE.wire())) == rev


@given(
    replicas=st.integers(min_value=50, max_value=1000),
    min_replicas=st.integers(min_value=1, max_value=50),
    headroom=st.integers(min_value=0, max_value=100),
    strategy=st.sampled_from(["canary", "blueGreen"]),
    weight=st.integers(min_value=0, max_value=100),
    failure_limit=st.integers(min_value=1, max_value=100),
)
def test_revision_ignores_scaling_and_rollout_settings(
    replicas: int, min_replicas: int, headroom: int, strategy: str, weight: int, failure_limit: int
) -> None:
    changed = make_spec(
        replicas=replicas,
        autoscaling={"minReplicas": min_replicas, "maxReplicas": min(replicas + headroom, 1000)},
        rollout={
            "strategy": strategy,
            "canary": {"steps": [{"setWeight": weight}]},
            "analysis": {"failureLimit": failure_limit},
        },
    )
    assert revision_hash(changed) == revision_hash(BASE)


@pytest.mark.parametrize(
    "changed",
    [
        make_spec(model={"version": "4"}),
        make_spec(model={"storageUri": "s3://models-bucket/resnet/4"}),
        make_spec(model={"credentialsSecret": SECRET}),
        make_spec(model={"runtimeConfig": {"maxBatchSize": 4}}),
        make_spec(image="team/triton:custom"),
        make_spec(resources={"memory": "4Gi"}),
        make_spec(resources={"gpu": {"count": 1}}),
        make_spec(serviceAccountName="model-reader"),
        make_spec("torchserve"),
    ],
    ids=["version", "storage", "credentials", "runtime-config", "image", "memory", "gpu", "sa", "runtime"],
)
def test_revision_changes_with_the_pod_template(changed: ModelDeploymentSpec) -> None:
    assert revision_hash(changed) != revision_hash(BASE)


def test_revision_follows_operator_default_images_in_use_only() -> None:
    base = revision_hash(BASE)
    assert revision_hash(BASE, BuildSettings(images={"triton": "mirror/triton:25.01"})) != base
    assert revision_hash(BASE, BuildSettings(storage_initializer_image="mirror/si:0.2.0")) != base
    unused = BuildSettings(images={"torchserve": "mirror/ts:0.13"}, revision_history_limit=5)
    assert revision_hash(BASE, unused) == base, "unused images and Deployment knobs must not matter"
    pvc = make_spec(model={"storageUri": "pvc://model-cache/resnet"})
    assert revision_hash(pvc, BuildSettings(storage_initializer_image="mirror/si:0.2.0")) == revision_hash(
        pvc
    )
    ts_auth = make_spec("torchserve")
    assert revision_hash(make_spec("torchserve", disableAuth=True)) != revision_hash(ts_auth)


@given(version=st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,20}", fullmatch=True))
def test_revision_is_a_function_of_the_version(version: str) -> None:
    assume(".." not in version)
    spec = make_spec(model={"version": version})
    assert revision_hash(spec) == revision_hash(make_spec(model={"version": version}))
    assert (revision_hash(spec) == revision_hash(BASE)) == (version == "3")
