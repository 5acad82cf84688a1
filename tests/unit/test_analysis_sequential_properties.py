"""Properties of the sequential test: false alarms bounded by alpha in seeded simulation (looked at
after every increment), and evidence that moves the right way (hypothesis)."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modeldeploy.analysis.sequential import Evidence, Increment, update

pytestmark = pytest.mark.unit

ALPHA = 0.05  # large enough that a violation would show in a thousand runs


def _binomial(rng: random.Random, n: int, p: float) -> int:
    return sum(rng.random() < p for _ in range(n))


def _false_alarm_rate(
    *, canary_rate: float, stable_rate: float, tolerance: float, decision: str, runs: int, seed: int
) -> float:
    """Share of runs (30 increments, 10% canary weight, checked after each) reaching ``decision``."""
    rng = random.Random(seed)
    alarms = 0
    for _ in range(runs):
        ev = Evidence.fresh()
        for _ in range(30):
            n_c, n_s = rng.randint(5, 40), rng.randint(100, 300)
            inc = Increment(n_c, _binomial(rng, n_c, canary_rate), n_s, _binomial(rng, n_s, stable_rate))
            ev = update(ev, inc, tolerance, ALPHA)
            if ev.decision == decision:
                alarms += 1
                break
    return alarms / runs


def _bound(runs: int) -> float:
    # alpha plus three binomial standard errors of the estimate
    return ALPHA + 3 * (ALPHA * (1 - ALPHA) / runs) ** 0.5


@pytest.mark.parametrize(
    ("canary_rate", "stable_rate", "tolerance"),
    [(0.012, 0.01, 0.2), (0.24, 0.2, 0.2), (0.05, 0.05, 0.0), (0.2, 0.2, 0.0)],
    ids=["boundary-1pct", "boundary-20pct", "aa-1pct-tolerance-0", "aa-20pct-tolerance-0"],
)
def test_false_regression_alarms_stay_below_alpha(
    canary_rate: float, stable_rate: float, tolerance: float
) -> None:
    runs = 600
    rate = _false_alarm_rate(
        canary_rate=canary_rate,
        stable_rate=stable_rate,
        tolerance=tolerance,
        decision="Regression",
        runs=runs,
        seed=11,
    )
    assert rate <= _bound(runs)


def test_false_no_regression_claims_stay_below_alpha() -> None:
    runs = 600  # the canary is exactly at the tolerated limit: "no regression" would be wrong
    rate = _false_alarm_rate(
        canary_rate=0.3, stable_rate=0.2, tolerance=0.5, decision="NoRegression", runs=runs, seed=12
    )
    assert rate <= _bound(runs)


def test_a_clear_regression_is_found_in_most_runs() -> None:
    # the same simulation has power: a 5x regression at 1% is found within 30 increments
    rate = _false_alarm_rate(
        canary_rate=0.05, stable_rate=0.01, tolerance=0.2, decision="Regression", runs=200, seed=13
    )
    assert rate >= 0.9


increments = st.builds(
    Increment,
    canary_requests=st.integers(1, 10_000),
    canary_errors=st.integers(0, 200),
    stable_requests=st.integers(1, 10_000),
    stable_errors=st.integers(0, 200),
)


@settings(max_examples=200, deadline=None)
@given(inc=increments, tolerance=st.floats(0, 3))
def test_one_more_canary_error_is_more_evidence_of_regression(inc: Increment, tolerance: float) -> None:
    worse = Increment(inc.canary_requests, inc.canary_errors + 1, inc.stable_requests, inc.stable_errors)
    a, b = update(Evidence.fresh(), inc, tolerance, 0.01), update(Evidence.fresh(), worse, tolerance, 0.01)
    assert b.log_regression > a.log_regression
    assert b.log_no_regression < a.log_no_regression


@settings(max_examples=200, deadline=None)
@given(inc=increments, tolerance=st.floats(0, 3))
def test_one_more_stable_error_is_more_evidence_of_no_regression(inc: Increment, tolerance: float) -> None:
    better = Increment(inc.canary_requests, inc.canary_errors, inc.stable_requests, inc.stable_errors + 1)
    a, b = update(Evidence.fresh(), inc, tolerance, 0.01), update(Evidence.fresh(), better, tolerance, 0.01)
    assert b.log_no_regression > a.log_no_regression
    assert b.log_regression < a.log_regression


@settings(max_examples=100, deadline=None)
@given(incs=st.lists(increments, min_size=2, max_size=6), seed=st.integers(0, 1000))
def test_the_evidence_does_not_depend_on_the_order_of_increments(incs: list[Increment], seed: int) -> None:
    shuffled = list(incs)
    random.Random(seed).shuffle(shuffled)
    a, b = Evidence.fresh(), Evidence.fresh()
    for x, y in zip(incs, shuffled, strict=True):
        a, b = update(a, x, 0.2, 1e-300), update(b, y, 0.2, 1e-300)  # alpha tiny: no decision
    assert a.regression == pytest.approx(b.regression, rel=1e-9, abs=1e-9)
    assert a.no_regression == pytest.approx(b.no_regression, rel=1e-9, abs=1e-9)


@settings(max_examples=100, deadline=None)
@given(inc=increments, scale=st.integers(2, 5))
def test_splitting_an_interval_at_the_same_traffic_split_changes_nothing(inc: Increment, scale: int) -> None:
    # two halves with the same n_c / n_s: the conditional likelihood factorises
    half = Increment(inc.canary_requests, inc.canary_errors, inc.stable_requests, inc.stable_errors)
    whole = Increment(
        inc.canary_requests * scale,
        inc.canary_errors * scale,
        inc.stable_requests * scale,
        inc.stable_errors * scale,
    )
    stepwise = Evidence.fresh()
    for _ in range(scale):
        stepwise = update(stepwise, half, 0.2, 1e-300)
    once = update(Evidence.fresh(), whole, 0.2, 1e-300)
    assert stepwise.regression == pytest.approx(once.regression, rel=1e-9, abs=1e-9)
