"""What the operator generates for Triton runs on the real ``tritonserver`` (2.51.0, nvidia-pytriton).

No pods: the test builds the ModelDeployment's ConfigMap and Deployment with the operator's own
builders (:mod:`modeldeploy.children`), lays out the files as the pod sees them (the ConfigMap's
``config.pbtxt`` through its subPath mount at ``/models/<model>/config.pbtxt``, the model the storage
initializer leaves at ``/models/<model>/<version>/model.py``, emptyDirs) under a temporary directory,
and runs the server container's command line with only the repository path, the ports and the local
``--backend-directory`` substituted (see :mod:`modeldeploy_testing.triton`). The model
(``data/triton_python_model/model.py``) lets each request choose how it ends: served, raised in
``execute``, an error response, or held until the test releases it.

Then: the readiness path of the generated probe, batching and instance groups as configured, what
Triton's failure counter does and does not count, the metric types, and every built-in Triton
guardrail template evaluated by the operator's own measurement code on what the cluster's real
Prometheus scraped from port 8002 (target labels as the harness World writes them).
"""

from __future__ import annotations

import math
import secrets
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest

from modeldeploy.analysis.prometheus import PrometheusClient, measure
from modeldeploy.analysis.templates import TARGET_LABELS
from modeldeploy.api.common import API_VERSION
from modeldeploy.api.spec import BUILTIN_TEMPLATES, Analysis, Guardrail, ModelDeploymentSpec
from modeldeploy.children import BuildSettings, OwnerInfo, build_configmap, build_deployment, revision_hash
from modeldeploy.runtimes import get_runtime
from modeldeploy_testing.cluster import Prometheus, poll
from modeldeploy_testing.triton import (
    TritonPorts,
    TritonProcess,
    localize_args,
    missing_prerequisite,
    scrape,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

_missing = missing_prerequisite()
if _missing is not None:
    pytest.skip(_missing, allow_module_level=True)

RUNTIME = get_runtime("triton")
MODEL_SOURCE = Path(__file__).parent / "data" / "triton_python_model" / "model.py"
GATE_ENV = "TRITON_TEST_MODEL_GATE_DIR"  # see model.py
OK, RAISE, ERROR_RESPONSE, HOLD = 0, 1, 2, 3
MD_NAME = "guard"
MODEL = "guard"
READY_TIMEOUT_S = 120.0
SUMMARY_FLAG = "--metrics-config=summary_latencies=true"

TENSORS: dict[str, Any] = {
    "inputs": [
        {"name": "INPUT", "dataType": "TYPE_FP32", "dims": [4]},
        {"name": "CONTROL", "dataType": "TYPE_INT32", "dims": [1]},
    ],
    "outputs": [
        {"name": "OUTPUT", "dataType": "TYPE_FP32", "dims": [4]},
        {"name": "BATCH_SIZE", "dataType": "TYPE_INT32", "dims": [1]},
    ],
}


def make_spec(**runtime_config: Any) -> ModelDeploymentSpec:
    config: dict[str, Any] = {
        "platform": "python",
        "maxBatchSize": 4,
        "dynamicBatching": {"maxQueueDelayMicroseconds": 1000},
        "instanceCount": 2,
        **TENSORS,
        **runtime_config,
    }
    body = {
        "runtime": "triton",
        "model": {
            "name": MODEL,
            "version": "3",
            "storageUri": f"s3://models-bucket/{MODEL}/3",
            "runtimeConfig": config,
        },
    }
    return ModelDeploymentSpec.model_validate(body)


# --- the pod, laid out under a temporary root ------------------------------------------------------


@dataclass
class Pod:
    spec: ModelDeploymentSpec
    revision: str
    root: Path  # the pod's "/"
    container: dict[str, Any]  # the server container as the Deployment has it

    def path(self, container_path: str) -> Path:
        return self.root / container_path.lstrip("/")

    @property
    def readiness_path(self) -> str:
        probe = self.container["readinessProbe"]["httpGet"]
        assert probe["port"] in (RUNTIME.ports["http"], "http"), probe
        path: str = probe["path"]
        return path


def materialize(spec: ModelDeploymentSpec, root: Path, namespace: str = "t-triton-real") -> Pod:
    """The server container's view of its volumes, built from the operator's ConfigMap and Deployment."""
    owner = OwnerInfo(
        API_VERSION, "ModelDeployment", MD_NAME, namespace, "00000000-0000-0000-0000-000000000001"
    )
    revision = revision_hash(spec)
    config_map = build_configmap(owner, spec, revision, RUNTIME)
    deployment = build_deployment(owner, spec, revision, 1, RUNTIME, BuildSettings())
    pod_spec = deployment["spec"]["template"]["spec"]
    [container] = pod_spec["containers"]
    volumes = {v["name"]: v for v in pod_spec["volumes"]}
    pod = Pod(spec, revision, root, container)
    for mount in container["volumeMounts"]:
        volume, target = volumes[mount["name"]], pod.path(mount["mountPath"])
        if "configMap" in volume:
            assert volume["configMap"]["name"] == config_map["metadata"]["name"]
            files = config_map["data"]
            if "subPath" in mount:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(files[mount["subPath"]])
            else:
                target.mkdir(parents=True, exist_ok=True)
                for name, text in files.items():
                    (target / name).write_text(text)
        else:  # emptyDir (the model store, /dev/shm, writable dirs)
            target.mkdir(parents=True, exist_ok=True)
    # what the storage initializer leaves in the model store
    version_dir = pod.path(RUNTIME.model_path(spec))
    version_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy(MODEL_SOURCE, version_dir / "model.py")
    return pod


def triton_for(pod: Pod, args: list[str] | None = None, gate: Path | None = None) -> TritonProcess:
    """The server container's command line, repository and ports localized; not started yet."""
    assert pod.container["command"] == ["tritonserver"]
    container_args = pod.container["args"] if args is None else args
    local_args = localize_args(container_args, pod.path(RUNTIME.model_repository), TritonPorts.free())
    env = {
        e["name"]: str(pod.path(e["value"])) if e["value"].startswith("/") else e["value"]
        for e in pod.container.get("env", [])
    }
    if gate is not None:
        env[GATE_ENV] = str(gate)
    return TritonProcess(local_args, log_path=pod.root.parent / "tritonserver.log", env=env)


@contextmanager
def serving(pod: Pod, args: list[str] | None = None, gate: Path | None = None) -> Iterator[TritonProcess]:
    """Start Triton for ``pod`` and wait until the generated readiness probe's path answers 200."""
    triton = triton_for(pod, args, gate)
    with triton:
        try:
            triton.wait_ready(pod.readiness_path, READY_TIMEOUT_S)
            yield triton
        except BaseException:
            print(f"tritonserver log:\n{triton.logs()[-8000:]}")  # shown with the failure
            raise


# --- requests --------------------------------------------------------------------------------------


def body(control: int, rows: int = 1, width: int = 4) -> dict[str, Any]:
    return {
        "inputs": [
            {"name": "INPUT", "shape": [rows, width], "datatype": "FP32", "data": [1.5] * (rows * width)},
            {"name": "CONTROL", "shape": [rows, 1], "datatype": "INT32", "data": [control] * rows},
        ]
    }


def infer(
    client: httpx.Client, triton: TritonProcess, control: int, rows: int = 1, width: int = 4
) -> httpx.Response:
    return client.post(f"{triton.http_url}/v2/models/{MODEL}/infer", json=body(control, rows, width))


def output(response: httpx.Response, name: str) -> list[Any]:
    assert response.status_code == 200, response.text
    [tensor] = [o for o in response.json()["outputs"] if o["name"] == name]
    data: list[Any] = tensor["data"]
    return data


def counters(triton: TritonProcess) -> dict[str, float]:
    """The model's request counters now (failures by reason)."""
    m = scrape(triton.metrics_url)
    out = {
        "success": m.total("nv_inference_request_success", model=MODEL),
        "inferences": m.total("nv_inference_count", model=MODEL),
    }
    for reason in m.label_values("nv_inference_request_failure", "reason"):
        out[f"failure:{reason}"] = m.total("nv_inference_request_failure", model=MODEL, reason=reason)
    return out


def wait_counters(
    triton: TritonProcess, what: str, check: Callable[[dict[str, float]], bool]
) -> dict[str, float]:
    """Poll the counters until ``check`` holds; the counters that satisfied it."""

    def satisfied() -> dict[str, float] | None:
        now = counters(triton)
        return now if check(now) else None

    return triton.wait_until(what, satisfied, 30)


def held_count_is(gate: Path, count: int) -> bool:
    return len(list(gate.glob("held-*"))) == count


def has_value(prometheus: Prometheus, query: str, expected: float) -> bool:
    return any(float(sample["value"][1]) == expected for sample in prometheus.query(query))


@dataclass
class Held:
    """Requests parked by the HOLD control, and requests queued behind them."""

    responses: dict[str, httpx.Response]
    threads: list[threading.Thread]
    queued_for_s: float  # time the queued requests certainly waited in Triton's queue


def hold_and_queue(triton: TritonProcess, gate: Path, holds: int, queued: int, min_wait_s: float) -> Held:
    """Park ``holds`` requests in model instances (one at a time), queue ``queued`` OK requests behind
    them, keep them queued for at least ``min_wait_s``, then release everything and wait for answers."""
    for leftover in gate.iterdir():
        leftover.unlink()
    responses: dict[str, httpx.Response] = {}
    threads: list[threading.Thread] = []

    def send(key: str, control: int) -> None:
        with httpx.Client(timeout=90) as c:
            responses[key] = infer(c, triton, control)

    def start(key: str, control: int) -> None:
        thread = threading.Thread(target=send, args=(key, control), daemon=True)
        thread.start()
        threads.append(thread)

    try:
        for i in range(holds):
            start(f"hold-{i}", HOLD)
            # the next one starts only once this one sits in execute(): so each takes its own instance
            triton.wait_until(
                f"{i + 1} held request(s) in execute()", partial(held_count_is, gate, i + 1), 30
            )
        for i in range(queued):
            start(f"queued-{i}", OK)
        pending = f'nv_inference_pending_request_count (model="{MODEL}") == {queued}'
        triton.wait_until(
            pending,
            lambda: (
                scrape(triton.metrics_url).total("nv_inference_pending_request_count", model=MODEL) == queued
            ),
        )
        queued_since = time.monotonic()
        triton.wait_until(
            f"{min_wait_s}s with requests queued", lambda: time.monotonic() - queued_since >= min_wait_s
        )
        queued_for = time.monotonic() - queued_since
    finally:
        (gate / "release").write_text("")
    for thread in threads:
        thread.join(timeout=90)
    assert len(responses) == holds + queued, sorted(responses)
    return Held(responses, threads, queued_for)


# --- fixtures --------------------------------------------------------------------------------------


@dataclass
class Served:
    pod: Pod
    triton: TritonProcess
    gate: Path


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    base = tmp_path_factory.mktemp("triton")
    pod = materialize(make_spec(), base / "pod")
    gate = base / "gate"
    gate.mkdir()
    with serving(pod, gate=gate) as triton:
        yield Served(pod, triton, gate)


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30) as c:
        yield c


# --- the generated configuration on the real server ------------------------------------------------


def test_generated_config_loads_and_the_probe_path_turns_ready(served: Served, client: httpx.Client) -> None:
    pod, triton = served.pod, served.triton
    assert pod.readiness_path == "/v2/health/ready"
    assert triton.status(pod.readiness_path) == 200
    assert triton.status(f"/v2/models/{MODEL}/ready") == 200
    rendered = pod.path(f"{RUNTIME.model_repository}/{MODEL}/config.pbtxt").read_text()
    assert rendered == RUNTIME.render_config(pod.spec)["config.pbtxt"]

    loaded = client.get(f"{triton.http_url}/v2/models/{MODEL}/config").json()
    rc = pod.spec.model.runtime_config
    assert loaded["backend"] == "python"
    assert loaded["max_batch_size"] == rc.max_batch_size == 4
    assert int(loaded["dynamic_batching"]["max_queue_delay_microseconds"]) == 1000
    assert [(g["count"], g["kind"]) for g in loaded["instance_group"]] == [(2, "KIND_CPU")]
    for kind, declared in (("input", TENSORS["inputs"]), ("output", TENSORS["outputs"])):
        got = [(t["name"], t["data_type"], [int(d) for d in t["dims"]]) for t in loaded[kind]]
        assert got == [(t["name"], t["dataType"], t["dims"]) for t in declared], kind

    r = infer(client, triton, OK, rows=2)
    assert output(r, "OUTPUT") == [3.0] * 8
    assert output(r, "BATCH_SIZE") == [2, 2]


def test_dynamic_batching_and_instance_group(served: Served, client: httpx.Client) -> None:
    # two requests execute at once (instance_group count 2); three more wait in the queue and the
    # dynamic batcher hands them to the first free instance as one batch
    held = hold_and_queue(served.triton, served.gate, holds=2, queued=3, min_wait_s=0.2)
    for key, response in held.responses.items():
        assert response.status_code == 200, (key, response.text)
    batch_sizes = [output(held.responses[f"queued-{i}"], "BATCH_SIZE")[0] for i in range(3)]
    assert batch_sizes == [3, 3, 3], batch_sizes
    # max_batch_size: 4 rows in one request are served, 5 are refused before the model sees them
    assert output(infer(client, served.triton, OK, rows=4), "BATCH_SIZE") == [4] * 4
    too_big = infer(client, served.triton, OK, rows=5)
    assert too_big.status_code == 400
    assert "batch-size must be <= 4" in too_big.text


def test_what_the_failure_counter_counts(served: Served, client: httpx.Client) -> None:
    triton = served.triton
    before = counters(triton)
    assert {k for k in before if k.startswith("failure:")} == {
        "failure:BACKEND",
        "failure:OTHER",
        "failure:CANCELED",
        "failure:REJECTED",
    }, "nv_inference_request_failure's reason label changed"

    # raised in execute(): HTTP 500, counted as a failure with reason BACKEND, not as a success
    raised = infer(client, triton, RAISE)
    assert raised.status_code == 500 and "failure raised in execute" in raised.text, raised.text
    after_raise = wait_counters(
        triton, "failure:BACKEND + 1", lambda c: c["failure:BACKEND"] == before["failure:BACKEND"] + 1
    )
    assert after_raise["success"] == before["success"]

    # an error response: HTTP 500 to the client, yet Triton counts a SUCCESS and no failure
    error_response = infer(client, triton, ERROR_RESPONSE)
    assert error_response.status_code == 500 and "error response" in error_response.text, error_response.text
    after_error = wait_counters(triton, "success + 1", lambda c: c["success"] == after_raise["success"] + 1)
    assert after_error["failure:BACKEND"] == after_raise["failure:BACKEND"]

    # refused before scheduling (400: wrong shape, batch too large, unknown input): not counted at all
    assert infer(client, triton, OK, width=3).status_code == 400
    assert infer(client, triton, OK, rows=5).status_code == 400
    unknown = client.post(
        f"{triton.http_url}/v2/models/{MODEL}/infer",
        json={"inputs": [{"name": "NOPE", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]},
    )
    assert unknown.status_code == 400
    assert output(infer(client, triton, OK), "BATCH_SIZE") == [1]  # a barrier: counted after the 400s
    after = wait_counters(triton, "success + 1", lambda c: c["success"] == after_error["success"] + 1)
    assert {k: v for k, v in after.items() if k.startswith("failure:")} == {
        k: v for k, v in after_error.items() if k.startswith("failure:")
    }


def test_metric_types(served: Served, client: httpx.Client) -> None:
    assert output(infer(client, served.triton, OK), "BATCH_SIZE") == [1]
    m = scrape(served.triton.metrics_url)
    for counter in (
        "nv_inference_request_success",
        "nv_inference_request_failure",
        "nv_inference_count",
        "nv_inference_exec_count",
        "nv_inference_request_duration_us",
        "nv_inference_queue_duration_us",
    ):
        assert m.types.get(counter) == "counter", (counter, m.types.get(counter))
    # the operator passes --metrics-config=summary_latencies=true: quantile summaries are exported
    assert SUMMARY_FLAG in served.pod.container["args"]
    for summary in ("nv_inference_request_summary_us", "nv_inference_queue_summary_us"):
        assert m.types.get(summary) == "summary", (summary, m.types.get(summary))
        assert {"0.5", "0.99"} <= m.label_values(summary, "quantile")
    assert m.types.get("nv_inference_pending_request_count") == "gauge"
    for name in RUNTIME.metrics.names():
        assert name in m.types, f"RuntimeMetrics names {name}, which Triton 2.51 does not export"
    for name, own_labels, _ in m.samples:
        assert not set(TARGET_LABELS) & set(own_labels), f"{name}: Triton must not export the target labels"


def test_summaries_need_summary_latencies(tmp_path: Path, client: httpx.Client) -> None:
    pod = materialize(make_spec(instanceCount=1), tmp_path / "pod")
    args = [a for a in pod.container["args"] if a != SUMMARY_FLAG]
    assert len(args) == len(pod.container["args"]) - 1
    with serving(pod, args) as triton:
        assert output(infer(client, triton, OK), "BATCH_SIZE") == [1]
        m = wait_and_scrape(triton)
        assert m.total("nv_inference_request_duration_us", model=MODEL) > 0
        assert not {n for n in m.names() if "_summary_us" in n}, sorted(m.names())


def wait_and_scrape(triton: TritonProcess) -> Any:
    triton.wait_until("a success counted", lambda: counters(triton)["success"] >= 1)
    return scrape(triton.metrics_url)


# --- warm-up and configs that must not load --------------------------------------------------------


def zeros(name: str, data_type: str, dims: list[int]) -> dict[str, Any]:
    return {"name": name, "dataType": data_type, "dims": dims, "zeroData": True}


def test_warmup_is_accepted_and_runs_before_ready(tmp_path: Path) -> None:
    spec = make_spec(
        warmup=[
            {
                "name": "zeros",
                "batchSize": 4,
                "count": 3,
                "inputs": [zeros("INPUT", "TYPE_FP32", [4]), zeros("CONTROL", "TYPE_INT32", [1])],
            },
            {
                "name": "random",
                "inputs": [
                    {"name": "INPUT", "dataType": "TYPE_FP32", "dims": [4], "randomData": True},
                    zeros("CONTROL", "TYPE_INT32", [1]),
                ],
            },
        ]
    )
    pod = materialize(spec, tmp_path / "pod")
    assert "model_warmup [" in pod.path(f"{RUNTIME.model_repository}/{MODEL}/config.pbtxt").read_text()
    with serving(pod) as triton:
        # Triton ran the warm-up on each of the 2 instances before reporting ready, and counts every
        # warm-up row as a successful request: 2 x (3 x 4 + 1 x 1)
        m = scrape(triton.metrics_url)
        assert m.total("nv_inference_request_success", model=MODEL) == 2 * (3 * 4 + 1)
        assert m.total("nv_inference_request_failure", model=MODEL) == 0


@pytest.mark.parametrize(
    ("tensor", "why"),
    [
        # the model's initialize() refuses an input it does not have
        (
            {"name": "INPUT0", "dataType": "TYPE_FP32", "dims": [4]},
            "the config ['CONTROL', 'INPUT', 'INPUT0']",
        ),
        # Triton's auto-complete check: the model declares INPUT with dims [4]
        (
            {"name": "INPUT", "dataType": "TYPE_FP32", "dims": [5]},
            "the model expects dims [4] but the model configuration specifies dims [5]",
        ),
    ],
)
def test_a_wrong_input_keeps_the_model_from_loading(tmp_path: Path, tensor: dict[str, Any], why: str) -> None:
    spec = make_spec(inputs=[tensor, TENSORS["inputs"][1]])
    pod = materialize(spec, tmp_path / "pod")
    triton = triton_for(pod)
    with triton:
        # Triton loads every model, then exits (exit-on-error is on by default): the readiness path
        # never answers 200 while it runs, so the pod never becomes Ready
        def ended_or_ready() -> str | None:
            if triton.is_ready(pod.readiness_path):
                return "ready"
            return "exited" if triton.returncode is not None else None

        deadline = time.monotonic() + READY_TIMEOUT_S
        outcome = None
        while outcome is None and time.monotonic() < deadline:
            outcome = ended_or_ready()
            time.sleep(0.2)
        assert outcome == "exited", (
            f"{why}: expected the server to give up, got {outcome}\n{triton.logs()[-4000:]}"
        )
        assert triton.returncode != 0
        log = triton.logs()
        assert f"failed to load '{MODEL}'" in log and why in log, log[-4000:]


# --- the guardrail templates on the real Prometheus ------------------------------------------------


def test_every_triton_guardrail_sees_requests_and_errors(
    tmp_path: Path, prometheus: Prometheus, client: httpx.Client
) -> None:
    namespace = f"t-triton-real-{secrets.token_hex(3)}"  # fresh series: no earlier run in the window
    pod = materialize(make_spec(), tmp_path / "pod", namespace=namespace)
    gate = tmp_path / "gate"
    gate.mkdir()
    with serving(pod, gate=gate) as triton:
        pod_name = f"{MD_NAME}-{pod.revision}-0"
        labels = {
            "job": "modeldeploy-triton-real",
            "namespace": namespace,
            "pod": pod_name,
            "revision": pod.revision,
            "md": MD_NAME,
        }
        prometheus.add_target(f"triton-real-{namespace}", triton.metrics_address, labels)
        scoped = f'namespace="{namespace}",md="{MD_NAME}",revision="{pod.revision}"'
        # the first scrape, all counters at zero, is inside the window: rates are exact ratios
        prometheus.wait_for(f"nv_inference_request_success{{{scoped}}}", timeout=60)

        n_ok, n_raise, n_error_response = 30, 6, 4
        for _ in range(n_ok):
            assert infer(client, triton, OK).status_code == 200
        for _ in range(n_raise):
            assert infer(client, triton, RAISE).status_code == 500
        for _ in range(n_error_response):
            assert infer(client, triton, ERROR_RESPONSE).status_code == 500
        assert infer(client, triton, OK, width=3).status_code == 400  # never counted
        held = hold_and_queue(triton, gate, holds=2, queued=3, min_wait_s=0.5)
        assert all(r.status_code == 200 for r in held.responses.values())

        successes = n_ok + n_error_response + 2 + 3  # error responses count as successes
        failures = n_raise
        for query, expected in (
            (f"sum(nv_inference_request_success{{{scoped}}})", successes),
            (f"sum(nv_inference_request_failure{{{scoped}}})", failures),
        ):
            poll(f"{query} == {expected} in Prometheus", partial(has_value, prometheus, query, expected), 60)

        guardrails = [
            Guardrail(name=t, template=t, max=0.01 if t == "error-rate" else 60_000)
            for t in BUILTIN_TEMPLATES
        ]
        analysis = Analysis(interval="15s", window="5m", min_sample_size=1, guardrails=guardrails)
        with PrometheusClient(prometheus.url) as prom:
            measurements = {
                m.guardrail: m
                for m in measure(
                    prom, analysis, "triton", namespace, MD_NAME, pod.revision, None, datetime.now(UTC)
                )
            }
    assert set(measurements) == set(BUILTIN_TEMPLATES)
    for m in measurements.values():
        assert m.value is not None and math.isfinite(m.value), m
        # the sample count (success + failure increases) sees every counted request; increase()
        # extrapolates to the window's end by at most ~1.1 scrape intervals
        assert m.samples is not None and successes + failures <= m.samples <= (successes + failures) * 1.15, m

    error_rate = measurements["error-rate"]
    assert error_rate.value == pytest.approx(failures / (successes + failures), rel=1e-9), error_rate
    assert error_rate.verdict == "Failed", error_rate
    # the quantile templates read the summaries: the p99 is at least the time the held requests
    # waited (the mean, over 41 requests, would be far lower); the queue p99 at least the queueing
    p99, p50 = measurements["latency-p99-ms"].value, measurements["latency-p50-ms"].value
    queue_p99 = measurements["queue-time-p99-ms"].value
    assert p99 is not None and p50 is not None and queue_p99 is not None
    assert p99 >= held.queued_for_s * 1000, measurements["latency-p99-ms"]
    assert queue_p99 >= held.queued_for_s * 1000, measurements["queue-time-p99-ms"]
    assert 0 < p50 <= p99
    for name in ("latency-p99-ms", "latency-p50-ms", "queue-time-p99-ms"):
        assert measurements[name].verdict == "Successful", measurements[name]
