"""Anytime-valid comparison of the canary's error rate with the stable revision's: pure statistics.

The question
------------
Is the canary's error rate ``p_c`` more than ``(1 + tolerance)`` times the stable revision's
``p_s``? Write ``rho = p_c / p_s`` (the rate ratio) and ``rho0 = 1 + tolerance``. Two one-sided tests
run side by side, both checked after every measurement:

* **regression**: H0 ``rho <= rho0`` against ``rho > rho0``. Rejecting H0 is evidence that the canary
  is worse than tolerated -> the guardrail fails (rollback).
* **no regression**: H0' ``rho >= rho0`` against ``rho < rho0``. Rejecting H0' is evidence that the
  canary is *not* worse than tolerated -> the guardrail passes.

Neither rejected by the end of the analysis step is inconclusive, never a success.

The model (Lindon et al., "Rapid Regression Detection in Software Deployments through Sequential
Testing", KDD 2022)
-------------------------------------------------------------------------------------------------
Each measurement contributes one *increment*: the requests ``n_c``, ``n_s`` and errors ``x_c``,
``x_s`` that canary and stable served in the same time interval (contiguous, non-overlapping
intervals; the queries are in :mod:`modeldeploy.analysis.templates`). Errors are modelled as Poisson
counts, ``x_c ~ Poisson(n_c p_c)``, ``x_s ~ Poisson(n_s p_s)``. Conditional on the increment's total
``k = x_c + x_s`` the canary's share is binomial and depends on ``rho`` only::

    x_c | k ~ Binomial(k, theta(rho)),   theta(rho) = n_c rho / (n_c rho + n_s)

so the unknown stable rate drops out (no plug-in estimate, no warm-up). For one ``rho1`` the
likelihood ratio ``prod_i L_i(rho1) / L_i(rho0)`` is a test martingale when ``rho = rho0`` and a
supermartingale for every ``rho`` on the null side (the binomial family has a monotone likelihood
ratio in ``theta``, and ``theta`` is increasing in ``rho``). A mixture over ``rho1`` with prior
weights summing to 1 is again one, so by Ville's inequality ``P(sup_t M_t >= 1/alpha) <= alpha``:
the tests may be looked at after every measurement, forever, and each raises a false alarm with
probability at most ``alpha``.

The mixture is over a fixed geometric grid of alternatives (:data:`GRID_STEPS` points, ratio
``2 ** 0.5`` apart, up to 64 x beyond ``rho0`` on each side) with equal weights. A grid rather
than a conjugate Beta prior because ``theta`` depends on the increment's own traffic split
``n_c / n_s``, which moves with the canary's weight; the state is then one running
log-likelihood ratio per grid point, which is small, exact to resume from and independent of the
traffic split.

Caveats, stated where they apply
--------------------------------
* The conditional binomial is exact for Poisson error counts. For per-request (binomial) errors
  it holds to first order in the error rate; ``tests/unit/test_analysis_sequential_properties.py``
  checks the false-alarm rate by simulation with binomial errors at 1% and 20%.
* An increment with no canary or no stable requests, or with no errors at all, carries no
  information about ``rho`` and leaves the evidence unchanged: with no errors on either side the
  test can never pass (zero errors bound no ratio). That is honest, not a bug.

Latency: why there is no sequential latency comparison
------------------------------------------------------
A sound two-sample test on latency needs per-request observations or their distribution in the
same window for both revisions (bucket counts of a histogram). Neither runtime exports that:
Triton's ``nv_inference_request_summary_us`` is a per-pod *summary* (pre-computed quantiles over a
sliding age window, not additive across pods or windows, with no counts per bucket), and its
``nv_inference_request_duration_us`` and TorchServe's ``ts_inference_latency_microseconds`` are
cumulative microsecond *counters*, which give a per-window mean and nothing about the spread. A
mean with no variance admits no test with a false-alarm guarantee unless the latencies are bounded
by a number the user would have to invent. The closest honest tool is what exists: a
``compareToStable`` ratio on the mean (a threshold, not a test), documented as such.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal

Decision = Literal["Undecided", "Regression", "NoRegression"]

GRID_STEPS: Final = 12  # alternatives on each side of rho0
GRID_RATIO: Final = math.sqrt(2.0)  # geometric spacing of the alternatives


@dataclass(frozen=True)
class Increment:
    """Requests and errors of canary and stable over the same interval."""

    canary_requests: float
    canary_errors: float
    stable_requests: float
    stable_errors: float

    @property
    def informative(self) -> bool:
        """Whether the increment says anything about the rate ratio (see the module docstring)."""
        return (
            self.canary_requests > 0
            and self.stable_requests > 0
            and self.canary_errors + self.stable_errors > 0
        )


def regression_alternatives(rho0: float) -> list[float]:
    """Rate ratios above ``rho0`` mixed over by the regression test."""
    return [rho0 * GRID_RATIO**j for j in range(1, GRID_STEPS + 1)]


def no_regression_alternatives(rho0: float) -> list[float]:
    """Rate ratios below ``rho0`` mixed over by the no-regression test."""
    return [rho0 * GRID_RATIO**-j for j in range(1, GRID_STEPS + 1)]


def canary_share(rho: float, canary_requests: float, stable_requests: float) -> float:
    """``theta(rho)``: the probability that an error of the increment is the canary's."""
    return canary_requests * rho / (canary_requests * rho + stable_requests)


def log_likelihood_ratio(increment: Increment, rho1: float, rho0: float) -> float:
    """``log L(rho1) / L(rho0)`` of one increment under the conditional binomial model."""
    if not increment.informative:
        return 0.0
    x = increment.canary_errors
    rest = increment.stable_errors
    n_c, n_s = increment.canary_requests, increment.stable_requests
    t1, t0 = canary_share(rho1, n_c, n_s), canary_share(rho0, n_c, n_s)
    return x * math.log(t1 / t0) + rest * math.log((1.0 - t1) / (1.0 - t0))


def log_mixture(log_ratios: Sequence[float]) -> float:
    """``log`` of the equally weighted mixture ``sum_j exp(l_j) / J`` (computed stably)."""
    if not log_ratios:
        return 0.0
    top = max(log_ratios)
    return top + math.log(sum(math.exp(v - top) for v in log_ratios) / len(log_ratios))


@dataclass(frozen=True)
class Evidence:
    """The running state of both tests; ``fresh`` starts it, :func:`update` folds increments in."""

    regression: tuple[float, ...]  # log-likelihood ratio per regression alternative
    no_regression: tuple[float, ...]  # log-likelihood ratio per no-regression alternative
    canary_requests: float = 0.0
    canary_errors: float = 0.0
    stable_requests: float = 0.0
    stable_errors: float = 0.0
    decision: Decision = "Undecided"

    @classmethod
    def fresh(cls) -> Evidence:
        return cls(regression=(0.0,) * GRID_STEPS, no_regression=(0.0,) * GRID_STEPS)

    @property
    def log_regression(self) -> float:
        """log of the regression test's e-value (the mixture likelihood ratio)."""
        return log_mixture(self.regression)

    @property
    def log_no_regression(self) -> float:
        """log of the no-regression test's e-value."""
        return log_mixture(self.no_regression)


def boundary(alpha: float) -> float:
    """The log-boundary ``log(1/alpha)`` both tests must reach."""
    return math.log(1.0 / alpha)


def decide(evidence: Evidence, alpha: float) -> Decision:
    """Regression once its test has crossed (it stays crossed); otherwise NoRegression once that
    test has; otherwise Undecided. Regression wins when both have."""
    if evidence.decision == "Regression" or evidence.log_regression >= boundary(alpha):
        return "Regression"
    if evidence.decision == "NoRegression" or evidence.log_no_regression >= boundary(alpha):
        return "NoRegression"
    return "Undecided"


def update(evidence: Evidence, increment: Increment, tolerance: float, alpha: float) -> Evidence:
    """The evidence after one more increment, with its decision."""
    rho0 = 1.0 + tolerance
    if len(evidence.regression) != GRID_STEPS or len(evidence.no_regression) != GRID_STEPS:
        raise ValueError(f"evidence must hold {GRID_STEPS} log-likelihood ratios per test")
    regression = tuple(
        v + log_likelihood_ratio(increment, rho, rho0)
        for v, rho in zip(evidence.regression, regression_alternatives(rho0), strict=True)
    )
    no_regression = tuple(
        v + log_likelihood_ratio(increment, rho, rho0)
        for v, rho in zip(evidence.no_regression, no_regression_alternatives(rho0), strict=True)
    )
    folded = Evidence(
        regression=regression,
        no_regression=no_regression,
        canary_requests=evidence.canary_requests + increment.canary_requests,
        canary_errors=evidence.canary_errors + increment.canary_errors,
        stable_requests=evidence.stable_requests + increment.stable_requests,
        stable_errors=evidence.stable_errors + increment.stable_errors,
        decision=evidence.decision,
    )
    return Evidence(**{**folded.__dict__, "decision": decide(folded, alpha)})
