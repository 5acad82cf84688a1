"""Rendering user PromQL templates: escaping, validation, and refusal of every injection attempt."""

from __future__ import annotations

import pytest

from modeldeploy.analysis.render import (
    StableRevisionUnavailable,
    TemplateRejected,
    Variables,
    escape_promql_string,
    render,
)

pytestmark = pytest.mark.unit

VARS = Variables(namespace="prod", name="bert", revision="abc123", window="2m", stable_revision="def456")
GOOD = (
    'sum(rate(my_errors_total{namespace="{{ namespace }}", md="{{ name }}", revision="{{ revision }}"}'
    "[{{ window }}]))"
)


def test_renders_values_into_label_matchers_and_range() -> None:
    assert render(GOOD, VARS, guardrail="errors") == (
        'sum(rate(my_errors_total{namespace="prod", md="bert", revision="abc123"}[2m]))'
    )


def test_all_matcher_operators_partial_values_conditionals_and_comments() -> None:
    source = (
        "# canary vs stable\n"
        'sum(x{pod=~"{{ name }}-.*", revision!="{{ stable_revision }}", '
        'ns!~"{{ namespace }}x"}[{{ window }}])'
        "{% if revision != stable_revision %} > 0{% endif %}"
    )
    assert render(source, VARS, guardrail="g") == (
        '# canary vs stable\nsum(x{pod=~"bert-.*", revision!="def456", ns!~"prodx"}[2m]) > 0'
    )


def test_window_may_be_quoted_or_in_a_subquery() -> None:
    source = 'max_over_time(x{w="{{ window }}", revision="{{ revision }}"}[{{ window }}:15s])'
    assert render(source, VARS, guardrail="g") == 'max_over_time(x{w="2m", revision="abc123"}[2m:15s])'


def test_window_may_follow_the_offset_modifier() -> None:
    source = 'x{revision="{{ revision }}"} - (x{revision="{{ revision }}"} offset  {{ window }})'
    assert render(source, VARS, guardrail="g") == 'x{revision="abc123"} - (x{revision="abc123"} offset  2m)'


def test_escape_promql_string() -> None:
    assert escape_promql_string('a"b\\c\nd') == 'a\\"b\\\\c\\nd'


# Templates that try to put a value where it could change the query's shape.
ATTACK_TEMPLATES = {
    "value outside quotes": 'sum(x{revision="abc"}) or {{ revision }}',
    "value as the metric name": '{{ name }}{namespace="{{ namespace }}"}',
    "value as a label name": 'x{ {{ name }}="a"}',
    "value in a single-quoted string": "x{revision='{{ revision }}'}",
    "value in a raw string": "x{revision=`{{ revision }}`}",
    "value in a function string argument": 'label_replace(x, "dst", "{{ revision }}", "src", ".*")',
    "value in a comment": 'x{revision="a"} # {{ revision }}',
    "window outside a range": 'x{revision="a"} - {{ window }}',
    "window after a word ending in offset": 'x{revision="a"} myoffset {{ window }}',
    "window after offset inside braces": 'x{revision="a", b=offset {{ window }}}',
    "revision inside a range": 'x{revision="a"}[{{ revision }}]',
    "constant expression outside quotes": 'x{a="b"} {{ "or vector(1)" }}',
    # a template backslash before an (empty) substitution must not make the checker and Prometheus
    # disagree on where the string ends: the checker sees the same text Prometheus will
    "backslash before a substitution": 'x{a="\\{{ "" }}", b="{{ revision }}"} or vector(1) or x{c="d"}',
}


@pytest.mark.parametrize("source", ATTACK_TEMPLATES.values(), ids=ATTACK_TEMPLATES.keys())
def test_templates_that_misplace_values_are_refused(source: str) -> None:
    with pytest.raises(TemplateRejected, match=r"^guardrail p99: "):
        render(source, VARS, guardrail="p99")


# Values that try to break out of a label matcher (or are not what they claim).
ATTACK_VALUES = {
    "quote and brace": {"revision": 'abc"} or vector(1) or x{a="'},
    "closing brace": {"namespace": "prod}"},
    "comma and extra matcher": {"namespace": 'prod",namespace=~".*'},
    "regex matcher": {"name": "bert=~.*"},
    "newline": {"name": "bert\nor vector(1)"},
    "backslash": {"revision": "abc\\"},
    "uppercase revision": {"revision": "ABC123"},
    "too long revision": {"revision": "a" * 17},
    "window with code": {"window": "5m]) or vector(1) or x[5m"},
    "empty namespace": {"namespace": ""},
    "stable revision with quote": {"stable_revision": 'def"'},
}


@pytest.mark.parametrize("override", ATTACK_VALUES.values(), ids=ATTACK_VALUES.keys())
def test_values_that_try_to_escape_are_refused(override: dict[str, str]) -> None:
    fields = {**VARS.__dict__, **override}
    source = GOOD + ' / x{r="{{ stable_revision }}"}'
    with pytest.raises(TemplateRejected, match=r"^guardrail p99: .* is not "):
        render(source, Variables(**fields), guardrail="p99")


DISALLOWED_SYNTAX = {
    "filter": 'x{r="{{ revision | replace("a", "b") }}"}',
    "attribute access": 'x{r="{{ revision.__class__ }}"}',
    "call": 'x{r="{{ range(3) }}"}',
    "loop": '{% for i in [1] %}x{r="{{ revision }}"}{% endfor %}',
    "set": '{% set r = revision %}x{r="{{ r }}"}',
    "filter block": '{% filter upper %}x{r="{{ revision }}"}{% endfilter %}',
    "macro": "{% macro m() %}x{% endmacro %}{{ m() }}",
}


@pytest.mark.parametrize("source", DISALLOWED_SYNTAX.values(), ids=DISALLOWED_SYNTAX.keys())
def test_jinja_beyond_variables_and_if_is_refused(source: str) -> None:
    with pytest.raises(TemplateRejected, match="is not allowed in a guardrail query"):
        render(source, VARS, guardrail="g")


def test_unknown_variable_is_named() -> None:
    with pytest.raises(TemplateRejected, match="unknown variable 'pod'; the variables are namespace, name"):
        render('x{pod="{{ pod }}"}', VARS, guardrail="g")


def test_syntax_error_unterminated_string_and_reserved_characters() -> None:
    with pytest.raises(TemplateRejected, match="jinja2 syntax error on line 1"):
        render('x{r="{{ revision "}', VARS, guardrail="g")
    with pytest.raises(TemplateRejected, match="unterminated string"):
        render('x{r="{{ revision }}}', VARS, guardrail="g")
    with pytest.raises(TemplateRejected, match="reserved"):
        render('x{r="\ue000"}', VARS, guardrail="g")
    with pytest.raises(TemplateRejected, match="empty"):
        render("  {% if false %}x{% endif %} ", VARS, guardrail="g")


def test_stable_revision_missing() -> None:
    no_stable = Variables(namespace="prod", name="bert", revision="abc123", window="2m")
    assert render(GOOD, no_stable, guardrail="g").startswith("sum(")
    with pytest.raises(StableRevisionUnavailable, match="no stable revision yet"):
        render('x{r="{{ stable_revision }}"}', no_stable, guardrail="g")
