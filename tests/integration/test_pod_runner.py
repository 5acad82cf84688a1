"""The e2e pod runner gives the pods the operator generates real bodies (e2e/harness/pod_runner.py).

Unit part (no cluster): container paths and ports are mapped the way the runner's programs need,
and the pod status documents follow the kubelet (terminated, then CrashLoopBackOff with the
termination message in lastState).

Integration part (real control plane, local S3 server, real tritonserver): a Pod built by the
operator's own builders in a ``modeldeploy-real-*`` namespace (kwok leaves it alone) is scheduled by
the real scheduler and run by the runner: the storage initializer pulls the model from S3 with the
Secret's credentials, the real tritonserver serves it, the pod becomes Ready through the declared
readinessProbe, its address map and Prometheus target appear and go with the pod. A missing object
gives the initializer's termination message in the pod status, as a kubelet reports it.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import signal
import urllib.request
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

from harness.commands import rewrite_listeners, rewrite_port_flags
from harness.pod_body import Backoff
from harness.pod_runner import POD_IP_PREFIX, REAL_NAMESPACE_PREFIX, PodRunner
from harness.pod_status import ContainerStatus, pod_status, terminated
from harness.volumes import Mount, MountTable
from modeldeploy.api.spec import ModelDeploymentSpec
from modeldeploy.children import BuildSettings, OwnerInfo, build_configmap
from modeldeploy.children.deployment import build_pod_spec
from modeldeploy.children.labels import revision_labels
from modeldeploy.runtimes import get_runtime
from modeldeploy_testing.cluster import REPO, Cluster, poll
from modeldeploy_testing.torchserve import HANDLER, build_mar

MODEL_DIR = REPO / "e2e" / "models" / "scorer"
BUCKET = "runner-models"


# --- unit: mapping and status documents --------------------------------------------------------------


def _table(tmp_path: Path) -> MountTable:
    return MountTable(
        [
            Mount(PurePosixPath("/models"), tmp_path / "store"),
            Mount(PurePosixPath("/models/m/config.pbtxt"), tmp_path / "config" / "config.pbtxt"),
            Mount(PurePosixPath("/config"), tmp_path / "config"),
        ]
    )


@pytest.mark.unit
def test_values_naming_container_paths_are_mapped_and_nothing_else(tmp_path: Path) -> None:
    table = _table(tmp_path)
    assert table.rewrite("/models/m/1") == f"{tmp_path}/store/m/1"
    assert table.rewrite("--model-repository=/models") == f"--model-repository={tmp_path}/store"
    # the deepest mount wins: the subPath file, not the file inside the outer volume
    assert table.rewrite("/models/m/config.pbtxt") == f"{tmp_path}/config/config.pbtxt"
    for untouched in ("s3://bucket/models/m", "http://0.0.0.0:8080/models", "/modelsx", "print('/models/')"):
        assert table.rewrite(untouched) == untouched
    assert table.map_path("/etc/passwd") is None


@pytest.mark.unit
def test_a_nested_mount_is_placed_inside_the_outer_volume(tmp_path: Path) -> None:
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.pbtxt").write_text("name: 'm'")
    (tmp_path / "store" / "m").mkdir(parents=True)
    _table(tmp_path).place_nested()
    # what tritonserver --model-repository=<store> reads
    assert (tmp_path / "store" / "m" / "config.pbtxt").read_text() == "name: 'm'"


@pytest.mark.unit
def test_declared_ports_are_rewritten_in_flags_and_listener_lines(tmp_path: Path) -> None:
    ports = {8000: 41000, 8002: 41002}
    args = ["--http-port=8000", "--metrics-port", "8002", "--grpc-port=8001", "--other=8000"]
    assert rewrite_port_flags(args, ports) == [
        "--http-port=41000",
        "--metrics-port",
        "41002",
        "--grpc-port=8001",  # not a declared port here: left alone
        "--other=8000",
    ]
    config = "inference_address=http://0.0.0.0:8000\nmanagement_address=http://127.0.0.1:8081\nmodel_store=/models\n"
    lines = rewrite_listeners(config, ports, _table(tmp_path)).splitlines()
    assert lines[0] == "inference_address=http://127.0.0.1:41000"
    assert lines[1].startswith("management_address=http://127.0.0.1:") and not lines[1].endswith(":8081")
    assert lines[2] == f"model_store={tmp_path}/store"
    assert {ln.split("=")[0] for ln in lines[3:]} == {"grpc_inference_port", "grpc_management_port"}


@pytest.mark.unit
def test_a_failing_init_container_shows_terminated_then_crash_loop_back_off() -> None:
    c = ContainerStatus("storage-initializer", "img")
    failure = terminated(1, 100.0, 101.0, "object not found: s3://b/k")
    c.failed(failure, 1.0, "pod-a")
    assert c.state == failure and c.last_state == {}
    assert failure["terminated"]["reason"] == "Error"
    c.restart_count += 1
    c.failed(terminated(1, 102.0, 103.0, "object not found: s3://b/k"), 2.0, "pod-a")
    assert c.state["waiting"]["reason"] == "CrashLoopBackOff"
    assert c.last_state["terminated"]["message"] == "object not found: s3://b/k"

    status = pod_status(
        [c],
        [ContainerStatus("server", "img")],
        pod_ip="10.244.250.9",
        host_ip=None,
        start_time=100.0,
        previous_conditions=[],
        now=104.0,
    )
    assert status["phase"] == "Pending" and "podIP" not in status
    conditions = {x["type"]: x for x in status["conditions"]}
    assert conditions["Initialized"]["status"] == "False"
    assert conditions["Initialized"]["message"] == "containers with incomplete status: [storage-initializer]"
    # a condition's transition time only moves when its status changes
    again = pod_status(
        [c],
        [ContainerStatus("server", "img")],
        pod_ip=None,
        host_ip=None,
        start_time=100.0,
        previous_conditions=status["conditions"],
        now=200.0,
    )
    assert again["conditions"] == status["conditions"]


@pytest.mark.unit
def test_kwok_leaves_the_real_namespaces_pods_alone_but_still_deletes_them() -> None:
    stages = {
        s["metadata"]["name"]: s for s in yaml.safe_load_all((REPO / "e2e/kwok/stages.yaml").read_text())
    }
    skip = {
        "key": f'.metadata.namespace | startswith("{REAL_NAMESPACE_PREFIX}")',
        "operator": "NotIn",
        "values": ["true"],
    }
    for name in ("pod-ready", "pod-complete"):
        assert skip in stages[name]["spec"]["selector"]["matchExpressions"], name
    assert skip not in stages["pod-delete"]["spec"]["selector"]["matchExpressions"]


# --- integration: a generated pod, run for real ----------------------------------------------------


def triton_spec(storage_uri: str, credentials: str | None = "s3-credentials") -> ModelDeploymentSpec:
    return ModelDeploymentSpec.model_validate(
        {
            "runtime": "triton",
            "model": {
                "name": "scorer",
                "version": "1",
                "storageUri": storage_uri,
                **({"credentialsSecret": credentials} if credentials else {}),
                "runtimeConfig": {
                    "platform": "python",
                    "maxBatchSize": 8,
                    "inputs": [{"name": "INPUT", "dataType": "TYPE_FP32", "dims": [4]}],
                    "outputs": [{"name": "OUTPUT", "dataType": "TYPE_FP32", "dims": [4]}],
                },
            },
            "resources": {"cpu": "1", "memory": "1Gi"},
        }
    )


def create_generated_pod(cluster: Cluster, ns: str, name: str, spec: ModelDeploymentSpec) -> dict[str, Any]:
    """The ConfigMap and one Pod exactly as the operator's builders make them (owner refs dropped:
    there is no ModelDeployment, and the garbage collector would delete orphans)."""
    runtime = get_runtime(spec.runtime)
    owner = OwnerInfo(
        "modeldeploy.dev/v1alpha1", "ModelDeployment", name, ns, "00000000-0000-0000-0000-000000000000"
    )
    revision = "r1"
    configmap = build_configmap(owner, spec, revision, runtime)
    configmap["metadata"].pop("ownerReferences")
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"{name}-pod",
            "labels": revision_labels(name, runtime.name, revision),
            "annotations": {"prometheus.io/port": str(runtime.metrics_port)},
        },
        "spec": build_pod_spec(owner, spec, revision, runtime, BuildSettings()),
    }
    cluster.apply([configmap, pod], namespace=ns)
    return pod


def read_pod(cluster: Cluster, ns: str, name: str) -> dict[str, Any]:
    result = cluster.kubectl("get", "pod", name, "-n", ns, "-o", "json", check=False)
    return json.loads(result.stdout) if result.returncode == 0 else {}


def wait_ready(cluster: Cluster, runner: PodRunner, ns: str, name: str, timeout: float) -> dict[str, Any]:
    """The pod once its Ready condition is True; on timeout the error carries its containers' logs."""

    def ready() -> dict[str, Any] | None:
        pod = read_pod(cluster, ns, name)
        return pod if condition(pod, "Ready") == "True" else None

    try:
        found: dict[str, Any] = poll(f"pod {name} Ready", ready, timeout=timeout)
    except AssertionError as e:
        raise AssertionError(f"{e}\n{runner.logs(name)}") from None
    return found


def condition(pod: dict[str, Any], kind: str) -> str | None:
    for c in (pod.get("status") or {}).get("conditions") or []:
        if c["type"] == kind:
            return str(c["status"])
    return None


@pytest.fixture
def s3_secret(cluster: Cluster, real_namespace: str, s3_server: Any) -> str:
    data = s3_server.env()
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "s3-credentials"},
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
    }
    cluster.apply(secret, namespace=real_namespace)
    return "s3-credentials"


@pytest.fixture
def runner(cluster: Cluster, real_namespace: str, tmp_path: Path) -> Iterator[PodRunner]:
    assert cluster.prometheus_targets_dir is not None
    r = PodRunner(
        cluster.kubeconfig,
        cluster.prometheus_targets_dir,
        tmp_path / "addresses",
        real_namespace,
        backoff=Backoff(initial_s=1, max_s=4),
    ).start()
    try:
        yield r
    finally:
        r.stop()


def infer(address: str, values: list[float]) -> dict[str, Any]:
    body = {"inputs": [{"name": "INPUT", "datatype": "FP32", "shape": [1, 4], "data": values}]}
    request = urllib.request.Request(
        f"http://{address}/v2/models/scorer/infer", data=json.dumps(body).encode(), method="POST"
    )
    with urllib.request.urlopen(request, timeout=10) as r:
        answer: dict[str, Any] = json.loads(r.read())
        return answer


def test_a_generated_triton_pod_pulls_its_model_from_s3_and_serves(
    cluster: Cluster, real_namespace: str, s3_server: Any, s3_secret: str, runner: PodRunner, tmp_path: Path
) -> None:
    s3_server.create_bucket(BUCKET)
    s3_server.put_object(BUCKET, "scorer/1/model.py", (MODEL_DIR / "model.py").read_bytes())
    create_generated_pod(cluster, real_namespace, "scorer", triton_spec(f"s3://{BUCKET}/scorer"))
    pod = wait_ready(cluster, runner, real_namespace, "scorer-pod", timeout=120)
    status = pod["status"]
    assert status["phase"] == "Running" and status["podIP"].startswith(POD_IP_PREFIX)
    [init] = status["initContainerStatuses"]
    assert init["state"]["terminated"]["reason"] == "Completed", init
    [server] = status["containerStatuses"]
    assert server["ready"] is True and "running" in server["state"]

    addresses = json.loads((tmp_path / "addresses" / f"{real_namespace}.scorer-pod.json").read_text())
    assert set(addresses) == {"8000", "8001", "8002"}
    answer = infer(addresses["8000"], [1, 2, 3, 4])
    assert answer["outputs"][0]["data"] == [2, 4, 6, 8]
    # Triton refreshes its counters every --metrics-interval-ms (2 s by default)
    poll(
        "the inference counted on the metrics port",
        lambda: served_requests(addresses["8002"]) == 1,
        timeout=15,
    )
    # the load's view: the fake pod IP resolves to this pod's real server
    running = runner.server_for_ip(status["podIP"])
    assert running is not None and running.model == "scorer" and running.revision == "r1"
    assert cluster.prometheus_targets_dir is not None
    target_file = cluster.prometheus_targets_dir / f"harness-{real_namespace}-scorer-pod.json"
    [target] = json.loads(target_file.read_text())
    assert target["targets"] == [addresses["8002"]]
    assert target["labels"] == {
        "job": "modeldeploy-harness",
        "namespace": real_namespace,
        "pod": "scorer-pod",
        "revision": "r1",
        "md": "scorer",
    }

    # the server dies: the pod leaves the Service (Ready false), then the restarted server serves again
    body = runner.pod_body(real_namespace, "scorer-pod")
    process = body.main[0].process if body else None
    assert process is not None
    os.killpg(process.proc.pid, signal.SIGKILL)
    poll(
        "Ready false", lambda: condition(read_pod(cluster, real_namespace, "scorer-pod"), "Ready") == "False"
    )
    back = wait_ready(cluster, runner, real_namespace, "scorer-pod", timeout=120)
    assert back["status"]["containerStatuses"][0]["restartCount"] == 1
    assert infer(addresses["8000"], [0, 0, 0, 1])["outputs"][0]["data"] == [0, 0, 0, 2]

    restarted = body.main[0].process if body else None
    assert restarted is not None
    cluster.kubectl("delete", "pod", "scorer-pod", "-n", real_namespace, "--wait=true", timeout=90)
    poll(
        "address map and target removed",
        lambda: not target_file.exists() and not any((tmp_path / "addresses").iterdir()),
    )
    assert runner.server_for_ip(status["podIP"]) is None
    poll("the server's processes gone", lambda: not group_alive(restarted.proc.pid), timeout=30)


def served_requests(metrics_address: str) -> float | None:
    """``nv_inference_request_success`` of the test model, as Triton's metrics port shows it now."""
    with urllib.request.urlopen(f"http://{metrics_address}/metrics", timeout=10) as r:
        for line in r.read().decode().splitlines():
            if line.startswith('nv_inference_request_success{model="scorer",version="1"}'):
                return float(line.rsplit(" ", 1)[1])
    return None


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def test_a_missing_object_shows_the_initializers_termination_message(
    cluster: Cluster, real_namespace: str, s3_server: Any, s3_secret: str, runner: PodRunner
) -> None:
    s3_server.create_bucket(BUCKET)
    create_generated_pod(cluster, real_namespace, "missing", triton_spec(f"s3://{BUCKET}/does-not-exist"))

    def init_status() -> dict[str, Any]:
        statuses = (read_pod(cluster, real_namespace, "missing-pod").get("status") or {}).get(
            "initContainerStatuses"
        )
        return statuses[0] if statuses else {}

    crash = poll(
        "CrashLoopBackOff",
        lambda: (
            (s := init_status())
            and (s.get("state", {}).get("waiting") or {}).get("reason") == "CrashLoopBackOff"
            and s
        ),
        timeout=90,
    )
    message = crash["lastState"]["terminated"]["message"]
    assert "does-not-exist" in message, message
    assert crash["lastState"]["terminated"]["exitCode"] != 0 and crash["restartCount"] >= 1
    pod = read_pod(cluster, real_namespace, "missing-pod")
    assert condition(pod, "Ready") == "False" and condition(pod, "Initialized") == "False"
    assert pod["status"]["phase"] == "Pending" and "podIP" not in pod["status"]
    assert runner.running(real_namespace) == []


def test_a_generated_torchserve_pod_is_ready_once_its_model_answers_and_needs_its_token(
    cluster: Cluster, real_namespace: str, s3_server: Any, s3_secret: str, runner: PodRunner, tmp_path: Path
) -> None:
    spec = ModelDeploymentSpec.model_validate(
        {
            "runtime": "torchserve",
            "model": {
                "name": "echo",
                "version": "1",
                "storageUri": f"s3://{BUCKET}/echo/echo.mar",
                "credentialsSecret": s3_secret,
            },
            "resources": {"cpu": "1", "memory": "1Gi"},
        }
    )
    store = tmp_path / "store"
    store.mkdir()
    build_mar(spec, tmp_path, store, HANDLER)
    s3_server.create_bucket(BUCKET)
    s3_server.put_file(BUCKET, "echo/echo.mar", store / "echo.mar")
    create_generated_pod(cluster, real_namespace, "echo", spec)
    # Ready comes from the generated exec probe: the model's workers are loaded
    pod = wait_ready(cluster, runner, real_namespace, "echo-pod", timeout=180)
    running = runner.server_for_ip(pod["status"]["podIP"])
    assert running is not None and running.runtime == "torchserve" and running.model == "echo"
    call = running.inference_call()
    assert call.headers.get("Authorization", "").startswith("Bearer ")  # the key TorchServe generated
    for headers, expected in ((call.headers, 200), ({"Content-Type": "application/json"}, 400)):
        conn = http.client.HTTPConnection(call.host, call.port, timeout=10)
        try:
            conn.request("POST", call.path, call.body, headers)
            response = conn.getresponse()
            assert response.status == expected, response.read()
        finally:
            conn.close()
