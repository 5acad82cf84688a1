"""Built-in guardrail templates: every one renders for both runtimes, is scoped, and computes what it says.

The semantic tests run the rendered PromQL through ``promtool test rules`` (Prometheus' own engine,
against synthetic series) when promtool is installed.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from modeldeploy.analysis.render import Variables, render
from modeldeploy.analysis.templates import (
    TARGET_LABELS,
    TEMPLATE_DOCS,
    builtin_template,
    default_guardrails,
    guardrail_source,
    sample_count_template,
)
from modeldeploy.api.spec import BUILTIN_TEMPLATES, Guardrail

pytestmark = pytest.mark.unit

RUNTIMES = ("triton", "torchserve")
VARS = Variables(namespace="prod", name="bert", revision="abc123", window="2m", stable_revision="def456")
SCOPE = ('namespace="prod"', 'md="bert"', 'revision="abc123"')


def _metric_selectors(query: str) -> list[str]:
    """The label-matcher blocks of a query (text between { and })."""
    out, depth, start = [], 0, 0
    for i, ch in enumerate(query):
        if ch == "{":
            depth, start = depth + 1, i
        elif ch == "}":
            depth -= 1
            out.append(query[start + 1 : i])
    return out


@pytest.mark.parametrize("runtime", RUNTIMES)
@pytest.mark.parametrize("template", BUILTIN_TEMPLATES)
def test_builtin_renders_and_every_selector_is_scoped(runtime: str, template: str) -> None:
    query = render(builtin_template(runtime, template), VARS, guardrail=template)
    selectors = _metric_selectors(query)
    assert selectors, query
    for selector in selectors:
        for matcher in SCOPE:
            assert matcher in selector, f"{runtime}/{template}: {selector!r} lacks {matcher}"
    assert "[2m]" in query
    assert "{{" not in query and "\ue000" not in query


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_sample_count_renders_and_is_scoped(runtime: str) -> None:
    query = render(sample_count_template(runtime), VARS, guardrail="sample-count")
    assert query.startswith("sum(increase(")
    for selector in _metric_selectors(query):
        assert all(m in selector for m in SCOPE), selector


def test_metric_names_are_the_runtimes_real_ones() -> None:
    triton = " ".join(builtin_template("triton", t) for t in BUILTIN_TEMPLATES)
    for metric in (
        "nv_inference_request_success",
        "nv_inference_request_failure",
        "nv_inference_request_duration_us",
        "nv_inference_queue_duration_us",
        "nv_inference_request_summary_us",
        "nv_inference_queue_summary_us",
    ):
        assert metric in triton
    torchserve = " ".join(builtin_template("torchserve", t) for t in BUILTIN_TEMPLATES)
    for metric in (
        "ts_inference_requests_total",
        "ts_inference_latency_microseconds",
        "ts_queue_latency_microseconds",
        "Requests5XX",
    ):
        assert metric in torchserve
    assert "nv_" not in torchserve and "ts_" not in triton


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_templates_use_only_metrics_the_runtime_module_declares(runtime: str) -> None:
    from modeldeploy.runtimes import get_runtime

    declared = set(get_runtime(runtime).metrics.names())
    sources = [builtin_template(runtime, t) for t in BUILTIN_TEMPLATES] + [sample_count_template(runtime)]
    used = set(re.findall(r"\b([A-Za-z_][A-Za-z0-9_]*)\{", " ".join(sources)))
    assert used, sources
    assert used <= declared, f"not declared by runtimes/{runtime}.py: {sorted(used - declared)}"


def test_docs_are_honest_about_means() -> None:
    for template in ("latency-p99-ms", "latency-p50-ms", "queue-time-p99-ms"):
        assert "MEAN" in TEMPLATE_DOCS["torchserve"][template]
        assert "MEAN" in TEMPLATE_DOCS["triton"][template]
    assert TARGET_LABELS == ("namespace", "pod", "revision", "md")


def test_triton_error_rate_docs_name_its_blind_spots() -> None:
    # verified on the real tritonserver by tests/integration/test_triton_real.py
    doc = TEMPLATE_DOCS["triton"]["error-rate"]
    for blind_spot in ("error responses", "400", "503", "warm-up"):
        assert blind_spot in doc, blind_spot
    assert "reason" not in builtin_template("triton", "error-rate"), "the error rate must sum every reason"


def test_unknown_runtime_or_template_is_a_clear_error() -> None:
    with pytest.raises(KeyError, match="no built-in template 'latency-p42' for runtime 'triton'"):
        builtin_template("triton", "latency-p42")
    with pytest.raises(KeyError, match="runtime 'onnx'"):
        sample_count_template("onnx")


def test_guardrail_source_and_default() -> None:
    user = Guardrail(name="custom", query='sum(up{namespace="{{ namespace }}"})', max=1)
    assert guardrail_source("triton", user) == user.query
    (default,) = default_guardrails()
    assert (default.template, default.max) == ("error-rate", 0.05)
    assert guardrail_source("torchserve", default) == builtin_template("torchserve", "error-rate")


# --- semantics, checked by Prometheus' own engine ------------------------------------------------

PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="promtool is not installed")

CANARY = 'namespace="prod",md="bert",revision="abc123",pod="bert-abc123-0"'
STABLE = 'namespace="prod",md="bert",revision="def456",pod="bert-def456-0"'
OTHER_NS = 'namespace="dev",md="bert",revision="abc123",pod="bert-abc123-0"'


def _promtool(tmp_path: Path, series: list[tuple[str, str]], checks: list[tuple[str, float | None]]) -> None:
    """Assert each (query, expected) at 5m over 15s-step series; expected None = empty result."""
    (tmp_path / "rules.yml").write_text("groups: []\n")
    tests: list[dict[str, Any]] = []
    for query, expected in checks:
        if expected is None:
            tests.append({"expr": query, "eval_time": "5m", "exp_samples": []})
        else:  # promtool compares exactly; compare within 1e-6 instead
            tests.append(
                {
                    "expr": f"abs(({query}) - {expected!r}) < bool 1e-6",
                    "eval_time": "5m",
                    "exp_samples": [{"labels": "{}", "value": 1}],
                }
            )
    doc = {
        "rule_files": ["rules.yml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "15s",
                "input_series": [{"series": s, "values": v} for s, v in series],
                "promql_expr_test": tests,
            }
        ],
    }
    (tmp_path / "test.yml").write_text(yaml.safe_dump(doc))
    assert PROMTOOL is not None
    run = subprocess.run(
        [PROMTOOL, "test", "rules", "test.yml"], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0, run.stdout + run.stderr


def _q(runtime: str, template: str) -> str:
    return render(builtin_template(runtime, template), VARS, guardrail=template)


@needs_promtool
def test_triton_queries_compute_rates_means_and_quantiles(tmp_path: Path) -> None:
    # Per 15s: canary 90 successes + 10 failures (8 BACKEND, 2 OTHER), 5 ms mean latency, 1 ms mean queue.
    series = [
        (f'nv_inference_request_success{{{CANARY},model="m",version="1"}}', "0+90x40"),
        (f'nv_inference_request_failure{{{CANARY},model="m",version="1",reason="BACKEND"}}', "0+8x40"),
        (f'nv_inference_request_failure{{{CANARY},model="m",version="1",reason="OTHER"}}', "0+2x40"),
        (f'nv_inference_request_failure{{{CANARY},model="m",version="1",reason="REJECTED"}}', "0x40"),
        (f'nv_inference_request_duration_us{{{CANARY},model="m",version="1"}}', "0+450000x40"),
        (f'nv_inference_queue_duration_us{{{CANARY},model="m",version="1"}}', "0+90000x40"),
        # the stable revision and another namespace must not leak into the canary's numbers
        (f'nv_inference_request_success{{{STABLE},model="m",version="1"}}', "0+1000x40"),
        (f'nv_inference_request_failure{{{OTHER_NS},model="m",version="1"}}', "0+1000x40"),
    ]
    _promtool(
        tmp_path,
        series,
        [
            (_q("triton", "error-rate"), 0.1),
            (_q("triton", "latency-p99-ms"), 5.0),  # no summary exported: the mean
            (_q("triton", "latency-p50-ms"), 5.0),
            (_q("triton", "queue-time-p99-ms"), 1.0),
            (render(sample_count_template("triton"), VARS, guardrail="s"), 800.0),  # 100/15s over 2m
        ],
    )


@needs_promtool
def test_triton_uses_summary_quantiles_when_exported(tmp_path: Path) -> None:
    summary = f'nv_inference_request_summary_us{{{CANARY},model="m",version="1"'
    series = [
        (f'nv_inference_request_success{{{CANARY},model="m",version="1"}}', "0+100x40"),
        (f'nv_inference_request_duration_us{{{CANARY},model="m",version="1"}}', "0+500000x40"),
        (f'{summary},quantile="0.99"}}', "40000x40"),
        (f'{summary},quantile="0.5"}}', "3000x40"),
        # a second canary pod with a worse p99: the template takes the largest
        (f'nv_inference_request_summary_us{{{CANARY.replace("-0", "-1")},quantile="0.99"}}', "42000x40"),
    ]
    _promtool(
        tmp_path,
        series,
        [(_q("triton", "latency-p99-ms"), 42.0), (_q("triton", "latency-p50-ms"), 3.0)],
    )


@needs_promtool
def test_triton_without_failures_series_and_without_target(tmp_path: Path) -> None:
    series = [(f'nv_inference_request_success{{{CANARY},model="m",version="1"}}', "0+100x40")]
    _promtool(tmp_path, series, [(_q("triton", "error-rate"), 0.0)])
    stable_only = [(f'nv_inference_request_success{{{STABLE},model="m",version="1"}}', "0+100x40")]
    _promtool(
        tmp_path,
        stable_only,
        [
            (_q("triton", "error-rate"), None),
            (render(sample_count_template("triton"), VARS, guardrail="s"), None),
        ],
    )


@needs_promtool
def test_torchserve_queries(tmp_path: Path) -> None:
    # Per 15s: 40 inference requests, 2 of them 5xx; 20 ms mean latency, 2 ms mean queue time.
    ts = f'{CANARY},model_name="bert",model_version="1.0",hostname="bert-abc123-0"'
    series = [
        (f"ts_inference_requests_total{{{ts}}}", "0+40x40"),
        (f"ts_inference_latency_microseconds{{{ts}}}", "0+800000x40"),
        (f"ts_queue_latency_microseconds{{{ts}}}", "0+80000x40"),
        (f'Requests5XX{{{CANARY},Level="Host",Hostname="bert-abc123-0"}}', "0+2x40"),
        (f'Requests5XX{{{STABLE},Level="Host",Hostname="bert-def456-0"}}', "0+40x40"),
    ]
    _promtool(
        tmp_path,
        series,
        [
            (_q("torchserve", "error-rate"), 0.05),
            (_q("torchserve", "latency-p99-ms"), 20.0),
            (_q("torchserve", "queue-time-p99-ms"), 2.0),
            (render(sample_count_template("torchserve"), VARS, guardrail="s"), 320.0),
        ],
    )
    no_errors = [(f"ts_inference_requests_total{{{ts}}}", "0+40x40")]
    _promtool(tmp_path, no_errors, [(_q("torchserve", "error-rate"), 0.0)])
