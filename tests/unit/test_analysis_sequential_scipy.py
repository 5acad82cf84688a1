"""The sequential test's statistics against scipy (a dev-only reference; skipped without scipy)."""

from __future__ import annotations

import math

import pytest

from modeldeploy.analysis.sequential import (
    Evidence,
    Increment,
    canary_share,
    log_likelihood_ratio,
    log_mixture,
    regression_alternatives,
    update,
)

stats = pytest.importorskip("scipy.stats")
special = pytest.importorskip("scipy.special")

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("n_c", "x_c", "n_s", "x_s", "rho1", "rho0"),
    [
        (100, 5, 900, 9, 2.0, 1.2),
        (1, 1, 1, 0, 5.0, 1.0),
        (5000, 40, 5000, 61, 0.5, 1.5),
        (30, 0, 270, 7, 8.0, 1.2),
    ],
)
def test_log_likelihood_ratio_is_scipys_binomial_log_pmf_difference(
    n_c: int, x_c: int, n_s: int, x_s: int, rho1: float, rho0: float
) -> None:
    k = x_c + x_s
    expected = stats.binom.logpmf(x_c, k, canary_share(rho1, n_c, n_s)) - stats.binom.logpmf(
        x_c, k, canary_share(rho0, n_c, n_s)
    )
    assert log_likelihood_ratio(Increment(n_c, x_c, n_s, x_s), rho1, rho0) == pytest.approx(
        expected, rel=1e-10
    )


def test_log_mixture_is_scipys_logsumexp_with_equal_weights() -> None:
    values = [0.3, -12.0, 5.5, 2.0, 800.0]
    expected = special.logsumexp(values, b=[1 / len(values)] * len(values))
    assert log_mixture(values) == pytest.approx(expected, rel=1e-12)


def test_the_e_value_is_the_mixture_of_binomial_likelihood_ratios_over_all_increments() -> None:
    increments = [Increment(100, 5, 900, 9), Increment(150, 2, 850, 12), Increment(80, 7, 920, 4)]
    ev = Evidence.fresh()
    for inc in increments:
        ev = update(ev, inc, 0.2, 0.01)
    per_alternative = [
        sum(
            stats.binom.logpmf(
                i.canary_errors,
                i.canary_errors + i.stable_errors,
                canary_share(r, i.canary_requests, i.stable_requests),
            )
            - stats.binom.logpmf(
                i.canary_errors,
                i.canary_errors + i.stable_errors,
                canary_share(1.2, i.canary_requests, i.stable_requests),
            )
            for i in increments
        )
        for r in regression_alternatives(1.2)
    ]
    expected = special.logsumexp(per_alternative) - math.log(len(per_alternative))
    assert ev.log_regression == pytest.approx(expected, rel=1e-9)
