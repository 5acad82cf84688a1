"""The tiny simulated world the rollout properties run in (tests/unit/test_rollout_properties.py).

The world holds one workload per revision (spec replicas, pods, ready pods), the router's weight
and the blue-green active Service. Every pass: time advances, pods converge on their spec a
random amount (pods start, become ready, terminate), the desired revision may change or revert,
a measurement is taken when ``measurement_due`` says so (random verdicts), a random command may
arrive (sometimes repeating an old id), ``decide`` runs, and its actions are applied to the world.
The ``Checker`` checks the per-pass properties the test module's doc lists.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from hypothesis import strategies as st

from modeldeploy.api.spec import (
    Analysis,
    AnalysisStep,
    BlueGreenStrategy,
    CanaryStep,
    CanaryStrategy,
    GatewayApiRouting,
    GpuSpec,
    ModelDeploymentSpec,
    PauseStep,
    ReplicasRouting,
    Rollout,
    SetCanaryScale,
    TrafficRouting,
)
from modeldeploy.api.status import ModelDeploymentStatus, Verdict
from modeldeploy.rollout import (
    Command,
    DeleteRevision,
    Observations,
    Plan,
    RevisionObservation,
    ScaleRevision,
    SetWeight,
    SwitchActive,
    decide,
    measurement_due,
)
from modeldeploy.rollout.replicas import surge_limit
from modeldeploy.rollout.types import COMMAND_KINDS, CommandKind

from rollout_builders import T0, build_spec, measurements
from rollout_builders import reasons as events

SEVERITY: tuple[Verdict, ...] = ("Error", "Failed", "Inconclusive", "Successful")
VERDICTS: list[Verdict] = [
    "Successful",
    "Successful",
    "Successful",
    "Successful",
    "Successful",
    "Successful",
    "Successful",
    "Failed",
    "Inconclusive",
    "Error",
]

# --- random specs --------------------------------------------------------------------------------

durations = st.sampled_from(["0s", "10s", "30s", "1m", "2m"])
canary_steps = st.one_of(
    st.builds(CanaryStep, set_weight=st.integers(0, 100)),
    st.builds(CanaryStep, pause=st.builds(PauseStep, duration=st.none() | durations)),
    st.builds(CanaryStep, analysis=st.builds(AnalysisStep, duration=durations)),
    st.builds(
        CanaryStep,
        set_canary_scale=st.one_of(
            st.builds(SetCanaryScale, replicas=st.integers(0, 6)),
            st.builds(SetCanaryScale, weight=st.integers(0, 100)),
            st.builds(SetCanaryScale, match_traffic_weight=st.just(True)),
        ),
    ),
)
analyses = st.builds(
    Analysis,
    interval=st.sampled_from(["10s", "15s", "30s"]),
    failure_limit=st.integers(1, 3),
    inconclusive_limit=st.integers(1, 4),
    consecutive_error_limit=st.integers(1, 4),
    history=st.integers(1, 10),
)
routing = st.sampled_from(
    [
        TrafficRouting(replicas=ReplicasRouting()),
        TrafficRouting(gateway_api=GatewayApiRouting(http_route="r")),
    ]
)


@st.composite
def specs(draw: st.DrawFn) -> ModelDeploymentSpec:
    gpu = draw(st.none() | st.builds(GpuSpec, count=st.integers(1, 2)))
    rollout = Rollout(
        strategy=draw(st.sampled_from(["canary", "blueGreen"])),
        traffic_routing=draw(routing),
        max_surge_gpus=draw(st.none() | st.integers(0, 4)),
        canary=CanaryStrategy(steps=draw(st.lists(canary_steps, max_size=6))),
        blue_green=BlueGreenStrategy(
            pre_promotion_analysis=draw(st.none() | st.builds(AnalysisStep, duration=durations)),
            post_promotion_analysis=draw(st.none() | st.builds(AnalysisStep, duration=durations)),
            auto_promote=draw(st.booleans()),
            scale_down_delay_seconds=draw(st.integers(0, 60)),
        ),
        analysis=draw(analyses),
    )
    return build_spec(rollout, replicas=draw(st.integers(1, 5)), gpu=gpu)


# --- random events -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tick:
    advance: int
    seed: int
    verdicts: tuple[Verdict, ...]
    command: CommandKind | None
    repeat_command: bool
    revision: str  # "same", "new" or "revert"


ticks = st.builds(
    Tick,
    advance=st.integers(0, 45),
    seed=st.integers(0, 2**16),
    verdicts=st.lists(st.sampled_from(VERDICTS), min_size=1, max_size=3).map(tuple),
    command=st.sampled_from([None] * 12 + list(COMMAND_KINDS)),
    repeat_command=st.booleans(),
    revision=st.sampled_from(["same"] * 24 + ["new"] * 2 + ["revert"]),
)


@st.composite
def scripts(draw: st.DrawFn) -> list[Tick]:
    """Random ticks, with a new revision arriving early so that most runs roll something out."""
    script = draw(st.lists(ticks, min_size=5, max_size=60))
    script[2] = Tick(10, script[2].seed, ("Successful",), None, False, "new")
    return script


SETTLE = Tick(
    advance=30, seed=0, verdicts=("Successful",), command=None, repeat_command=False, revision="same"
)


# --- the world -----------------------------------------------------------------------------------


@dataclass
class Workload:
    spec: int
    pods: int = 0
    ready: int = 0


@dataclass
class World:
    workloads: dict[str, Workload] = field(default_factory=dict)
    route: tuple[str, str | None, int] | None = None
    active: str | None = None

    def settle(self, seed: int, full: bool = False) -> None:
        """Pods start, become ready and terminate by a random amount (everything when ``full``)."""
        rng = random.Random(seed)
        for w in self.workloads.values():
            step = 99 if full else rng.randint(0, 2)
            if w.pods > w.spec:
                w.pods = max(w.spec, w.pods - step)
            w.ready = min(w.spec, w.pods, w.ready + (99 if full else rng.randint(0, 2)))

    def observe(self) -> dict[str, RevisionObservation]:
        return {
            rev: RevisionObservation(
                replicas=w.spec, ready_replicas=w.ready, pods=w.pods, available=w.ready > 0
            )
            for rev, w in self.workloads.items()
        }

    def apply(self, plan: Plan) -> None:
        for action in plan.actions:
            if isinstance(action, ScaleRevision):
                w = self.workloads.setdefault(action.revision, Workload(spec=0))
                w.spec = action.replicas
                w.pods = max(w.pods, w.spec)  # new pods exist (pending) at once
                w.ready = min(w.ready, w.spec)  # pods going away stop being ready at once
            elif isinstance(action, DeleteRevision):
                assert self.workloads[action.revision].pods == 0, "deleted a revision that still has pods"
                del self.workloads[action.revision]
            elif isinstance(action, SetWeight):
                self.route = (action.stable_revision, action.canary_revision, action.weight)
            elif isinstance(action, SwitchActive):
                self.active = action.revision

    def in_use(self) -> int:
        return sum(max(w.spec, w.pods, w.ready) for w in self.workloads.values())


# --- invariants ----------------------------------------------------------------------------------


@dataclass
class Checker:
    """Follows a run pass by pass, with its own count of each analysis's measurements."""

    spec: ModelDeploymentSpec
    analysis_key: tuple[object, ...] | None = None
    fed: list[Verdict] = field(default_factory=list)
    since_resume: list[Verdict] = field(default_factory=list)
    passed: int = 0
    forced: bool = False
    promotions: int = 0

    def check(self, before: ModelDeploymentStatus, obs: Observations, plan: Plan, world: World) -> None:
        self._count_measurement(before, obs)
        reasons = events(plan)
        self._analysis_and_promotion(before, obs, plan, reasons)
        self._traffic_only_to_ready_pods(before, obs, plan)
        self._rollback_moves_traffic_to_stable(plan, reasons, world)
        self._supersede_restarts(before, obs, plan, reasons)

    def _count_measurement(self, before: ModelDeploymentStatus, obs: Observations) -> None:
        r = before.rollout
        key = (
            None
            if r is None or r.analysis is None
            else (r.revision, r.stage, r.step_index, r.analysis.started_at)
        )
        if key != self.analysis_key:
            self.analysis_key, self.fed, self.since_resume = key, [], []
        usable = r is not None and not r.paused and not r.aborted and r.revision == obs.desired_revision
        if obs.measurements and usable:
            verdicts = {m.verdict for m in obs.measurements}
            worst = next(v for v in SEVERITY if v in verdicts)
            self.fed.append(worst)
            self.since_resume.append(worst)

    def _analysis_and_promotion(
        self, before: ModelDeploymentStatus, obs: Observations, plan: Plan, reasons: list[str]
    ) -> None:
        a = self.spec.rollout.analysis
        if "RolloutStarted" in reasons or "RolloutRetried" in reasons:
            self.passed, self.forced = 0, False
        if "RolloutResumed" in reasons:
            self.since_resume = []
        if "PromotedFull" in reasons:
            self.forced = True
        if "AnalysisPassed" in reasons:  # property 1, with counts kept here
            assert self.fed.count("Failed") < a.failure_limit
            assert self.since_resume.count("Inconclusive") < a.inconclusive_limit
            assert self.fed and self.fed[-1] == "Successful"
            self.passed += reasons.count("AnalysisPassed")
        r, key = plan.status.rollout, self.analysis_key
        restarted = "RolloutStarted" in reasons or "RolloutRetried" in reasons
        same = r is not None and key is not None and r.revision == key[0] and not restarted
        if same and self.fed.count("Failed") >= a.failure_limit:
            assert r is not None and r.aborted, "failureLimit reached without a rollback"  # property 1
        if "RolloutPromoted" in reasons:  # properties 1 and 4
            self.promotions += 1
            assert plan.status.stable_revision == obs.desired_revision
            assert self.forced or self.passed == self._analyses()

    def _analyses(self) -> int:
        r = self.spec.rollout
        if r.strategy == "canary":
            return sum(s.analysis is not None for s in r.canary.steps)
        bg = r.blue_green
        return (bg.pre_promotion_analysis is not None) + (bg.post_promotion_analysis is not None)

    def _traffic_only_to_ready_pods(
        self, before: ModelDeploymentStatus, obs: Observations, plan: Plan
    ) -> None:
        for action in plan.actions:  # property 3
            if isinstance(action, SetWeight) and action.weight > 0:
                assert action.canary_revision is not None
                assert obs.revisions[action.canary_revision].ready_replicas > 0
            if isinstance(action, SwitchActive) and before.stable_revision is not None:
                assert obs.revisions[action.revision].ready_replicas > 0

    def _rollback_moves_traffic_to_stable(self, plan: Plan, reasons: list[str], world: World) -> None:
        if "RolledBack" in reasons or "RolloutAborted" in reasons:  # property 2, at once
            stable = plan.status.stable_revision
            assert plan.status.canary_weight == 0 and plan.status.phase == "RolledBack"
            if self.spec.rollout.strategy == "canary" or plan.status.rollout is None:
                assert world.route is None or world.route[2] == 0
                assert world.route is None or world.route[0] == stable
            if plan.status.rollout is not None and plan.status.rollout.strategy == "blueGreen":
                assert world.active in (None, stable)

    def _supersede_restarts(
        self, before: ModelDeploymentStatus, obs: Observations, plan: Plan, reasons: list[str]
    ) -> None:
        if "RevisionSuperseded" in reasons:  # property 4
            r = plan.status.rollout
            assert r is not None and r.revision == obs.desired_revision
            assert plan.status.stable_revision == before.stable_revision
            assert "RolloutPromoted" not in reasons


# --- running a scenario --------------------------------------------------------------------------


@dataclass
class Run:
    plans: list[Plan]
    world: World
    status: ModelDeploymentStatus
    checker: Checker


def simulate(
    spec: ModelDeploymentSpec,
    script: list[Tick],
    roundtrip: bool,
    lost_writes: frozenset[int] = frozenset(),
    after_pass: Callable[[Plan, World, datetime], None] | None = None,
) -> Run:
    """Run ``script``; a pass whose index is in ``lost_writes`` acts but its status is never stored
    (the operator was killed): it is decided again, from the same status, a second later.
    ``after_pass`` sees each stored pass's plan and the world its actions left."""
    status, world, checker = ModelDeploymentStatus(), World(), Checker(spec)
    now, desired, made, last_command = T0, "r0", 0, None
    limit = surge_limit(spec)
    plans: list[Plan] = []
    for i, tick in enumerate([*script, *[SETTLE] * 25]):
        now += timedelta(seconds=tick.advance)
        world.settle(tick.seed * 1000 + i, full=tick is SETTLE)
        if tick.revision == "new":
            made += 1
            desired = f"r{made}"
        elif tick.revision == "revert" and status.stable_revision is not None:
            desired = status.stable_revision
        due = measurement_due(spec, status, now)
        measured = (
            measurements(status.rollout.revision, tick.verdicts, now.isoformat())
            if due and status.rollout
            else []
        )
        command = None
        if tick.command is not None:
            same = tick.repeat_command and last_command is not None and last_command.kind == tick.command
            command = last_command if same else Command(tick.command, f"c{i}")
            last_command = command
        if i in lost_writes:
            obs = Observations(
                desired_revision=desired, revisions=world.observe(), measurements=measured, command=command
            )
            lost = decide(spec, status, obs, now)
            world.apply(lost)
            plans.append(lost)
            now += timedelta(seconds=1)
            world.settle(tick.seed * 1000 + i + 1)
        obs = Observations(
            desired_revision=desired, revisions=world.observe(), measurements=measured, command=command
        )
        plan = decide(spec, status, obs, now)
        assert plan == decide(spec, status, obs, now)  # property 5
        world.apply(plan)
        if limit is not None:  # property 7
            assert world.in_use() <= limit, (world.workloads, limit)
        checker.check(status, obs, plan, world)
        if after_pass is not None:
            after_pass(plan, world, now)
        stored = ModelDeploymentStatus.model_validate(plan.status.wire())
        assert stored == plan.status  # the status is valid and loses nothing through the API
        status = stored if roundtrip else plan.status
        plans.append(plan)
    return Run(plans, world, status, checker)
