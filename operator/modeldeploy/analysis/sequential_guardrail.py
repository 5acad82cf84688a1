"""A sequential guardrail's measurement: the interval to count, and the verdict. Pure, no I/O.

Each measurement counts the errors and requests of canary and stable over the interval since the
previous one (``through`` in the stored evidence) up to ``now``, with the same query shape for both
revisions, evaluated at ``now``; the first measurement of an analysis looks back one analysis
window. The intervals are contiguous and never overlap, so no request is counted twice, and the
evidence in ``status.rollout.analysis.sequential`` resumes exactly after an operator restart (the
next measurement simply counts a longer interval). The statistics are in
:mod:`modeldeploy.analysis.sequential`.

Verdicts: evidence of a regression -> Failed; evidence of none -> Successful; neither yet ->
Inconclusive with ``evidence.decision == "Undecided"``, which the assessment treats as "still
collecting" (it counts towards no limit, and an analysis that ends undecided pauses, never passes).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

from modeldeploy.analysis.evaluate import fmt, threshold_text, timestamp
from modeldeploy.analysis.sequential import Evidence, Increment, boundary, update
from modeldeploy.api.spec import Guardrail
from modeldeploy.api.status import Measurement, SequentialEvidence, Verdict

_MESSAGE_MAX = 1024
_DIGITS = 6  # stored log-likelihood ratios are rounded: status stays small, decisions are unaffected


def instant(stamp: str) -> datetime:
    parsed = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def interval_seconds(prior: SequentialEvidence | None, now: datetime | str, first_window_s: float) -> int:
    """Whole seconds to count this time: since ``prior.through``, or ``first_window_s`` at first.

    0 means nothing new to count (a measurement within the same second as the last one).
    """
    if prior is None:
        return max(1, round(first_window_s))
    now_t = instant(timestamp(now))
    return max(0, math.floor((now_t - instant(prior.through)).total_seconds()))


def to_evidence(stored: SequentialEvidence | None) -> Evidence:
    if stored is None:
        return Evidence.fresh()
    return Evidence(
        regression=tuple(stored.regression),
        no_regression=tuple(stored.no_regression),
        canary_requests=stored.canary_requests,
        canary_errors=stored.canary_errors,
        stable_requests=stored.stable_requests,
        stable_errors=stored.stable_errors,
        decision=stored.decision,
    )


def to_stored(guardrail: str, evidence: Evidence, through: str) -> SequentialEvidence:
    return SequentialEvidence(
        guardrail=guardrail,
        through=through,
        canary_requests=evidence.canary_requests,
        canary_errors=evidence.canary_errors,
        stable_requests=evidence.stable_requests,
        stable_errors=evidence.stable_errors,
        regression=[round(v, _DIGITS) for v in evidence.regression],
        no_regression=[round(v, _DIGITS) for v in evidence.no_regression],
        decision=evidence.decision,
    )


def _rate(errors: float, requests: float) -> str:
    share = f" ({fmt(100 * errors / requests)}%)" if requests > 0 else ""
    return f"{fmt(errors)}/{fmt(requests)} errors{share}"


def judge(
    guardrail: Guardrail,
    revision: str,
    increment: Increment | None,
    prior: SequentialEvidence | None,
    query: str,
    now: datetime | str,
) -> Measurement:
    """Fold ``increment`` (None: nothing new to count) into the evidence and judge it."""
    test = guardrail.sequential
    if test is None:
        raise ValueError(f"guardrail {guardrail.name} is not sequential")
    at = timestamp(now)
    evidence = to_evidence(prior)
    through = prior.through if prior is not None else at
    if increment is not None:
        evidence = update(evidence, increment, test.tolerance, test.alpha)
        through = at
    stored = to_stored(guardrail.name, evidence, through)
    c_err, c_req = evidence.canary_errors, evidence.canary_requests
    s_err, s_req = evidence.stable_errors, evidence.stable_requests
    counts = f"canary {_rate(c_err, c_req)}, stable {_rate(s_err, s_req)} since the analysis began"
    need = math.exp(boundary(test.alpha))
    regression, no_regression = math.exp(evidence.log_regression), math.exp(evidence.log_no_regression)
    limit = fmt(1 + test.tolerance)
    g = guardrail.name
    verdict: Verdict
    if evidence.decision == "Regression":
        verdict = "Failed"
        message = (
            f"{g}: evidence of a regression for revision {revision}: its error rate is above {limit} x "
            f"stable's (e-value {fmt(regression)} >= 1/alpha = {fmt(need)}); {counts}"
        )
    elif evidence.decision == "NoRegression":
        verdict = "Successful"
        message = (
            f"{g}: evidence of no regression for revision {revision}: its error rate is below {limit} x "
            f"stable's (e-value {fmt(no_regression)} >= 1/alpha = {fmt(need)}); {counts}"
        )
    else:
        verdict = "Inconclusive"
        message = (
            f"{g}: undecided so far for revision {revision}: e-values {fmt(regression)} for a regression, "
            f"{fmt(no_regression)} for none, either needs {fmt(need)}; {counts}"
        )
    return Measurement(
        guardrail=g,
        revision=revision,
        query=query[:8192],
        value=c_err / c_req if c_req > 0 else None,
        stable_value=s_err / s_req if s_req > 0 else None,
        samples=c_req,
        threshold=threshold_text(guardrail),
        verdict=verdict,
        message=message[:_MESSAGE_MAX],
        at=at,
        evidence=stored,
    )


def undecided(m: Measurement) -> bool:
    """A sequential guardrail still collecting evidence (its Inconclusive means 'not yet')."""
    return m.verdict == "Inconclusive" and m.evidence is not None and m.evidence.decision == "Undecided"
