"""The sequential guardrail end to end: the real control plane, the real Prometheus scraping the
harness's model servers, the operator under its own ServiceAccount, load routed as the cluster
routes it. A 5x error regression is rolled back by the sequential test; an A/A canary is promoted on
evidence of no regression. A custom-query guardrail reaches a verdict on the runtime's own sample
count (issue: custom guardrails could never meet minSampleSize).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from test_rollouts import Env, manifest, record_figure, status

from harness import Behavior
from modeldeploy_testing.cluster import Cluster, Prometheus, poll
from modeldeploy_testing.operator import OperatorProcess

# These once starved under load (the canary's counts stayed near 0/0): counting windows took "last
# minus first sample in the window" and lost every increase across a window boundary. The counts now
# telescope (tests/integration/test_sequential_counting.py checks them against the real Prometheus).
pytestmark = pytest.mark.e2e

SEQUENTIAL = {"name": "errors-vs-stable", "template": "error-rate", "sequential": {"tolerance": 1.0}}
CUSTOM = {
    "name": "custom-failures",
    "query": (
        'sum(rate(nv_inference_request_failure{namespace="{{ namespace }}",md="{{ name }}",'
        'revision="{{ revision }}"}[{{ window }}])) or vector(0)'
    ),
    "max": 1000,
}
ANALYSIS = {
    "interval": "3s",
    "failureLimit": 2,
    "inconclusiveLimit": 4,
    "consecutiveErrorLimit": 3,
    "minSampleSize": 10,
    "guardrails": [SEQUENTIAL, CUSTOM],
}
# Long enough for the A/A evidence to cross 1/alpha even when a busy 2-core machine lets the load
# reach only a fraction of its 25 req/s (a regression is rolled back as soon as its evidence crosses).
STEPS = [{"setWeight": 50}, {"analysis": {"duration": "150s"}}]


def sequential_manifest(name: str, version: str) -> dict[str, Any]:
    # CPU only: the judgement needs no GPU, and GPUs held by other tests' namespaces still
    # terminating must not keep the canary unscheduled
    return manifest(name, version, gpu=False, analysis=ANALYSIS, canary={"steps": STEPS})


@pytest.fixture
def env(
    cluster: Cluster, namespace: str, api: Any, prometheus: Prometheus, operator_log: OperatorProcess
) -> Iterator[Env]:
    e = Env(cluster, namespace, api, prometheus, operator_log)
    try:
        yield e
    finally:
        e.close()


def test_a_5x_error_regression_is_rolled_back_by_the_sequential_guardrail(env: Env) -> None:
    env.world.default_behavior = Behavior(error_rate=0.1)  # stable fails 10% of requests
    env.deploy(sequential_manifest("seqbad", "1"))
    stable = env.stable("seqbad")
    load = env.load("seqbad", rps=25)
    rec = env.record("seqbad")
    env.deploy(sequential_manifest("seqbad", "2"))
    canary = env.canary("seqbad")
    env.world.set_behavior(env.ns, "seqbad", canary, error_rate=0.5)  # 5x the stable error rate
    started = time.time()

    poll(
        "rolled back",
        lambda: status(env.cluster, env.ns, "seqbad").get("phase") == "RolledBack",
        timeout=240,
        interval=0.5,
    )
    seconds = time.time() - started
    served = load.traffic().by_revision.get(canary)
    st = status(env.cluster, env.ns, "seqbad")
    assert st["stableRevision"] == stable
    failed = [m for m in rec.measurements if m["verdict"] == "Failed"]
    assert failed and failed[0]["guardrail"] == "errors-vs-stable", failed
    assert failed[0]["evidence"]["decision"] == "Regression"
    assert "evidence of a regression" in failed[0]["message"]
    rolled_back = [e["message"] for e in rec.events if e["reason"] == "RolledBack"]
    assert rolled_back and "errors-vs-stable" in rolled_back[-1], rolled_back
    # one failed measurement was enough, not failureLimit (2): the test's crossing is the decision
    assert st["rollout"]["analysis"]["failures"] == 1, st["rollout"]["analysis"]
    assert served is not None
    record_figure(
        "sequential_rollback_5x",
        {"canary_requests": served.total, "canary_errors": served.error, "seconds": round(seconds, 1)},
    )


def test_an_aa_canary_is_promoted_on_evidence_of_no_regression(env: Env) -> None:
    env.world.default_behavior = Behavior(error_rate=0.3)  # both revisions fail 30% of requests
    env.deploy(sequential_manifest("seqaa", "1"))
    old = env.stable("seqaa")
    env.load("seqaa", rps=25)
    rec = env.record("seqaa")
    env.deploy(sequential_manifest("seqaa", "2"))
    new = env.canary("seqaa")

    final = env.stable("seqaa", timeout=360)
    assert final == new != old
    rec.wait_for_reasons("RolloutPromoted")
    seq = [m for m in rec.measurements if m["guardrail"] == "errors-vs-stable" and m["revision"] == new]
    assert seq and seq[-1]["verdict"] == "Successful", seq
    assert seq[-1]["evidence"]["decision"] == "NoRegression"
    assert all(m["verdict"] != "Failed" for m in seq)
    # the custom query reached minSampleSize on Triton's own request counters, and says so
    custom = [m for m in rec.measurements if m["guardrail"] == "custom-failures" and m["revision"] == new]
    judged = [m for m in custom if m["verdict"] == "Successful"]
    assert judged, custom
    assert "counted by Triton's request counters" in judged[-1]["message"]
    assert judged[-1]["samples"] >= 10
