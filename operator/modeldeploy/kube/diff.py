"""Pure comparison of a desired child against the live object, so an unchanged child is never written.

Server-side apply of an unchanged object is still a PATCH request; the operator must make zero
write calls when nothing changed. ``needs_apply`` answers "would applying ``desired`` change
``live``?" by checking that every field we set is present and equal in the live object. Fields the
API server defaults (and fields other managers own) are ignored; quantities compare by value
("0.5" equals "500m"), because the API server canonicalises them.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

_SUFFIXES = {
    "Ki": Decimal(2) ** 10,
    "Mi": Decimal(2) ** 20,
    "Gi": Decimal(2) ** 30,
    "Ti": Decimal(2) ** 40,
    "Pi": Decimal(2) ** 50,
    "Ei": Decimal(2) ** 60,
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "k": Decimal("1e3"),
    "M": Decimal("1e6"),
    "G": Decimal("1e9"),
    "T": Decimal("1e12"),
    "P": Decimal("1e15"),
    "E": Decimal("1e18"),
}


def quantity(text: str) -> Decimal | None:
    """The value of a Kubernetes quantity string, or None when it is not one."""
    for suffix in sorted(_SUFFIXES, key=len, reverse=True):
        if text.endswith(suffix) and text[: -len(suffix)]:
            number = text[: -len(suffix)]
            try:
                return Decimal(number) * _SUFFIXES[suffix]
            except InvalidOperation:
                return None
    try:
        return Decimal(text)
    except InvalidOperation:
        return None


def _scalar_equal(want: Any, have: Any) -> bool:
    if want == have:
        return True
    if isinstance(want, str) and isinstance(have, str):
        a, b = quantity(want), quantity(have)
        return a is not None and b is not None and a == b
    if isinstance(want, (int, float)) and isinstance(have, (int, float)) and not isinstance(want, bool):
        return float(want) == float(have)
    return False


# Maps the operator owns whole: a key it stopped setting must go, so a subset is not "equal" (a
# Service that selected one revision and must now select every revision loses its revision key).
WHOLE_MAPS = frozenset({".spec.selector"})


def differences(desired: Any, live: Any, path: str = "") -> list[str]:
    """Paths where ``live`` does not already hold what ``desired`` sets (empty: nothing to apply)."""
    if isinstance(desired, dict):
        if not isinstance(live, dict):
            return [path or "."]
        if path in WHOLE_MAPS and set(live) != set(desired):
            return [path]
        out: list[str] = []
        for key, want in desired.items():
            out.extend(differences(want, live.get(key), f"{path}.{key}"))
        return out
    if isinstance(desired, list):
        if not isinstance(live, list) or len(live) != len(desired):
            return [path]
        out = []
        for i, (want, have) in enumerate(zip(desired, live, strict=True)):
            out.extend(differences(want, have, f"{path}[{i}]"))
        return out
    return [] if _scalar_equal(desired, live) else [path]


def needs_apply(desired: dict[str, Any], live: dict[str, Any] | None) -> list[str]:
    """Why ``desired`` must be applied over ``live`` (empty list: it must not be)."""
    if live is None:
        return ["(absent)"]
    body = {k: v for k, v in desired.items() if k not in ("apiVersion", "kind", "status")}
    return differences(body, live)


def merge_patch(live: dict[str, Any], desired: dict[str, Any]) -> dict[str, Any]:
    """The JSON merge patch (RFC 7386) that turns ``live`` into ``desired``: changed and new keys with
    their new values, keys that are gone as ``null`` at every depth (a nested field cleared in
    ``desired`` must be removed, not left behind), lists replaced whole. Empty when they are equal."""
    patch: dict[str, Any] = {k: None for k in live if k not in desired}
    for key, value in desired.items():
        old = live.get(key)
        if isinstance(value, dict) and isinstance(old, dict):
            nested = merge_patch(old, value)
            if nested:
                patch[key] = nested
        elif key not in live or old != value:
            patch[key] = value
    return patch
