"""Judging an analysis: one pass's guardrail results -> a verdict -> counters -> an outcome.

A *measurement* is the set of guardrail results taken at one instant; its verdict is the worst
of them (Error > Failed > Inconclusive > Successful). Counters count measurements, not
guardrails. :func:`assess` maps counters to what the rollout does next:

>>> from modeldeploy.api.spec import Analysis
>>> c = AnalysisCounters(successes=1, failures=1, measurements=2, last_verdict="Successful")
>>> assess(c, Analysis(failure_limit=2), elapsed=60, duration=60).outcome
'pass'
>>> assess(record(c, "Failed", "t"), Analysis(failure_limit=2), elapsed=60, duration=60).outcome
'fail'
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from modeldeploy.api.spec import Analysis
from modeldeploy.api.status import AnalysisCounters, Measurement, SequentialEvidence, Verdict

Outcome = Literal["continue", "pass", "fail", "pause"]

_SEVERITY: tuple[Verdict, ...] = ("Error", "Failed", "Inconclusive", "Successful")


@dataclass(frozen=True)
class Assessment:
    outcome: Outcome
    reason: str


def overall_verdict(results: Sequence[Measurement]) -> Verdict | None:
    """The measurement's verdict: the most severe guardrail verdict; ``None`` for no results."""
    verdicts = {m.verdict for m in results}
    return next((v for v in _SEVERITY if v in verdicts), None)


def culprit(results: Sequence[Measurement], verdict: Verdict) -> Measurement | None:
    """The first guardrail result carrying ``verdict`` (the one an event should name)."""
    return next((m for m in results if m.verdict == verdict), None)


def collecting(m: Measurement) -> bool:
    """A sequential guardrail still collecting evidence: its Inconclusive means "not yet", which
    counts towards no limit (an analysis that ends with it pauses, see :func:`assess`)."""
    return m.verdict == "Inconclusive" and m.evidence is not None and m.evidence.decision == "Undecided"


def _evidence(counters: AnalysisCounters, results: Sequence[Measurement]) -> list[SequentialEvidence]:
    fresh = {m.evidence.guardrail: m.evidence for m in results if m.evidence is not None}
    kept = [e for e in counters.sequential if e.guardrail not in fresh]
    return (kept + list(fresh.values()))[-16:]


def record(
    counters: AnalysisCounters, verdict: Verdict, at: str, results: Sequence[Measurement] = ()
) -> AnalysisCounters:
    """Counters after one more measurement. Any answer other than Error ends an error streak.

    ``results`` (the guardrail results) carry the sequential guardrails' evidence, which is kept;
    a measurement whose only inconclusive results are sequential tests still collecting evidence
    is not counted as inconclusive.
    """
    is_error = verdict == "Error"
    waiting = [m for m in results if m.verdict == "Inconclusive"]
    inconclusive = verdict == "Inconclusive" and not (waiting and all(collecting(m) for m in waiting))
    return counters.model_copy(
        update={
            "last_measured_at": at,
            "measurements": counters.measurements + 1,
            "successes": counters.successes + (verdict == "Successful"),
            "failures": counters.failures + (verdict == "Failed"),
            "inconclusives": counters.inconclusives + inconclusive,
            "sequential": _evidence(counters, results),
            "errors": counters.errors + is_error,
            "consecutive_errors": counters.consecutive_errors + 1 if is_error else 0,
            "last_verdict": verdict,
        }
    )


def fold_evidence(counters: AnalysisCounters, results: Sequence[Measurement]) -> AnalysisCounters:
    """Counters after a sequential check between measurements: the sequential guardrails' fresh
    evidence is kept; nothing is counted (errors and verdicts wait for the next measurement)."""
    fresh = [m for m in results if m.evidence is not None and m.verdict != "Error"]
    return counters.model_copy(update={"sequential": _evidence(counters, fresh)})


def clear_for_resume(counters: AnalysisCounters) -> AnalysisCounters:
    """A resumed analysis forgets inconclusive and error counts (failures are kept)."""
    return counters.model_copy(update={"inconclusives": 0, "errors": 0, "consecutive_errors": 0})


def has_failed(counters: AnalysisCounters, analysis: Analysis) -> bool:
    """At the failure limit, or a sequential guardrail found evidence of a regression."""
    regressed = any(e.decision == "Regression" for e in counters.sequential)
    return regressed or counters.failures >= analysis.failure_limit


def assess(counters: AnalysisCounters, analysis: Analysis, elapsed: float, duration: float) -> Assessment:
    """Fail, pause, pass or keep measuring. Failure wins over everything else.

    Passing needs the duration elapsed, fewer failures and inconclusives than their limits
    (guaranteed by the checks above it) and a latest measurement that was Successful: not an
    Error, and not a Failed or Inconclusive one either, so a resumed analysis measures again.
    """
    c, a = counters, analysis
    if c.failures >= a.failure_limit:
        return Assessment("fail", f"failed {c.failures}/{a.failure_limit} measurements")
    regressed = [e.guardrail for e in c.sequential if e.decision == "Regression"]
    if regressed:
        return Assessment("fail", f"sequential guardrail {regressed[0]} found evidence of a regression")
    if c.consecutive_errors >= a.consecutive_error_limit:
        return Assessment(
            "pause",
            f"Prometheus unreachable: {c.consecutive_errors} consecutive query errors "
            f"(limit {a.consecutive_error_limit})",
        )
    if c.inconclusives >= a.inconclusive_limit:
        return Assessment(
            "pause",
            f"inconclusive: no data / too few samples in {c.inconclusives} measurements "
            f"(limit {a.inconclusive_limit})",
        )
    undecided = [e.guardrail for e in c.sequential if e.decision == "Undecided"]
    if elapsed >= duration and c.last_verdict == "Inconclusive" and undecided:
        return Assessment(
            "pause",
            f"inconclusive: sequential guardrail {undecided[0]} found evidence neither of a regression "
            "nor of its absence by the end of the analysis",
        )
    if elapsed >= duration and c.last_verdict == "Successful":
        return Assessment(
            "pass",
            f"{c.successes}/{c.measurements} measurements successful, "
            f"failed {c.failures}/{a.failure_limit}, inconclusive {c.inconclusives}/{a.inconclusive_limit}",
        )
    return Assessment("continue", f"measured {c.measurements} times, {elapsed:.0f}s of {duration:.0f}s")


def describe(result: Measurement) -> str:
    """``guardrail error-rate: 0.083 (rule <= 0.01, samples 1200)`` for events and pause reasons."""
    value = "no data" if result.value is None else f"{result.value:.4g}"
    details = [f"rule {result.threshold}"] if result.threshold else []
    if result.stable_value is not None:
        details.append(f"stable {result.stable_value:.4g}")
    if result.samples is not None:
        details.append(f"samples {result.samples:.0f}")
    if result.message:
        details.append(result.message)
    suffix = f" ({', '.join(details)})" if details else ""
    return f"guardrail {result.guardrail}: {value}{suffix}"
