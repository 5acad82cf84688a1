"""Sequential guardrails and sample counts through the Prometheus provider, against a loopback HTTP
server answering like Prometheus' API (per metric and revision), plus the API's validation and the
assessment of sequential evidence."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar
from urllib.parse import parse_qs

import pytest
from pydantic import ValidationError

from modeldeploy.analysis.prometheus import PrometheusClient, measure
from modeldeploy.api.spec import Analysis, Guardrail, SequentialTest
from modeldeploy.api.status import AnalysisCounters
from modeldeploy.rollout.assessment import assess, has_failed, record

pytestmark = pytest.mark.unit

CANARY, STABLE = "abc123", "def456"
SEQ = Guardrail(name="errors-vs-stable", template="error-rate", sequential=SequentialTest(tolerance=0.2))
ANALYSIS = Analysis(interval="15s", guardrails=[SEQ])


class Counters(BaseHTTPRequestHandler):
    """Answers a counting query with the sum of ``counts[(metric, revision)]`` over the counters it
    names, the custom queries with ``counts[("custom", "any")]`` (errors) and
    ``counts[("custom-requests", "any")]`` (requests), and any other with
    ``counts[("samples", "any")]`` (empty when absent)."""

    counts: ClassVar[dict[tuple[str, str], float]] = {}
    seen: ClassVar[list[dict[str, str]]] = []

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        form = {
            k: v[0]
            for k, v in parse_qs(self.rfile.read(int(self.headers["Content-Length"])).decode()).items()
        }
        type(self).seen.append(form)
        query = form["query"]
        parts = re.findall(r"sum\(\(\((\w+)\{[^}]*revision=\"(\w+)\"", query)
        if parts:
            value: float | None = sum(type(self).counts.get(p, 0.0) for p in parts)
        elif "my_errors_total" in query:
            value = type(self).counts.get(("custom", "any"))
        elif "my_requests_total" in query:
            value = type(self).counts.get(("custom-requests", "any"))
        else:
            value = type(self).counts.get(("samples", "any"))
        result = [] if value is None else [{"metric": {}, "value": [0, str(value)]}]
        raw = json.dumps({"status": "success", "data": {"resultType": "vector", "result": result}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)


@pytest.fixture
def client() -> Iterator[PrometheusClient]:
    Counters.counts, Counters.seen = {}, []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Counters)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    with PrometheusClient(f"http://127.0.0.1:{server.server_address[1]}", timeout=2) as c:
        yield c
    server.shutdown()
    server.server_close()


def _triton(canary: tuple[float, float], stable: tuple[float, float]) -> dict[tuple[str, str], float]:
    """(successes, failures) per revision, as the Triton counters' increases."""
    return {
        ("nv_inference_request_success", CANARY): canary[0],
        ("nv_inference_request_failure", CANARY): canary[1],
        ("nv_inference_request_success", STABLE): stable[0],
        ("nv_inference_request_failure", STABLE): stable[1],
    }


def test_sequential_counts_both_revisions_over_contiguous_intervals_at_the_measurement_time(
    client: PrometheusClient,
) -> None:
    Counters.counts = _triton(canary=(95, 5), stable=(891, 9))
    (first,) = measure(client, ANALYSIS, "triton", "prod", "bert", CANARY, STABLE, "2025-01-02T03:04:05Z")
    assert first.evidence is not None and first.verdict == "Inconclusive"
    assert (first.evidence.canary_requests, first.evidence.canary_errors) == (100, 5)
    assert (first.evidence.stable_requests, first.evidence.stable_errors) == (900, 9)
    assert first.evidence.through == "2025-01-02T03:04:04Z"
    sequential = [f for f in Counters.seen if " offset " in f["query"]]
    assert len(sequential) == 4  # requests and errors, canary and stable
    # the window ends SETTLE_S (1 s) before the measurement, and its end is recorded as "through"
    assert all("offset 30s)" in f["query"] and f["time"] == "1735787044.000" for f in sequential)
    assert all(") >= 0) or " in f["query"] for f in sequential)  # new and reset series count whole
    assert {re.search(r'revision="(\w+)"', f["query"]).group(1) for f in sequential} == {CANARY, STABLE}  # type: ignore[union-attr]

    Counters.seen = []
    Counters.counts = _triton(canary=(70, 30), stable=(891, 9))
    (second,) = measure(
        client,
        ANALYSIS,
        "triton",
        "prod",
        "bert",
        CANARY,
        STABLE,
        "2025-01-02T03:04:20Z",
        evidence=[first.evidence],
    )
    assert all("offset 15s)" in f["query"] for f in Counters.seen if " offset " in f["query"])
    assert second.evidence is not None and second.evidence.canary_errors == 35
    assert second.verdict == "Failed" and second.evidence.decision == "Regression"
    assert "evidence of a regression" in second.message


def test_sequential_without_a_stable_revision_is_inconclusive(client: PrometheusClient) -> None:
    (m,) = measure(client, ANALYSIS, "triton", "prod", "bert", CANARY, None, "2025-01-02T03:04:05Z")
    assert m.verdict == "Inconclusive" and m.evidence is None
    assert "no stable revision" in m.message


def test_torchserve_sequential_uses_5xx_and_inference_requests(client: PrometheusClient) -> None:
    Counters.counts = {
        ("ts_inference_requests_total", CANARY): 100,
        ("Requests5XX", CANARY): 2,
        ("ts_inference_requests_total", STABLE): 900,
        ("Requests5XX", STABLE): 18,
    }
    (m,) = measure(client, ANALYSIS, "torchserve", "prod", "bert", CANARY, STABLE, "2025-01-02T03:04:05Z")
    assert m.evidence is not None
    assert (m.evidence.canary_requests, m.evidence.canary_errors, m.evidence.stable_errors) == (100, 2, 18)


# --- section 2: sample counts for custom queries ---------------------------------------------------

CUSTOM = 'sum(rate(my_errors_total{namespace="{{ namespace }}", revision="{{ revision }}"}[{{ window }}]))'


def test_a_custom_query_meets_min_sample_size_on_the_runtime_request_counter(
    client: PrometheusClient,
) -> None:
    Counters.counts = {("samples", "any"): 250, ("custom", "any"): 1}
    analysis = Analysis(guardrails=[Guardrail(name="custom", query=CUSTOM, max=5)])
    (m,) = measure(client, analysis, "triton", "prod", "bert", CANARY, None, "2025-01-02T03:04:05Z")
    assert m.verdict == "Successful" and m.samples == 250
    assert "counted by Triton's request counters" in m.message
    (ts,) = measure(client, analysis, "torchserve", "prod", "bert", CANARY, None, "2025-01-02T03:04:05Z")
    assert "counted by TorchServe's request counter ts_inference_requests_total" in ts.message


def test_samples_query_replaces_the_runtime_counter(client: PrometheusClient) -> None:
    Counters.counts = {("samples", "any"): 250, ("custom", "any"): 1, ("custom-requests", "any"): 5}
    samples = 'sum(increase(my_requests_total{revision="{{ revision }}"}[{{ window }}]))'
    g = Guardrail(name="custom", query=CUSTOM, max=10, samples_query=samples)
    (m,) = measure(
        client, Analysis(guardrails=[g]), "triton", "prod", "bert", CANARY, None, "2025-01-02T03:04:05Z"
    )
    assert m.verdict == "Inconclusive" and m.samples == 5
    assert "counted by the guardrail's samplesQuery" in m.message and "minSampleSize 20" in m.message
    assert any('my_requests_total{revision="abc123"}[30s]' in f["query"] for f in Counters.seen)


# --- API validation ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ({"template": "latency-p99-ms", "sequential": {}}, "sequential needs template error-rate"),
        ({"template": "error-rate", "max": 0.01, "sequential": {}}, "sequential needs template error-rate"),
        ({"query": "x", "sequential": {}}, "sequential needs template error-rate"),
        ({"template": "error-rate", "max": 1, "samplesQuery": "y"}, "samplesQuery goes with a custom query"),
        ({"template": "error-rate", "sequential": {"alpha": 0.5}}, "less than or equal to 0.2"),
        ({"template": "error-rate", "sequential": {"tolerance": -1}}, "greater than or equal to 0"),
    ],
)
def test_the_api_refuses_misused_sequential_and_samples_query(fields: dict[str, Any], match: str) -> None:
    with pytest.raises(ValidationError, match=match):
        Guardrail.model_validate({"name": "g", **fields})


def test_sequential_defaults() -> None:
    g = Guardrail.model_validate({"name": "g", "template": "error-rate", "sequential": {}})
    assert g.sequential == SequentialTest(tolerance=0.2, alpha=0.01)


# --- assessment ----------------------------------------------------------------------------------


def _measured(
    client: PrometheusClient, counts: dict[tuple[str, str], float], at: str, prior: Any = ()
) -> Any:
    Counters.counts = counts
    return measure(client, ANALYSIS, "triton", "prod", "bert", CANARY, STABLE, at, evidence=prior)


def test_collecting_evidence_is_not_inconclusive_and_a_regression_fails_at_once(
    client: PrometheusClient,
) -> None:
    a = Analysis(failure_limit=2, inconclusive_limit=1, guardrails=[SEQ])
    results = _measured(client, _triton((95, 5), (891, 9)), "2025-01-02T03:04:05Z")
    c = record(AnalysisCounters(), "Inconclusive", "t1", results)
    assert c.inconclusives == 0 and c.sequential[0].decision == "Undecided"
    assert assess(c, a, elapsed=10, duration=60).outcome == "continue"
    # the analysis ends undecided: pause, never pass
    end = assess(c, a, elapsed=60, duration=60)
    assert end.outcome == "pause" and "neither of a regression nor of its absence" in end.reason

    results = _measured(client, _triton((70, 30), (891, 9)), "2025-01-02T03:04:20Z", c.sequential)
    c = record(c, "Failed", "t2", results)
    assert c.failures == 1 and has_failed(c, a)
    verdict = assess(c, a, elapsed=20, duration=60)
    assert verdict.outcome == "fail" and "errors-vs-stable found evidence of a regression" in verdict.reason


def test_a_plain_inconclusive_still_counts(client: PrometheusClient) -> None:
    results = measure(client, ANALYSIS, "triton", "prod", "bert", CANARY, None, "2025-01-02T03:04:05Z")
    assert record(AnalysisCounters(), "Inconclusive", "t", results).inconclusives == 1
