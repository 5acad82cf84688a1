"""Jinja2 environment for the runtime config files.

Templates never interpolate a raw value: every substitution goes through one of the filters below,
which check the type and quote or escape for the target format (protobuf text, Java properties).
``StrictUndefined`` turns a missing variable into an error instead of an empty string.
"""

from __future__ import annotations

import json
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined


class TemplateValueError(ValueError):
    """A value handed to a template filter has the wrong type or cannot be represented."""


def _require_int(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TemplateValueError(f"expected an integer, got {type(value).__name__}: {value!r}")
    return value


def _no_control_chars(text: str) -> str:
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in text):
        raise TemplateValueError(f"control characters are not allowed: {text!r}")
    return text


def pbtxt_int(value: object) -> str:
    """An integer literal for protobuf text format."""
    return str(_require_int(value))


def pbtxt_string(value: object) -> str:
    """A double-quoted protobuf text string with backslash and quote escaped."""
    if not isinstance(value, str):
        raise TemplateValueError(f"expected a string, got {type(value).__name__}")
    text = _no_control_chars(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'


def pbtxt_enum(value: object, allowed: tuple[str, ...]) -> str:
    """A protobuf enum constant, accepted only from an explicit list."""
    if value not in allowed:
        raise TemplateValueError(f"{value!r} is not one of {', '.join(allowed)}")
    return str(value)


def properties_value(value: object) -> str:
    """A java.util.Properties value: booleans lower-case; backslash, newline, non-ASCII escaped."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if not isinstance(value, str):
        raise TemplateValueError(f"expected a string, int or bool, got {type(value).__name__}")
    out = []
    for i, ch in enumerate(value):
        if ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\f":
            out.append("\\f")
        elif ch == " " and i == 0:
            out.append("\\ ")
        elif ord(ch) < 0x20 or ord(ch) > 0x7E:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return "".join(out)


def properties_json(value: Any) -> str:
    """Compact, key-sorted JSON escaped as a java.util.Properties value."""
    return properties_value(json.dumps(value, sort_keys=True, separators=(",", ":")))


def make_environment() -> Environment:
    env = Environment(
        loader=PackageLoader("modeldeploy.runtimes", "templates"),
        # The templates ship inside the package and never change while it runs: compiled once, not
        # stat()ed again on every render (each pass renders its runtime's config to name the revision).
        auto_reload=False,
        undefined=StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        pbtxt_int=pbtxt_int,
        pbtxt_string=pbtxt_string,
        pbtxt_enum=pbtxt_enum,
        prop=properties_value,
        prop_json=properties_json,
    )
    return env


ENV = make_environment()


def render(template: str, **context: Any) -> str:
    return ENV.get_template(template).render(**context)
