"""A/B rules and shadow mirrors on HTTPRoutes: the JSON patches on a user's route (applied with
``jsonpatch``, an RFC 6902 implementation), the operator's own route, and the spec's validation."""

from __future__ import annotations

import copy
from typing import Any

import jsonpatch
import pytest
from pydantic import ValidationError

from modeldeploy.api.canary import CanaryTraffic, CookieMatch, HeaderMatch, RequestMatch, SessionCookie
from modeldeploy.api.spec import GatewayApiRouting, ModelDeploymentSpec
from modeldeploy.routers import GatewayApiRouter, Owner, gateway_api
from modeldeploy.routers.gateway_traffic import ab_rule_name, contains

pytestmark = pytest.mark.unit

OWNER = Owner(name="bert", namespace="prod", uid="1234-abcd")
HEADER = RequestMatch(headers=[HeaderMatch(name="X-Canary", value="insider")])
COOKIE = RequestMatch(cookie=CookieMatch(name="canary", value="always"))
AB = CanaryTraffic(matches=[HEADER, COOKIE], step=0)
SHADOW = CanaryTraffic(mirror_percent=25, step=0)


def user_route() -> dict[str, Any]:
    """A route from Git: a legacy rule, then the managed rule with a path match and a filter."""
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": "bert-route", "namespace": "prod", "resourceVersion": "41"},
        "spec": {
            "rules": [
                {
                    "name": "legacy",
                    "matches": [{"headers": [{"name": "x-legacy", "value": "1"}]}],
                    "backendRefs": [{"name": "bert-legacy", "port": 8000, "weight": 1}],
                },
                {
                    "name": "serving",
                    "matches": [
                        {"path": {"type": "PathPrefix", "value": "/v2"}},
                        {"path": {"type": "Exact", "value": "/predict"}, "method": "POST"},
                    ],
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
            ]
        },
    }


def patched(
    route: dict[str, Any], traffic: CanaryTraffic | None, *, canary: bool = True, weight: int = 0
) -> Any:
    ops = gateway_api.weight_patch(route, "bert", None, canary=canary, weight=weight, traffic=traffic)
    out = jsonpatch.apply_patch(route, ops)
    out["metadata"]["resourceVersion"] = str(int(route["metadata"]["resourceVersion"]) + (1 if ops else 0))
    return out


def test_ab_rule_is_appended_with_the_users_matches_crossed_with_ours() -> None:
    before = user_route()
    during = patched(before, AB)
    rules = during["spec"]["rules"]
    assert rules[:2] == before["spec"]["rules"]  # the user's rules untouched
    ab = rules[2]
    assert ab["name"] == ab_rule_name("bert") == "bert-canary-ab"
    cookie = {"name": "Cookie", "type": "RegularExpression", "value": r"^(.*;\s*)?canary=always(;.*)?$"}
    header = {"name": "X-Canary", "type": "Exact", "value": "insider"}
    assert ab["matches"] == [
        {"path": {"type": "PathPrefix", "value": "/v2"}, "headers": [header]},
        {"path": {"type": "PathPrefix", "value": "/v2"}, "headers": [cookie]},
        {"path": {"type": "Exact", "value": "/predict"}, "method": "POST", "headers": [header]},
        {"path": {"type": "Exact", "value": "/predict"}, "method": "POST", "headers": [cookie]},
    ]
    assert ab["backendRefs"] == [{"name": "bert-canary", "port": 8000, "weight": 1}]
    assert ab["filters"] == before["spec"]["rules"][1]["filters"] and ab["timeouts"] == {"request": "30s"}
    # the weighted rule is still the managed one (our A/B rule is never taken for it)
    assert gateway_api.managed_rule(during, "bert") == 1
    assert gateway_api.reached_weight(during, "bert") == 0
    # again: nothing to do; back at rest: exactly what Git holds
    assert gateway_api.weight_patch(during, "bert", None, canary=True, weight=0, traffic=AB) == []
    back = patched(during, None, canary=False)
    back["metadata"]["resourceVersion"] = "41"
    assert back == before


def test_ab_then_weights_then_promotion_round_trip_to_git() -> None:
    before = user_route()
    during = patched(patched(before, AB), None, weight=20)  # A/B step, then setWeight 20
    assert len(during["spec"]["rules"]) == 2 and gateway_api.reached_weight(during, "bert") == 20
    promoted = patched(patched(during, None, weight=100), None, canary=False)
    promoted["metadata"]["resourceVersion"] = "41"
    assert promoted == before


def test_mirror_filter_is_appended_to_the_managed_rule_and_removed_after() -> None:
    before = user_route()
    during = patched(before, SHADOW)
    filters = during["spec"]["rules"][1]["filters"]
    assert filters[0] == before["spec"]["rules"][1]["filters"][0]
    assert filters[1] == {
        "type": "RequestMirror",
        "requestMirror": {
            "backendRef": {"group": "", "kind": "Service", "name": "bert-canary", "port": 8000},
            "percent": 25,
        },
    }
    assert gateway_api.reached_weight(during, "bert") == 0  # no live weight moves
    assert patched(during, SHADOW) == during  # holds: no write
    more = patched(during, CanaryTraffic(mirror_percent=60, step=0))
    assert more["spec"]["rules"][1]["filters"][1]["requestMirror"]["percent"] == 60
    back = patched(more, None, canary=False)
    back["metadata"]["resourceVersion"] = "41"
    assert back == before


def test_mirror_on_a_rule_without_filters_leaves_no_empty_list_behind() -> None:
    before = user_route()
    del before["spec"]["rules"][1]["filters"]
    during = patched(before, SHADOW)
    assert [f["type"] for f in during["spec"]["rules"][1]["filters"]] == ["RequestMirror"]
    ops = gateway_api.weight_patch(during, "bert", None, canary=False, weight=0)
    assert ops[1:] == [{"op": "remove", "path": "/spec/rules/1/filters"}]
    back = jsonpatch.apply_patch(during, ops)
    back["metadata"]["resourceVersion"] = "41"
    assert back == before


def test_api_server_defaults_on_our_rule_are_not_a_difference() -> None:
    during = patched(user_route(), AB)
    for ref in during["spec"]["rules"][2]["backendRefs"]:
        ref.update(group="", kind="Service")  # what the API server fills in
    assert gateway_api.weight_patch(during, "bert", None, canary=True, weight=0, traffic=AB) == []
    assert contains({"a": 1, "b": [{"c": 2, "d": 3}]}, {"b": [{"c": 2}]})
    assert not contains({"b": [{"c": 2}, {"c": 3}]}, {"b": [{"c": 2}]})


def test_ab_rule_that_cannot_be_built_says_why() -> None:
    route = user_route()
    route["spec"]["rules"][1]["matches"][0]["headers"] = [{"name": "x-canary", "value": "no"}]
    with pytest.raises(gateway_api.RouteNotManageable, match="header x-canary is matched by both"):
        gateway_api.weight_patch(route, "bert", None, canary=True, weight=0, traffic=AB)
    full = user_route()
    full["spec"]["rules"] += [{"name": f"r{i}", "backendRefs": [{"name": "x"}]} for i in range(14)]
    with pytest.raises(gateway_api.RouteNotManageable, match="already has 16 rules"):
        gateway_api.weight_patch(full, "bert", None, canary=True, weight=0, traffic=AB)


def test_a_route_changed_in_between_fails_the_patch_test() -> None:
    route = user_route()
    ops = gateway_api.weight_patch(route, "bert", None, canary=True, weight=0, traffic=AB)
    moved = copy.deepcopy(route)
    moved["metadata"]["resourceVersion"] = "99"
    with pytest.raises(jsonpatch.JsonPatchTestFailed):
        jsonpatch.apply_patch(moved, ops)


def test_operators_own_route_carries_ab_rule_and_mirror() -> None:
    router = GatewayApiRouter(GatewayApiRouting(http_route="bert-route"))
    (ab,) = router.objects(OWNER, stable_revision="a1", canary_revision="b2", weight=0, port=8000, traffic=AB)
    rules = ab["spec"]["rules"]
    assert [r.get("name") for r in rules] == ["bert-canary-ab", None]
    assert len(rules[0]["matches"]) == 2 and rules[0]["backendRefs"][0]["name"] == "bert-canary"
    assert gateway_api.reached_weight(ab, "bert") == 0
    (shadow,) = router.objects(
        OWNER, stable_revision="a1", canary_revision="b2", weight=0, port=8000, traffic=SHADOW
    )
    assert [f["type"] for f in shadow["spec"]["rules"][0]["filters"]] == ["RequestMirror"]
    (rest,) = router.objects(
        OWNER, stable_revision="a1", canary_revision=None, weight=0, port=8000, traffic=AB
    )
    assert rest["spec"]["rules"] == [
        {
            "backendRefs": [
                {"group": "", "kind": "Service", "name": "bert-stable", "port": 8000, "weight": 100}
            ]
        }
    ]


# --- the spec ----------------------------------------------------------------------------------


def spec(steps: list[dict[str, Any]], routing: dict[str, Any] | None = None) -> ModelDeploymentSpec:
    return ModelDeploymentSpec.model_validate(
        {
            "runtime": "triton",
            "model": {"name": "m", "version": "1", "storageUri": "s3://bucket/m"},
            "rollout": {
                "trafficRouting": routing or {"gatewayAPI": {"httpRoute": "r"}},
                "canary": {"steps": steps},
            },
        }
    )


def test_spec_accepts_ab_and_shadow_steps_mixed_with_weights() -> None:
    s = spec(
        [
            {"setMirror": {"percent": 50}},
            {"analysis": {"duration": "30s"}},
            {"setMatch": {"matches": [{"headers": [{"name": "x-canary", "value": "1"}]}]}},
            {"analysis": {"duration": "30s"}},
            {"setWeight": 20},
        ]
    )
    assert [st.routes_traffic for st in s.rollout.canary.steps] == [True, False, True, False, True]


@pytest.mark.parametrize(
    ("steps", "routing", "message"),
    [
        ([{"setMirror": {"percent": 5}}], {"replicas": {}}, "need trafficRouting.gatewayAPI"),
        ([{"setMatch": {"matches": []}}], None, "at least 1 item"),
        ([{"setMatch": {"matches": [{}]}}], None, "at least one header or a cookie"),
        ([{"setMatch": {"matches": [{"headers": [{"name": "bad name", "value": "1"}]}]}}], None, "pattern"),
        (
            [
                {
                    "setMatch": {
                        "matches": [{"headers": [{"name": "a", "value": "1"}, {"name": "A", "value": "2"}]}]
                    }
                }
            ],
            None,
            "unique",
        ),
        (
            [
                {
                    "setMatch": {
                        "matches": [{"headers": [{"name": "a", "type": "RegularExpression", "value": "("}]}]
                    }
                }
            ],
            None,
            "invalid regular expression",
        ),
        ([{"setMatch": {"matches": [{"cookie": {"name": "c", "value": "a b"}}]}}], None, "pattern"),
        ([{"setMirror": {"percent": 0}}], None, "greater than or equal to 1"),
        ([{"setMirror": {"percent": 5}, "setWeight": 5}], None, "exactly one of"),
        (
            [{"setMatch": {"matches": [{"headers": [{"name": f"h{i}", "value": "1"}]} for i in range(9)]}}],
            None,
            "at most 8",
        ),
    ],
)
def test_spec_refuses_bad_ab_and_shadow_steps(
    steps: list[dict[str, Any]], routing: dict[str, Any] | None, message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        spec(steps, routing)


SESSION = CanaryTraffic(
    session=SessionCookie(name="canary-session", value="b2c3d4e5f6", max_age_seconds=3600)
)


def test_session_affinity_sets_a_cookie_on_canary_answers_and_routes_it_back_to_the_canary() -> None:
    before = user_route()
    during = patched(before, SESSION, weight=20)
    managed = during["spec"]["rules"][1]
    assert [r["weight"] for r in managed["backendRefs"]] == [80, 20]
    assert "filters" not in managed["backendRefs"][0]  # stable's answers set nothing
    assert managed["backendRefs"][1]["filters"] == [
        {
            "type": "ResponseHeaderModifier",
            "responseHeaderModifier": {
                "add": [{"name": "Set-Cookie", "value": "canary-session=b2c3d4e5f6; Max-Age=3600; Path=/"}]
            },
        }
    ]
    sticky = during["spec"]["rules"][2]
    assert sticky["name"] == "bert-canary-ab"
    assert {h["value"] for m in sticky["matches"] for h in m["headers"]} == {
        r"^(.*;\s*)?canary\-session=b2c3d4e5f6(;.*)?$"
    }
    assert sticky["backendRefs"] == [{"name": "bert-canary", "port": 8000, "weight": 1}]  # no cookie filter
    assert patched(during, SESSION, weight=20) == during  # holds
    back = patched(patched(during, None, weight=100), None, canary=False)
    back["metadata"]["resourceVersion"] = "41"
    assert back == before  # promotion: Git's route again


def test_session_cookie_next_to_a_users_own_response_header_filter_is_refused() -> None:
    route = user_route()
    route["spec"]["rules"][1]["backendRefs"][1]["filters"] = [
        {"type": "ResponseHeaderModifier", "responseHeaderModifier": {"set": [{"name": "x", "value": "y"}]}}
    ]
    with pytest.raises(gateway_api.RouteNotManageable, match="cannot be repeated"):
        gateway_api.weight_patch(route, "bert", None, canary=True, weight=20, traffic=SESSION)


def test_operators_own_route_with_session_affinity() -> None:
    router = GatewayApiRouter(GatewayApiRouting(http_route="bert-route"))
    (route,) = router.objects(
        OWNER, stable_revision="a1", canary_revision="b2", weight=20, port=8000, traffic=SESSION
    )
    sticky, weighted = route["spec"]["rules"]
    assert sticky["name"] == "bert-canary-ab" and "filters" not in sticky["backendRefs"][0]
    assert weighted["backendRefs"][1]["filters"][0]["type"] == "ResponseHeaderModifier"
    assert gateway_api.reached_weight(route, "bert") == 20
