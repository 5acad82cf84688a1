"""Property-based tests of A/B (``setMatch``) and shadow (``setMirror``) steps in the rollout decision.

Random step lists mixing setWeight, setMatch, setMirror, analysis and pause (gatewayAPI router), random
measurement verdicts, pods that sometimes never become ready, and sometimes a command. The router's
state is what the ``SetWeight`` actions asked for, applied in order. Checked after every pass:

1. while a shadow step's mirror is in effect, the canary's live weight is 0;
2. while an A/B rule is in effect, the live weight is 0: requests that do not match never reach it;
3. a rollout that fails (aborted, rolled back) leaves no canary route: no weight, no A/B rule, no
   mirror, in the same pass;
4. an A/B rule or a mirror is only ever asked for a revision with ready pods;
5. the status says what the router holds (``status.rollout.traffic``); a shadow that fails says
   ``Failed``, and a passed one is not rolled back in the same pass.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modeldeploy.api.canary import (
    CanaryTraffic,
    CookieMatch,
    HeaderMatch,
    RequestMatch,
    SessionAffinity,
    SetMatch,
    SetMirror,
)
from modeldeploy.api.spec import (
    Analysis,
    AnalysisStep,
    CanaryStep,
    CanaryStrategy,
    GatewayApiRouting,
    ModelDeploymentSpec,
    PauseStep,
    Rollout,
    TrafficRouting,
)
from modeldeploy.api.status import Verdict
from modeldeploy.rollout import RevisionObservation, SetWeight, measurement_due
from modeldeploy.rollout.types import CommandKind

from rollout_builders import Shell, build_spec, reasons

pytestmark = pytest.mark.unit

MATCHES = [
    RequestMatch(headers=[HeaderMatch(name="x-canary", value="1")]),
    RequestMatch(cookie=CookieMatch(name="canary", value="always")),
    RequestMatch(headers=[HeaderMatch(name="x-group", type="RegularExpression", value="beta-.*")]),
]
steps = st.one_of(
    st.builds(CanaryStep, set_weight=st.integers(0, 100)),
    st.builds(
        CanaryStep,
        set_match=st.builds(SetMatch, matches=st.lists(st.sampled_from(MATCHES), min_size=1, max_size=3)),
    ),
    st.builds(CanaryStep, set_mirror=st.builds(SetMirror, percent=st.integers(1, 100))),
    st.builds(CanaryStep, analysis=st.builds(AnalysisStep, duration=st.sampled_from(["10s", "30s"]))),
    st.builds(CanaryStep, pause=st.builds(PauseStep, duration=st.sampled_from(["10s", None]))),
)


@st.composite
def specs(draw: st.DrawFn) -> ModelDeploymentSpec:
    affinity = draw(st.none() | st.just(SessionAffinity(cookie_name="canary-session", max_age="1h")))
    rollout = Rollout(
        traffic_routing=TrafficRouting(gateway_api=GatewayApiRouting(http_route="r")),
        canary=CanaryStrategy(steps=draw(st.lists(steps, min_size=1, max_size=7)), session_affinity=affinity),
        analysis=Analysis(interval="10s", failure_limit=draw(st.integers(1, 2)), min_sample_size=0),
    )
    return build_spec(rollout, replicas=draw(st.integers(1, 4)))


@dataclass
class Route:
    """The router's state: what the last SetWeight asked for."""

    canary: str | None = None
    weight: int = 0
    traffic: CanaryTraffic | None = None


def run(spec: ModelDeploymentSpec, seed: int, passes: int = 60) -> None:
    rng = random.Random(seed)
    shell = Shell(spec)
    shell.deploy("r0")
    shell.settle()
    shell.desired = "r1"
    if rng.random() < 0.2:
        shell.frozen.add("r1")  # its pods never become ready
    route = Route()
    for _ in range(passes):
        shell.now += timedelta(seconds=rng.choice([1, 5, 10]))
        verdicts: list[Verdict] | None = None
        if shell.status.rollout is not None and measurement_due(shell.spec, shell.status, shell.now):
            verdicts = [rng.choice(["Successful", "Successful", "Successful", "Failed", "Inconclusive"])]
        command: tuple[CommandKind, str] | None = None
        if rng.random() < 0.05:
            command = (rng.choice(["promote", "abort", "pause", "resume"]), f"c{rng.random()}")
        before = shell.status.rollout
        # what the decision sees: Shell.run first lets every revision not frozen become ready
        seen_ready = {
            rev: o.ready_replicas if rev in shell.frozen else o.replicas for rev, o in shell.pods.items()
        }
        plan = shell.run(0, verdicts=verdicts, command=command)
        for action in plan.actions:
            if isinstance(action, SetWeight):
                if action.traffic is not None and not action.traffic.holds_live_weight:
                    assert action.weight == 0, "an A/B rule or a mirror with live weight"  # 1, 2
                    assert action.canary_revision is not None
                    assert seen_ready.get(action.canary_revision, 0) > 0  # 4
                route = Route(action.canary_revision, action.weight, action.traffic)
        r = shell.status.rollout
        live = r is not None and not r.aborted
        if live and r is not None and r.traffic is not None:
            assert route.traffic == r.traffic  # 5
            if r.traffic.session is not None:  # sticky sessions only while a weight splits traffic
                assert 0 < route.weight < 100 and r.traffic.session.value == r.revision
            else:
                assert route.weight == 0  # 1, 2
        if not live:
            assert route.traffic is None and route.weight in (0, 100)  # 3
            if route.weight == 100:  # promoted: the canary is the stable now
                assert r is None
        if before is not None and r is not None and r.aborted and not before.aborted:
            assert route == Route(None, 0, None), f"rolled back but the route still holds {route}"  # 3
        if "ShadowPassed" in reasons(plan):  # a passed shadow is never rolled back in the same pass
            assert shell.status.stable_revision == "r1" if r is None else not r.aborted  # 5
        if "ShadowFailed" in reasons(plan):
            assert route == Route(None, 0, None)  # 3
            assert r is not None and r.aborted and r.shadow == "Failed"  # 5
        if shell.status.stable_revision == "r1":
            break  # promoted


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=specs(), seed=st.integers(0, 2**16))
def test_ab_and_shadow_steps_keep_their_traffic_promises(spec: ModelDeploymentSpec, seed: int) -> None:
    run(spec, seed)


def test_a_failing_shadow_is_removed_before_any_live_weight() -> None:
    spec = build_spec(
        Rollout(
            traffic_routing=TrafficRouting(gateway_api=GatewayApiRouting(http_route="r")),
            canary=CanaryStrategy(
                steps=[
                    CanaryStep(set_mirror=SetMirror(percent=50)),
                    CanaryStep(analysis=AnalysisStep(duration="30s")),
                    CanaryStep(set_weight=20),
                ]
            ),
            analysis=Analysis(interval="10s", failure_limit=1, min_sample_size=0),
        ),
        replicas=4,
    )
    shell = Shell(spec)
    shell.deploy("r0")
    shell.settle()
    shell.deploy("r1")
    shell.settle()
    r = shell.status.rollout
    assert r is not None and r.traffic == CanaryTraffic(mirror_percent=50, step=0) and r.shadow == "Running"
    assert shell.pods["r1"].ready_replicas == 2  # pods for the mirrored half
    asked = [a for p in shell.plans for a in p.actions if isinstance(a, SetWeight)]
    assert asked[-1] == SetWeight("r0", "r1", 0, CanaryTraffic(mirror_percent=50, step=0))
    (plan,) = shell.measure("Failed", 1, interval=10)
    assert [a for a in plan.actions if isinstance(a, SetWeight)] == [SetWeight("r0", None, 0)]
    assert {"ShadowFailed", "RolledBack"} <= set(reasons(plan))
    r = shell.status.rollout
    assert r is not None and r.aborted and r.shadow == "Failed" and r.traffic is None
    weights = [a.weight for p in shell.plans for a in p.actions if isinstance(a, SetWeight)]
    assert weights and max(weights) == 0  # no live weight ever moved


def test_a_passing_shadow_then_ab_then_weights_promote() -> None:
    ab = SetMatch(matches=[MATCHES[0]])
    spec = build_spec(
        Rollout(
            traffic_routing=TrafficRouting(gateway_api=GatewayApiRouting(http_route="r")),
            canary=CanaryStrategy(
                steps=[
                    CanaryStep(set_mirror=SetMirror(percent=100)),
                    CanaryStep(analysis=AnalysisStep(duration="10s")),
                    CanaryStep(set_match=ab),
                    CanaryStep(analysis=AnalysisStep(duration="10s")),
                    CanaryStep(set_weight=50),
                ]
            ),
            analysis=Analysis(interval="10s", min_sample_size=0),
        ),
        replicas=2,
    )
    shell = Shell(spec)
    shell.deploy("r0")
    shell.settle()
    shell.deploy("r1")
    shell.settle()
    (plan,) = shell.measure("Successful", 1, interval=10)
    assert reasons(plan)[:2] == ["AnalysisPassed", "ShadowPassed"] and "ABTestStarted" in reasons(plan)
    r = shell.status.rollout
    assert r is not None and r.traffic == CanaryTraffic(matches=[MATCHES[0]], step=2) and r.shadow == "Passed"
    shell.measure("Successful", 1, interval=10)
    shell.settle(passes=4)
    asked = [
        (a.canary_revision, a.weight, a.traffic.mirror_percent if a.traffic else None, bool(a.traffic))
        for p in shell.plans
        for a in p.actions
        if isinstance(a, SetWeight) and a.stable_revision == "r0"
    ]
    assert asked == [
        (None, 0, None, False),  # r0 deployed
        ("r1", 0, 100, True),  # shadow: everything mirrored, live weight 0
        ("r1", 0, None, True),  # A/B: matching requests only
        ("r1", 50, None, False),  # weights
        ("r1", 100, None, False),  # promoted
    ]
    assert shell.status.stable_revision == "r1" and shell.status.rollout is None


def test_ab_waits_for_a_ready_canary_pod() -> None:
    spec = build_spec(
        Rollout(
            traffic_routing=TrafficRouting(gateway_api=GatewayApiRouting(http_route="r")),
            canary=CanaryStrategy(steps=[CanaryStep(set_match=SetMatch(matches=[MATCHES[1]]))]),
        ),
        replicas=3,
    )
    shell = Shell(spec, frozen={"r1"})
    shell.deploy("r0")
    shell.settle()
    shell.deploy("r1")
    shell.settle()
    assert shell.pods["r1"] == RevisionObservation(1, 0, False, None, 1)
    assert not [a for p in shell.plans for a in p.actions if isinstance(a, SetWeight) and a.traffic]
