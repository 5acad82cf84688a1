"""Sequential evidence through the rollout decision: kept in status between passes (and across a
restart, i.e. a round trip through the status JSON), collecting it never pauses, a regression rolls
back at once, and an analysis that ends undecided pauses."""

from __future__ import annotations

from datetime import timedelta

import pytest

from modeldeploy.analysis.sequential import Increment
from modeldeploy.analysis.sequential_guardrail import judge
from modeldeploy.api.spec import (
    Analysis,
    AnalysisStep,
    CanaryStep,
    CanaryStrategy,
    Guardrail,
    Rollout,
    SequentialTest,
)
from modeldeploy.api.status import ModelDeploymentStatus
from modeldeploy.rollout import EmitEvent, Observations, Plan, decide
from modeldeploy.rollout.timefmt import rfc3339

from rollout_builders import Shell, build_spec

pytestmark = pytest.mark.unit

SEQ = Guardrail(name="errors-vs-stable", template="error-rate", sequential=SequentialTest())
UNDECIDED = Increment(100, 1, 900, 9)  # 1% vs 1%: far too little to tell
REGRESSION = Increment(100, 30, 900, 9)  # 30% vs 1%


def canary_at_analysis(duration: str = "2m") -> Shell:
    steps = [CanaryStep(set_weight=50), CanaryStep(analysis=AnalysisStep(duration=duration))]
    rollout = Rollout(canary=CanaryStrategy(steps=steps), analysis=Analysis(guardrails=[SEQ]))
    h = Shell(build_spec(rollout, replicas=4))
    h.deploy("r0")
    h.settle()
    h.deploy("r1")
    h.settle()
    assert h.status.rollout is not None and h.status.current_step == 1
    return h


def measured_pass(h: Shell, increment: Increment) -> Plan:
    """One pass 15 s later whose measurement is the sequential guardrail's, from the stored evidence."""
    h.now += timedelta(seconds=15)
    assert h.status.rollout is not None
    counters = h.status.rollout.analysis
    prior = next(iter(counters.sequential), None) if counters is not None else None
    result = judge(SEQ, "r1", increment, prior, "q", rfc3339(h.now))
    plan = decide(h.spec, h.status, Observations(h.desired, dict(h.pods), [result]), h.now)
    for action in plan.actions:
        h.apply(action)
    # what the operator writes and reads back after a restart
    h.status = ModelDeploymentStatus.model_validate(plan.status.model_dump(by_alias=True, mode="json"))
    return plan


def events(plan: Plan, reason: str) -> list[str]:
    return [a.message for a in plan.actions if isinstance(a, EmitEvent) and a.reason == reason]


def test_evidence_accumulates_in_status_and_a_regression_rolls_back_at_once() -> None:
    h = canary_at_analysis()
    for n in range(1, 5):
        measured_pass(h, UNDECIDED)
        st = h.status.rollout
        assert st is not None and st.analysis is not None and not st.paused
        assert st.analysis.inconclusives == 0  # collecting evidence is not inconclusive
        (evidence,) = st.analysis.sequential
        assert evidence.decision == "Undecided" and evidence.canary_requests == 100 * n
    plan = measured_pass(h, REGRESSION)
    assert h.status.phase == "RolledBack"
    (message,) = events(plan, "RolledBack")
    assert message.startswith("guardrail errors-vs-stable:") and "evidence of a regression" in message
    assert h.status.rollout is not None and h.status.rollout.analysis is not None
    assert h.status.rollout.analysis.failures == 1  # below failureLimit 2: the test decided


def test_an_analysis_that_ends_undecided_pauses_and_never_promotes() -> None:
    h = canary_at_analysis(duration="1m")
    for _ in range(4):
        measured_pass(h, UNDECIDED)
    assert h.status.phase == "Paused" and h.status.stable_revision == "r0"
    assert h.status.rollout is not None and h.status.rollout.pause_reason is not None
    assert "found evidence neither of a regression nor of its absence" in h.status.rollout.pause_reason
