"""Gateway API: weighted backendRefs on an HTTPRoute (gateway.networking.k8s.io/v1).

The route has one rule whose backendRefs point at the Services ``<md>-stable`` (weight 100 - w)
and ``<md>-canary`` (weight w); children/service.py builds those Services. Without a canary
revision only the stable backend is listed. The route is meant to be applied with server-side
apply: when ``gateway`` is not set, no parentRefs are sent, so a route created by someone else
keeps its parents and the operator only owns the rule.

Weights are exact per request (the Gateway implementation does the split), so the weight does
not depend on how many pods each revision has; those counts come from rollout/replicas.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

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
) -> Manifest:
    """The HTTPRoute manifest for ``weight`` percent to the canary (``canary`` False: stable only)."""
    check_weight(weight)
    backends = [_backend(stable_service_name(owner.name), port, 100 - weight if canary else 100)]
    if canary:
        backends.append(_backend(canary_service_name(owner.name), port, weight))
    spec: dict[str, Any] = {"rules": [{"backendRefs": backends}]}
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


def _weights(route: Mapping[str, Any], md_name: str) -> tuple[int, int] | None:
    stable_name, canary_name = stable_service_name(md_name), canary_service_name(md_name)
    spec = route.get("spec")
    rules = spec.get("rules") if isinstance(spec, Mapping) else None
    if not isinstance(rules, list):
        return None
    for rule in rules:
        refs = rule.get("backendRefs") if isinstance(rule, Mapping) else None
        if not isinstance(refs, list):
            continue
        stable = canary = 0
        found = False
        for ref in refs:
            if not isinstance(ref, Mapping) or ref.get("kind", "Service") != "Service":
                continue
            if ref.get("group", "") not in ("", "core"):
                continue
            w = ref.get("weight", DEFAULT_BACKEND_WEIGHT)
            w = w if isinstance(w, int) and w >= 0 else 0
            if ref.get("name") == stable_name:
                stable, found = stable + w, True
            elif ref.get("name") == canary_name:
                canary, found = canary + w, True
        if found:
            return stable, canary
    return None


def reached_weight(route: Mapping[str, Any] | None, md_name: str) -> int | None:
    """The canary weight a live HTTPRoute carries (first rule naming our Services), or None.

    None when there is no route, or no rule references ``<md>-stable`` / ``<md>-canary``.
    A backendRef without weight counts as 1, as the Gateway API specifies.
    """
    if route is None:
        return None
    weights = _weights(route, md_name)
    if weights is None:
        return None
    stable, canary = weights
    return share(canary, stable + canary)


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
    ) -> list[Manifest]:
        canary = canary_revision is not None and canary_revision != stable_revision
        return [http_route(self.config, owner, canary=canary, weight=weight if canary else 0, port=port)]

    def reached_weight(self, owner: OwnerLike, observed: ObservedTraffic) -> int | None:
        return reached_weight(observed.route, owner.name)
