"""Built-in guardrail PromQL, per runtime, written against the runtimes' real metric names.

Prometheus target labels
------------------------
Every query is scoped by three *target* labels that the scrape configuration adds to each sample.
They are not exported by Triton or TorchServe; a PodMonitor (or a plain ``kubernetes_sd`` scrape
job) must attach them with this relabelling::

    relabelings:
      - sourceLabels: [__meta_kubernetes_namespace]
        targetLabel: namespace
      - sourceLabels: [__meta_kubernetes_pod_name]
        targetLabel: pod
      - sourceLabels: [__meta_kubernetes_pod_label_modeldeploy_dev_revision]
        targetLabel: revision
      - sourceLabels: [__meta_kubernetes_pod_label_modeldeploy_dev_deployment]
        targetLabel: md

That is: ``namespace`` (the pod's namespace), ``pod`` (the pod name, not used for scoping),
``revision`` (pod label ``modeldeploy.dev/revision``) and ``md`` (pod label
``modeldeploy.dev/deployment``, the ModelDeployment name). The names are in :data:`TARGET_LABELS`.

Metrics used
------------
Triton (``/metrics`` on port 8002; labels ``model``, ``version``; all per request). Checked against
the real ``tritonserver`` 2.51.0 by ``tests/integration/test_triton_real.py``:

* ``nv_inference_request_success`` / ``nv_inference_request_failure``: request counters (a request
  carrying a batch counts once). The failure counter carries a ``reason`` label (``BACKEND``,
  ``OTHER``, ``CANCELED``, ``REJECTED``, each series present from startup); the templates sum over it.
* ``nv_inference_request_duration_us`` / ``nv_inference_queue_duration_us``: *counters* of
  cumulative microseconds of the requests counted as successes. They give a **mean**, never a quantile.
* ``nv_inference_request_summary_us`` / ``nv_inference_queue_summary_us``: Prometheus *summaries*
  with ``quantile`` labels (0.5, 0.9, 0.95, 0.99, 0.999), exported only when Triton runs with
  ``--metrics-config summary_latencies=true`` (the operator passes it).

TorchServe (``metrics_mode=prometheus``, ``/metrics`` on port 8082; names from ts/configs/metrics.yaml):

* ``ts_inference_requests_total`` (counter; labels ``model_name``, ``model_version``, ``hostname``):
  inference requests *received* by the frontend, counted before the worker answers, so failed
  requests are included.
* ``ts_inference_latency_microseconds`` / ``ts_queue_latency_microseconds`` (counters, same labels):
  cumulative microseconds. TorchServe exports no latency histogram or summary, so every latency
  template on TorchServe is a **mean**.
* ``Requests5XX`` (counter; labels ``Level``, ``Hostname``): every HTTP response >= 500 of the
  server (not per model; a pod serves one model, so the target labels scope it). The series only
  appears after the first 5xx, hence ``or vector(0)``.

Honesty about "p99"
-------------------
``latency-p99-ms``, ``latency-p50-ms`` and ``queue-time-p99-ms`` return the named quantile only on
Triton with summary latencies enabled: the value is then the largest per-pod quantile seen in the
window (``max(max_over_time(...))``), an upper bound of the revision's quantile, since summary
quantiles cannot be aggregated across pods. Otherwise the query falls back (PromQL ``or``) to the
**mean** over the window, computed from the cumulative counters. On TorchServe these templates are
always the mean. :data:`TEMPLATE_DOCS` says this per runtime, for ``kubectl explain``-style docs.

What ``error-rate`` can honestly claim on Triton (blind spots)
---------------------------------------------------------------
It is *the share of requests whose execution failed inside Triton*: ``failure`` (every reason) over
``success + failure``. A model that raises in ``execute`` (or a backend that fails a request) is
counted with reason ``BACKEND``. Triton exports no HTTP status metric, so these are invisible to it:

* **error responses**: a Python-backend model that returns ``InferenceResponse(error=...)`` gives
  the client an HTTP 500, yet Triton counts a *success* (and adds its latency to the duration
  counters), so such a model can fail every request with an error rate of 0;
* **requests refused before scheduling**: HTTP 400 for a wrong shape or datatype, an unknown or
  missing input, a batch larger than ``max_batch_size``: counted neither as success nor as failure;
* **queue-full rejections** (HTTP 503 when ``max_queue_size`` is reached): not counted;
* **warm-up**: every ``model_warmup`` request counts as a *success* (instances x count x
  batchSize per pod start), which dilutes the error rate and the sample count of a fresh revision
  whose startup lies in the window.

What closes part of it: a revision whose clients all get 400s shows no counted requests, so
``minSampleSize`` makes the analysis *inconclusive* (it pauses, never promotes); keep
``minSampleSize`` above the warm-up total. ``spec.smokeTest`` sends one real request and checks
the response before any traffic moves, which catches a model that answers with errors. For
per-request truth, add a guardrail with your own ``query`` on a client-side metric (the gateway's
or the client library's response codes). Latency templates average or rank only the requests
counted as successes.
"""

from __future__ import annotations

from typing import Final, Literal

from modeldeploy.api.spec import BUILTIN_TEMPLATES, Guardrail

Runtime = Literal["triton", "torchserve"]
TemplateName = Literal["error-rate", "latency-p99-ms", "latency-p50-ms", "queue-time-p99-ms"]

# Target labels the scrape adds (see the module docstring for the relabelling).
LABEL_NAMESPACE: Final = "namespace"
LABEL_POD: Final = "pod"
LABEL_REVISION: Final = "revision"
LABEL_DEPLOYMENT: Final = "md"
TARGET_LABELS: Final = (LABEL_NAMESPACE, LABEL_POD, LABEL_REVISION, LABEL_DEPLOYMENT)

# Pod labels the relabelling reads (set on serving pods by the operator).
POD_LABEL_REVISION: Final = "modeldeploy.dev/revision"
POD_LABEL_DEPLOYMENT: Final = "modeldeploy.dev/deployment"

# The scoping matchers every query carries (jinja2; rendered by modeldeploy.analysis.render).
SELECTOR: Final = (
    f'{LABEL_NAMESPACE}="{{{{ namespace }}}}", {LABEL_DEPLOYMENT}="{{{{ name }}}}", '
    f'{LABEL_REVISION}="{{{{ revision }}}}"'
)

# Default guardrail when spec.rollout.analysis.guardrails is empty.
DEFAULT_ERROR_RATE_MAX: Final = 0.05


def _rate(metric: str, extra: str = "") -> str:
    matchers = f"{SELECTOR}, {extra}" if extra else SELECTOR
    return f"sum(rate({metric}{{{matchers}}}[{{{{ window }}}}]))"


def _increase(metric: str) -> str:
    return f"sum(increase({metric}{{{SELECTOR}}}[{{{{ window }}}}]))"


def _mean_ms(duration_counter: str, count_counter: str) -> str:
    # microseconds per request, / 1000 = milliseconds.
    return f"({_rate(duration_counter)} / {_rate(count_counter)} / 1000)"


def _triton_quantile_ms(summary: str, quantile: str, fallback_mean: str) -> str:
    upper_bound = (
        f'max(max_over_time({summary}{{{SELECTOR}, quantile="{quantile}"}}[{{{{ window }}}}])) / 1000'
    )
    return f"({upper_bound}) or {fallback_mean}"


_TRITON_MEAN_LATENCY = _mean_ms("nv_inference_request_duration_us", "nv_inference_request_success")
_TRITON_MEAN_QUEUE = _mean_ms("nv_inference_queue_duration_us", "nv_inference_request_success")
_TS_MEAN_LATENCY = _mean_ms("ts_inference_latency_microseconds", "ts_inference_requests_total")
_TS_MEAN_QUEUE = _mean_ms("ts_queue_latency_microseconds", "ts_inference_requests_total")

_TRITON_FAILURES = f"({_rate('nv_inference_request_failure')} or vector(0))"

_TEMPLATES: Final[dict[Runtime, dict[TemplateName, str]]] = {
    "triton": {
        # failed / (successful + failed) requests in the window.
        "error-rate": (
            f"{_TRITON_FAILURES} / ({_rate('nv_inference_request_success')} + {_TRITON_FAILURES})"
        ),
        "latency-p99-ms": _triton_quantile_ms(
            "nv_inference_request_summary_us", "0.99", _TRITON_MEAN_LATENCY
        ),
        "latency-p50-ms": _triton_quantile_ms("nv_inference_request_summary_us", "0.5", _TRITON_MEAN_LATENCY),
        "queue-time-p99-ms": _triton_quantile_ms("nv_inference_queue_summary_us", "0.99", _TRITON_MEAN_QUEUE),
    },
    "torchserve": {
        # 5xx responses / inference requests received, capped at 1 (Requests5XX also counts the rare
        # 5xx of non-inference endpoints).
        "error-rate": (
            f"clamp_max(({_rate('Requests5XX')} or vector(0)) / {_rate('ts_inference_requests_total')}, 1)"
        ),
        "latency-p99-ms": _TS_MEAN_LATENCY,
        "latency-p50-ms": _TS_MEAN_LATENCY,
        "queue-time-p99-ms": _TS_MEAN_QUEUE,
    },
}

_SAMPLE_COUNT: Final[dict[Runtime, str]] = {
    "triton": (
        f"{_increase('nv_inference_request_success')} + "
        f"({_increase('nv_inference_request_failure')} or vector(0))"
    ),
    "torchserve": _increase("ts_inference_requests_total"),
}

TEMPLATE_DOCS: Final[dict[Runtime, dict[TemplateName, str]]] = {
    "triton": {
        "error-rate": (
            "Fraction (0..1) of requests whose execution failed inside Triton in the window "
            "(nv_inference_request_failure, every reason, over success + failure). NOT counted: error "
            "responses a model returns (Triton counts them as successes), requests refused with 400 "
            "(shape, datatype, batch too large) or 503 (queue full); warm-up requests count as successes. "
            "Pair it with spec.smokeTest and a client-side error metric."
        ),
        "latency-p99-ms": (
            "p99 request latency in ms from nv_inference_request_summary_us (largest per-pod p99 in the "
            "window) when Triton runs with --metrics-config summary_latencies=true; otherwise the MEAN "
            "request latency from the cumulative duration counters."
        ),
        "latency-p50-ms": (
            "p50 request latency in ms from the summary when exported; otherwise the MEAN request latency."
        ),
        "queue-time-p99-ms": (
            "p99 queue time in ms from nv_inference_queue_summary_us when exported; otherwise the MEAN "
            "queue time."
        ),
    },
    "torchserve": {
        "error-rate": "Fraction (0..1) of inference requests answered with a 5xx status in the window.",
        "latency-p99-ms": "MEAN inference latency in ms: TorchServe exports no latency quantiles.",
        "latency-p50-ms": "MEAN inference latency in ms: TorchServe exports no latency quantiles.",
        "queue-time-p99-ms": "MEAN queue time in ms: TorchServe exports no queue-time quantiles.",
    },
}

assert set(BUILTIN_TEMPLATES) == set(_TEMPLATES["triton"]) == set(_TEMPLATES["torchserve"])


def builtin_template(runtime: str, template: str) -> str:
    """The jinja2 PromQL source of a built-in guardrail; render it with modeldeploy.analysis.render."""
    try:
        return _TEMPLATES[runtime][template]  # type: ignore[index]
    except KeyError:
        raise KeyError(
            f"no built-in template {template!r} for runtime {runtime!r}; "
            f"known: {', '.join(BUILTIN_TEMPLATES)} for triton, torchserve"
        ) from None


def _counted(metric: str) -> str:
    # The exact increase of each series since the end of the previous window: its value now minus
    # its value one window ago (the last sample at or before the previous window's end), so
    # contiguous windows telescope and every request is counted once, whatever the scrape interval
    # and however short the window. A series without an earlier value (a new pod, or a counter
    # that appears with its first event) and a series that reset (a restarted server) count their
    # whole value now: all of it happened after the previous window's end. Used by sequential
    # guardrails; ``window`` is the whole seconds since the previous window's end.
    now = f"{metric}{{{SELECTOR}}}"
    before = f"({now} offset {{{{ window }}}})"
    return f"(sum((({now} - {before}) >= 0) or {now}) or vector(0))"


# (errors, requests) of a revision over the window, for sequential guardrails.
_EVENT_COUNTS: Final[dict[Runtime, tuple[str, str]]] = {
    "triton": (
        _counted("nv_inference_request_failure"),
        f"{_counted('nv_inference_request_success')} + {_counted('nv_inference_request_failure')}",
    ),
    "torchserve": (_counted("Requests5XX"), _counted("ts_inference_requests_total")),
}


def event_count_templates(runtime: str) -> tuple[str, str]:
    """The jinja2 PromQL (errors, requests) a revision served in the window, exact and non-overlapping
    across contiguous windows (for sequential guardrails)."""
    try:
        return _EVENT_COUNTS[runtime]  # type: ignore[index]
    except KeyError:
        raise KeyError(f"no error and request counts for runtime {runtime!r}") from None


# Where the sample count of a guardrail without samplesQuery comes from, for status messages.
SAMPLE_COUNT_SOURCES: Final[dict[Runtime, str]] = {
    "triton": "Triton's request counters nv_inference_request_success + nv_inference_request_failure",
    "torchserve": "TorchServe's request counter ts_inference_requests_total",
}


def sample_count_template(runtime: str) -> str:
    """The jinja2 PromQL counting requests the revision served in the window (for minSampleSize)."""
    try:
        return _SAMPLE_COUNT[runtime]  # type: ignore[index]
    except KeyError:
        raise KeyError(f"no sample-count query for runtime {runtime!r}") from None


def guardrail_source(runtime: str, guardrail: Guardrail) -> str:
    """The template source of a guardrail: the built-in one or the user's query."""
    if guardrail.template is not None:
        return builtin_template(runtime, guardrail.template)
    assert guardrail.query is not None  # the model guarantees exactly one of template, query
    return guardrail.query


def default_guardrails() -> list[Guardrail]:
    """Guardrails applied when the spec lists none: the runtime's error rate at most 5%."""
    return [Guardrail(name="error-rate", template="error-rate", max=DEFAULT_ERROR_RATE_MAX)]
