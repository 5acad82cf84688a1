"""evaluate(): the table of verdicts, and the words that explain them."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

import pytest

from modeldeploy.analysis.evaluate import error_measurement, evaluate, threshold_text
from modeldeploy.api.spec import Analysis, CompareToStable, Guardrail

pytestmark = pytest.mark.unit

NOW = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
ERR = Guardrail(name="error-rate", template="error-rate", max=0.01)
THROUGHPUT = Guardrail(name="rps", query='sum(rate(x{r="{{ revision }}"}[1m]))', min=5)
P99 = Guardrail(
    name="p99", template="latency-p99-ms", max=200, compare_to_stable=CompareToStable(max_ratio=1.2)
)
RATIO_ONLY = Guardrail(
    name="p50", template="latency-p50-ms", compare_to_stable=CompareToStable(max_ratio=1.5)
)


def A(**kw: Any) -> Analysis:
    return Analysis(**kw)


# (id, guardrail, value, samples, stable, analysis, verdict, words in the message)
CASES = [
    ("under max", ERR, 0.005, 100, None, A(), "Successful", ["0.005 is within <= 0.01"]),
    ("equal max passes", ERR, 0.01, 100, None, A(), "Successful", ["within"]),
    ("above max", ERR, 0.03, 100, None, A(), "Failed", ["0.03 is above the maximum 0.01"]),
    ("below min", THROUGHPUT, 2.5, 100, None, A(), "Failed", ["2.5 is below the minimum 5"]),
    ("above min", THROUGHPUT, 7, 100, None, A(), "Successful", ["7 is within >= 5"]),
    ("ratio ok", P99, 110, 100, 100, A(), "Successful", ["stable value 100"]),
    ("ratio exceeded", P99, 130, 100, 100, A(), "Failed", ["above 1.2 x the stable value 100, limit 120"]),
    ("max beats ratio", P99, 250, 100, 240, A(), "Failed", ["above the maximum 200"]),
    ("stable missing", P99, 110, 100, None, A(), "Inconclusive", ["cannot compare", "no data"]),
    ("stable NaN", RATIO_ONLY, 110, 100, math.nan, A(), "Inconclusive", ["stable query returned NaN"]),
    ("ratio with zero stable", RATIO_ONLY, 0.0, 100, 0.0, A(), "Successful", ["within"]),
    ("no data pause", ERR, None, 100, None, A(), "Inconclusive", ["no data", "noDataPolicy is pause"]),
    (
        "no data fail",
        ERR,
        None,
        100,
        None,
        A(no_data_policy="fail"),
        "Failed",
        ["no data", "counts as failed"],
    ),
    (
        "no data pass",
        ERR,
        None,
        100,
        None,
        A(no_data_policy="pass"),
        "Successful",
        ["no data", "counts as passed"],
    ),
    (
        "no data pass without traffic",
        ERR,
        None,
        3,
        None,
        A(no_data_policy="pass"),
        "Inconclusive",
        ["no data", "too few requests"],
    ),
    ("no data fail without traffic", ERR, None, None, None, A(no_data_policy="fail"), "Failed", ["no data"]),
    ("too few samples", ERR, 0.0, 19, None, A(), "Inconclusive", ["too few requests", "19 requests", "20"]),
    ("too few samples even if bad", ERR, 0.9, 5, None, A(), "Inconclusive", ["not judged"]),
    ("unknown samples", ERR, 0.0, None, None, A(), "Inconclusive", ["unknown number of requests"]),
    ("min sample size 0", ERR, 0.0, None, None, A(min_sample_size=0), "Successful", ["within"]),
    ("NaN value", ERR, math.nan, 100, None, A(), "Inconclusive", ["returned NaN", "division by zero"]),
    ("Inf value", ERR, math.inf, 100, None, A(), "Inconclusive", ["returned +Inf"]),
    ("-Inf value", THROUGHPUT, -math.inf, 100, None, A(), "Inconclusive", ["returned -Inf"]),
]


@pytest.mark.parametrize(
    ("guardrail", "value", "samples", "stable", "analysis", "verdict", "words"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_verdicts(
    guardrail: Guardrail,
    value: float | None,
    samples: float | None,
    stable: float | None,
    analysis: Analysis,
    verdict: str,
    words: list[str],
) -> None:
    m = evaluate(guardrail, value, samples, stable, analysis, "abc123", "the query", NOW)
    assert m.verdict == verdict, m.message
    for w in words:
        assert w in m.message, m.message
    assert m.message.startswith(f"{guardrail.name}: ")
    assert (m.guardrail, m.revision, m.query, m.at) == (
        guardrail.name,
        "abc123",
        "the query",
        "2025-01-02T03:04:05Z",
    )
    assert m.threshold == threshold_text(guardrail)
    # non-finite numbers never reach the status (they are not valid JSON)
    for number in (m.value, m.stable_value, m.samples):
        assert number is None or math.isfinite(number)


def test_too_few_samples_is_never_successful() -> None:
    for policy in ("pause", "fail", "pass"):
        for value in (None, 0.0, 0.5):
            m = evaluate(ERR, value, 1, None, A(no_data_policy=policy), "abc", "q", NOW)
            assert m.verdict != "Successful", (policy, value, m.message)


def test_threshold_text() -> None:
    assert threshold_text(ERR) == "<= 0.01"
    assert threshold_text(P99) == "<= 200 and <= 1.2 x stable"
    both = Guardrail(name="b", query="x", min=0.5, max=2)
    assert threshold_text(both) == ">= 0.5 and <= 2"


def test_measurement_keeps_numbers_and_fits_the_status_limits() -> None:
    m = evaluate(P99, 110.0, 400.0, 100.0, A(), "abc123", "q" * 10_000, "2025-01-01T00:00:00Z")
    assert (m.value, m.stable_value, m.samples) == (110.0, 100.0, 400.0)
    assert len(m.query) == 8192
    assert m.at == "2025-01-01T00:00:00Z"
    assert "400 requests in the window" in m.message


def test_error_measurement() -> None:
    m = error_measurement(
        "p99", "abc123", "q", "cannot reach Prometheus at http://p:9090: refused", NOW, threshold="<= 1"
    )
    assert m.verdict == "Error"
    assert m.message == "p99: the query failed: cannot reach Prometheus at http://p:9090: refused"
    assert (m.value, m.threshold, m.at) == (None, "<= 1", "2025-01-02T03:04:05Z")
    long = error_measurement("p99", "abc123", "q", "x" * 5000, NOW)
    assert len(long.message) == 1024


def test_naive_datetime_is_taken_as_utc() -> None:
    m = evaluate(ERR, 0.0, 100, None, A(), "abc", "q", datetime(2025, 1, 2, 3, 4, 5))
    assert m.at == "2025-01-02T03:04:05Z"
