"""A sequential guardrail's counts against the real Prometheus: measured every ~1 s while Prometheus
scrapes every 2 s, contiguous windows must add up to exactly the requests served, through a pod that
appears mid-analysis with requests already counted, a counter reset (a restarted server) and windows
that hold no sample at all. (Windows of "last minus first sample in the window" lost every increase
that straddled a window boundary: with windows shorter than the scrape interval the canary's counts
stayed near zero.)
"""

from __future__ import annotations

import random
import secrets
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from modeldeploy.analysis.prometheus import SETTLE_S, PrometheusClient, measure
from modeldeploy.api.spec import Analysis, Guardrail, SequentialTest
from modeldeploy.api.status import SequentialEvidence
from modeldeploy_testing.cluster import Prometheus, poll

pytestmark = pytest.mark.integration

CANARY, STABLE = "c0ffee01", "5ab1e001"
SEQUENTIAL = SequentialTest(tolerance=0.2)
GUARDRAIL = Guardrail(name="errors-vs-stable", template="error-rate", sequential=SEQUENTIAL)
ANALYSIS = Analysis(interval="1s", guardrails=[GUARDRAIL])
# A window ends on a whole second SETTLE_S before its measurement: a sample stamped at t is inside
# the windows measured from t + SETTLE_S + 1 s on.
SAMPLE_IN_WINDOW_S = SETTLE_S + 1.1


class TritonCounters:
    """A /metrics endpoint with Triton's two request counters, incremented by the test."""

    def __init__(self, success: int = 0, failure: int = 0) -> None:
        self.success, self.failure = success, failure
        self.lock = threading.Lock()
        counters = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                with counters.lock:
                    body = (
                        "# TYPE nv_inference_request_success counter\n"
                        f'nv_inference_request_success{{model="m",version="1"}} {counters.success}\n'
                        "# TYPE nv_inference_request_failure counter\n"
                        f'nv_inference_request_failure{{model="m",version="1"}} {counters.failure}\n'
                    ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        serve = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        serve.start()
        self.address = f"127.0.0.1:{self.server.server_address[1]}"

    def add(self, success: int, failure: int) -> None:
        with self.lock:
            self.success += success
            self.failure += failure

    def reset(self) -> None:
        with self.lock:
            self.success = self.failure = 0

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Pods:
    def __init__(self, prometheus: Prometheus) -> None:
        self.prometheus = prometheus
        self.namespace = f"seqcount-{secrets.token_hex(3)}"
        self.servers: list[TritonCounters] = []

    def start(self, pod: str, revision: str, server: TritonCounters) -> TritonCounters:
        labels = {"job": "seqcount", "namespace": self.namespace, "pod": pod, "revision": revision, "md": "m"}
        self.prometheus.add_target(f"{self.namespace}-{pod}", server.address, labels)
        self.servers.append(server)
        return server

    def scraped(self, revision: str) -> tuple[int, int]:
        """(success, failure) Prometheus holds now for the revision's pods, summed."""
        sel = f'namespace="{self.namespace}",revision="{revision}"'
        out = []
        for metric in ("nv_inference_request_success", "nv_inference_request_failure"):
            result = self.prometheus.query(f"sum({metric}{{{sel}}})")
            out.append(int(float(result[0]["value"][1])) if result else -1)
        return out[0], out[1]

    def wait_scraped(self, revision: str, *servers: TritonCounters) -> None:
        want = (sum(s.success for s in servers), sum(s.failure for s in servers))
        poll(f"Prometheus holding {want} for {revision}", lambda: self.scraped(revision) == want, timeout=30)


@pytest.fixture
def pods(prometheus: Prometheus) -> Iterator[Pods]:
    p = Pods(prometheus)
    try:
        yield p
    finally:
        for s in p.servers:
            s.close()


def _measure(client: PrometheusClient, pods: Pods, prior: SequentialEvidence | None) -> SequentialEvidence:
    (m,) = measure(
        client,
        ANALYSIS,
        "triton",
        pods.namespace,
        "m",
        CANARY,
        STABLE,
        datetime.now(UTC),
        evidence=[prior] if prior is not None else [],
    )
    assert m.verdict != "Error", m.message
    assert m.evidence is not None, m.message
    return m.evidence


def test_contiguous_one_second_windows_count_every_request_exactly_once(
    pods: Pods, prometheus: Prometheus
) -> None:
    rng = random.Random(7)
    canary_a = pods.start("canary-a", CANARY, TritonCounters())
    stable = pods.start("stable-0", STABLE, TritonCounters())
    pods.wait_scraped(CANARY, canary_a)
    pods.wait_scraped(STABLE, stable)
    canary_b: TritonCounters | None = None
    truth = {"canary": [0, 0], "stable": [0, 0]}

    def serve(server: TritonCounters, side: str) -> None:
        ok, bad = rng.randint(0, 9), rng.randint(0, 2)
        server.add(ok, bad)
        truth[side][0] += ok + bad
        truth[side][1] += bad

    client = PrometheusClient(prometheus.url, timeout=5)
    evidence = _measure(client, pods, None)  # the first window: nothing served yet
    windows = 1
    started = time.monotonic()
    reset_done = False
    while time.monotonic() - started < 24:
        serve(canary_a, "canary")
        serve(stable, "stable")
        if canary_b is not None:
            serve(canary_b, "canary")
        elapsed = time.monotonic() - started
        if canary_b is None and elapsed > 6:
            # a new pod whose first scrape already shows requests: all served after the last window
            canary_b = TritonCounters(success=4, failure=1)
            truth["canary"][0] += 5
            truth["canary"][1] += 1
            pods.start("canary-b", CANARY, canary_b)
        if not reset_done and elapsed > 12:
            # a restarted server counts from zero again. What it served after the last window's end
            # and before the restart is lost (only a walk over every sample could recover it), so
            # here a window ends after Prometheus saw its last value, as the README says.
            pods.wait_scraped(CANARY, *[s for s in (canary_a, canary_b) if s is not None])
            time.sleep(SAMPLE_IN_WINDOW_S)
            evidence = _measure(client, pods, evidence)
            windows += 1
            canary_a.reset()
            reset_done = True
        time.sleep(rng.uniform(0.1, 0.4))
        if rng.random() < 0.5:
            evidence = _measure(client, pods, evidence)
            windows += 1

    assert canary_b is not None and reset_done
    pods.wait_scraped(CANARY, canary_a, canary_b)
    pods.wait_scraped(STABLE, stable)
    time.sleep(SAMPLE_IN_WINDOW_S)
    evidence = _measure(client, pods, evidence)
    windows += 1
    client.close()

    counted = {
        "canary": [evidence.canary_requests, evidence.canary_errors],
        "stable": [evidence.stable_requests, evidence.stable_errors],
    }
    assert windows >= 15
    assert counted == truth, (counted, truth)
