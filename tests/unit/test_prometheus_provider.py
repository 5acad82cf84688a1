"""The Prometheus provider against a local HTTP server that answers like Prometheus' HTTP API.

No cluster and no mocking library: a stdlib http.server in a thread plays Prometheus, with each
query text choosing the answer. A test against the real Prometheus lives with the cluster fixture.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar
from urllib.parse import parse_qs

import pytest

from modeldeploy.analysis.prometheus import (
    PrometheusClient,
    QueryError,
    QueryResult,
    analysis_window,
    measure,
    validate_analysis,
)
from modeldeploy.analysis.render import TemplateRejected
from modeldeploy.api.spec import Analysis, CompareToStable, Guardrail

pytestmark = pytest.mark.unit

NOW = "2025-01-02T03:04:05Z"


def _vector(*values: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "status": "success",
        "data": {
            "resultType": "vector",
            "result": [{"metric": labels or {}, "value": [1735787045.0, v]} for v in values],
        },
    }


class FakePrometheus(BaseHTTPRequestHandler):
    """Answers /api/v1/query by the query text: a canned answer, or a rule below."""

    answers: ClassVar[dict[str, tuple[int, Any]]] = {}
    seen: ClassVar[list[str]] = []

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        pass

    def _send(self, status: int, body: Any) -> None:
        raw = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json" if not isinstance(body, str) else "text/html")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def do_GET(self) -> None:
        if self.path == "/-/ready":
            self._send(200, "Prometheus Server is Ready.\n")
        else:
            self._send(404, "404 page not found\n")

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        form = parse_qs(self.rfile.read(length).decode())
        if self.path != "/api/v1/query":
            self._send(404, "404 page not found\n")
            return
        query = form["query"][0]
        type(self).seen.append(query)
        if "sleepy" in query:
            time.sleep(2)
        for needle, (status, body) in type(self).answers.items():
            if needle in query:
                self._send(status, body)
                return
        self._send(200, _vector())  # default: empty result


@pytest.fixture
def prometheus() -> Iterator[str]:
    FakePrometheus.answers = {}
    FakePrometheus.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakePrometheus)
    server.daemon_threads = True  # do not wait for the sleeping handler of the timeout test
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(5)


@pytest.fixture
def client(prometheus: str) -> Iterator[PrometheusClient]:
    with PrometheusClient(prometheus, timeout=0.5) as c:
        yield c


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- query ---------------------------------------------------------------------------------------


def test_success_vector(client: PrometheusClient) -> None:
    FakePrometheus.answers = {"one": (200, _vector("0.25"))}
    assert client.query("one") == QueryResult("value", 0.25)


def test_scalar_and_special_values(client: PrometheusClient) -> None:
    FakePrometheus.answers = {
        "scalar": (200, {"status": "success", "data": {"resultType": "scalar", "result": [1.0, "42"]}}),
        "nan": (200, _vector("NaN")),
        "inf": (200, _vector("+Inf")),
    }
    assert client.query("scalar").value == 42.0
    nan = client.query("nan").value
    assert nan is not None and nan != nan
    assert client.query("inf").value == float("inf")


def test_empty_result_is_no_data_not_an_error(client: PrometheusClient) -> None:
    result = client.query("nothing matches")
    assert result.no_data and result.kind == "no_data" and result.value is None


def test_several_series_are_refused(client: PrometheusClient) -> None:
    FakePrometheus.answers = {"by_pod": (200, _vector("1", "2", "3"))}
    with pytest.raises(QueryError, match="query must return one series, got 3"):
        client.query("by_pod")


def test_matrix_and_string_results_are_refused(client: PrometheusClient) -> None:
    FakePrometheus.answers = {
        "range": (200, {"status": "success", "data": {"resultType": "matrix", "result": []}}),
        "text": (200, {"status": "success", "data": {"resultType": "string", "result": [1, "x"]}}),
    }
    with pytest.raises(QueryError, match="instant vector or a scalar, got matrix"):
        client.query("range")
    with pytest.raises(QueryError, match="got string"):
        client.query("text")


def test_error_status_carries_prometheus_text(client: PrometheusClient) -> None:
    error = {"status": "error", "errorType": "bad_data", "error": 'parse error: unexpected "}"'}
    FakePrometheus.answers = {"broken": (400, error)}
    with pytest.raises(QueryError, match=r'HTTP 400 bad_data: parse error: unexpected "}"'):
        client.query("broken")


def test_error_status_with_http_200(client: PrometheusClient) -> None:
    FakePrometheus.answers = {
        "odd": (200, {"status": "error", "errorType": "execution", "error": "too many samples"})
    }
    with pytest.raises(QueryError, match="execution: too many samples"):
        client.query("odd")


def test_http_500_without_json(client: PrometheusClient) -> None:
    FakePrometheus.answers = {"crash": (500, "<html>upstream exploded</html>")}
    with pytest.raises(QueryError, match=r"HTTP 500 Internal Server Error: <html>upstream exploded</html>"):
        client.query("crash")


def test_timeout(client: PrometheusClient) -> None:
    started = time.monotonic()
    with pytest.raises(QueryError, match=r"did not answer within 0.5s"):
        client.query("sleepy")
    assert time.monotonic() - started < 1.9


def test_connection_refused() -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    with PrometheusClient(url, timeout=1) as c:
        with pytest.raises(QueryError, match=f"cannot reach Prometheus at {url}"):
            c.query("up")
        assert c.is_online() is False


def test_is_online(client: PrometheusClient) -> None:
    assert client.is_online() is True


def test_query_is_sent_verbatim(client: PrometheusClient) -> None:
    query = 'sum(rate(x{namespace="a b", r=~"c&d+"}[1m]))'
    client.query(query)
    assert FakePrometheus.seen == [query]


# --- measure ------------------------------------------------------------------------------------

ANALYSIS = Analysis(
    interval="15s",
    min_sample_size=20,
    guardrails=[
        Guardrail(name="errors", template="error-rate", max=0.01),
        Guardrail(
            name="p99",
            query='max(lat{revision="{{ revision }}", namespace="{{ namespace }}"}[{{ window }}])',
            max=100,
            compare_to_stable=CompareToStable(max_ratio=1.2),
        ),
    ],
)


def test_window_default() -> None:
    assert analysis_window(Analysis(interval="15s")) == "30s"
    assert analysis_window(Analysis(interval="1m")) == "2m"
    assert analysis_window(Analysis(interval="1m", window="5m")) == "5m"


def test_measure_end_to_end(client: PrometheusClient) -> None:
    FakePrometheus.answers = {
        "increase(nv_inference_request_success": (200, _vector("250")),
        "nv_inference_request_failure": (200, _vector("0.002")),
        'lat{revision="abc123"': (200, _vector("90")),
        'lat{revision="def456"': (200, _vector("70")),
    }
    ms = measure(client, ANALYSIS, "triton", "prod", "bert", "abc123", "def456", NOW)
    assert [(m.guardrail, m.verdict) for m in ms] == [("errors", "Successful"), ("p99", "Failed")]
    errors, p99 = ms
    assert errors.samples == 250 and errors.value == 0.002
    assert 'namespace="prod", md="bert", revision="abc123"' in errors.query
    assert "[30s]" in errors.query
    assert (p99.value, p99.stable_value) == (90, 70)
    assert "above 1.2 x the stable value 70" in p99.message
    assert FakePrometheus.seen[0].startswith("sum(increase(")  # the sample count first


def test_measure_prometheus_down_gives_errors_never_success() -> None:
    with PrometheusClient(f"http://127.0.0.1:{_closed_port()}", timeout=1) as c:
        ms = measure(c, ANALYSIS, "torchserve", "prod", "bert", "abc123", "def456", NOW)
    assert [m.verdict for m in ms] == ["Error", "Error"]
    assert all("sample-count query failed: cannot reach Prometheus" in m.message for m in ms)


def test_measure_stable_query_error_and_no_stable(client: PrometheusClient) -> None:
    FakePrometheus.answers = {
        "increase(ts_inference_requests_total": (200, _vector("500")),
        "Requests5XX": (200, _vector("0")),
        'lat{revision="abc123"': (200, _vector("90")),
        'lat{revision="def456"': (
            503,
            {"status": "error", "errorType": "unavailable", "error": "shutting down"},
        ),
    }
    ms = measure(client, ANALYSIS, "torchserve", "prod", "bert", "abc123", "def456", NOW)
    assert [m.verdict for m in ms] == ["Successful", "Error"]
    assert "stable revision's query failed" in ms[1].message and "shutting down" in ms[1].message

    first_rollout = measure(client, ANALYSIS, "torchserve", "prod", "bert", "abc123", None, NOW)
    assert [m.verdict for m in first_rollout] == ["Successful", "Inconclusive"]
    assert "no stable revision" in first_rollout[1].message


def test_measure_default_guardrail_and_no_data(client: PrometheusClient) -> None:
    FakePrometheus.answers = {"increase(": (200, _vector("0"))}
    (m,) = measure(client, Analysis(), "triton", "prod", "bert", "abc123", None, NOW)
    assert (m.guardrail, m.verdict, m.threshold) == ("error-rate", "Inconclusive", "<= 0.05")
    assert "no data" in m.message


def test_measure_refuses_bad_templates_before_querying(client: PrometheusClient) -> None:
    bad = Analysis(guardrails=[Guardrail(name="evil", query='x{r="a"} or {{ revision }}', max=1)])
    with pytest.raises(TemplateRejected, match=r"^guardrail evil: "):
        measure(client, bad, "triton", "prod", "bert", "abc123", None, NOW)
    assert FakePrometheus.seen == []
    with pytest.raises(TemplateRejected):
        validate_analysis(bad, "triton", "prod", "bert")
    validate_analysis(ANALYSIS, "triton", "prod", "bert")  # a good one passes silently
