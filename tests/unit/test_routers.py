"""Traffic routers: the objects they build (an HTTPRoute, or nothing) and reading weights back."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modeldeploy.api.spec import GatewayApiRouting, ReplicasRouting, TrafficRouting
from modeldeploy.children import labels, service_name
from modeldeploy.children.labels import MANAGED_BY, MANAGER
from modeldeploy.routers import (
    GatewayApiRouter,
    ObservedTraffic,
    Owner,
    ReplicasRouter,
    canary_service_name,
    gateway_api,
    get_router,
    replicas,
    stable_service_name,
)
from modeldeploy.routers.base import object_labels
from modeldeploy.routers.replicas import main_service_revision

pytestmark = pytest.mark.unit

OWNER = Owner(name="bert", namespace="prod", uid="1234-abcd")
GW = GatewayApiRouting(http_route="bert-route", gateway="public", gateway_namespace="gateways")


def test_backends_are_the_services_children_builds() -> None:
    assert (stable_service_name("bert"), canary_service_name("bert")) == (
        service_name("bert", "stable"),
        service_name("bert", "canary"),
    )
    assert object_labels(OWNER)[MANAGED_BY] == MANAGER and object_labels(OWNER)[labels.OWNER] == "bert"


def test_factory() -> None:
    assert isinstance(get_router(TrafficRouting(replicas=ReplicasRouting())), ReplicasRouter)
    router = get_router(TrafficRouting(gateway_api=GW))
    assert isinstance(router, GatewayApiRouter) and router.kind == "gatewayAPI"
    assert get_router(TrafficRouting(replicas=ReplicasRouting())).kind == "replicas"


# --- replicas -----------------------------------------------------------------------------------


@given(st.integers(min_value=0, max_value=500), st.integers(min_value=0, max_value=500))
def test_replicas_reached_weight_is_the_rounded_share_of_ready_pods(stable: int, canary: int) -> None:
    reached = replicas.reached_weight(stable, canary)
    assert 0 <= reached <= 100
    if stable + canary == 0:
        assert reached == 0
    else:
        assert abs(reached - 100 * canary / (stable + canary)) <= 0.5, (stable, canary, reached)


@pytest.mark.parametrize(
    ("stable_ready", "canary_ready", "weight"),
    [
        (0, 0, 0),
        (4, 0, 0),
        (3, 1, 25),
        (2, 2, 50),
        (1, 3, 75),
        (0, 4, 100),
        (2, 1, 33),
        (1, 2, 67),
        (7, 1, 13),
    ],
)
def test_replicas_reached_weight(stable_ready: int, canary_ready: int, weight: int) -> None:
    assert replicas.reached_weight(stable_ready, canary_ready) == weight
    observed = ObservedTraffic(stable_ready=stable_ready, canary_ready=canary_ready)
    assert ReplicasRouter().reached_weight(OWNER, observed) == weight


def test_replicas_router_builds_nothing_and_checks_weight() -> None:
    router = ReplicasRouter()
    assert router.objects(OWNER, stable_revision="a1", canary_revision="b2", weight=30, port=8000) == []
    with pytest.raises(ValueError, match=r"weight must be 0\.\.100, got 101"):
        router.objects(OWNER, stable_revision="a1", canary_revision="b2", weight=101, port=8000)
    with pytest.raises(ValueError):
        router.objects(OWNER, stable_revision="a1", canary_revision="b2", weight=-1, port=8000)


# --- gateway API --------------------------------------------------------------------------------


def test_http_route_manifest() -> None:
    (route,) = GatewayApiRouter(GW).objects(
        OWNER, stable_revision="a1", canary_revision="b2", weight=30, port=8000
    )
    assert route["apiVersion"] == "gateway.networking.k8s.io/v1"
    assert route["kind"] == "HTTPRoute"
    meta = route["metadata"]
    assert (meta["name"], meta["namespace"]) == ("bert-route", "prod")
    assert meta["labels"]["modeldeploy.dev/deployment"] == "bert"
    assert meta["ownerReferences"] == [
        {
            "apiVersion": "modeldeploy.dev/v1alpha1",
            "kind": "ModelDeployment",
            "name": "bert",
            "uid": "1234-abcd",
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    assert route["spec"]["parentRefs"] == [
        {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "public", "namespace": "gateways"}
    ]
    assert route["spec"]["rules"] == [
        {
            "backendRefs": [
                {"group": "", "kind": "Service", "name": "bert-stable", "port": 8000, "weight": 70},
                {"group": "", "kind": "Service", "name": "bert-canary", "port": 8000, "weight": 30},
            ]
        }
    ]


def test_http_route_without_canary_or_gateway() -> None:
    router = GatewayApiRouter(GatewayApiRouting(http_route="r"))
    (route,) = router.objects(OWNER, stable_revision="a1", canary_revision=None, weight=40, port=8080)
    assert "parentRefs" not in route["spec"]  # an existing route keeps its parents under SSA
    assert route["spec"]["rules"][0]["backendRefs"] == [
        {"group": "", "kind": "Service", "name": "bert-stable", "port": 8080, "weight": 100}
    ]
    (same,) = router.objects(OWNER, stable_revision="a1", canary_revision="a1", weight=40, port=8080)
    assert same == route
    only_gateway = GatewayApiRouter(GatewayApiRouting(http_route="r", gateway="g"))
    (r2,) = only_gateway.objects(OWNER, stable_revision="a1", canary_revision="b2", weight=100, port=1)
    assert r2["spec"]["parentRefs"] == [
        {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "g"}
    ]
    assert [b["weight"] for b in r2["spec"]["rules"][0]["backendRefs"]] == [0, 100]


@pytest.mark.parametrize("weight", [0, 1, 10, 33, 50, 99, 100])
def test_gateway_weight_round_trips(weight: int) -> None:
    router = GatewayApiRouter(GW)
    (route,) = router.objects(OWNER, stable_revision="a1", canary_revision="b2", weight=weight, port=8000)
    assert gateway_api.reached_weight(route, "bert") == weight
    assert router.reached_weight(OWNER, ObservedTraffic(route=route)) == weight


def test_gateway_reached_weight_from_live_routes() -> None:
    (route,) = GatewayApiRouter(GW).objects(
        OWNER, stable_revision="a1", canary_revision="b2", weight=20, port=8000
    )
    live = copy.deepcopy(route)
    # someone else prepended a rule for another app; ours is still found
    live["spec"]["rules"].insert(0, {"backendRefs": [{"name": "other-app", "port": 80}]})
    assert gateway_api.reached_weight(live, "bert") == 20
    # weights omitted: Gateway API defaults each to 1, so an even split
    for ref in live["spec"]["rules"][1]["backendRefs"]:
        del ref["weight"]
    assert gateway_api.reached_weight(live, "bert") == 50
    assert gateway_api.reached_weight(None, "bert") is None
    assert gateway_api.reached_weight({"spec": {"rules": [{"backendRefs": [{"name": "x"}]}]}}, "bert") is None
    assert gateway_api.reached_weight({"spec": {}}, "bert") is None
    all_zero = {"spec": {"rules": [{"backendRefs": [{"name": "bert-stable", "weight": 0}]}]}}
    assert gateway_api.reached_weight(all_zero, "bert") == 0


def test_route_accepted() -> None:
    def with_status(*statuses: str) -> dict[str, object]:
        parents = [{"conditions": [{"type": "Accepted", "status": s}]} for s in statuses]
        return {"status": {"parents": parents}}

    assert gateway_api.route_accepted(with_status("True", "True")) is True
    assert gateway_api.route_accepted(with_status("True", "False")) is False
    assert gateway_api.route_accepted({"status": {"parents": [{"conditions": []}]}}) is False
    assert gateway_api.route_accepted({"status": {}}) is None
    assert gateway_api.route_accepted(None) is None


def test_children_owner_info_is_accepted() -> None:
    from modeldeploy.children.owner import OwnerInfo

    info = OwnerInfo("modeldeploy.dev/v1alpha1", "ModelDeployment", "bert", "prod", "1234-abcd")
    (route,) = GatewayApiRouter(GW).objects(
        info, stable_revision="a1", canary_revision="b2", weight=5, port=8000
    )
    (same,) = GatewayApiRouter(GW).objects(
        OWNER, stable_revision="a1", canary_revision="b2", weight=5, port=8000
    )
    assert route == same
    assert GatewayApiRouter(GW).reached_weight(info, ObservedTraffic(route=route)) == 5


# --- gateway API: a user's route, only weights change ---------------------------------------------


def user_route() -> dict[str, Any]:
    """A route kept in Git: two rules, header matches, a filter, a timeout; ours is the second rule."""
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": "bert-route", "namespace": "prod", "resourceVersion": "41"},
        "spec": {
            "parentRefs": [{"name": "public", "namespace": "gateways"}],
            "hostnames": ["bert.example.test"],
            "rules": [
                {
                    "name": "legacy",
                    "matches": [{"headers": [{"name": "x-legacy", "value": "1"}]}],
                    "backendRefs": [{"name": "bert-legacy", "port": 8000, "weight": 1}],
                },
                {
                    "name": "serving",
                    "matches": [{"path": {"type": "PathPrefix", "value": "/v2"}}],
                    "filters": [
                        {
                            "type": "RequestHeaderModifier",
                            "requestHeaderModifier": {"add": [{"name": "x-a", "value": "b"}]},
                        }
                    ],
                    "timeouts": {"request": "30s"},
                    "backendRefs": [
                        {"name": "bert-stable", "port": 8000, "weight": 100},
                        {"name": "bert-canary", "port": 8000, "weight": 0},
                    ],
                },
            ],
        },
    }


def apply_json_patch(obj: dict[str, Any], ops: list[dict[str, Any]]) -> dict[str, Any]:
    """RFC 6902 for the ops the router emits (test, add/replace of an object member)."""
    out = copy.deepcopy(obj)
    for op in ops:
        *parents, last = [int(p) if p.isdigit() else p for p in op["path"].lstrip("/").split("/")]
        node: Any = out
        for part in parents:
            node = node[part]
        if op["op"] == "test":
            assert node[last] == op["value"], f"test failed at {op['path']}"
        else:
            assert op["op"] in ("add", "replace") and (op["op"] == "add" or last in node)
            node[last] = op["value"]
    return out


def weights(route: dict[str, Any], rule: int = 1) -> list[int | None]:
    return [ref.get("weight") for ref in route["spec"]["rules"][rule]["backendRefs"]]


@pytest.mark.parametrize("rule_name", ["serving", None])
def test_user_route_patch_touches_only_our_weights(rule_name: str | None) -> None:
    before = user_route()
    ops = gateway_api.weight_patch(before, "bert", rule_name, canary=True, weight=30)
    assert ops == [
        {"op": "test", "path": "/metadata/resourceVersion", "value": "41"},
        {"op": "replace", "path": "/spec/rules/1/backendRefs/0/weight", "value": 70},
        {"op": "replace", "path": "/spec/rules/1/backendRefs/1/weight", "value": 30},
    ]
    during = apply_json_patch(before, ops)
    assert weights(during) == [70, 30] and gateway_api.reached_weight(during, "bert", rule_name) == 30
    for i in (0, 1):
        during["spec"]["rules"][1]["backendRefs"][i]["weight"] = before["spec"]["rules"][1]["backendRefs"][i][
            "weight"
        ]
    assert during == before  # nothing else moved
    # after promotion: back to the Git values, byte for byte
    during = apply_json_patch(before, ops)
    during["metadata"]["resourceVersion"] = "42"
    back = apply_json_patch(
        during, gateway_api.weight_patch(during, "bert", rule_name, canary=False, weight=0)
    )
    back["metadata"]["resourceVersion"] = "41"
    assert back == before


def test_user_route_at_rest_is_left_alone() -> None:
    route = user_route()
    assert gateway_api.weight_patch(route, "bert", "serving", canary=False, weight=0) == []
    route["spec"]["rules"][1]["backendRefs"][0]["weight"] = 5  # the user's own stable weight stands
    assert gateway_api.weight_patch(route, "bert", "serving", canary=False, weight=0) == []
    assert gateway_api.weight_patch(route, "bert", "serving", canary=True, weight=5)[1:] == [
        {"op": "replace", "path": "/spec/rules/1/backendRefs/0/weight", "value": 95},
        {"op": "replace", "path": "/spec/rules/1/backendRefs/1/weight", "value": 5},
    ]


def test_user_route_without_weights_gets_them_added() -> None:
    route = user_route()
    for ref in route["spec"]["rules"][1]["backendRefs"]:
        del ref["weight"]
    ops = gateway_api.weight_patch(route, "bert", None, canary=True, weight=10)
    assert [op["op"] for op in ops] == ["test", "add", "add"]
    assert weights(apply_json_patch(route, ops)) == [90, 10]


def test_user_route_that_cannot_be_managed_says_why() -> None:
    route = user_route()
    with pytest.raises(
        gateway_api.RouteNotManageable, match="HTTPRoute bert-route has no rule named 'other'"
    ):
        gateway_api.weight_patch(route, "bert", "other", canary=True, weight=10)
    del route["spec"]["rules"][1]["backendRefs"][1]
    assert gateway_api.weight_patch(route, "bert", None, canary=False, weight=0) == []  # at rest: fine
    with pytest.raises(gateway_api.RouteNotManageable, match="rule 1 has no backendRef to bert-canary"):
        gateway_api.weight_patch(route, "bert", None, canary=True, weight=10)
    with pytest.raises(
        gateway_api.RouteNotManageable,
        match="has no rule with a backendRef to albert-stable or albert-canary",
    ):
        gateway_api.weight_patch(user_route(), "albert", None, canary=True, weight=10)


def test_route_update_applies_our_own_route_and_patches_a_users() -> None:
    router = GatewayApiRouter(GatewayApiRouting(http_route="bert-route", rule_name="serving"))
    kwargs: dict[str, Any] = {"stable_revision": "a1", "canary_revision": "b2", "weight": 20, "port": 8000}
    created = router.route_update(OWNER, None, **kwargs)
    assert isinstance(created, dict) and created["metadata"]["ownerReferences"][0]["uid"] == OWNER.uid
    ours = {**created, "metadata": {**created["metadata"], "resourceVersion": "7"}}
    assert isinstance(router.route_update(OWNER, ours, **kwargs), dict)
    patch = router.route_update(OWNER, user_route(), **kwargs)
    assert isinstance(patch, list) and [op["value"] for op in patch[1:]] == [80, 20]
    at_rest = router.route_update(OWNER, user_route(), **{**kwargs, "canary_revision": "a1"})
    assert at_rest == []
    assert router.reached_weight(OWNER, ObservedTraffic(route=apply_json_patch(user_route(), patch))) == 20


def test_the_main_service_selects_the_canary_only_once_it_has_weight() -> None:
    assert main_service_revision("s1", None, 0) == "s1", "no rollout: stable only"
    assert main_service_revision("s1", "c2", 0) == "s1", "canary Ready but weight 0 (smoke test pending)"
    assert main_service_revision("s1", "c2", 10) is None, "weight given: every revision"
    assert main_service_revision("s1", "s1", 50) == "s1"


def test_replicas_router_reports_zero_while_the_canary_is_not_selected() -> None:
    owner: Any = None
    router = ReplicasRouter()
    assert router.reached_weight(owner, ObservedTraffic(3, 1, None, asked_weight=0)) == 0
    assert router.reached_weight(owner, ObservedTraffic(3, 1, None, asked_weight=25)) == 25
