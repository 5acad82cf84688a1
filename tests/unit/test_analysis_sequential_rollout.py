"""Sequential evidence through the rollout decision: kept in status between passes (and across a
restart, i.e. a round trip through the status JSON), collecting it never pauses, a regression rolls
back at once, and an analysis that ends undecided pauses."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modeldeploy.analysis.sequential import Increment
from modeldeploy.analysis.sequential_guardrail import judge
from modeldeploy.api.spec import (
    Analysis,
    AnalysisStep,
    CanaryStep,
    CanaryStrategy,
    Guardrail,
    ModelDeploymentSpec,
    Rollout,
    SequentialTest,
)
from modeldeploy.api.status import ModelDeploymentStatus
from modeldeploy.rollout import EmitEvent, Observations, Plan, decide, measurement_due, next_wakeup
from modeldeploy.rollout.schedule import sequential_check_due
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


# --- sequential checks between measurements (analysis.sequentialInterval) -------------------------


def checked_pass(h: Shell, increment: Increment, seconds: float = 5) -> Plan:
    """A sequential check ``seconds`` later: only the sequential guardrail's evidence, no measurement."""
    h.now += timedelta(seconds=seconds)
    assert h.status.rollout is not None and h.status.rollout.analysis is not None
    assert sequential_check_due(h.spec, h.status, h.now) and not measurement_due(h.spec, h.status, h.now)
    prior = next(iter(h.status.rollout.analysis.sequential), None)
    result = judge(SEQ, "r1", increment, prior, "q", rfc3339(h.now))
    obs = Observations(h.desired, dict(h.pods), [result], sequential_check=True)
    plan = decide(h.spec, h.status, obs, h.now)
    for action in plan.actions:
        h.apply(action)
    h.status = ModelDeploymentStatus.model_validate(plan.status.model_dump(by_alias=True, mode="json"))
    return plan


def test_a_sequential_check_between_measurements_keeps_evidence_and_counts_no_measurement() -> None:
    h = canary_at_analysis()
    measured_pass(h, UNDECIDED)
    assert h.status.rollout is not None and h.status.rollout.analysis is not None
    before = h.status.rollout.analysis
    assert not sequential_check_due(h.spec, h.status, h.now + timedelta(seconds=4))
    checked_pass(h, UNDECIDED)
    after = h.status.rollout.analysis
    assert after is not None and not h.status.rollout.paused
    assert after.sequential[0].canary_requests == 200  # the check's counts are kept
    assert (after.measurements, after.successes, after.inconclusives, after.last_measured_at) == (
        before.measurements,
        before.successes,
        before.inconclusives,
        before.last_measured_at,
    )
    # the next full measurement is still due an interval after the last one, not after the check
    assert measurement_due(h.spec, h.status, h.now + timedelta(seconds=10))


def test_a_sequential_check_that_finds_a_regression_rolls_back_without_waiting_for_the_interval() -> None:
    h = canary_at_analysis()
    measured_pass(h, UNDECIDED)
    plan = checked_pass(h, REGRESSION)
    assert h.status.phase == "RolledBack"
    (message,) = events(plan, "RolledBack")
    assert "evidence of a regression" in message
    assert events(plan, "MeasurementFailed")
    assert h.status.measurements[-1].verdict == "Failed"  # the deciding check is in the history


def with_analysis(h: Shell, **update: object) -> ModelDeploymentSpec:
    analysis = h.spec.rollout.analysis.model_copy(update=update)
    rollout = h.spec.rollout.model_copy(update={"analysis": analysis})
    return h.spec.model_copy(update={"rollout": rollout})


def test_sequential_checks_only_with_sequential_guardrails_and_below_the_interval() -> None:
    h = canary_at_analysis()
    threshold = Guardrail(name="errors", template="error-rate", max=0.05)
    only_thresholds = with_analysis(h, guardrails=[threshold])
    assert not sequential_check_due(only_thresholds, h.status, h.now + timedelta(seconds=6))
    checks_at_interval = with_analysis(h, sequential_interval="15s")  # = interval: measurements do it
    assert not sequential_check_due(checks_at_interval, h.status, h.now + timedelta(seconds=14))
    assert sequential_check_due(h.spec, h.status, h.now + timedelta(seconds=6))
    assert next_wakeup(h.spec, h.status, h.now) == 5.0  # the check, before the measurement at 15 s


def test_an_errored_sequential_check_changes_nothing() -> None:
    h = canary_at_analysis()
    measured_pass(h, UNDECIDED)
    assert h.status.rollout is not None
    before = h.status.rollout.analysis
    h.now += timedelta(seconds=5)
    error = judge(SEQ, "r1", None, None, "q", rfc3339(h.now)).model_copy(update={"verdict": "Error"})
    plan = decide(
        h.spec, h.status, Observations(h.desired, dict(h.pods), [error], sequential_check=True), h.now
    )
    assert plan.status.rollout is not None and plan.status.rollout.analysis == before


# Per pass: seconds since the last one, and the counts it brings (canary requests, errors; stable
# requests, errors). The shell asks for a measurement or a check exactly when the schedule says so.
PASSES = st.lists(
    st.tuples(
        st.integers(min_value=1, max_value=20),
        st.integers(min_value=0, max_value=60),
        st.integers(min_value=0, max_value=60),
        st.integers(min_value=0, max_value=300),
        st.integers(min_value=0, max_value=30),
    ),
    min_size=1,
    max_size=25,
)


@settings(max_examples=150, deadline=None)
@given(passes=PASSES)
def test_checks_never_count_measurements_and_any_evidence_of_regression_rolls_back_that_pass(
    passes: list[tuple[int, int, int, int, int]],
) -> None:
    h = canary_at_analysis(duration="10m")
    measured = 0
    for seconds, c_req, c_err, s_req, s_err in passes:
        h.now += timedelta(seconds=seconds)
        full = measurement_due(h.spec, h.status, h.now)
        check = sequential_check_due(h.spec, h.status, h.now)
        assert not (full and check)  # one or the other, never both
        rollout = h.status.rollout
        assert rollout is not None
        results = []
        if full or check:
            prior = next(iter(rollout.analysis.sequential), None) if rollout.analysis else None
            increment = Increment(c_req + c_err, min(c_err, c_req + c_err), s_req + s_err, s_err)
            results = [judge(SEQ, "r1", increment, prior, "q", rfc3339(h.now))]
            measured += full
        obs = Observations(h.desired, dict(h.pods), results, sequential_check=check)
        plan = decide(h.spec, h.status, obs, h.now)
        for action in plan.actions:
            h.apply(action)
        h.status = plan.status
        regressed = any(r.evidence is not None and r.evidence.decision == "Regression" for r in results)
        if regressed:
            assert h.status.phase == "RolledBack" and h.status.stable_revision == "r0"
            return
        assert h.status.stable_revision == "r0"  # nothing promotes within the 10 min analysis
        st_now = h.status.rollout
        assert st_now is not None and st_now.analysis is not None
        assert st_now.analysis.measurements == measured
        assert st_now.analysis.failures == 0
