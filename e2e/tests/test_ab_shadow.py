"""A/B testing and shadow traffic end to end, through a user's HTTPRoute kept in Git.

The real control plane, the real Prometheus scraping the harness's model servers, the operator under
its own ServiceAccount. The load generator routes each request through the live HTTPRoute as a
Gateway would (matches and their precedence, weights, RequestMirror percent: harness.gateway), with
30% of requests from "insiders" carrying the A/B header; every request is counted under the route
version (resourceVersion) that routed it, so what the tests check is what the operator set:

(a) A/B by header, good canary: insiders reach the canary, everyone else stable; promoted;
(b) A/B, bad canary: rolled back; no request without the header ever reached it;
(c) shadow, good: mirrored copies reach the canary (its answers discarded, its metrics in
    Prometheus) while no user request does; the shadow passes; then weights move; promoted;
(d) shadow, bad: the shadow fails, the mirror is taken out, no user request ever reached the
    canary (0 live requests); rolled back. The route is Git's again after each rollout.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from test_rollouts import Env, manifest, status

from harness import Load
from harness.counts import EVERYONE
from harness.gateway import Audience, rule_choice
from modeldeploy_testing.cluster import Cluster, Prometheus, poll
from modeldeploy_testing.operator import OperatorProcess

pytestmark = pytest.mark.e2e

AB_HEADER = {"name": "x-canary", "value": "insider"}
INSIDERS = Audience("insiders", 0.3, headers={"x-canary": "insider"})
AB_RULE = "{md}-canary-ab"
ANALYSIS = {
    "interval": "3s",
    "window": "15s",
    "failureLimit": 2,
    "inconclusiveLimit": 8,
    "consecutiveErrorLimit": 3,
    "minSampleSize": 10,
    "guardrails": [{"name": "error-rate", "template": "error-rate", "max": 0.05}],
}
# canary vs stable, anytime-valid (analysis/sequential_guardrail.py): the A/B group against everyone
# else, or the shadow's copies against stable serving every user
SEQUENTIAL = {"name": "errors-vs-stable", "template": "error-rate", "sequential": {"tolerance": 1.0}}
COMPARED = {**ANALYSIS, "guardrails": [*ANALYSIS["guardrails"], SEQUENTIAL]}
AB_STEPS = [{"setMatch": {"matches": [{"headers": [AB_HEADER]}]}}, {"analysis": {"duration": "9s"}}]
SHADOW_STEPS = [
    {"setMirror": {"percent": 50}},
    {"analysis": {"duration": "9s"}},
    {"setWeight": 50},
    {"analysis": {"duration": "6s"}},
]


def git_route(ns: str, md: str) -> dict[str, Any]:
    """The route as Git holds it: a path match, a filter, both Services at 100/0."""
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": f"{md}-route", "namespace": ns},
        "spec": {
            "rules": [
                {
                    "name": "serving",
                    "matches": [{"path": {"type": "PathPrefix", "value": "/v2"}}],
                    "filters": [
                        {
                            "type": "RequestHeaderModifier",
                            "requestHeaderModifier": {"add": [{"name": "x-served-by", "value": md}]},
                        }
                    ],
                    "backendRefs": [
                        {"name": f"{md}-stable", "port": 8000, "weight": 100},
                        {"name": f"{md}-canary", "port": 8000, "weight": 0},
                    ],
                }
            ]
        },
    }


def model(
    md: str, version: str, steps: list[dict[str, Any]], analysis: dict[str, Any] = ANALYSIS, **canary: Any
) -> dict[str, Any]:
    body = manifest(
        md,
        version,
        gpu=False,
        analysis=analysis,
        canary={"steps": steps, **canary},
        trafficRouting={"gatewayAPI": {"httpRoute": f"{md}-route", "ruleName": "serving"}},
    )
    body["spec"]["replicas"] = 2
    return body


def live_route(cluster: Cluster, ns: str, md: str) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(
        cluster.kubectl("get", "httproute", f"{md}-route", "-n", ns, "-o", "json").stdout
    )
    return out


def spec_of(route: Mapping[str, Any]) -> Any:
    return route["spec"]


@pytest.fixture
def env(
    cluster: Cluster, namespace: str, api: Any, prometheus: Prometheus, operator_log: OperatorProcess
) -> Iterator[Env]:
    if cluster.kubectl("get", "crd", "httproutes.gateway.networking.k8s.io", check=False).returncode != 0:
        pytest.fail(
            "the Gateway API CRDs are not installed in this cluster (e2e/cluster.sh up installs them)"
        )
    e = Env(cluster, namespace, api, prometheus, operator_log)
    try:
        yield e
    finally:
        e.close()


def start(
    env: Env,
    md: str,
    steps: list[dict[str, Any]],
    audiences: tuple[Audience, ...] = (INSIDERS,),
    analysis: dict[str, Any] = ANALYSIS,
    **canary: Any,
) -> tuple[str, Load, dict[str, Any]]:
    """Git's route and version 1 (stable), then the load with its insiders; returns the stable."""
    env.cluster.apply(git_route(env.ns, md), namespace=env.ns)
    git = live_route(env.cluster, env.ns, md)
    env.deploy(model(md, "1", steps, analysis, **canary))
    stable = env.stable(md)
    load = Load(env.world, env.ns, md, rps=20, audiences=audiences).start()
    env.loads.append(load)
    load.wait_for_requests(20)
    return stable, load, git


def route_kind(route: Mapping[str, Any], md: str) -> str:
    """``ab`` (our A/B rule present), ``mirror`` (our mirror on the managed rule), ``weights`` (w > 0) or
    ``rest`` (everything on stable)."""
    rules = route["spec"]["rules"]
    if any(r.get("name") == AB_RULE.format(md=md) for r in rules):
        return "ab"
    choice = rule_choice(route, 0)
    if any(m.service == f"{md}-canary" for m in choice.mirrors):
        return "mirror"
    return "weights" if dict(choice.backends).get(f"{md}-canary", 0) > 0 else "rest"


def routed_by_kind(load: Load, md: str) -> dict[str, dict[str, dict[str, int]]]:
    """kind of route -> audience -> revision -> requests (summed over the route versions of that kind)."""
    traffic, routes = load.traffic(), load.routes()
    out: dict[str, dict[str, dict[str, int]]] = {}
    for version, groups in traffic.routed.items():
        kind = route_kind(routes[version], md)
        for audience, revs in groups.items():
            into = out.setdefault(kind, {}).setdefault(audience, {})
            for rev, n in revs.items():
                into[rev] = into.get(rev, 0) + n
    return out


def mirrored_by_kind(load: Load, md: str) -> dict[str, dict[str, int]]:
    traffic, routes = load.traffic(), load.routes()
    out: dict[str, dict[str, int]] = {}
    for version, revs in traffic.routed_mirrors.items():
        into = out.setdefault(route_kind(routes[version], md), {})
        for rev, n in revs.items():
            into[rev] = into.get(rev, 0) + n
    return out


def rolled_back(env: Env, md: str) -> dict[str, Any]:
    st: dict[str, Any] = poll(
        f"{md} rolled back",
        lambda: (s := status(env.cluster, env.ns, md)).get("phase") == "RolledBack" and s,
        timeout=180,
    )
    return st


def back_to_git(env: Env, md: str, git: Mapping[str, Any]) -> None:
    poll(
        f"{md}'s route back to Git",
        lambda: spec_of(live_route(env.cluster, env.ns, md)) == spec_of(git),
        timeout=30,
    )


def test_ab_by_header_sends_insiders_to_the_canary_and_promotes(env: Env) -> None:
    md = "abgood"
    old, load, git = start(env, md, AB_STEPS)
    rec = env.record(md)
    env.deploy(model(md, "2", AB_STEPS))
    canary = env.canary(md)
    assert env.stable(md, timeout=180) == canary != old
    back_to_git(env, md, git)

    by_kind = routed_by_kind(load, md)
    during = by_kind.get("ab", {})
    assert during.get(INSIDERS.name, {}).get(canary, 0) >= 10, by_kind  # insiders reached it
    assert set(during[INSIDERS.name]) == {canary}, by_kind  # every insider, while A/B held
    assert set(during.get(EVERYONE, {})) == {old}, by_kind  # everyone else stayed on stable
    rec.wait_for_reasons("ABTestStarted", "RolloutPromoted")
    judged = [m for m in rec.measurements if m["revision"] == canary and m["verdict"] == "Successful"]
    assert judged, rec.measurements  # the A/B group's own series were judged


def test_ab_with_a_bad_canary_is_rolled_back_and_others_never_see_it(env: Env) -> None:
    md = "abbad"
    old, load, git = start(env, md, AB_STEPS, analysis=COMPARED)
    rec = env.record(md)
    env.deploy(model(md, "2", AB_STEPS, COMPARED))
    canary = env.canary(md)
    env.world.set_behavior(env.ns, md, canary, error_rate=0.5)
    st = rolled_back(env, md)
    assert st["stableRevision"] == old
    back_to_git(env, md, git)

    traffic = load.traffic()
    assert traffic.audience(INSIDERS.name).get(canary) is not None, traffic.summary()
    assert canary not in traffic.audience(EVERYONE), traffic.summary()  # not a single one
    rec.wait_for_reasons("ABTestStarted", "ABTestFailed", "RolledBack")
    failed = [m for m in rec.measurements if m["revision"] == canary and m["verdict"] == "Failed"]
    assert failed, rec.measurements
    assert_compared(rec.measurements, canary)


def test_a_good_shadow_passes_before_weights_move_then_promotes(env: Env) -> None:
    md = "shgood"
    old, load, git = start(env, md, SHADOW_STEPS)
    rec = env.record(md)
    env.deploy(model(md, "2", SHADOW_STEPS))
    canary = env.canary(md)
    assert env.stable(md, timeout=240) == canary != old
    back_to_git(env, md, git)

    by_kind, mirrored = routed_by_kind(load, md), mirrored_by_kind(load, md)
    shadow = by_kind.get("mirror", {})
    assert shadow and all(canary not in revs for revs in shadow.values()), by_kind  # no user on it
    assert mirrored.get("mirror", {}).get(canary, 0) >= 10, mirrored  # but its copies, answered
    assert load.traffic().mirrored.get(canary) is not None
    weighted = by_kind.get("weights", {})
    assert sum(revs.get(canary, 0) for revs in weighted.values()) > 0, by_kind  # then weights moved
    rec.wait_for_reasons("ShadowStarted", "ShadowPassed", "WeightChanged", "RolloutPromoted")
    judged = [
        m
        for m in rec.measurements
        if m["revision"] == canary and m["verdict"] == "Successful" and m["guardrail"] == "error-rate"
    ]
    assert judged and judged[0]["samples"] >= 10, judged  # the shadow's own series in Prometheus


def test_a_bad_shadow_is_removed_before_any_user_reaches_it(env: Env) -> None:
    md = "shbad"
    old, load, git = start(env, md, SHADOW_STEPS, analysis=COMPARED)
    rec = env.record(md)
    env.deploy(model(md, "2", SHADOW_STEPS, COMPARED))
    canary = env.canary(md)
    env.world.set_behavior(env.ns, md, canary, error_rate=0.5)
    st = rolled_back(env, md)
    assert st["stableRevision"] == old
    assert st["rollout"]["shadow"] == "Failed", st["rollout"]
    back_to_git(env, md, git)

    traffic = load.traffic()
    assert canary not in traffic.by_revision, traffic.summary()  # 0 live requests, ever
    assert traffic.mirrored.get(canary) is not None and traffic.mirrored[canary].error > 0, traffic.summary()
    rec.wait_for_reasons("ShadowStarted", "ShadowFailed", "RolledBack")
    assert "WeightChanged" not in rec.reasons()
    assert_compared(rec.measurements, canary)


def assert_compared(measurements: list[dict[str, Any]], canary: str) -> None:
    """The sequential canary-vs-stable guardrail judged the canary's group against stable's (the
    requests stable served meanwhile) and never found the absence of a regression."""
    seq = [m for m in measurements if m["guardrail"] == "errors-vs-stable" and m["revision"] == canary]
    assert seq, measurements
    decided = [m["evidence"]["decision"] for m in seq if (m.get("evidence") or {}).get("decision")]
    assert "NoRegression" not in decided, seq


def test_session_affinity_keeps_users_the_weights_sent_to_the_canary_there(env: Env) -> None:
    md = "sticky"
    steps = [{"setWeight": 20}, {"analysis": {"duration": "9s"}}]
    affinity = {"sessionAffinity": {"cookieName": "canary-session", "maxAge": "1h"}}
    users = Audience("users", 1.0, users=20)
    old, load, git = start(env, md, steps, audiences=(users,), **affinity)
    rec = env.record(md)
    env.deploy(model(md, "2", steps, **affinity))
    canary = env.canary(md)
    assert env.stable(md, timeout=180) == canary != old
    back_to_git(env, md, git)

    routes = load.routes()
    sticky_on, switched = 0, 0
    for user, history in load.history().items():
        during = [rev for version, rev in history if route_kind(routes[version], md) == "ab"]
        if canary in during:
            first = during.index(canary)
            assert set(during[first:]) == {canary}, f"{user} left the canary: {during}"  # sticky
            sticky_on += 1
            switched += first > 0
    assert sticky_on >= 2, load.history()  # users the 20% weight sent to the canary stayed there
    assert switched >= 1, load.history()  # some were on stable first: the weight, not the cookie, chose
    rec.wait_for_reasons("RolloutPromoted")
