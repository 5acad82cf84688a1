"""Canary analysis: guardrail PromQL (templates, safe rendering), pure judging, Prometheus I/O.

Pure modules: templates, render, evaluate, sequential (the anytime-valid canary-vs-stable test) and
sequential_guardrail (its measurement). I/O: prometheus (the only one importing httpx).
"""

from modeldeploy.analysis.evaluate import error_measurement, evaluate, threshold_text
from modeldeploy.analysis.render import StableRevisionUnavailable, TemplateRejected, Variables, render
from modeldeploy.analysis.templates import (
    LABEL_DEPLOYMENT,
    LABEL_NAMESPACE,
    LABEL_POD,
    LABEL_REVISION,
    TARGET_LABELS,
    builtin_template,
    sample_count_template,
)

__all__ = [
    "LABEL_DEPLOYMENT",
    "LABEL_NAMESPACE",
    "LABEL_POD",
    "LABEL_REVISION",
    "TARGET_LABELS",
    "StableRevisionUnavailable",
    "TemplateRejected",
    "Variables",
    "builtin_template",
    "error_measurement",
    "evaluate",
    "render",
    "sample_count_template",
    "threshold_text",
]
