"""Analysis judgement (rollout/assessment.py): verdicts, counters and limits."""

from __future__ import annotations

import doctest

import pytest

from modeldeploy.api.spec import Analysis
from modeldeploy.api.status import AnalysisCounters, Measurement, Verdict
from modeldeploy.rollout import assessment, conditions
from modeldeploy.rollout.assessment import assess, clear_for_resume, describe, overall_verdict, record

pytestmark = pytest.mark.unit


def m(verdict: Verdict, guardrail: str = "error-rate", value: float | None = 0.01) -> Measurement:
    return Measurement(
        guardrail=guardrail, revision="r1", value=value, threshold="<= 0.01", verdict=verdict, at="t"
    )


@pytest.mark.parametrize(
    ("verdicts", "overall"),
    [
        ([], None),
        (["Successful", "Successful"], "Successful"),
        (["Successful", "Inconclusive"], "Inconclusive"),
        (["Inconclusive", "Failed", "Successful"], "Failed"),
        (["Failed", "Error"], "Error"),  # a query error makes the whole measurement an error
    ],
)
def test_overall_verdict_is_the_worst(verdicts: list[Verdict], overall: Verdict | None) -> None:
    assert overall_verdict([m(v) for v in verdicts]) == overall


def test_record_counts_measurements_and_error_streaks() -> None:
    c = AnalysisCounters(started_at="t0")
    for verdict in ["Error", "Error", "Successful", "Error", "Failed", "Inconclusive"]:
        c = record(c, verdict, "t")  # type: ignore[arg-type]
    assert (c.measurements, c.successes, c.failures, c.inconclusives, c.errors) == (6, 1, 1, 1, 3)
    assert c.consecutive_errors == 0
    assert record(c, "Error", "t9").consecutive_errors == 1
    assert record(c, "Error", "t9").last_measured_at == "t9"


A = Analysis(failure_limit=2, inconclusive_limit=3, consecutive_error_limit=2)


@pytest.mark.parametrize(
    ("counters", "elapsed", "outcome"),
    [
        (AnalysisCounters(), 0, "continue"),
        (
            AnalysisCounters(measurements=1, successes=1, last_verdict="Successful"),
            30,
            "continue",
        ),  # too soon
        (AnalysisCounters(measurements=1, successes=1, last_verdict="Successful"), 60, "pass"),
        (AnalysisCounters(measurements=2, successes=1, failures=1, last_verdict="Successful"), 60, "pass"),
        (AnalysisCounters(measurements=2, successes=1, failures=1, last_verdict="Failed"), 60, "continue"),
        (AnalysisCounters(measurements=2, successes=1, last_verdict="Error"), 60, "continue"),  # resumed
        (AnalysisCounters(measurements=2, successes=1, failures=2), 60, "fail"),
        (AnalysisCounters(measurements=2, failures=2, inconclusives=3), 60, "fail"),  # failure wins
        (AnalysisCounters(measurements=3, successes=1, inconclusives=3), 60, "pause"),
        (AnalysisCounters(measurements=2, inconclusives=2), 600, "continue"),  # no success yet
        (AnalysisCounters(measurements=2, successes=1, errors=1, consecutive_errors=1), 60, "continue"),
        (AnalysisCounters(measurements=3, successes=1, errors=2, consecutive_errors=2), 60, "pause"),
    ],
)
def test_assess(counters: AnalysisCounters, elapsed: float, outcome: str) -> None:
    assert assess(counters, A, elapsed, 60).outcome == outcome


def test_pause_reasons_name_the_cause() -> None:
    inconclusive = assess(AnalysisCounters(inconclusives=3), A, 0, 60)
    assert inconclusive.reason.startswith("inconclusive: no data / too few samples")
    errors = assess(AnalysisCounters(consecutive_errors=2), A, 0, 60)
    assert errors.reason.startswith("Prometheus unreachable")


def test_resume_forgets_inconclusive_and_errors_but_not_failures() -> None:
    c = clear_for_resume(
        AnalysisCounters(failures=1, inconclusives=3, errors=2, consecutive_errors=2, successes=1)
    )
    assert (c.failures, c.inconclusives, c.errors, c.consecutive_errors, c.successes) == (1, 0, 0, 0, 1)


def test_describe_includes_the_numbers() -> None:
    text = describe(m("Failed", value=0.083).model_copy(update={"samples": 1200.0}))
    assert text == "guardrail error-rate: 0.083 (rule <= 0.01, samples 1200)"
    assert describe(m("Inconclusive", value=None)) == "guardrail error-rate: no data (rule <= 0.01)"


@pytest.mark.parametrize("module", [assessment, conditions])
def test_docstring_examples(module: object) -> None:
    result = doctest.testmod(module)  # type: ignore[arg-type]
    assert result.failed == 0 and result.attempted > 0
