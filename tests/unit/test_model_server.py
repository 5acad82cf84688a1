"""The e2e harness's model server: real HTTP on loopback, metrics parsed as Prometheus would."""

from __future__ import annotations

import json
import re
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from harness.model_server import SUMMARY_QUANTILES, Behavior, ModelServer

TRITON_LABELS = {"model": "fraud", "version": "3"}


def call(
    server: ModelServer, path: str, body: dict[str, Any] | None = None, method: str | None = None
) -> tuple[int, bytes]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(server.url + path, data=data, method=method or ("POST" if data else "GET"))
    req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def infer_body(data: list[float] | None = None) -> dict[str, Any]:
    values = data or [1.0, 2.0, 3.0, 4.0]
    return {
        "id": "r1",
        "inputs": [{"name": "INPUT0", "datatype": "FP32", "shape": [1, len(values)], "data": values}],
    }


SAMPLE = re.compile(r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>.*)\})? (?P<value>\S+)$")
LABEL = re.compile(r'(?P<key>[a-zA-Z_][a-zA-Z0-9_]*)="(?P<value>(?:[^"\\]|\\.)*)",?')


def samples(server: ModelServer) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of /metrics as served over HTTP, by its exposed name (as Prometheus stores it).

    The body must also parse with prometheus_client's parser (which renames counters to *_total,
    so it is only used as a syntax and TYPE check here).
    """
    status, body = call(server, "/metrics")
    assert status == 200
    text = body.decode()
    families = {f.name: f.type for f in text_string_to_metric_families(text)}
    assert all(t in ("counter", "gauge", "summary") for t in families.values()), families
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        assert m, f"not a sample line: {line!r}"
        labels = frozenset((lm["key"], lm["value"]) for lm in LABEL.finditer(m["labels"] or ""))
        out[(m["name"], labels)] = float(m["value"])
    return out


def value(server: ModelServer, name: str, **labels: str) -> float:
    return samples(server)[(name, frozenset(labels.items()))]


@pytest.fixture
def triton() -> Iterator[ModelServer]:
    with ModelServer("triton", model="fraud", version="3") as server:
        yield server


@pytest.fixture
def torchserve() -> Iterator[ModelServer]:
    with ModelServer("torchserve", model="fraud", version="2.0", hostname="pod-a") as server:
        yield server


# --- Triton ----------------------------------------------------------------------------------------


def test_triton_health_metadata_and_echoing_infer(triton: ModelServer) -> None:
    assert call(triton, "/v2/health/live")[0] == 200
    assert call(triton, "/v2/health/ready")[0] == 200
    status, body = call(triton, "/v2/models/fraud")
    assert status == 200 and json.loads(body)["versions"] == ["3"]
    assert call(triton, "/v2/models/fraud/versions/3/ready")[0] == 200

    status, body = call(triton, "/v2/models/fraud/infer", infer_body([5.0, 6.0]))
    assert status == 200
    response = json.loads(body)
    assert response["id"] == "r1" and response["model_name"] == "fraud" and response["model_version"] == "3"
    assert response["outputs"] == [
        {"name": "OUTPUT0", "datatype": "FP32", "shape": [1, 2], "data": [5.0, 6.0]}
    ]

    status, body = call(triton, "/v2/models/other/infer", infer_body())
    assert status == 400 and "unknown model" in json.loads(body)["error"]
    assert call(triton, "/v2/models/fraud/infer", {"no": "inputs"})[0] == 400


def test_triton_metrics_count_successes_failures_and_durations(triton: ModelServer) -> None:
    before = samples(triton)
    assert before[("nv_inference_request_success", frozenset(TRITON_LABELS.items()))] == 0
    for _ in range(3):
        assert call(triton, "/v2/models/fraud/infer", infer_body())[0] == 200
    triton.set_behavior(error_rate=1.0)
    for _ in range(2):
        assert call(triton, "/v2/models/fraud/infer", infer_body())[0] == 500

    m = samples(triton)
    assert m[("nv_inference_request_success", frozenset(TRITON_LABELS.items()))] == 3
    failures = {
        dict(labels)["reason"]: v for (name, labels), v in m.items() if name == "nv_inference_request_failure"
    }
    assert failures == {"REJECTED": 0, "CANCELED": 0, "BACKEND": 2, "OTHER": 0}
    assert m[("nv_inference_count", frozenset(TRITON_LABELS.items()))] == 3
    assert m[("nv_inference_request_duration_us", frozenset(TRITON_LABELS.items()))] > 0
    assert m[("nv_inference_request_summary_us_count", frozenset(TRITON_LABELS.items()))] == 3
    quantiles = {
        dict(labels)["quantile"]
        for (name, labels), _ in m.items()
        if name == "nv_inference_request_summary_us" and "quantile" in dict(labels)
    }
    assert quantiles == {str(q) for q in SUMMARY_QUANTILES}
    assert triton.stats().success == 3 and triton.stats().failure == 2


def test_error_rate_is_an_exact_fraction(triton: ModelServer) -> None:
    triton.set_behavior(error_rate=0.25)
    statuses = [call(triton, "/v2/models/fraud/infer", infer_body())[0] for _ in range(12)]
    assert statuses.count(500) == 3 and statuses.count(200) == 9
    assert value(triton, "nv_inference_request_failure", reason="BACKEND", **TRITON_LABELS) == 3


def test_latency_and_queue_time_are_slept_and_recorded(triton: ModelServer) -> None:
    triton.set_behavior(latency_ms=60, queue_ms=40)
    start = time.monotonic()
    assert call(triton, "/v2/models/fraud/infer", infer_body())[0] == 200
    assert time.monotonic() - start >= 0.1
    m = samples(triton)
    duration = m[("nv_inference_request_duration_us", frozenset(TRITON_LABELS.items()))]
    queue = m[("nv_inference_queue_duration_us", frozenset(TRITON_LABELS.items()))]
    assert duration >= 100_000 and 40_000 <= queue < duration
    p99 = m[("nv_inference_request_summary_us", frozenset({**TRITON_LABELS, "quantile": "0.99"}.items()))]
    assert p99 == duration  # one observation: every quantile is it
    # latency is a behaviour of inference only: health stays fast
    start = time.monotonic()
    assert call(triton, "/v2/health/ready")[0] == 200
    assert time.monotonic() - start < 0.1


def test_down_refuses_connections_and_comes_back_on_the_same_port(triton: ModelServer) -> None:
    port = triton.port
    assert call(triton, "/v2/models/fraud/infer", infer_body())[0] == 200
    triton.set_behavior(down=True)
    assert not triton.listening
    with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port), timeout=2):
        pass
    triton.set_behavior(down=False)
    assert triton.port == port and triton.listening
    assert call(triton, "/v2/models/fraud/infer", infer_body())[0] == 200
    assert value(triton, "nv_inference_request_success", **TRITON_LABELS) == 2  # counters survive


def test_knobs_are_safe_under_concurrent_requests(triton: ModelServer) -> None:
    triton.set_behavior(error_rate=0.5)
    statuses: list[int] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(10):
            status = call(triton, "/v2/models/fraud/infer", infer_body())[0]
            with lock:
                statuses.append(status)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert len(statuses) == 80 and statuses.count(500) == 40
    stats = triton.stats()
    assert (stats.success, stats.failure) == (40, 40)
    assert value(triton, "nv_inference_request_success", **TRITON_LABELS) == 40


def test_behavior_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="error_rate"):
        Behavior(error_rate=1.5)
    with pytest.raises(ValueError, match="latency_ms"):
        Behavior(latency_ms=-1)


def test_each_server_has_its_own_counters() -> None:
    with (
        ModelServer("triton", model="fraud", version="3") as a,
        ModelServer("triton", model="fraud", version="3") as b,
    ):
        assert a.port != b.port
        assert call(a, "/v2/models/fraud/infer", infer_body())[0] == 200
        assert value(a, "nv_inference_request_success", **TRITON_LABELS) == 1
        assert value(b, "nv_inference_request_success", **TRITON_LABELS) == 0


# --- TorchServe ------------------------------------------------------------------------------------


def test_torchserve_ping_predictions_and_metrics(torchserve: ModelServer) -> None:
    assert samples(torchserve) == {}  # TorchServe creates its series on first use; scrapes are not counted
    status, body = call(torchserve, "/ping")
    assert status == 200 and json.loads(body) == {"status": "Healthy"}
    assert samples(torchserve) == {
        ("Requests2XX", frozenset({"Level": "Host", "Hostname": "pod-a"}.items())): 1
    }
    status, body = call(torchserve, "/predictions/fraud", {"data": [1, 2]})
    assert status == 200 and json.loads(body) == {"data": [1, 2]}
    assert call(torchserve, "/predictions/fraud/2.0", {"data": [1]})[0] == 200
    assert call(torchserve, "/predictions/other", {"data": [1]})[0] == 404

    m = samples(torchserve)
    base = {"model_name": "fraud", "hostname": "pod-a"}
    # no version in the URL: TorchServe labels it "default"
    assert m[("ts_inference_requests_total", frozenset({**base, "model_version": "default"}.items()))] == 1
    assert m[("ts_inference_requests_total", frozenset({**base, "model_version": "2.0"}.items()))] == 1
    assert (
        m[("ts_inference_latency_microseconds", frozenset({**base, "model_version": "default"}.items()))] > 0
    )
    assert ("ts_queue_latency_microseconds", frozenset({**base, "model_version": "default"}.items())) in m
    host = frozenset({"Level": "Host", "Hostname": "pod-a"}.items())
    assert m[("Requests2XX", host)] == 3  # /ping and two predictions
    assert m[("Requests4XX", host)] == 1
    assert ("Requests5XX", host) not in m


def test_torchserve_failures_are_503_counted_as_requests_and_5xx(torchserve: ModelServer) -> None:
    torchserve.set_behavior(error_rate=1.0, latency_ms=20)
    status, body = call(torchserve, "/predictions/fraud", {"data": [1]})
    assert status == 503 and json.loads(body)["message"] == "Prediction failed"
    m = samples(torchserve)
    labels = frozenset({"model_name": "fraud", "model_version": "default", "hostname": "pod-a"}.items())
    assert m[("ts_inference_requests_total", labels)] == 1  # counted when received
    assert m[("Requests5XX", frozenset({"Level": "Host", "Hostname": "pod-a"}.items()))] == 1
    assert ("ts_inference_latency_microseconds", labels) not in m  # latency: successful requests only
    assert torchserve.stats().failure == 1
