"""An HTTPRoute, applied to one request the way a Gateway implementation would (pure).

What the load generator needs of Gateway API v1.4 ``HTTPRoute`` semantics:

* **matching**: a rule without ``matches`` matches ``PathPrefix /``. A match holds when its path
  (``Exact``; ``PathPrefix`` element-wise, so ``/v2`` matches ``/v2`` and ``/v2/x`` but not ``/v2x``;
  ``RegularExpression``), its ``method``, every ``headers`` entry (names case-insensitive, only the
  first entry of a name counts; ``Exact`` compares the value, ``RegularExpression`` must match the
  whole value, as Envoy does) and every ``queryParams`` entry hold.
* **precedence** over all matches of all rules (the spec's order): an Exact path match, then the
  longest prefix, then a method match, then the most header matches, then the most query param
  matches; ties go to the earlier rule, then the earlier match.
* **backends**: Service backendRefs with their weights (a missing weight counts 1; weight 0 never
  gets a request; no weight > 0: the Gateway answers 500 itself).
* **cookies**: a backendRef's ``ResponseHeaderModifier`` that adds ``Set-Cookie`` sets that cookie
  in the client's jar when the request is answered by that backend (a session-affinity cookie);
* **mirrors**: ``RequestMirror`` filters of the chosen rule: ``percent`` (or ``fraction``; neither:
  every request) of the requests are copied to the mirror's Service; its answers are discarded.

Cookies travel in the ``Cookie`` header (``a=1; b=2``), so a cookie match is a ``Cookie`` header match.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

DEFAULT_BACKEND_WEIGHT: Final = 1
DEFAULT_MATCH: Final[Mapping[str, Any]] = {"path": {"type": "PathPrefix", "value": "/"}}


@dataclass(frozen=True)
class Request:
    """What the Gateway sees of a request: method, path (no query), query params and headers."""

    path: str = "/"
    method: str = "POST"
    headers: Mapping[str, str] = field(default_factory=dict)
    query: Mapping[str, str] = field(default_factory=dict)

    def header(self, name: str) -> str | None:
        lower = name.lower()
        for k, v in self.headers.items():
            if k.lower() == lower:
                return v
        return None


@dataclass(frozen=True)
class Audience:
    """A group of simulated users: ``share`` of the requests carry these headers and cookies.

    ``users`` > 0: that many users, taking turns, each with a cookie jar that keeps the cookies the
    Gateway's answers set (``jar``); their requests are counted per user (``<name>/<i>``).
    """

    name: str
    share: float
    headers: Mapping[str, str] = field(default_factory=dict)
    cookies: Mapping[str, str] = field(default_factory=dict)
    users: int = 0

    def request(self, path: str, method: str = "POST", jar: Mapping[str, str] | None = None) -> Request:
        headers = dict(self.headers)
        cookies = {**self.cookies, **(jar or {})}
        if cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in cookies.items())
        return Request(path=path, method=method, headers=headers)


@dataclass(frozen=True)
class Mirror:
    service: str
    percent: float  # 0..100


@dataclass(frozen=True)
class RuleChoice:
    """The rule a request took: its index, weighted Service backends and mirrors."""

    rule: int
    backends: tuple[tuple[str, int], ...]
    mirrors: tuple[Mirror, ...] = ()
    set_cookies: tuple[tuple[str, str, str], ...] = ()  # (Service, cookie name, value) its answers set


def _path_rank(match: Mapping[str, Any], path: str) -> tuple[int, int] | None:
    """(exact?, prefix length) when the path condition holds, else None."""
    cond = match.get("path") or {"type": "PathPrefix", "value": "/"}
    kind, value = cond.get("type", "PathPrefix"), str(cond.get("value", "/"))
    if kind == "Exact":
        return (1, len(value)) if path == value else None
    if kind == "RegularExpression":
        return (0, 0) if re.fullmatch(value, path) else None
    prefix = value.rstrip("/")
    if prefix == "" or path == prefix or path.startswith(prefix + "/"):
        return (0, len(prefix) if prefix else 1)
    return None


def _value_holds(cond: Mapping[str, Any], actual: str | None) -> bool:
    if actual is None:
        return False
    value = str(cond.get("value", ""))
    if cond.get("type", "Exact") == "RegularExpression":
        return re.fullmatch(value, actual) is not None
    return actual == value


def _headers_hold(conds: Sequence[Mapping[str, Any]], request: Request) -> bool:
    seen: set[str] = set()
    for cond in conds:
        name = str(cond.get("name", "")).lower()
        if name in seen:
            continue  # only the first entry of an equivalent name counts
        seen.add(name)
        if not _value_holds(cond, request.header(name)):
            return False
    return True


def match_rank(match: Mapping[str, Any], request: Request) -> tuple[int, int, int, int, int] | None:
    """The precedence key of a match that holds for ``request`` (bigger wins), or None."""
    path = _path_rank(match, request.path)
    if path is None:
        return None
    method = match.get("method")
    if method is not None and method != request.method:
        return None
    headers = list(match.get("headers") or [])
    if not _headers_hold(headers, request):
        return None
    params = list(match.get("queryParams") or [])
    if not all(_value_holds(p, request.query.get(str(p.get("name")))) for p in params):
        return None
    return (path[0], path[1], int(method is not None), len(headers), len(params))


def select_rule(route: Mapping[str, Any], request: Request) -> int | None:
    """Index of the rule that serves ``request`` (Gateway API precedence), or None (404)."""
    best: tuple[tuple[int, int, int, int, int], int] | None = None
    for i, rule in enumerate((route.get("spec") or {}).get("rules") or []):
        for match in rule.get("matches") or [DEFAULT_MATCH]:
            rank = match_rank(match, request)
            if rank is not None and (best is None or rank > best[0]):  # ties: the earlier one stays
                best = (rank, i)
    return best[1] if best else None


def _is_service(ref: Mapping[str, Any]) -> bool:
    return ref.get("kind", "Service") == "Service" and ref.get("group", "") in ("", "core")


def _mirror_percent(mirror: Mapping[str, Any]) -> float:
    if "percent" in mirror:
        return float(mirror["percent"])
    fraction = mirror.get("fraction")
    if isinstance(fraction, Mapping):
        return 100.0 * float(fraction.get("numerator", 0)) / float(fraction.get("denominator", 100) or 100)
    return 100.0


def rule_choice(route: Mapping[str, Any], index: int) -> RuleChoice:
    """The weighted Service backends and mirror filters of rule ``index``."""
    rule = ((route.get("spec") or {}).get("rules") or [])[index]
    backends, cookies = [], []
    for ref in rule.get("backendRefs") or []:
        if _is_service(ref):
            w = ref.get("weight", DEFAULT_BACKEND_WEIGHT)
            backends.append((str(ref["name"]), w if isinstance(w, int) and w > 0 else 0))
            cookies += [(str(ref["name"]), *c) for c in _set_cookies(ref.get("filters") or [])]
    mirrors = []
    for f in rule.get("filters") or []:
        if f.get("type") == "RequestMirror":
            mirror = f.get("requestMirror") or {}
            ref = mirror.get("backendRef") or {}
            if _is_service(ref) and ref.get("name"):
                mirrors.append(Mirror(str(ref["name"]), _mirror_percent(mirror)))
    return RuleChoice(index, tuple(backends), tuple(mirrors), tuple(cookies))


def _set_cookies(filters: Sequence[Mapping[str, Any]]) -> list[tuple[str, str]]:
    """(name, value) of the cookies ResponseHeaderModifier filters set (``Set-Cookie: n=v; ...``)."""
    out = []
    for f in filters:
        if f.get("type") != "ResponseHeaderModifier":
            continue
        modifier = f.get("responseHeaderModifier") or {}
        for header in [*(modifier.get("add") or []), *(modifier.get("set") or [])]:
            if str(header.get("name", "")).lower() == "set-cookie" and "=" in str(header.get("value", "")):
                name, _, rest = str(header["value"]).partition("=")
                out.append((name.strip(), rest.split(";", 1)[0].strip()))
    return out


def services(route: Mapping[str, Any]) -> set[str]:
    """Every Service the route can send to (backends and mirrors of all rules)."""
    out: set[str] = set()
    for i, _ in enumerate((route.get("spec") or {}).get("rules") or []):
        choice = rule_choice(route, i)
        out.update(name for name, _ in choice.backends)
        out.update(m.service for m in choice.mirrors)
    return out


class Accumulator:
    """Deterministic ``percent`` of events: exactly p of every 100 (5% → every 20th)."""

    def __init__(self) -> None:
        self._credit = 0.0

    def take(self, percent: float) -> bool:
        self._credit += percent
        if self._credit >= 100.0:
            self._credit -= 100.0
            return True
        return False


def route_backends(route: Mapping[str, Any]) -> list[tuple[str, int]]:
    """(Service name, weight) of the first rule of an HTTPRoute that has Service backendRefs."""
    for rule in (route.get("spec") or {}).get("rules") or []:
        refs = [
            r
            for r in rule.get("backendRefs") or []
            if r.get("kind", "Service") == "Service" and r.get("group", "") in ("", "core")
        ]
        if refs:
            out = []
            for r in refs:
                w = r.get("weight", DEFAULT_BACKEND_WEIGHT)
                out.append((str(r["name"]), w if isinstance(w, int) and w > 0 else 0))
            return out
    return []


class SmoothWeightedRoundRobin:
    """nginx's smooth weighted round robin: exact proportions, interleaved (5/1/1 → a a b a c a a)."""

    def __init__(self, weights: Sequence[tuple[str, int]]) -> None:
        self.weights = [(name, w) for name, w in weights if w > 0]
        self._current = [0] * len(self.weights)
        self._total = sum(w for _, w in self.weights)

    def next(self) -> str | None:
        if not self.weights:
            return None
        best = 0
        for i, (_, w) in enumerate(self.weights):
            self._current[i] += w
            if self._current[i] > self._current[best]:
                best = i
        self._current[best] -= self._total
        return self.weights[best][0]
