"""Fault matrix rows 4 and 5 (docs/faults.md): Prometheus down, or answering what cannot be judged.

The operator (its own process, watching ``fault-*``) reaches the real Prometheus through a loopback
proxy (modeldeploy_testing.prometheus_proxy) that can refuse connections, corrupt or delay answers.
NaN, +Inf, an empty vector and several series come from the real Prometheus itself, through the
guardrails' own PromQL. Every case must end paused with a condition that says why, never promoted.
"""

from __future__ import annotations

import time
from typing import Any

from modeldeploy_testing.cluster import Cluster, poll
from modeldeploy_testing.faults import (
    INTERVAL_S,
    PASSING_GUARDRAIL,
    command,
    event_reasons,
    md_manifest,
    md_status,
    wait_canary,
    wait_stable,
)
from modeldeploy_testing.operator import OperatorProcess
from modeldeploy_testing.prometheus_proxy import PrometheusProxy

ANALYSIS_S = 20
STEPS = [{"setWeight": 50}, {"analysis": {"duration": f"{ANALYSIS_S}s"}}]
NOT_JUDGEABLE = {"Inconclusive", "Error"}


def start_canary(cluster: Cluster, ns: str, name: str, guardrails: list[dict[str, Any]]) -> tuple[str, str]:
    cluster.apply(md_manifest(name, "1", STEPS, guardrails), namespace=ns)
    stable = wait_stable(cluster, ns, name)
    cluster.apply(md_manifest(name, "2", STEPS, guardrails), namespace=ns)
    return stable, wait_canary(cluster, ns, name)


def paused(cluster: Cluster, ns: str, name: str) -> dict[str, Any] | None:
    st = md_status(cluster, ns, name)
    return st if (st.get("rollout") or {}).get("paused") else None


def progressing(st: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = next(c for c in st.get("conditions") or [] if c["type"] == "Progressing")
    return found


def measurements(cluster: Cluster, ns: str, name: str, revision: str) -> list[dict[str, Any]]:
    return [m for m in md_status(cluster, ns, name).get("measurements") or [] if m["revision"] == revision]


def assert_never_promoted(cluster: Cluster, ns: str, name: str, stable: str, canary: str) -> None:
    """For longer than the analysis step, stable stays stable and the canary stays paused."""
    end = time.monotonic() + ANALYSIS_S + 3 * INTERVAL_S
    while time.monotonic() < end:
        st = md_status(cluster, ns, name)
        assert st["stableRevision"] == stable and st.get("canaryRevision") == canary, st
        assert (st.get("rollout") or {}).get("paused"), st
        time.sleep(1)
    assert event_reasons(cluster, ns, name)["RolloutPromoted"] == 0


# --- row 4 -------------------------------------------------------------------------------------------


def test_prometheus_down_past_the_error_limit_pauses_and_never_promotes(
    cluster: Cluster,
    fault_namespace: str,
    fault_operator: OperatorProcess,
    healthy_proxy: PrometheusProxy,
) -> None:
    ns = fault_namespace
    stable, canary = start_canary(cluster, ns, "promdown", [PASSING_GUARDRAIL])
    poll("a successful measurement", lambda: measurements(cluster, ns, "promdown", canary), timeout=60)
    healthy_proxy.set_mode("down")
    st = poll("paused", lambda: paused(cluster, ns, "promdown"), timeout=60)
    assert "rometheus" in st["rollout"]["pauseReason"], st["rollout"]
    condition = progressing(st)
    assert condition["reason"] == "RolloutPaused" and "rometheus" in condition["message"], condition
    errors = [m for m in measurements(cluster, ns, "promdown", canary) if m["verdict"] == "Error"]
    assert errors and all("cannot reach Prometheus" in m["message"] for m in errors), errors
    assert_never_promoted(cluster, ns, "promdown", stable, canary)

    healthy_proxy.set_mode("forward")  # back, and resumed by hand: the rollout finishes from where it was
    command(cluster, ns, "promdown", "resume")
    assert wait_stable(cluster, ns, "promdown", timeout=120) == canary
    assert event_reasons(cluster, ns, "promdown")["RolloutPromoted"] == 1


# --- row 5: answers the real Prometheus gives ---------------------------------------------------------

ODD_GUARDRAILS = [
    {"name": "nan", "query": "vector(NaN)", "max": 1, "samplesQuery": "vector(100)"},
    {"name": "plus-inf", "query": "vector(+Inf)", "max": 1, "samplesQuery": "vector(100)"},
    {
        "name": "zero-by-zero",
        "query": "sum(vector(0)) / sum(vector(0))",
        "max": 1,
        "samplesQuery": "vector(100)",
    },
    {
        "name": "empty",
        "query": 'sum(no_such_metric{namespace="{{ namespace }}"})',
        "max": 1,
        "samplesQuery": "vector(100)",
    },
    {
        "name": "two-series",
        "query": 'label_replace(vector(0), "s", "a", "", "") or label_replace(vector(0), "s", "b", "", "")',
        "max": 1,
        "samplesQuery": "vector(100)",
    },
]


def test_nan_inf_empty_and_several_series_are_never_a_success(
    cluster: Cluster,
    fault_namespace: str,
    fault_operator: OperatorProcess,
    healthy_proxy: PrometheusProxy,
) -> None:
    ns = fault_namespace
    stable, canary = start_canary(cluster, ns, "odd", ODD_GUARDRAILS)
    st = poll("paused", lambda: paused(cluster, ns, "odd"), timeout=60)
    assert progressing(st)["reason"] == "RolloutPaused"
    ours = measurements(cluster, ns, "odd", canary)
    verdicts = {
        g["name"]: {m["verdict"] for m in ours if m["guardrail"] == g["name"]} for g in ODD_GUARDRAILS
    }
    assert all(verdicts.values()), verdicts  # every guardrail was measured
    assert all(v <= NOT_JUDGEABLE for v in verdicts.values()), verdicts
    assert verdicts["two-series"] == {"Error"}, verdicts
    assert verdicts["nan"] == verdicts["plus-inf"] == verdicts["zero-by-zero"] == {"Inconclusive"}, verdicts
    assert verdicts["empty"] == {"Inconclusive"}, verdicts  # noDataPolicy: pause (the default)
    assert_never_promoted(cluster, ns, "odd", stable, canary)


# --- row 5: answers a broken Prometheus gives ---------------------------------------------------------


def test_malformed_and_slow_answers_are_errors_never_a_success(
    cluster: Cluster,
    fault_namespace: str,
    fault_operator: OperatorProcess,
    healthy_proxy: PrometheusProxy,
) -> None:
    ns = fault_namespace
    healthy_proxy.set_mode("malformed")
    stable, canary = start_canary(cluster, ns, "broken", [PASSING_GUARDRAIL])
    st = poll("paused on malformed answers", lambda: paused(cluster, ns, "broken"), timeout=60)
    malformed = measurements(cluster, ns, "broken", canary)
    assert malformed and {m["verdict"] for m in malformed} == {"Error"}, malformed
    assert "rometheus" in st["rollout"]["pauseReason"], st["rollout"]
    assert_never_promoted(cluster, ns, "broken", stable, canary)

    healthy_proxy.set_mode("slow")  # every answer held back past the operator's query timeout
    seen = {m["at"] for m in malformed}
    command(cluster, ns, "broken", "resume")
    # the Event is the durable record: the unpaused stretch can be shorter than a poll
    poll("resumed", lambda: event_reasons(cluster, ns, "broken")["RolloutResumed"] == 1, timeout=60)

    def paused_again() -> list[dict[str, Any]] | None:
        slow = [m for m in measurements(cluster, ns, "broken", canary) if m["at"] not in seen]
        return slow if slow and paused(cluster, ns, "broken") else None

    slow = poll("paused on slow answers", paused_again, timeout=120)
    assert {m["verdict"] for m in slow} == {"Error"}, slow
    assert all("did not answer within" in m["message"] for m in slow), [m["message"] for m in slow]
    assert healthy_proxy.queries["malformed"] > 0 and healthy_proxy.queries["slow"] > 0
    assert_never_promoted(cluster, ns, "broken", stable, canary)
