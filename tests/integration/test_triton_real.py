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
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest

from modeldeploy.analysis.prometheus import PrometheusClient, measure
from modeldeploy.analysis.templates import TARGET_LABELS
from modeldeploy.api.spec import BUILTIN_TEMPLATES, Analysis, Guardrail, ModelDeploymentSpec
from modeldeploy.runtimes import get_runtime
from modeldeploy_testing.cluster import Prometheus, poll
from modeldeploy_testing.triton import TritonProcess, missing_prerequisite, scrape
from modeldeploy_testing.triton_model import (
    ERROR_RESPONSE,
    OK,
    RAISE,
    TENSORS,
    ControlledModel,
    Pod,
    materialize,
    output,
    serving,
    triton_for,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

_missing = missing_prerequisite()
if _missing is not None:
    pytest.skip(_missing, allow_module_level=True)

RUNTIME = get_runtime("triton")
MD_NAME = "guard"
MODEL = "guard"
READY_TIMEOUT_S = 120.0
SUMMARY_FLAG = "--metrics-config=summary_latencies=true"


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


def lay_out(spec: ModelDeploymentSpec, root: Path, namespace: str = "t-triton-real") -> Pod:
    return materialize(spec, root, MD_NAME, namespace)


def has_value(prometheus: Prometheus, query: str, expected: float) -> bool:
    return any(float(sample["value"][1]) == expected for sample in prometheus.query(query))


# --- fixtures --------------------------------------------------------------------------------------


@dataclass
class Served:
    pod: Pod
    model: ControlledModel
    gate: Path

    @property
    def triton(self) -> TritonProcess:
        return self.model.triton


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    base = tmp_path_factory.mktemp("triton")
    pod = lay_out(make_spec(), base / "pod")
    gate = base / "gate"
    gate.mkdir()
    with serving(pod, gate=gate) as model:
        yield Served(pod, model, gate)


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    """For the module's server. Tests that start their own open a client inside ``serving(...)``:
    on SIGTERM Triton waits (up to 30 s) for open HTTP connections to close."""
    with httpx.Client(timeout=30) as c:
        yield c


# --- the generated configuration on the real server ------------------------------------------------


def test_generated_config_loads_and_the_probe_path_turns_ready(served: Served, client: httpx.Client) -> None:
    pod, model, triton = served.pod, served.model, served.triton
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

    r = model.infer(client, OK, rows=2)
    assert output(r, "OUTPUT") == [3.0] * 8
    assert output(r, "BATCH_SIZE") == [2, 2]


def test_dynamic_batching_and_instance_group(served: Served, client: httpx.Client) -> None:
    # two requests execute at once (instance_group count 2: hold_and_queue waits for the second to
    # enter execute() while the first is still in it); three more wait in the queue. When the two
    # instances free up, the dynamic batcher serves the three in at most two calls (3, or 1 + 2; which
    # one depends on which instance frees first), so at least two of them share a call.
    held = served.model.hold_and_queue(served.gate, holds=2, queued=3, min_wait_s=0.2)
    for key, response in held.responses.items():
        assert response.status_code == 200, (key, response.text)
    batch_sizes = sorted(output(held.responses[f"queued-{i}"], "BATCH_SIZE")[0] for i in range(3))
    assert batch_sizes in ([3, 3, 3], [1, 2, 2]), batch_sizes
    # max_batch_size: 4 rows in one request are served, 5 are refused before the model sees them
    model = served.model
    assert output(model.infer(client, OK, rows=4), "BATCH_SIZE") == [4] * 4
    too_big = model.infer(client, OK, rows=5)
    assert too_big.status_code == 400
    assert "batch-size must be <= 4" in too_big.text


def test_what_the_failure_counter_counts(served: Served, client: httpx.Client) -> None:
    model, triton = served.model, served.triton
    before = model.counters()
    assert {k for k in before if k.startswith("failure:")} == {
        "failure:BACKEND",
        "failure:OTHER",
        "failure:CANCELED",
        "failure:REJECTED",
    }, "nv_inference_request_failure's reason label changed"

    # raised in execute(): HTTP 500, counted as a failure with reason BACKEND, not as a success
    raised = model.infer(client, RAISE)
    assert raised.status_code == 500 and "failure raised in execute" in raised.text, raised.text
    after_raise = model.wait_counters(
        "failure:BACKEND + 1", lambda c: c["failure:BACKEND"] == before["failure:BACKEND"] + 1
    )
    assert after_raise["success"] == before["success"]

    # an error response: HTTP 500 to the client, yet Triton counts a SUCCESS and no failure
    error_response = model.infer(client, ERROR_RESPONSE)
    assert error_response.status_code == 500 and "error response" in error_response.text, error_response.text
    after_error = model.wait_counters("success + 1", lambda c: c["success"] == after_raise["success"] + 1)
    assert after_error["failure:BACKEND"] == after_raise["failure:BACKEND"]

    # refused before scheduling (400: wrong shape, batch too large, unknown input): not counted at all
    assert model.infer(client, OK, width=3).status_code == 400
    assert model.infer(client, OK, rows=5).status_code == 400
    unknown = client.post(
        f"{triton.http_url}/v2/models/{MODEL}/infer",
        json={"inputs": [{"name": "NOPE", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]},
    )
    assert unknown.status_code == 400
    assert output(model.infer(client, OK), "BATCH_SIZE") == [1]  # a barrier: counted after the 400s
    after = model.wait_counters("success + 1", lambda c: c["success"] == after_error["success"] + 1)
    assert {k: v for k, v in after.items() if k.startswith("failure:")} == {
        k: v for k, v in after_error.items() if k.startswith("failure:")
    }


def test_queue_full_rejections_are_not_counted(tmp_path: Path) -> None:
    # A runtime fact behind a documented blind spot, not operator output: the spec has no queue
    # policy, so the test adds one to the rendered config (a queue of one request).
    pod = lay_out(make_spec(), tmp_path / "pod")
    config = pod.path(f"{RUNTIME.model_repository}/{MODEL}/config.pbtxt")
    text = config.read_text()
    assert text.count("dynamic_batching {\n") == 1
    config.write_text(
        text.replace(
            "dynamic_batching {\n", "dynamic_batching {\n  default_queue_policy { max_queue_size: 1 }\n"
        )
    )
    gate = tmp_path / "gate"
    gate.mkdir()
    rejected: list[httpx.Response] = []
    with serving(pod, gate=gate) as model, httpx.Client(timeout=30) as client:
        before = model.counters()

        def overflow() -> None:  # both instances busy, one request queued: the queue is full
            rejected.extend(model.infer(client, OK) for _ in range(2))

        held = model.hold_and_queue(gate, holds=2, queued=1, min_wait_s=0, while_queued=overflow)
        assert all(r.status_code == 200 for r in held.responses.values())
        assert [(r.status_code, "Exceeds maximum queue size" in r.text) for r in rejected] == [
            (503, True)
        ] * 2
        after = model.wait_counters("3 more successes", lambda c: c["success"] == before["success"] + 3)
        assert {k: v for k, v in after.items() if k.startswith("failure:")} == {
            k: v for k, v in before.items() if k.startswith("failure:")
        }


def test_metric_types(served: Served, client: httpx.Client) -> None:
    assert output(served.model.infer(client, OK), "BATCH_SIZE") == [1]
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


def test_summaries_need_summary_latencies(tmp_path: Path) -> None:
    pod = lay_out(make_spec(instanceCount=1), tmp_path / "pod")
    args = [a for a in pod.container["args"] if a != SUMMARY_FLAG]
    assert len(args) == len(pod.container["args"]) - 1
    with serving(pod, args) as model, httpx.Client(timeout=30) as client:
        assert output(model.infer(client, OK), "BATCH_SIZE") == [1]
        model.wait_counters("a success counted", lambda c: c["success"] == 1)
        m = scrape(model.triton.metrics_url)
        assert m.total("nv_inference_request_duration_us", model=MODEL) > 0
        assert not {n for n in m.names() if "_summary_us" in n}, sorted(m.names())


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
    pod = lay_out(spec, tmp_path / "pod")
    assert "model_warmup [" in pod.path(f"{RUNTIME.model_repository}/{MODEL}/config.pbtxt").read_text()
    with serving(pod) as model:
        # Triton ran the warm-up on each of the 2 instances before reporting ready, and counts every
        # warm-up row as a successful request: 2 x (3 x 4 + 1 x 1)
        counted = model.counters()
        assert counted["success"] == counted["inferences"] == 2 * (3 * 4 + 1), counted
        assert sum(v for k, v in counted.items() if k.startswith("failure:")) == 0, counted


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
    pod = lay_out(spec, tmp_path / "pod")
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


def test_every_triton_guardrail_sees_requests_and_errors(tmp_path: Path, prometheus: Prometheus) -> None:
    namespace = f"t-triton-real-{secrets.token_hex(3)}"  # fresh series: no earlier run in the window
    pod = lay_out(make_spec(), tmp_path / "pod", namespace=namespace)
    gate = tmp_path / "gate"
    gate.mkdir()
    # the client closes before the server stops: Triton waits for open HTTP connections on SIGTERM
    with serving(pod, gate=gate) as model, httpx.Client(timeout=30) as client:
        triton = model.triton
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
            assert model.infer(client, OK).status_code == 200
        for _ in range(n_raise):
            assert model.infer(client, RAISE).status_code == 500
        for _ in range(n_error_response):
            assert model.infer(client, ERROR_RESPONSE).status_code == 500
        assert model.infer(client, OK, width=3).status_code == 400  # never counted
        held = model.hold_and_queue(gate, holds=2, queued=3, min_wait_s=0.5)
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
    for m in measurements.values():  # shown with a failure (or with -s)
        print(f"{m.guardrail}: value={m.value} samples={m.samples} {m.threshold} -> {m.verdict}")
    assert set(measurements) == set(BUILTIN_TEMPLATES)
    for m in measurements.values():
        assert m.value is not None and math.isfinite(m.value), m
        # the sample count (success + failure increases) sees every counted request; increase()
        # only extrapolates upwards (to the window's end: at most 1.1 scrape intervals more than the
        # few seconds of samples; not to its start, since every series starts at 0 inside it)
        assert m.samples is not None and successes + failures <= m.samples < 2 * (successes + failures), m

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
