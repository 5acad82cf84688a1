"""Prometheus provider: instant queries over the HTTP API, and the measurement orchestration.

This is the only module of the analysis package that does I/O. The operator calls it from worker
threads, so the client is synchronous (httpx.Client, safe to share between threads).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal, Protocol

import httpx

from modeldeploy.analysis.evaluate import (
    error_measurement,
    evaluate,
    inconclusive_measurement,
    threshold_text,
    timestamp,
)
from modeldeploy.analysis.render import StableRevisionUnavailable, Variables, render
from modeldeploy.analysis.sequential import Increment
from modeldeploy.analysis.sequential_guardrail import instant, interval_seconds, judge
from modeldeploy.analysis.templates import (
    SAMPLE_COUNT_SOURCES,
    default_guardrails,
    event_count_templates,
    guardrail_source,
    sample_count_template,
)
from modeldeploy.api.common import format_duration, parse_duration
from modeldeploy.api.spec import Analysis, Guardrail
from modeldeploy.api.status import Measurement, SequentialEvidence

_ERROR_TEXT_MAX = 500
# Seconds a sequential guardrail's counting window ends before now (see _measure_sequential).
SETTLE_S: Final = 1


class QueryError(Exception):
    """A query that produced no judgeable answer: Prometheus unreachable, slow, or refusing it."""


@dataclass(frozen=True)
class QueryResult:
    """One number (``kind="value"``) or an empty result (``kind="no_data"``, value None)."""

    kind: Literal["value", "no_data"]
    value: float | None = None

    @property
    def no_data(self) -> bool:
        return self.kind == "no_data"

    @classmethod
    def of(cls, value: float) -> QueryResult:
        return cls("value", value)

    @classmethod
    def empty(cls) -> QueryResult:
        return cls("no_data", None)


class Querier(Protocol):
    def query(self, promql: str, at: datetime | None = None) -> QueryResult: ...


class PrometheusClient:
    """Instant queries against ``base_url`` (e.g. ``http://prometheus.monitoring:9090``)."""

    def __init__(self, base_url: str, timeout: float = 10.0, *, transport: httpx.BaseTransport | None = None):
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout, transport=transport)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> PrometheusClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def is_online(self) -> bool:
        """Whether Prometheus answers ``/-/ready`` with 200."""
        try:
            return self._http.get("/-/ready").status_code == 200
        except httpx.HTTPError:
            return False

    def query(self, promql: str, at: datetime | None = None) -> QueryResult:
        """Run an instant query (evaluated at ``at``, default Prometheus' now); one series or a scalar
        -> value, empty vector -> no data.

        Raises QueryError for everything else, with Prometheus' own error text when it gave one.
        """
        form = {"query": promql, "timeout": f"{max(1, int(self.timeout))}s"}
        if at is not None:
            form["time"] = f"{(at if at.tzinfo else at.replace(tzinfo=UTC)).timestamp():.3f}"
        try:
            response = self._http.post("/api/v1/query", data=form)
        except httpx.TimeoutException:
            raise QueryError(
                f"Prometheus at {self.base_url} did not answer within {self.timeout:g}s"
            ) from None
        except httpx.HTTPError as e:
            raise QueryError(f"cannot reach Prometheus at {self.base_url}: {e or type(e).__name__}") from None
        body = _json(response)
        if response.status_code // 100 != 2 or body.get("status") != "success":
            raise QueryError(_describe_error(response, body))
        return parse_query_data(body.get("data"))


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _describe_error(response: httpx.Response, body: dict[str, Any]) -> str:
    if body.get("status") == "error" or "error" in body:
        kind = body.get("errorType", "error")
        text = str(body.get("error", "")).strip() or "(no error text)"
        return f"Prometheus answered HTTP {response.status_code} {kind}: {text}"[:_ERROR_TEXT_MAX]
    snippet = " ".join(response.text.split())[:200]
    reason = response.reason_phrase or ""
    return f"Prometheus answered HTTP {response.status_code} {reason}: {snippet or '(empty body)'}"[
        :_ERROR_TEXT_MAX
    ]


def parse_query_data(data: Any) -> QueryResult:
    """Interpret the ``data`` of a successful /api/v1/query answer."""
    if not isinstance(data, dict):
        raise QueryError("Prometheus answered without a data object")
    kind = data.get("resultType")
    result = data.get("result")
    if kind == "scalar":
        return QueryResult.of(_sample_value(result))
    if kind == "vector":
        if not isinstance(result, list):
            raise QueryError("Prometheus answered a vector without a result list")
        if not result:
            return QueryResult.empty()
        if len(result) > 1:
            raise QueryError(
                f"query must return one series, got {len(result)}: aggregate it, e.g. sum(...) or max(...)"
            )
        series = result[0]
        if not isinstance(series, dict):
            raise QueryError("Prometheus answered a malformed vector sample")
        return QueryResult.of(_sample_value(series.get("value")))
    raise QueryError(f"query must return an instant vector or a scalar, got {kind or 'nothing'}")


def _sample_value(sample: Any) -> float:
    if not (isinstance(sample, list) and len(sample) == 2):
        raise QueryError(f"malformed sample from Prometheus: {sample!r}"[:_ERROR_TEXT_MAX])
    try:
        return float(sample[1])  # "NaN", "+Inf" and "-Inf" parse too
    except (TypeError, ValueError):
        raise QueryError(f"malformed sample value from Prometheus: {sample[1]!r}"[:_ERROR_TEXT_MAX]) from None


# --- orchestration ------------------------------------------------------------------------------


def analysis_window(analysis: Analysis) -> str:
    """The PromQL range window: ``analysis.window``, else 2 x interval but at least 30s."""
    if analysis.window:
        return analysis.window
    return format_duration(max(30.0, 2 * parse_duration(analysis.interval)))


def effective_guardrails(analysis: Analysis) -> list[Guardrail]:
    return list(analysis.guardrails) or default_guardrails()


@dataclass(frozen=True)
class PlannedGuardrail:
    guardrail: Guardrail
    canary_query: str
    stable_query: str | None
    unavailable: str | None  # why the guardrail cannot run now (benign), if so


def plan(
    analysis: Analysis,
    runtime: str,
    namespace: str,
    name: str,
    revision: str,
    stable_revision: str | None,
) -> tuple[str, list[PlannedGuardrail]]:
    """Render every query up front; raises TemplateRejected before anything is sent."""
    window = analysis_window(analysis)
    canary_vars = Variables(namespace, name, revision, window, stable_revision)
    sample_query = render(sample_count_template(runtime), canary_vars, guardrail="sample-count")
    planned: list[PlannedGuardrail] = []
    for g in effective_guardrails(analysis):
        source = guardrail_source(runtime, g)
        try:
            canary_query = render(source, canary_vars, guardrail=g.name)
        except StableRevisionUnavailable as e:
            planned.append(PlannedGuardrail(g, "", None, str(e).split(": ", 1)[-1]))
            continue
        stable_query = None
        if g.compare_to_stable is not None and stable_revision is not None:
            stable_vars = Variables(namespace, name, stable_revision, window, stable_revision)
            stable_query = render(source, stable_vars, guardrail=g.name)
        planned.append(PlannedGuardrail(g, canary_query, stable_query, None))
    return sample_query, planned


def validate_analysis(analysis: Analysis, runtime: str, namespace: str, name: str) -> None:
    """Raise TemplateRejected if any guardrail template would be refused (for a status condition)."""
    plan(analysis, runtime, namespace, name, "0", "1")


def measure(
    client: Querier,
    analysis: Analysis,
    runtime: str,
    namespace: str,
    name: str,
    revision: str,
    stable_revision: str | None,
    now: datetime | str,
    *,
    evidence: Sequence[SequentialEvidence] = (),
) -> list[Measurement]:
    """Measure every guardrail of ``analysis`` for the canary ``revision``; one Measurement each.

    Runs the runtime's sample-count query (or a guardrail's own ``samplesQuery``), each guardrail's
    query and, for compareToStable, the same query for ``stable_revision``. A sequential guardrail
    counts errors and requests of both revisions since its stored ``evidence`` instead. Query
    failures become ``Error`` measurements. A refused template raises
    :class:`~modeldeploy.analysis.render.TemplateRejected` before any query is sent.
    """
    sample_query, planned = plan(analysis, runtime, namespace, name, revision, stable_revision)

    samples: float | None = None
    sample_error: str | None = None
    try:
        samples = _finite_or_none(client.query(sample_query).value)
    except QueryError as e:
        sample_error = f"the sample-count query failed: {e}"

    out: list[Measurement] = []
    for p in planned:
        g = p.guardrail
        threshold = threshold_text(g)
        if p.unavailable is not None:
            out.append(
                inconclusive_measurement(
                    g.name, revision, p.canary_query, p.unavailable, now, threshold=threshold
                )
            )
            continue
        if g.sequential is not None:
            prior = next((e for e in evidence if e.guardrail == g.name), None)
            window_s = parse_duration(analysis_window(analysis))
            out.append(
                _measure_sequential(
                    client,
                    g,
                    runtime,
                    Variables(namespace, name, revision, "1s", stable_revision),
                    prior,
                    window_s,
                    now,
                )
            )
            continue
        guardrail_samples, source = samples, SAMPLE_COUNT_SOURCES.get(runtime, "")  # type: ignore[call-overload]
        failed = sample_error
        if g.samples_query is not None:
            source = "the guardrail's samplesQuery"
            vars_ = Variables(namespace, name, revision, analysis_window(analysis), stable_revision)
            try:
                query = render(g.samples_query, vars_, guardrail=g.name)
                guardrail_samples, failed = _finite_or_none(client.query(query).value), None
            except StableRevisionUnavailable as e:
                out.append(inconclusive_measurement(g.name, revision, "", str(e), now, threshold=threshold))
                continue
            except QueryError as e:
                failed = f"the samplesQuery failed: {e}"
        if failed is not None:
            out.append(error_measurement(g.name, revision, sample_query, failed, now, threshold=threshold))
            continue
        try:
            value = client.query(p.canary_query).value
        except QueryError as e:
            out.append(error_measurement(g.name, revision, p.canary_query, str(e), now, threshold=threshold))
            continue
        stable_value: float | None = None
        if p.stable_query is not None:
            try:
                stable_value = client.query(p.stable_query).value
            except QueryError as e:
                out.append(
                    error_measurement(
                        g.name,
                        revision,
                        p.stable_query,
                        f"the stable revision's query failed: {e}",
                        now,
                        threshold=threshold,
                    )
                )
                continue
        out.append(
            evaluate(
                g,
                value,
                guardrail_samples,
                stable_value,
                analysis,
                revision,
                p.canary_query,
                now,
                samples_source=source,
            )
        )
    return out


def _finite_or_none(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _measure_sequential(
    client: Querier,
    guardrail: Guardrail,
    runtime: str,
    canary: Variables,
    prior: SequentialEvidence | None,
    first_window_s: float,
    now: datetime | str,
) -> Measurement:
    """Count errors and requests of canary and stable over the same interval, evaluated at ``now``
    (see :mod:`modeldeploy.analysis.sequential_guardrail`), and judge the evidence."""
    g, threshold = guardrail.name, threshold_text(guardrail)
    if canary.stable_revision is None:
        reason = "there is no stable revision to compare with yet"
        return inconclusive_measurement(g, canary.revision, "", reason, now, threshold=threshold)
    # The window ends SETTLE_S before now, on a whole second: every sample stamped at or before its
    # end has been ingested by then, so the next window's "one window ago" sees the same value.
    end = instant(timestamp(now)) - timedelta(seconds=SETTLE_S)
    seconds = interval_seconds(prior, end, first_window_s)
    errors_source, requests_source = event_count_templates(runtime)
    window = format_duration(seconds)
    stable = Variables(canary.namespace, canary.name, canary.stable_revision, window, canary.stable_revision)
    canary = Variables(canary.namespace, canary.name, canary.revision, window, canary.stable_revision)
    queries = [render(q, v, guardrail=g) for v in (canary, stable) for q in (requests_source, errors_source)]
    if seconds == 0:
        return judge(guardrail, canary.revision, None, prior, queries[1], end)
    counts: list[float] = []
    for query in queries:
        try:
            counts.append(_finite_or_none(client.query(query, end).value) or 0.0)
        except QueryError as e:
            return error_measurement(g, canary.revision, query, str(e), now, threshold=threshold)
    canary_requests, canary_errors, stable_requests, stable_errors = (max(0.0, round(c)) for c in counts)
    increment = Increment(canary_requests, canary_errors, stable_requests, stable_errors)
    return judge(guardrail, canary.revision, increment, prior, queries[1], end)
