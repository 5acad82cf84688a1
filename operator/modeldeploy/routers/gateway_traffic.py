"""A/B rules and shadow mirrors on an HTTPRoute: the parts of a route the operator owns beyond weights.

* **A/B** (``setMatch``): one extra rule, named ``<md>-canary-ab`` (Gateway API v1.4 ``rules[].name``),
  built from the managed rule: each of its matches (no matches: ``PathPrefix /``, the Gateway API
  default) crossed with each A/B match - the user's path, method and query conditions kept, the A/B
  header/cookie conditions added - so every request that matches reached the managed rule before and
  carries the A/B condition now. More header matches win under the Gateway API's precedence (path
  first, then method, then the number of header matches), so these requests take this rule, and no
  other request does. The backend is the managed rule's own ``<md>-canary`` backendRef (port and
  filters as the user wrote them); the rule's filters and timeouts are copied too.
* **shadow** (``setMirror``): a ``RequestMirror`` filter with ``percent`` appended to the managed
  rule, mirroring to ``<md>-canary``; the Gateway discards the mirror's answers.

On a user's route both are JSON patch operations (:func:`traffic_ops`): the rule is appended
(``/spec/rules/-``) and later removed by index, guarded by a ``test`` of its name; the filter is
appended to the rule's ``filters`` (or ``filters`` is added when there is none) and removed the same
way (``filters`` itself goes when it was the only filter, as in Git). After the rollout the route is
exactly what Git holds. The route's existing fields are compared by :func:`contains`, since the API
server fills defaults into what the operator sent.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from typing import Any, Final

from modeldeploy.api.canary import CanaryTraffic, RequestMatch, SessionCookie
from modeldeploy.routers.base import canary_service_name

MAX_RULES: Final = 16  # Gateway API: rules per HTTPRoute
MAX_MATCHES: Final = 64  # matches per rule
MAX_HEADERS: Final = 16  # header matches per match
DEFAULT_MATCH: Final[dict[str, Any]] = {"path": {"type": "PathPrefix", "value": "/"}}
MIRROR: Final = "RequestMirror"
RESPONSE_HEADERS: Final = "ResponseHeaderModifier"
SESSION_SET_COOKIE: Final = re.compile(
    r"[A-Za-z0-9!#$%&'*+\-.^_`|~]+=[A-Za-z0-9._~\-]+; Max-Age=[0-9]+; Path=/"
)

JsonPatch = list[dict[str, Any]]


class TrafficNotManageable(ValueError):
    """An A/B rule or a mirror that cannot be put on this route; the message says why."""


def ab_rule_name(md_name: str) -> str:
    return f"{canary_service_name(md_name)}-ab"[:63].rstrip("-")


def contains(live: Any, want: Any) -> bool:
    """Whether ``live`` holds everything ``want`` says (dict keys may be added: API server defaults)."""
    if isinstance(want, Mapping):
        return isinstance(live, Mapping) and all(k in live and contains(live[k], v) for k, v in want.items())
    if isinstance(want, list):
        return (
            isinstance(live, list)
            and len(live) == len(want)
            and all(contains(a, b) for a, b in zip(live, want, strict=True))
        )
    return bool(live == want)


def _merge(user: Mapping[str, Any], match: RequestMatch, route: str) -> dict[str, Any]:
    merged = dict(copy.deepcopy(user))
    ours = match.gateway_headers()
    theirs = list(merged.get("headers") or [])
    clash = {h["name"].lower() for h in ours} & {str(h.get("name", "")).lower() for h in theirs}
    if clash:
        raise TrafficNotManageable(
            f"HTTPRoute {route}: header {sorted(clash)[0]} is matched by both the managed rule and the "
            "A/B match; the Gateway would consider only the first"
        )
    merged["headers"] = theirs + ours
    if len(merged["headers"]) > MAX_HEADERS:
        raise TrafficNotManageable(f"HTTPRoute {route}: more than {MAX_HEADERS} header matches in one match")
    return merged


def ab_rule(
    base: Mapping[str, Any],
    canary_ref: Mapping[str, Any],
    md_name: str,
    route: str,
    matches: list[RequestMatch],
) -> dict[str, Any]:
    """The A/B rule: ``base``'s matches x the A/B ``matches``, to ``canary_ref`` (the canary backendRef)."""
    user_matches = base.get("matches") or [DEFAULT_MATCH]
    merged = [_merge(um, m, route) for um in user_matches for m in matches]
    if len(merged) > MAX_MATCHES:
        raise TrafficNotManageable(
            f"HTTPRoute {route}: {len(user_matches)} matches of the managed rule x {len(matches)} A/B "
            f"matches is more than the {MAX_MATCHES} a rule may hold"
        )
    backend = {**copy.deepcopy(dict(canary_ref)), "weight": 1}
    rule: dict[str, Any] = {"name": ab_rule_name(md_name), "matches": merged}
    filters = [f for f in base.get("filters") or [] if not _our_mirror(f, md_name)]
    if filters:
        rule["filters"] = copy.deepcopy(filters)
    if base.get("timeouts"):
        rule["timeouts"] = copy.deepcopy(base["timeouts"])
    rule["backendRefs"] = [backend]
    return rule


def mirror_filter(md_name: str, port: int | None, percent: int) -> dict[str, Any]:
    ref: dict[str, Any] = {"group": "", "kind": "Service", "name": canary_service_name(md_name)}
    if port is not None:
        ref["port"] = port
    return {"type": MIRROR, "requestMirror": {"backendRef": ref, "percent": percent}}


def _our_mirror(f: Any, md_name: str) -> bool:
    if not isinstance(f, Mapping) or f.get("type") != MIRROR:
        return False
    ref = (f.get("requestMirror") or {}).get("backendRef") or {}
    return bool(ref.get("name") == canary_service_name(md_name) and ref.get("kind", "Service") == "Service")


def _rule_index(rules: list[Any], name: str) -> int | None:
    for k, rule in enumerate(rules):
        if isinstance(rule, Mapping) and rule.get("name") == name:
            return k
    return None


def session_filter(cookie: SessionCookie) -> dict[str, Any]:
    """The canary backendRef's filter that gives a user the sticky-session cookie."""
    header = {"name": "Set-Cookie", "value": cookie.set_cookie()}
    return {"type": RESPONSE_HEADERS, "responseHeaderModifier": {"add": [header]}}


def _our_cookie(f: Any) -> bool:
    """Whether ``f`` is our session-cookie filter: a ResponseHeaderModifier adding exactly one
    Set-Cookie of :meth:`SessionCookie.set_cookie`'s shape, and nothing else."""
    if not isinstance(f, Mapping) or f.get("type") != RESPONSE_HEADERS:
        return False
    modifier = f.get("responseHeaderModifier") or {}
    added = modifier.get("add") or []
    if set(modifier) - {"add"} or len(added) != 1 or not isinstance(added[0], Mapping):
        return False
    header = added[0]
    return str(header.get("name", "")).lower() == "set-cookie" and bool(
        SESSION_SET_COOKIE.fullmatch(str(header.get("value", "")))
    )


def _filter_ops(at: str, filters: list[Any], ours: list[int], want: dict[str, Any] | None) -> JsonPatch:
    """Ops on the ``filters`` list at ``at``: ours (indexes ``ours``) becomes ``want`` or goes; the
    list itself goes when ours was all of it (as Git had no ``filters``)."""
    if want is not None:
        if not ours:
            if filters:
                return [{"op": "add", "path": f"{at}/-", "value": want}]
            return [{"op": "add", "path": at, "value": [want]}]
        return (
            []
            if contains(filters[ours[0]], want)
            else [{"op": "replace", "path": f"{at}/{ours[0]}", "value": want}]
        )
    if not ours:
        return []
    if len(ours) == len(filters):
        return [{"op": "remove", "path": at}]
    return [{"op": "remove", "path": f"{at}/{k}"} for k in reversed(ours)]


def _without_our_cookie(ref: Mapping[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(dict(ref))
    kept = [f for f in out.get("filters") or [] if not _our_cookie(f)]
    if kept:
        out["filters"] = kept
    else:
        out.pop("filters", None)
    return out


def traffic_ops(
    route: Mapping[str, Any],
    managed: int,
    canary_at: int | None,
    md_name: str,
    traffic: CanaryTraffic | None,
) -> JsonPatch:
    """JSON patch ops that make the A/B rule, the mirror and the session cookie of rule ``managed``
    what ``traffic`` asks (all gone for None).

    ``canary_at``: index of the managed rule's backendRef to ``<md>-canary`` (None only when no
    traffic is asked for). The rule removal comes last, so earlier ops' indexes hold.
    """
    name = str((route.get("metadata") or {}).get("name", "?"))
    rules: list[Any] = list((route.get("spec") or {}).get("rules") or [])
    base = rules[managed]
    canary_ref = base["backendRefs"][canary_at] if canary_at is not None else None
    ops: JsonPatch = []
    # the mirror on the managed rule
    filters = list(base.get("filters") or [])
    percent = traffic.mirror_percent if traffic is not None else None
    want = None
    if percent is not None:
        assert canary_ref is not None
        want = mirror_filter(md_name, canary_ref.get("port"), percent)
    ours = [k for k, f in enumerate(filters) if _our_mirror(f, md_name)]
    ops += _filter_ops(f"/spec/rules/{managed}/filters", filters, ours, want)
    # the session cookie on the canary backendRef
    session = traffic.session if traffic is not None else None
    if canary_ref is not None:
        ref_filters = list(canary_ref.get("filters") or [])
        ours = [k for k, f in enumerate(ref_filters) if _our_cookie(f)]
        if session is not None and not ours and any(f.get("type") == RESPONSE_HEADERS for f in ref_filters):
            raise TrafficNotManageable(
                f"HTTPRoute {name}: the {canary_service_name(md_name)} backendRef already has a "
                "ResponseHeaderModifier filter, so the session cookie cannot be added (it cannot be repeated)"
            )
        at = f"/spec/rules/{managed}/backendRefs/{canary_at}/filters"
        ops += _filter_ops(at, ref_filters, ours, session_filter(session) if session else None)
    # the A/B (or sticky-session) rule
    k = _rule_index(rules, ab_rule_name(md_name))
    matches = list(traffic.matches) if traffic is not None else []
    if session is not None:
        matches.append(session.match())
    if matches:
        assert canary_ref is not None
        want_rule = ab_rule(base, _without_our_cookie(canary_ref), md_name, name, matches)
        if k is None:
            if len(rules) >= MAX_RULES:
                raise TrafficNotManageable(
                    f"HTTPRoute {name} already has {MAX_RULES} rules: no room for the A/B rule"
                )
            ops.append({"op": "add", "path": "/spec/rules/-", "value": want_rule})
        elif not contains(rules[k], want_rule):
            ops.append({"op": "test", "path": f"/spec/rules/{k}/name", "value": want_rule["name"]})
            ops.append({"op": "replace", "path": f"/spec/rules/{k}", "value": want_rule})
    elif k is not None:
        ops.append({"op": "test", "path": f"/spec/rules/{k}/name", "value": ab_rule_name(md_name)})
        ops.append({"op": "remove", "path": f"/spec/rules/{k}"})
    return ops
