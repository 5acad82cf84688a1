"""Judge one guardrail measurement: pure, no I/O.

Order of the rules (the first that applies decides):

1. value NaN or infinite -> Inconclusive (the query divided by zero or the metric is broken).
2. no value (empty result) -> ``noDataPolicy``: pause -> Inconclusive, fail -> Failed,
   pass -> Successful, but only when the sample requirement holds (otherwise Inconclusive:
   no data with no traffic is never a success).
3. fewer samples than ``minSampleSize`` (or the sample count is unknown) -> Inconclusive.
4. value below ``min`` or above ``max`` -> Failed.
5. ``compareToStable``: no usable stable value -> Inconclusive; canary > maxRatio x stable -> Failed.
6. otherwise Successful.

A query that failed is never judged: :func:`error_measurement` makes it an ``Error``.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

from modeldeploy.api.spec import Analysis, Guardrail
from modeldeploy.api.status import Measurement, Verdict

_MESSAGE_MAX = 1024
_QUERY_MAX = 8192


def timestamp(now: datetime | str) -> str:
    """RFC 3339 UTC with a Z, as Kubernetes writes times."""
    if isinstance(now, str):
        return now
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    return now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def fmt(x: float) -> str:
    """A number for messages: up to 4 significant digits, no exponent for everyday values."""
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "+Inf" if x > 0 else "-Inf"
    if x == int(x) and abs(x) < 1e15:
        return str(int(x))
    return f"{x:.4g}"


def threshold_text(guardrail: Guardrail) -> str:
    """The rule applied, e.g. ``<= 0.01`` or ``>= 1 and <= 1.2 x stable``."""
    parts: list[str] = []
    if guardrail.min is not None:
        parts.append(f">= {fmt(guardrail.min)}")
    if guardrail.max is not None:
        parts.append(f"<= {fmt(guardrail.max)}")
    if guardrail.compare_to_stable is not None:
        parts.append(f"<= {fmt(guardrail.compare_to_stable.max_ratio)} x stable")
    if guardrail.sequential is not None:
        test = guardrail.sequential
        parts.append(
            f"canary error rate <= {fmt(1 + test.tolerance)} x stable (sequential, alpha {fmt(test.alpha)})"
        )
    return " and ".join(parts)


def _finite(x: float | None) -> bool:
    return x is not None and math.isfinite(x)


def evaluate(
    guardrail: Guardrail,
    value: float | None,
    samples: float | None,
    stable_value: float | None,
    analysis: Analysis,
    revision: str,
    query: str,
    now: datetime | str,
    *,
    samples_source: str = "",
) -> Measurement:
    """Judge ``value`` (the canary's result) against the guardrail's rules; see the module docstring.

    ``samples_source`` says where the sample count came from (the runtime's request counter or the
    guardrail's samplesQuery); it is quoted in the message.
    """
    g = guardrail.name
    need = analysis.min_sample_size
    enough = need == 0 or (_finite(samples) and samples is not None and samples >= need)
    seen = f"{fmt(samples)} requests" if samples is not None else "an unknown number of requests"
    if samples_source:
        seen = f"{seen} counted by {samples_source}"
    in_window = f"{seen} in the window, minSampleSize {need}"

    verdict: Verdict
    if value is not None and not math.isfinite(value):
        verdict = "Inconclusive"
        message = (
            f"{g}: the query returned {fmt(value)} for revision {revision} (a division by zero or a "
            f"broken metric), so it cannot be judged; {in_window}"
        )
    elif value is None:
        policy = analysis.no_data_policy
        base = f"{g}: no data: the query returned an empty result for revision {revision}"
        if policy == "fail":
            verdict = "Failed"
            message = f"{base}; noDataPolicy is fail, so this counts as failed"
        elif policy == "pass" and enough:
            verdict = "Successful"
            message = f"{base}; noDataPolicy is pass, so this counts as passed ({in_window})"
        elif policy == "pass":
            verdict = "Inconclusive"
            message = (
                f"{base}; noDataPolicy is pass but the canary served too few requests ({in_window}), "
                "so it is inconclusive"
            )
        else:
            verdict = "Inconclusive"
            message = f"{base}; noDataPolicy is pause, so this is inconclusive ({in_window})"
    elif not enough:
        verdict = "Inconclusive"
        message = (
            f"{g}: too few requests to judge revision {revision}: {in_window}; value {fmt(value)} not judged"
        )
    else:
        verdict, message = _judge(guardrail, value, stable_value, revision)
        message = f"{message} ({seen} in the window)"

    return Measurement(
        guardrail=g,
        revision=revision,
        query=query[:_QUERY_MAX],
        value=value if value is None or math.isfinite(value) else None,
        stable_value=stable_value if _finite(stable_value) else None,
        samples=samples if _finite(samples) else None,
        threshold=threshold_text(guardrail),
        verdict=verdict,
        message=message[:_MESSAGE_MAX],
        at=timestamp(now),
    )


def _judge(
    guardrail: Guardrail, value: float, stable_value: float | None, revision: str
) -> tuple[Verdict, str]:
    g = guardrail.name
    if guardrail.min is not None and value < guardrail.min:
        return (
            "Failed",
            f"{g}: {fmt(value)} is below the minimum {fmt(guardrail.min)} for revision {revision}",
        )
    if guardrail.max is not None and value > guardrail.max:
        return (
            "Failed",
            f"{g}: {fmt(value)} is above the maximum {fmt(guardrail.max)} for revision {revision}",
        )
    within = [f"{fmt(value)} is within {threshold_text(guardrail)}"]
    cmp = guardrail.compare_to_stable
    if cmp is not None:
        if stable_value is None or not math.isfinite(stable_value):
            got = (
                "no data (or there is no stable revision yet)" if stable_value is None else fmt(stable_value)
            )
            return "Inconclusive", (
                f"{g}: cannot compare revision {revision} ({fmt(value)}) with the stable revision: "
                f"the stable query returned {got}"
            )
        limit = cmp.max_ratio * stable_value
        if value > limit:
            return "Failed", (
                f"{g}: {fmt(value)} for revision {revision} is above {fmt(cmp.max_ratio)} x the stable "
                f"value {fmt(stable_value)}, limit {fmt(limit)}"
            )
        within.append(f"stable value {fmt(stable_value)}")
    return "Successful", f"{g}: {', '.join(within)} for revision {revision}"


def error_measurement(
    guardrail: str,
    revision: str,
    query: str,
    error: str,
    now: datetime | str,
    *,
    threshold: str = "",
) -> Measurement:
    """A query that could not run (Prometheus down, bad PromQL, several series): verdict Error."""
    return Measurement(
        guardrail=guardrail,
        revision=revision,
        query=query[:_QUERY_MAX],
        threshold=threshold,
        verdict="Error",
        message=f"{guardrail}: the query failed: {error}"[:_MESSAGE_MAX],
        at=timestamp(now),
    )


def inconclusive_measurement(
    guardrail: str, revision: str, query: str, reason: str, now: datetime | str, *, threshold: str = ""
) -> Measurement:
    """A guardrail that could not be measured for a known, benign reason (e.g. no stable revision)."""
    return Measurement(
        guardrail=guardrail,
        revision=revision,
        query=query[:_QUERY_MAX],
        threshold=threshold,
        verdict="Inconclusive",
        message=f"{guardrail}: {reason}"[:_MESSAGE_MAX],
        at=timestamp(now),
    )
