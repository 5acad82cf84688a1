"""The harness's Gateway: HTTPRoute matching, precedence, backends and mirrors, as the spec says."""

from __future__ import annotations

from typing import Any

import jsonpatch
import pytest

from harness.counts import EVERYONE, Counts, Traffic
from harness.gateway import Accumulator, Audience, Mirror, Request, rule_choice, select_rule, services
from harness.load import inference_path
from modeldeploy.api.canary import CanaryTraffic, CookieMatch, HeaderMatch, RequestMatch, SessionCookie
from modeldeploy.routers import gateway_api

pytestmark = pytest.mark.unit


def route(*rules: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"name": "r"}, "spec": {"rules": list(rules)}}


def to(service: str, **extra: Any) -> dict[str, Any]:
    return {"backendRefs": [{"name": service, "port": 8000}], **extra}


INFER = "/v2/models/m/infer"


def test_no_matches_means_every_path_and_path_prefix_is_element_wise() -> None:
    r = route(to("all"), to("v2", matches=[{"path": {"type": "PathPrefix", "value": "/v2/"}}]))
    assert select_rule(r, Request(INFER)) == 1
    assert select_rule(r, Request("/v2")) == 1
    assert select_rule(r, Request("/v2x")) == 0  # not a prefix element-wise
    only = route(to("v3", matches=[{"path": {"type": "PathPrefix", "value": "/v3"}}]))
    assert select_rule(only, Request(INFER)) is None  # a Gateway answers 404


def test_precedence_exact_path_then_longest_prefix_then_method_then_headers() -> None:
    r = route(
        to("prefix", matches=[{"path": {"type": "PathPrefix", "value": "/v2"}}]),
        to("longer", matches=[{"path": {"type": "PathPrefix", "value": "/v2/models"}}]),
        to("method", matches=[{"path": {"type": "PathPrefix", "value": "/v2/models"}, "method": "POST"}]),
        to(
            "header",
            matches=[
                {
                    "path": {"type": "PathPrefix", "value": "/v2/models"},
                    "method": "POST",
                    "headers": [{"name": "x-canary", "value": "1"}],
                }
            ],
        ),
        to("exact", matches=[{"path": {"type": "Exact", "value": "/v2/models/m/ready"}}]),
    )
    assert select_rule(r, Request(INFER, method="GET")) == 1
    assert select_rule(r, Request(INFER)) == 2
    assert select_rule(r, Request(INFER, headers={"X-CANARY": "1"})) == 3  # names are case-insensitive
    assert select_rule(r, Request(INFER, headers={"x-canary": "2"})) == 2
    assert select_rule(r, Request("/v2/models/m/ready", headers={"x-canary": "1"})) == 4
    assert select_rule(r, Request("/v2/other")) == 0


def test_ties_go_to_the_earlier_rule_and_only_the_first_header_entry_of_a_name_counts() -> None:
    h = {"name": "x-a", "value": "1"}
    r = route(to("first", matches=[{"headers": [h]}]), to("second", matches=[{"headers": [h]}]))
    assert select_rule(r, Request(headers={"x-a": "1"})) == 0
    dup = route(to("dup", matches=[{"headers": [h, {"name": "X-A", "value": "2"}]}]))
    assert select_rule(dup, Request(headers={"x-a": "1"})) == 0


def test_regular_expressions_match_the_whole_value() -> None:
    r = route(
        to("stable"),
        to(
            "beta",
            matches=[{"headers": [{"name": "x-group", "type": "RegularExpression", "value": "beta-.*"}]}],
        ),
    )
    assert select_rule(r, Request(headers={"x-group": "beta-7"})) == 1
    assert select_rule(r, Request(headers={"x-group": "not-beta-7"})) == 0


def test_the_operators_ab_rule_takes_exactly_the_matching_requests() -> None:
    """The rule the operator appends (header or cookie) wins for matching requests only."""
    git = route(
        to("other", matches=[{"path": {"type": "PathPrefix", "value": "/admin"}}]),
        {
            "matches": [{"path": {"type": "PathPrefix", "value": "/v2"}}],
            "backendRefs": [
                {"name": "m-stable", "port": 8000, "weight": 100},
                {"name": "m-canary", "port": 8000, "weight": 0},
            ],
        },
    )
    git["metadata"]["resourceVersion"] = "1"
    ab = CanaryTraffic(
        matches=[
            RequestMatch(headers=[HeaderMatch(name="x-canary", value="1")]),
            RequestMatch(cookie=CookieMatch(name="canary", value="always")),
        ]
    )
    live = jsonpatch.apply_patch(
        git, gateway_api.weight_patch(git, "m", None, canary=True, weight=0, traffic=ab)
    )
    canary = 2
    assert select_rule(live, Request(INFER, headers={"x-canary": "1"})) == canary
    assert (
        select_rule(live, Audience("c", 0.1, cookies={"a": "b", "canary": "always"}).request(INFER)) == canary
    )
    assert select_rule(live, Audience("c", 0.1, cookies={"canary": "always2"}).request(INFER)) == 1
    assert select_rule(live, Audience("c", 0.1, cookies={"xcanary": "always"}).request(INFER)) == 1
    assert select_rule(live, Request(INFER, headers={"x-canary": "0"})) == 1
    assert select_rule(live, Request("/admin", headers={"x-canary": "1"})) == 0
    assert rule_choice(live, 1).backends == (("m-stable", 100), ("m-canary", 0))
    assert rule_choice(live, canary).backends == (("m-canary", 1),)


def test_mirrors_and_services() -> None:
    r = route(
        {
            "filters": [
                {
                    "type": "RequestMirror",
                    "requestMirror": {"backendRef": {"name": "m-canary"}, "percent": 20},
                },
                {
                    "type": "RequestMirror",
                    "requestMirror": {
                        "backendRef": {"name": "x"},
                        "fraction": {"numerator": 1, "denominator": 4},
                    },
                },
                {"type": "RequestMirror", "requestMirror": {"backendRef": {"name": "all"}}},
            ],
            "backendRefs": [{"name": "m-stable", "weight": 100}, {"name": "m-canary", "weight": 0}],
        }
    )
    choice = rule_choice(r, 0)
    assert choice.mirrors == (Mirror("m-canary", 20.0), Mirror("x", 25.0), Mirror("all", 100.0))
    assert services(r) == {"m-stable", "m-canary", "x", "all"}
    acc = Accumulator()
    assert sum(acc.take(20) for _ in range(100)) == 20
    assert [acc.take(50) for _ in range(4)] == [False, True, False, True]


def test_traffic_windows_keep_audiences_and_mirrors_apart() -> None:
    before = Traffic(by_revision={"a": Counts(5)}, by_audience={EVERYONE: {"a": Counts(5)}})
    after = Traffic(
        by_revision={"a": Counts(9), "b": Counts(2)},
        by_audience={EVERYONE: {"a": Counts(9)}, "beta": {"b": Counts(2)}},
        mirrored={"b": Counts(3, 1)},
    )
    window = after - before
    assert window.total == 6 and window.audience("beta") == {"b": Counts(2)}
    assert window.audience(EVERYONE) == {"a": Counts(4)} and window.mirrored == {"b": Counts(3, 1)}
    assert "mirrored [b=4]" in window.summary()


def test_inference_path_follows_the_runtime() -> None:
    assert inference_path({"spec": {"runtime": "triton", "model": {"name": "m"}}}) == INFER
    assert inference_path({"spec": {"runtime": "torchserve", "model": {"name": "m"}}}) == "/predictions/m"
    assert inference_path(None) == "/"


def test_a_backends_set_cookie_is_kept_by_the_users_client_and_matched_next_time() -> None:
    git = route(
        {
            "backendRefs": [
                {"name": "m-stable", "port": 8000, "weight": 80},
                {"name": "m-canary", "port": 8000, "weight": 20},
            ]
        }
    )
    git["metadata"]["resourceVersion"] = "1"
    cookie = SessionCookie(name="canary-session", value="b2", max_age_seconds=60)
    live = jsonpatch.apply_patch(
        git,
        gateway_api.weight_patch(
            git, "m", None, canary=True, weight=20, traffic=CanaryTraffic(session=cookie)
        ),
    )
    weighted = rule_choice(live, 0)
    assert weighted.set_cookies == (("m-canary", "canary-session", "b2"),)  # only the canary's answers
    users = Audience("users", 1.0, users=3)
    assert select_rule(live, users.request(INFER)) == 0  # no cookie yet: the weights decide
    assert select_rule(live, users.request(INFER, jar={"canary-session": "b2"})) == 1  # sticky rule
    assert select_rule(live, users.request(INFER, jar={"canary-session": "a1"})) == 0  # an old canary's
