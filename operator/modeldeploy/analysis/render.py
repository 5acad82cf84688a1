"""Render guardrail PromQL templates (jinja2) safely.

A template may use only the variables ``namespace``, ``name``, ``revision``, ``stable_revision``
and ``window``, in ``{{ ... }}`` expressions and ``{% if %}`` tests. Three layers keep a value from
changing the shape of the query:

1. **Validation**: namespace and name must be DNS labels, revisions lowercase hex (at most 16),
   the window a duration such as ``30s`` or ``1m30s``.
2. **Escaping**: every expression's output is escaped for a PromQL double-quoted string
   (backslash, double quote and line breaks).
3. **Placement**: every expression output is wrapped in private-use marker characters while
   rendering; the result is then lexed as PromQL and each marked value must lie *inside one
   double-quoted string that is the value of a label matcher* (``label="..."``, ``!=``, ``=~``,
   ``!~`` inside ``{...}``). ``window`` may instead sit inside a range/subquery ``[...]`` or right
   after the ``offset`` modifier.
   Anything else (a value outside quotes, in a metric name, in a single-quoted or raw string, in
   a comment) is refused. The markers are removed from the final query.

The template itself is checked before rendering: only a small whitelist of jinja2 syntax is
accepted (no filters, calls, attribute access, loops, macros, ``set`` or filter blocks), and an
unknown variable is refused by name. It runs in jinja2's ImmutableSandboxedEnvironment with
StrictUndefined.

Refusals raise :class:`TemplateRejected` with a message that starts with ``guardrail <name>:`` so
the operator can put it in a condition as is.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Final

import jinja2
from jinja2 import nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment

from modeldeploy.api.common import DNS_LABEL, DURATION

VARIABLES: Final = ("namespace", "name", "revision", "stable_revision", "window")
REVISION: Final = r"^[0-9a-f]{1,16}$"

_OPEN: Final = "\ue000"
_CLOSE: Final = "\ue001"
_WINDOW_OPEN: Final = "\ue002"
_WINDOW_CLOSE: Final = "\ue003"
_MARKERS: Final = (_OPEN, _CLOSE, _WINDOW_OPEN, _WINDOW_CLOSE)

_PATTERNS: Final = {
    "namespace": (DNS_LABEL, "a DNS label (lowercase letters, digits and '-', at most 63)"),
    "name": (DNS_LABEL, "a DNS label (lowercase letters, digits and '-', at most 63)"),
    "revision": (REVISION, "lowercase hex of at most 16 characters"),
    "stable_revision": (REVISION, "lowercase hex of at most 16 characters"),
    "window": (DURATION, "a duration such as 30s, 2m or 1h30m"),
}

_ALLOWED_NODES: Final = (
    nodes.Template,
    nodes.Output,
    nodes.TemplateData,
    nodes.Name,
    nodes.Const,
    nodes.If,
    nodes.Compare,
    nodes.Operand,
    nodes.Not,
    nodes.And,
    nodes.Or,
    nodes.CondExpr,
)

_MATCH_OPS: Final = ("!=", "=~", "!~", "=")


class TemplateRejected(ValueError):
    """A guardrail template or a value substituted into it was refused; the message says why."""


class StableRevisionUnavailable(ValueError):
    """The template needs ``stable_revision`` but there is no stable revision yet."""


@dataclass(frozen=True)
class Variables:
    """Values substituted into a template (validated by :func:`render`)."""

    namespace: str
    name: str
    revision: str
    window: str
    stable_revision: str | None = None


class _Window(str):
    """A window value: may be placed inside a range selector as well as in a quoted string."""

    __slots__ = ()


def escape_promql_string(value: str) -> str:
    """``value`` escaped for the inside of a PromQL double-quoted string."""
    return (
        value.replace("\\", "\\\\")
        .replace('"', '\\"')
        .replace("\n", "\\n")
        .replace("\r", "\\r")
        .replace("\t", "\\t")
    )


def _finalize(value: Any) -> str:
    if isinstance(value, _Window):
        return f"{_WINDOW_OPEN}{escape_promql_string(str(value))}{_WINDOW_CLOSE}"
    return f"{_OPEN}{escape_promql_string(str(value))}{_CLOSE}"


_ENV: Final = ImmutableSandboxedEnvironment(
    undefined=jinja2.StrictUndefined,
    finalize=_finalize,
    autoescape=False,
    keep_trailing_newline=False,
)


def validate_value(variable: str, value: str) -> None:
    """Raise ValueError unless ``value`` is acceptable for ``variable``."""
    pattern, what = _PATTERNS[variable]
    if not isinstance(value, str) or not re.fullmatch(pattern, value) or len(value) > 63:
        raise ValueError(f"{variable} {value!r} is not {what}")


def check_template(source: str, label: str) -> None:
    """Refuse a template that uses anything beyond the whitelisted syntax or variables."""
    if any(m in source for m in _MARKERS):
        raise TemplateRejected(f"{label}: the template contains reserved private-use characters")
    try:
        tree = _ENV.parse(source)
    except jinja2.TemplateSyntaxError as e:
        raise TemplateRejected(f"{label}: jinja2 syntax error on line {e.lineno}: {e.message}") from None
    for node in _walk(tree):
        if not isinstance(node, _ALLOWED_NODES):
            raise TemplateRejected(
                f"{label}: jinja2 {type(node).__name__} is not allowed in a guardrail query; use only "
                "{{ variable }} and {% if %} with the variables " + ", ".join(VARIABLES)
            )
        if isinstance(node, nodes.Name) and node.name not in VARIABLES:
            raise TemplateRejected(
                f"{label}: unknown variable {node.name!r}; the variables are {', '.join(VARIABLES)}"
            )


def _walk(node: nodes.Node) -> Iterator[nodes.Node]:
    yield node
    for child in node.iter_child_nodes():
        yield from _walk(child)


def uses_stable_revision(source: str) -> bool:
    """Whether a template refers to ``stable_revision``."""
    try:
        tree = _ENV.parse(source)
    except jinja2.TemplateSyntaxError:
        return False
    return any(isinstance(n, nodes.Name) and n.name == "stable_revision" for n in _walk(tree))


def render(source: str, variables: Variables, *, guardrail: str) -> str:
    """Render ``source`` with ``variables`` into a PromQL query, or raise TemplateRejected.

    Raises StableRevisionUnavailable when the template uses ``stable_revision`` and it is None.
    """
    label = f"guardrail {guardrail}"
    check_template(source, label)
    context: dict[str, str] = {}
    for var in VARIABLES:
        value = getattr(variables, var)
        if value is None:
            continue
        try:
            validate_value(var, value)
        except ValueError as e:
            raise TemplateRejected(f"{label}: {e}") from None
        context[var] = _Window(value) if var == "window" else value
    if variables.stable_revision is None and uses_stable_revision(source):
        raise StableRevisionUnavailable(
            f"{label}: the query uses stable_revision but there is no stable revision yet"
        )
    try:
        marked = _ENV.from_string(source).render(context)
    except jinja2.UndefinedError as e:
        raise TemplateRejected(f"{label}: {e.message}") from None
    except jinja2.TemplateError as e:  # sandbox refusals and the like
        raise TemplateRejected(f"{label}: {e}") from None
    query, kinds = _unmark(marked, label)
    _check_placement(query, kinds, label)
    query = query.strip()
    if not query:
        raise TemplateRejected(f"{label}: the query is empty")
    return query


# --- placement check: a small PromQL lexer ---------------------------------------------------------

_VALUE = 1
_WINDOW = 2


def _unmark(marked: str, label: str) -> tuple[str, list[int]]:
    """The query without markers, and for each of its characters: 0, _VALUE or _WINDOW.

    The check runs on the unmarked text, exactly what Prometheus will parse, so a marker can never
    change how quotes and backslashes pair up.
    """
    out: list[str] = []
    kinds: list[int] = []
    current = 0
    for ch in marked:
        if ch in (_OPEN, _WINDOW_OPEN):
            if current:  # pragma: no cover - finalize never nests
                raise TemplateRejected(f"{label}: malformed substitution")
            current = _VALUE if ch == _OPEN else _WINDOW
        elif ch in (_CLOSE, _WINDOW_CLOSE):
            current = 0
        else:
            out.append(ch)
            kinds.append(current)
    return "".join(out), kinds


def _check_placement(text: str, kinds: list[int], label: str) -> None:
    """Every substituted character must sit inside a label-matcher string (windows: or in ``[...]``,
    or after ``offset``)."""
    i = 0
    braces = 0
    brackets = 0
    last_token = ""  # the last significant token before a string, for "is this a matcher value"
    n = len(text)
    while i < n:
        ch = text[i]
        if kinds[i]:
            if kinds[i] == _WINDOW and braces == 0 and (brackets > 0 or _AFTER_OFFSET.search(text, 0, i)):
                while i < n and kinds[i] == _WINDOW:
                    i += 1
                last_token = "window"
                continue
            raise TemplateRejected(
                f"{label}: a substituted value must be inside the quotes of a label matcher such as "
                f'revision="{{{{ revision }}}}" (window: or in a range like [{{{{ window }}}}], or after '
                f"offset); "
                f"found one outside quotes near {_context(text, i)!r}"
            )
        if ch == "#":  # comment to end of line
            end = text.find("\n", i)
            end = n if end < 0 else end
            if any(kinds[i:end]):
                raise TemplateRejected(f"{label}: a substituted value is inside a comment")
            i = end
            continue
        if ch in ('"', "'", "`"):
            end = _string_end(text, i, label)
            if any(kinds[i + 1 : end]):
                if ch != '"':
                    raise TemplateRejected(
                        f"{label}: substituted values may only appear in double-quoted label values"
                    )
                if braces == 0 or last_token not in _MATCH_OPS:
                    raise TemplateRejected(
                        f"{label}: a substituted value is in a string that is not a label matcher "
                        f"value near {_context(text, i)!r}"
                    )
            last_token = "string"
            i = end + 1
            continue
        if ch.isspace():
            i += 1
            continue
        if ch == "{":
            braces += 1
        elif ch == "}":
            braces = max(0, braces - 1)
        elif ch == "[":
            brackets += 1
        elif ch == "]":
            brackets = max(0, brackets - 1)
        two = text[i : i + 2]
        if two in ("!=", "=~", "!~", "=="):
            last_token = two
            i += 2
            continue
        last_token = ch
        i += 1


# ``offset {{ window }}``: the keyword, then only blanks up to the substituted window.
_AFTER_OFFSET: Final = re.compile(r"(?<![A-Za-z0-9_:])offset\s+\Z")


def _string_end(text: str, start: int, label: str) -> int:
    quote = text[start]
    i = start + 1
    while i < len(text):
        ch = text[i]
        if ch == "\\" and quote != "`":
            i += 2
            continue
        if ch == quote:
            return i
        if ch == "\n" and quote != "`":
            break
        i += 1
    raise TemplateRejected(f"{label}: unterminated string starting near {_context(text, start)!r}")


def _context(text: str, at: int) -> str:
    return text[max(0, at - 30) : at + 30]
