"""A/B (setMatch) and shadow (setMirror) steps: the API server itself refuses bad ones (OpenAPI bounds
and CEL rules of the generated CRD), naming the field, and accepts the README's example."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from test_bad_input import GOOD, crds

from modeldeploy_testing.cluster import Cluster

pytestmark = pytest.mark.integration
__all__ = ["crds"]  # the fixture, shared with test_bad_input

GATEWAY = {"gatewayAPI": {"httpRoute": "fraud-route"}}


def with_steps(
    steps: list[dict[str, Any]], routing: dict[str, Any] | None = None, affinity: dict[str, Any] | None = None
) -> dict[str, Any]:
    body = copy.deepcopy(GOOD)
    canary: dict[str, Any] = {"steps": steps}
    if affinity is not None:
        canary["sessionAffinity"] = affinity
    body["spec"]["rollout"] = {"trafficRouting": routing or GATEWAY, "canary": canary}
    return body


def header_match(*headers: dict[str, Any]) -> dict[str, Any]:
    return {"setMatch": {"matches": [{"headers": list(headers)}]}}


CASES: list[tuple[str, dict[str, Any], list[str]]] = [
    (
        "A/B with the replicas router",
        with_steps([header_match({"name": "x-canary", "value": "1"})], {"replicas": {}}),
        ["spec.rollout.canary", "need trafficRouting.gatewayAPI"],
    ),
    (
        "shadow with the replicas router",
        with_steps([{"setMirror": {"percent": 10}}], {"replicas": {}}),
        ["spec.rollout.canary", "need trafficRouting.gatewayAPI"],
    ),
    (
        "session affinity with the replicas router",
        with_steps([{"setWeight": 10}], {"replicas": {}}, {"cookieName": "canary-session"}),
        ["spec.rollout.canary", "sessionAffinity need trafficRouting.gatewayAPI"],
    ),
    (
        "header name with a space",
        with_steps([header_match({"name": "x canary", "value": "1"})]),
        ["spec.rollout.canary.steps[0].setMatch.matches[0].headers[0].name", "should match"],
    ),
    (
        "the same header twice, any case",
        with_steps([header_match({"name": "X-A", "value": "1"}, {"name": "x-a", "value": "2"})]),
        ["spec.rollout.canary.steps[0].setMatch.matches[0].headers", "unique"],
    ),
    (
        "a match with nothing in it",
        with_steps([{"setMatch": {"matches": [{}]}}]),
        ["spec.rollout.canary.steps[0].setMatch.matches[0]", "at least one header or a cookie"],
    ),
    (
        "a cookie and a Cookie header",
        with_steps(
            [
                {
                    "setMatch": {
                        "matches": [
                            {
                                "headers": [{"name": "cookie", "value": "x"}],
                                "cookie": {"name": "c", "value": "v"},
                            }
                        ]
                    }
                }
            ]
        ),
        ["cannot also match the Cookie header"],
    ),
    (
        "nine matches",
        with_steps(
            [{"setMatch": {"matches": [{"cookie": {"name": f"c{i}", "value": "v"}} for i in range(9)]}}]
        ),
        ["spec.rollout.canary.steps[0].setMatch.matches", "must have at most 8 items"],
    ),
    (
        "mirror 0 percent",
        with_steps([{"setMirror": {"percent": 0}}]),
        ["spec.rollout.canary.steps[0].setMirror.percent", "greater than or equal to 1"],
    ),
    (
        "two kinds in one step",
        with_steps([{"setMirror": {"percent": 5}, "setWeight": 5}]),
        ["each step sets exactly one of"],
    ),
]


@pytest.mark.parametrize(("body", "words"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_api_server_refuses_bad_ab_and_shadow_steps(
    crds: None, cluster: Cluster, namespace: str, body: dict[str, Any], words: list[str]
) -> None:
    result = cluster.kubectl("create", "-n", namespace, "-f", "-", input=json.dumps(body), check=False)
    assert result.returncode != 0, f"accepted: {json.dumps(body)}"
    for word in words:
        assert word in result.stderr, f"{word!r} not in: {result.stderr}"


def test_the_readme_example_is_accepted(crds: None, cluster: Cluster, namespace: str) -> None:
    steps = [
        {"setMirror": {"percent": 50}},
        {"analysis": {"duration": "2m"}},
        {
            "setMatch": {
                "matches": [
                    {"headers": [{"name": "x-canary", "value": "insider"}]},
                    {"headers": [{"name": "x-group", "type": "RegularExpression", "value": "beta-.*"}]},
                    {"cookie": {"name": "canary", "value": "always"}},
                ]
            }
        },
        {"analysis": {"duration": "5m"}},
        {"setWeight": 20},
    ]
    cluster.kubectl("create", "-n", namespace, "-f", "-", input=json.dumps(with_steps(steps)))
    md = json.loads(cluster.kubectl("get", "md", "bad", "-n", namespace, "-o", "json").stdout)
    stored = md["spec"]["rollout"]["canary"]["steps"]
    assert stored[2]["setMatch"]["matches"][0]["headers"][0]["type"] == "Exact"  # the default, filled in
    assert stored[0] == {"setMirror": {"percent": 50}}
