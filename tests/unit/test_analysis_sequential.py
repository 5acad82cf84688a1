"""The sequential canary-vs-stable test (modeldeploy.analysis.sequential) against reference values
computed here from the formulas, and its guardrail measurement (sequential_guardrail)."""

from __future__ import annotations

import math

import pytest

from modeldeploy.analysis.sequential import (
    GRID_RATIO,
    GRID_STEPS,
    Evidence,
    Increment,
    boundary,
    canary_share,
    log_likelihood_ratio,
    log_mixture,
    no_regression_alternatives,
    regression_alternatives,
    update,
)
from modeldeploy.analysis.sequential_guardrail import interval_seconds, judge, to_evidence, to_stored
from modeldeploy.api.spec import Guardrail, SequentialTest
from modeldeploy.api.status import SequentialEvidence

pytestmark = pytest.mark.unit

NOW = "2025-01-02T03:04:05Z"
SEQ = Guardrail(name="errors-vs-stable", template="error-rate", sequential=SequentialTest())


def binomial_log_pmf(x: int, k: int, theta: float) -> float:
    """log P(X = x) for X ~ Binomial(k, theta), written out."""
    return math.log(math.comb(k, x)) + x * math.log(theta) + (k - x) * math.log(1 - theta)


def test_canary_share_is_the_error_share_under_equal_rates_times_rho() -> None:
    # 100 canary and 900 stable requests, canary rate 2 x stable: 200 / (200 + 900)
    assert canary_share(2.0, 100, 900) == pytest.approx(200 / 1100)
    assert canary_share(1.0, 100, 900) == pytest.approx(0.1)


def test_log_likelihood_ratio_equals_the_binomial_pmf_ratio() -> None:
    inc = Increment(canary_requests=100, canary_errors=5, stable_requests=900, stable_errors=9)
    k, x = 14, 5
    theta1 = 100 * 2.0 / (100 * 2.0 + 900)  # rho1 = 2
    theta0 = 100 * 1.2 / (100 * 1.2 + 900)  # rho0 = 1.2 (tolerance 0.2)
    expected = binomial_log_pmf(x, k, theta1) - binomial_log_pmf(x, k, theta0)
    assert log_likelihood_ratio(inc, 2.0, 1.2) == pytest.approx(expected, rel=1e-12)
    # by hand: 5 ln((200/1100) / (120/1020)) + 9 ln((900/1100) / (900/1020))
    #        = 5 ln(204/132) + 9 ln(1020/1100) = 2.176592 - 0.679574
    assert log_likelihood_ratio(inc, 2.0, 1.2) == pytest.approx(1.497018, abs=1e-5)


@pytest.mark.parametrize(
    "inc",
    [
        Increment(0, 0, 900, 9),  # no canary traffic
        Increment(100, 3, 0, 0),  # no stable traffic
        Increment(100, 0, 900, 0),  # no errors at all
    ],
)
def test_uninformative_increments_change_nothing(inc: Increment) -> None:
    assert not inc.informative
    assert log_likelihood_ratio(inc, 3.0, 1.2) == 0.0
    after = update(Evidence.fresh(), inc, 0.2, 0.01)
    assert after.regression == Evidence.fresh().regression
    assert after.no_regression == Evidence.fresh().no_regression
    assert after.decision == "Undecided"


def test_the_expected_likelihood_ratio_at_the_boundary_is_one() -> None:
    # the test martingale property, exactly: E[L(rho1)/L(rho0)] under rho0, summed over the pmf
    n_c, n_s, k = 50, 450, 30
    theta0 = canary_share(1.2, n_c, n_s)
    for rho1 in regression_alternatives(1.2) + no_regression_alternatives(1.2):
        total = sum(
            math.exp(binomial_log_pmf(x, k, theta0))
            * math.exp(log_likelihood_ratio(Increment(n_c, x, n_s, k - x), rho1, 1.2))
            for x in range(k + 1)
        )
        assert total == pytest.approx(1.0, rel=1e-9)


def test_grids_are_geometric_on_each_side_of_rho0() -> None:
    up, down = regression_alternatives(1.5), no_regression_alternatives(1.5)
    assert len(up) == len(down) == GRID_STEPS
    assert up[0] == pytest.approx(1.5 * GRID_RATIO) and up[-1] == pytest.approx(1.5 * 64)
    assert down[0] == pytest.approx(1.5 / GRID_RATIO) and down[-1] == pytest.approx(1.5 / 64)
    assert all(r > 1.5 for r in up) and all(r < 1.5 for r in down)


def test_log_mixture_is_the_log_of_the_mean_likelihood_ratio() -> None:
    values = [0.5, -3.0, 2.25, 700.0]  # 700: exp overflows a float, the mixture must not
    top = 700.0
    expected = top + math.log(sum(math.exp(v - top) for v in values) / 4)
    assert log_mixture(values) == pytest.approx(expected)
    assert log_mixture([1.0, 2.0]) == pytest.approx(math.log((math.e + math.e**2) / 2))
    assert log_mixture([]) == 0.0


def test_update_accumulates_per_alternative_and_counts() -> None:
    a = Increment(100, 5, 900, 9)
    b = Increment(120, 2, 880, 11)
    ev = update(update(Evidence.fresh(), a, 0.2, 0.01), b, 0.2, 0.01)
    for j, rho in enumerate(regression_alternatives(1.2)):
        assert ev.regression[j] == pytest.approx(
            log_likelihood_ratio(a, rho, 1.2) + log_likelihood_ratio(b, rho, 1.2)
        )
    for j, rho in enumerate(no_regression_alternatives(1.2)):
        assert ev.no_regression[j] == pytest.approx(
            log_likelihood_ratio(a, rho, 1.2) + log_likelihood_ratio(b, rho, 1.2)
        )
    assert (ev.canary_requests, ev.canary_errors, ev.stable_requests, ev.stable_errors) == (220, 7, 1780, 20)


def test_a_5x_regression_is_found_and_stays_found() -> None:
    # 10% canary weight: 100 canary requests at 5% (5 errors) vs 900 stable at 1% (9 errors), repeated
    step = Increment(100, 5, 900, 9)
    ev = Evidence.fresh()
    crossings = 0
    while ev.decision == "Undecided":
        ev = update(ev, step, 0.2, 0.01)
        crossings += 1
    assert ev.decision == "Regression"
    assert ev.log_regression >= boundary(0.01) == pytest.approx(math.log(100))
    # the log e-value after n identical increments is the mixture of n x each alternative's ratio
    expected = log_mixture(
        [crossings * log_likelihood_ratio(step, r, 1.2) for r in regression_alternatives(1.2)]
    )
    assert ev.log_regression == pytest.approx(expected)
    before = log_mixture(
        [(crossings - 1) * log_likelihood_ratio(step, r, 1.2) for r in regression_alternatives(1.2)]
    )
    assert before < math.log(100)  # it crossed exactly at this increment
    # a later run of good increments cannot undo a regression already evident
    for _ in range(50):
        ev = update(ev, Increment(100, 0, 900, 20), 0.2, 0.01)
    assert ev.decision == "Regression"


def test_equal_rates_with_enough_errors_give_evidence_of_no_regression() -> None:
    step = Increment(500, 25, 500, 25)  # A/A at 50% weight, 5% errors, tolerance 1 (2x)
    ev = Evidence.fresh()
    for _ in range(10):
        ev = update(ev, step, 1.0, 0.01)
    assert ev.decision == "NoRegression"
    assert ev.log_no_regression >= math.log(100) > ev.log_regression


def test_evidence_rejects_a_wrong_sized_state() -> None:
    with pytest.raises(ValueError, match="12 log-likelihood ratios"):
        update(Evidence(regression=(0.0,), no_regression=(0.0,)), Increment(1, 1, 1, 1), 0.2, 0.01)


# --- the guardrail measurement -------------------------------------------------------------------


def test_first_interval_is_the_window_then_the_time_since_the_last_count() -> None:
    assert interval_seconds(None, NOW, 30) == 30
    prior = SequentialEvidence(guardrail="g", through="2025-01-02T03:03:50Z")
    assert interval_seconds(prior, NOW, 30) == 15
    assert interval_seconds(prior, "2025-01-02T03:03:50Z", 30) == 0


def test_judge_maps_decisions_to_verdicts_and_keeps_the_evidence() -> None:
    bad = judge(SEQ, "abc", Increment(100, 30, 900, 9), None, "q", NOW)
    assert bad.verdict == "Failed" and bad.evidence is not None
    assert bad.evidence.decision == "Regression" and bad.evidence.through == NOW
    assert "evidence of a regression" in bad.message and "canary 30/100 errors (30%)" in bad.message
    assert bad.value == pytest.approx(0.3) and bad.stable_value == pytest.approx(0.01) and bad.samples == 100
    assert bad.threshold == "canary error rate <= 1.2 x stable (sequential, alpha 0.01)"

    undecided = judge(SEQ, "abc", Increment(100, 1, 900, 9), None, "q", NOW)
    assert undecided.verdict == "Inconclusive" and "undecided so far" in undecided.message

    wide = Guardrail(name="w", template="error-rate", sequential=SequentialTest(tolerance=1.0))
    stored = None
    for i in range(10):
        m = judge(wide, "abc", Increment(500, 25, 500, 25), stored, "q", f"2025-01-02T03:0{i}:00Z")
        stored = m.evidence
    assert m.verdict == "Successful" and "evidence of no regression" in m.message


def test_nothing_new_to_count_keeps_the_evidence_and_its_time() -> None:
    first = judge(SEQ, "abc", Increment(100, 1, 900, 9), None, "q", "2025-01-02T03:00:00Z")
    again = judge(SEQ, "abc", None, first.evidence, "q", "2025-01-02T03:00:00Z")
    assert again.evidence == first.evidence


def test_stored_evidence_round_trips_and_resumes_the_same() -> None:
    ev = update(Evidence.fresh(), Increment(100, 4, 900, 9), 0.2, 0.01)
    stored = to_stored("g", ev, NOW)
    restored = to_evidence(SequentialEvidence.model_validate(stored.model_dump(by_alias=True)))
    assert restored.regression == pytest.approx(ev.regression, abs=1e-6)
    assert restored.decision == ev.decision and restored.canary_errors == 4
    nxt = Increment(100, 6, 900, 9)
    assert update(restored, nxt, 0.2, 0.01).log_regression == pytest.approx(
        update(ev, nxt, 0.2, 0.01).log_regression, abs=1e-5
    )


def test_judge_refuses_a_threshold_guardrail() -> None:
    with pytest.raises(ValueError, match="not sequential"):
        judge(Guardrail(name="e", template="error-rate", max=0.01), "abc", None, None, "q", NOW)
