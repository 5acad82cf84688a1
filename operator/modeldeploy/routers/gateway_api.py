"""Gateway API: weighted backendRefs on an HTTPRoute (gateway.networking.k8s.io/v1).

Two kinds of route, told apart by the live object:

* **the operator's own** (missing, or carrying the ModelDeployment's ownerReference): built whole by
  :func:`http_route` and server-side applied, as a route the operator creates. It has one rule whose
  backendRefs point at ``<md>-stable`` (weight 100 - w) and ``<md>-canary`` (weight w); without a
  canary revision only the stable backend is listed. ``parentRefs`` only when ``gateway`` is set.
* **the user's** (any other existing route, e.g. kept in Git): the user owns everything - matches,
  filters, timeouts, other rules, parentRefs. The operator owns only the ``weight`` of the two
  backendRefs to its Services in one rule: the rule named ``ruleName`` (Gateway API v1.4
  ``rules[].name``), or else the first rule with a backendRef to ``<md>-stable`` or ``<md>-canary``.
  ``rules`` is an atomic list for server-side apply, so :func:`weight_patch` builds a JSON patch
  that replaces only those weight fields, guarded by a ``test`` of the resourceVersion (the shell
  re-reads and retries on conflict). The rest of the route is left byte-for-byte as it was.

  "Git values": the user's rule lists both Services, ``<md>-stable`` with weight 100 and
  ``<md>-canary`` with weight 0. During a rollout the operator sets 100 - w / w; after promotion
  (or an abort) it writes 100 / 0 back, so the route is again exactly what Git holds. At rest a route
  that already sends nothing to the canary (canary weight 0, any stable weight) is not touched.
  A rule without both backendRefs cannot be managed: :class:`RouteNotManageable` says what is missing.

A/B rules and shadow mirrors (``traffic``) are built by routers/gateway_traffic.py: on the
operator's own route they are part of the whole route; on a user's route they are more operations
of the same JSON patch (an appended rule named ``<md>-canary-ab``, a ``RequestMirror`` filter on the
managed rule), removed again when the rollout ends.

Weights are exact per request (the Gateway implementation does the split), so the weight does
not depend on how many pods each revision has; those counts come from rollout/replicas.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from modeldeploy.api.canary import CanaryTraffic
from modeldeploy.api.spec import GatewayApiRouting
from modeldeploy.routers.base import (
    Manifest,
    ObservedTraffic,
    OwnerLike,
    canary_service_name,
    check_weight,
    object_labels,
    share,
    stable_service_name,
)
from modeldeploy.routers.gateway_traffic import (
    TrafficNotManageable,
    ab_rule,
    ab_rule_name,
    mirror_filter,
    session_filter,
    traffic_ops,
)

KIND: Final = "gatewayAPI"
API_VERSION: Final = "gateway.networking.k8s.io/v1"
DEFAULT_BACKEND_WEIGHT: Final = 1  # Gateway API's default when a backendRef has no weight


def _backend(name: str, port: int, weight: int) -> dict[str, Any]:
    return {"group": "", "kind": "Service", "name": name, "port": port, "weight": weight}


def http_route(
    config: GatewayApiRouting,
    owner: OwnerLike,
    *,
    canary: bool,
    weight: int,
    port: int,
    traffic: CanaryTraffic | None = None,
) -> Manifest:
    """The HTTPRoute manifest for ``weight`` percent to the canary (``canary`` False: stable only),
    with the A/B rule or the mirror of ``traffic`` while a canary runs."""
    check_weight(weight)
    backends = [_backend(stable_service_name(owner.name), port, 100 - weight if canary else 100)]
    rule: dict[str, Any] = {"backendRefs": backends}
    rules = [rule]
    if canary:
        canary_ref = _backend(canary_service_name(owner.name), port, weight)
        backends.append(canary_ref)
        if traffic is not None and traffic.mirror_percent is not None:
            rule["filters"] = [mirror_filter(owner.name, port, traffic.mirror_percent)]
        matches = list(traffic.matches) if traffic is not None else []
        if traffic is not None and traffic.session is not None:
            matches.append(traffic.session.match())
        if matches:
            rules.insert(0, ab_rule(rule, canary_ref, owner.name, config.http_route, matches))
        if traffic is not None and traffic.session is not None:
            canary_ref["filters"] = [session_filter(traffic.session)]  # after the copy into the A/B rule
    spec: dict[str, Any] = {"rules": rules}
    if config.gateway:
        parent: dict[str, Any] = {
            "group": "gateway.networking.k8s.io",
            "kind": "Gateway",
            "name": config.gateway,
        }
        if config.gateway_namespace:
            parent["namespace"] = config.gateway_namespace
        spec["parentRefs"] = [parent]
    return {
        "apiVersion": API_VERSION,
        "kind": "HTTPRoute",
        "metadata": {
            "name": config.http_route,
            "namespace": owner.namespace,
            "labels": object_labels(owner),
            "ownerReferences": [owner.owner_reference()],
        },
        "spec": spec,
    }


def _rules(route: Mapping[str, Any]) -> list[Any]:
    spec = route.get("spec")
    rules = spec.get("rules") if isinstance(spec, Mapping) else None
    return rules if isinstance(rules, list) else []


def _service_refs(rule: Any, service: str) -> list[int]:
    """Indexes of the rule's backendRefs to the core Service ``service``."""
    refs = rule.get("backendRefs") if isinstance(rule, Mapping) else None
    out = []
    for j, ref in enumerate(refs if isinstance(refs, list) else []):
        if not isinstance(ref, Mapping) or ref.get("kind", "Service") != "Service":
            continue
        if ref.get("group", "") in ("", "core") and ref.get("name") == service:
            out.append(j)
    return out


def _weight(ref: Mapping[str, Any]) -> int:
    w = ref.get("weight", DEFAULT_BACKEND_WEIGHT)
    return w if isinstance(w, int) and w >= 0 else 0


def managed_rule(route: Mapping[str, Any], md_name: str, rule_name: str | None = None) -> int | None:
    """Index of the rule whose weights the operator owns (see the module docstring), or None."""
    ours = (stable_service_name(md_name), canary_service_name(md_name))
    for i, rule in enumerate(_rules(route)):
        if isinstance(rule, Mapping) and rule.get("name") == ab_rule_name(md_name):
            continue  # the operator's own A/B rule, never the user's
        if rule_name is not None:
            if isinstance(rule, Mapping) and rule.get("name") == rule_name:
                return i
        elif any(_service_refs(rule, name) for name in ours):
            return i
    return None


def _weights(route: Mapping[str, Any], md_name: str, rule_name: str | None) -> tuple[int, int] | None:
    i = managed_rule(route, md_name, rule_name)
    if i is None:
        return None
    rule = _rules(route)[i]
    refs = rule.get("backendRefs") or []
    stable = sum(_weight(refs[j]) for j in _service_refs(rule, stable_service_name(md_name)))
    canary = sum(_weight(refs[j]) for j in _service_refs(rule, canary_service_name(md_name)))
    return stable, canary


def reached_weight(route: Mapping[str, Any] | None, md_name: str, rule_name: str | None = None) -> int | None:
    """The canary weight a live HTTPRoute carries (in the managed rule), or None.

    None when there is no route, or no managed rule (see :func:`managed_rule`).
    A backendRef without weight counts as 1, as the Gateway API specifies.
    """
    if route is None:
        return None
    weights = _weights(route, md_name, rule_name)
    if weights is None:
        return None
    stable, canary = weights
    return share(canary, stable + canary)


class RouteNotManageable(ValueError):
    """A user's HTTPRoute the operator cannot set weights on; the message says what is missing."""


JsonPatch = list[dict[str, Any]]


def owned_by(route: Mapping[str, Any] | None, owner: OwnerLike) -> bool:
    """Whether the live route is the operator's own (absent, or owned by this ModelDeployment)."""
    if route is None:
        return True
    uid = owner.owner_reference().get("uid")
    refs = (route.get("metadata") or {}).get("ownerReferences") or []
    return any(isinstance(r, Mapping) and r.get("uid") == uid for r in refs)


def weight_patch(
    route: Mapping[str, Any],
    md_name: str,
    rule_name: str | None,
    *,
    canary: bool,
    weight: int,
    traffic: CanaryTraffic | None = None,
) -> JsonPatch:
    """A JSON patch setting only the managed rule's two weights on a user's route ([] when they hold),
    plus the A/B rule or the mirror ``traffic`` asks for (or their removal).

    ``canary`` False: back to the Git values (stable 100, canary 0), unless the canary already gets
    nothing; no A/B rule, no mirror. Raises :class:`RouteNotManageable` when the rule or one of the
    backendRefs is missing, or the A/B rule cannot be built.
    """
    check_weight(weight)
    name = (route.get("metadata") or {}).get("name", "?")
    stable_name, canary_name = stable_service_name(md_name), canary_service_name(md_name)
    i = managed_rule(route, md_name, rule_name)
    if i is None:
        which = (
            f"named {rule_name!r}" if rule_name else f"with a backendRef to {stable_name} or {canary_name}"
        )
        raise RouteNotManageable(f"HTTPRoute {name} has no rule {which}")
    rule = _rules(route)[i]
    refs = rule["backendRefs"]
    stable_at, canary_at = _service_refs(rule, stable_name), _service_refs(rule, canary_name)
    on_canary = sum(_weight(refs[j]) for j in canary_at)
    wanted = traffic if canary and canary_at else None  # no canary backendRef: refused below
    try:
        extra = traffic_ops(route, i, canary_at[0] if canary_at else None, md_name, wanted)
    except TrafficNotManageable as exc:
        raise RouteNotManageable(str(exc)) from exc
    if not canary and stable_at and on_canary == 0 and sum(_weight(refs[j]) for j in stable_at) > 0:
        return _guarded(route, extra)  # at rest and already all on stable: the user's weights stand
    missing = [n for n, at in ((stable_name, stable_at), (canary_name, canary_at)) if not at]
    if missing:
        raise RouteNotManageable(
            f"HTTPRoute {name} rule {i} has no backendRef to {' or '.join(missing)}: list both Services "
            f"(weights 100 and 0); the operator only sets weights on a route it did not create"
        )
    want = {stable_at[0]: 100 - weight if canary else 100, canary_at[0]: weight if canary else 0}
    for j in (*stable_at[1:], *canary_at[1:]):
        want[j] = 0  # duplicates of our backendRefs would skew the split
    ops: JsonPatch = []
    for j, value in sorted(want.items()):
        if refs[j].get("weight") != value:
            op = "replace" if "weight" in refs[j] else "add"
            ops.append({"op": op, "path": f"/spec/rules/{i}/backendRefs/{j}/weight", "value": value})
    return _guarded(route, ops + extra)


def _guarded(route: Mapping[str, Any], ops: JsonPatch) -> JsonPatch:
    """``ops`` behind a test of the route's resourceVersion ([] stays [])."""
    if not ops:
        return []
    version = (route.get("metadata") or {}).get("resourceVersion")
    guard = [{"op": "test", "path": "/metadata/resourceVersion", "value": version}] if version else []
    return guard + ops


def route_accepted(route: Mapping[str, Any] | None) -> bool | None:
    """Whether every parent reported Accepted=True in status.parents; None before any parent reported."""
    if route is None:
        return None
    status = route.get("status")
    parents = status.get("parents") if isinstance(status, Mapping) else None
    if not isinstance(parents, list) or not parents:
        return None
    for parent in parents:
        conditions = parent.get("conditions", []) if isinstance(parent, Mapping) else []
        accepted = [c for c in conditions if isinstance(c, Mapping) and c.get("type") == "Accepted"]
        if not accepted or accepted[0].get("status") != "True":
            return False
    return True


class GatewayApiRouter:
    kind: str = KIND

    def __init__(self, config: GatewayApiRouting) -> None:
        self.config = config

    def objects(
        self,
        owner: OwnerLike,
        *,
        stable_revision: str | None,
        canary_revision: str | None,
        weight: int,
        port: int,
        traffic: CanaryTraffic | None = None,
    ) -> list[Manifest]:
        canary = canary_revision is not None and canary_revision != stable_revision
        w = weight if canary else 0
        return [http_route(self.config, owner, canary=canary, weight=w, port=port, traffic=traffic)]

    def reached_weight(self, owner: OwnerLike, observed: ObservedTraffic) -> int | None:
        return reached_weight(observed.route, owner.name, self.config.rule_name)

    def route_update(
        self,
        owner: OwnerLike,
        live: Mapping[str, Any] | None,
        *,
        stable_revision: str | None,
        canary_revision: str | None,
        weight: int,
        port: int,
        traffic: CanaryTraffic | None = None,
    ) -> Manifest | JsonPatch:
        """What the shell sends for ``weight`` (and the A/B rule or mirror of ``traffic``): the whole
        route to apply when it is the operator's own, else a JSON patch of the fields the operator
        owns (possibly empty). May raise RouteNotManageable."""
        if owned_by(live, owner):
            (route,) = self.objects(
                owner,
                stable_revision=stable_revision,
                canary_revision=canary_revision,
                weight=weight,
                port=port,
                traffic=traffic,
            )
            return route
        assert live is not None
        canary = canary_revision is not None and canary_revision != stable_revision
        return weight_patch(
            live,
            owner.name,
            self.config.rule_name,
            canary=canary,
            weight=weight if canary else 0,
            traffic=traffic,
        )
