"""Worked examples of the canary rollout, one semantic per test.

``Harness`` (rollout_builders.Shell) plays the shell: it keeps the status, a world where every
workload becomes ready one pass after it is scaled (unless told otherwise), and the clock.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from modeldeploy.api.spec import (
    AnalysisStep,
    CanaryStep,
    CanaryStrategy,
    GatewayApiRouting,
    GpuSpec,
    ModelDeploymentSpec,
    PauseStep,
    Resources,
    Rollout,
    SetCanaryScale,
    TrafficRouting,
)
from modeldeploy.api.status import ModelDeploymentStatus
from modeldeploy.rollout import (
    DeleteRevision,
    EmitEvent,
    Log,
    Plan,
    RevisionObservation,
    ScaleRevision,
    SetWeight,
    measurement_due,
    next_wakeup,
)

from rollout_builders import Shell as Harness
from rollout_builders import build_spec, reasons

pytestmark = pytest.mark.unit

GATEWAY = TrafficRouting(gateway_api=GatewayApiRouting(http_route="route"))


def weight(w: int) -> CanaryStep:
    return CanaryStep(set_weight=w)


def analysis(duration: str = "1m") -> CanaryStep:
    return CanaryStep(analysis=AnalysisStep(duration=duration))


def pause(duration: str | None = None) -> CanaryStep:
    return CanaryStep(pause=PauseStep(duration=duration))


def make_spec(*steps: CanaryStep, replicas: int = 10, **rollout: object) -> ModelDeploymentSpec:
    settings: dict[str, object] = {"traffic_routing": GATEWAY, "canary": CanaryStrategy(steps=list(steps))}
    settings.update(rollout)
    return build_spec(Rollout.model_validate(settings), replicas=replicas)


def phase(h: Harness) -> str:
    return h.status.phase


def routing(plan: Plan) -> list[object]:
    return [a for a in plan.actions if not isinstance(a, (EmitEvent, Log))]


def event(plan: Plan, reason: str) -> EmitEvent:
    return next(a for a in plan.actions if isinstance(a, EmitEvent) and a.reason == reason)


def stable_at(h: Harness, revision: str = "r0") -> Harness:
    h.deploy(revision)
    h.settle()
    assert h.status.phase == "Healthy" and h.status.stable_revision == revision
    return h


# --- first revision ------------------------------------------------------------------------------


def test_first_revision_goes_straight_to_stable() -> None:
    h = Harness(make_spec(weight(50), analysis()))
    plan = h.deploy("r0")
    assert routing(plan) == [SetWeight("r0", None, 0), ScaleRevision("r0", 10)]
    assert reasons(plan) == ["RevisionDeployed"]
    assert (h.status.phase, h.status.stable_revision, h.status.rollout, h.status.model_version) == (
        "Progressing",
        "r0",
        None,
        "1",
    )
    h.run()
    assert h.status.phase == "Healthy"
    progressing = h.status.conditions[0]
    assert (progressing.type, progressing.status, progressing.reason) == (
        "Progressing",
        "True",
        "NewRevisionAvailable",
    )
    assert progressing.last_transition_time == "2024-05-01T12:00:00Z"
    assert (
        next_wakeup(h.spec, h.status.model_copy(update={"replicas": 10, "ready_replicas": 10}), h.now) is None
    )


# --- walking the steps ---------------------------------------------------------------------------


def test_weight_waits_for_ready_canary_pods_then_steps_walk_to_promotion() -> None:
    """10 replicas, steps [setWeight 20, analysis 1m, setWeight 50, pause 30s]."""
    h = stable_at(Harness(make_spec(weight(20), analysis("1m"), weight(50), pause("30s"))))
    h.frozen = {"r1"}
    plan = h.deploy("r1")
    assert reasons(plan) == ["RolloutStarted"]
    assert routing(plan) == [ScaleRevision("r1", 2)]  # ceil(10 * 20%) canary pods, no weight yet
    plan = h.run()
    assert routing(plan) == [] and h.status.canary_weight == 0  # still no ready canary pod
    assert h.status.conditions[0].message == "step 1/4: setWeight 20 (canary 0/2 ready, weight 0)"
    h.frozen = set()
    plan = h.run()
    assert routing(plan) == [SetWeight("r0", "r1", 20)]
    assert reasons(plan) == ["WeightChanged", "StepAdvanced"]
    assert (h.status.canary_weight, h.status.current_step, h.status.canary_revision) == (20, 1, "r1")
    assert not measurement_due(h.spec, h.status, h.now)  # the first measurement waits an interval
    assert next_wakeup(h.spec, h.status, h.now) == 15

    plans = h.measure("Successful", 4)  # 15s, 30s, 45s, 60s
    assert "AnalysisPassed" not in reasons(plans[2])
    assert reasons(plans[3])[:2] == ["AnalysisPassed", "StepAdvanced"]
    assert routing(plans[3]) == [ScaleRevision("r1", 5)]
    h.run()
    assert h.status.canary_weight == 50 and h.status.current_step == 3  # timed pause
    assert h.status.phase == "Progressing"
    assert next_wakeup(h.spec, h.status, h.now) == 10  # poll, the pause has 30 s left
    h.run(advance=30)
    assert h.status.rollout is not None and h.status.rollout.stage == "Promoting"
    plan = h.run()
    assert routing(plan)[:2] == [SetWeight("r0", "r1", 100), SetWeight("r1", None, 0)]
    assert ScaleRevision("r0", 0) in routing(plan)
    assert "RolloutPromoted" in reasons(plan)
    promoted = plan.status
    assert (promoted.stable_revision, promoted.canary_revision, promoted.rollout) == ("r1", None, None)
    h.settle()
    assert set(h.pods) == {"r1"} and phase(h) == "Healthy"


def test_replicas_router_gives_stable_pods_up_as_weight_moves() -> None:
    h = stable_at(Harness(make_spec(weight(30), pause(), traffic_routing=TrafficRouting(replicas={}))))
    h.deploy("r1")
    plan = h.run()
    assert routing(plan) == [SetWeight("r0", "r1", 30), ScaleRevision("r0", 7)]
    assert h.status.phase == "Paused"  # pause without duration: waits for promote
    assert h.status.conditions[0].message.startswith("step 2/2: pause (until promoted)")
    assert next_wakeup(h.spec, h.status, h.now) is None


def test_set_canary_scale_warms_pods_before_any_traffic() -> None:
    spec = make_spec(CanaryStep(set_canary_scale=SetCanaryScale(replicas=3)), weight(10), pause())
    h = stable_at(Harness(spec))
    plan = h.deploy("r1")
    assert routing(plan) == [ScaleRevision("r1", 3)]
    h.run()
    assert h.status.canary_weight == 10 and h.pods["r1"].replicas == 3  # pinned, not ceil(10%)


def test_promote_skips_a_pause_but_never_an_analysis() -> None:
    h = stable_at(Harness(make_spec(weight(10), pause(), analysis("1m"))))
    h.deploy("r1")
    h.run()
    assert h.status.current_step == 1 and h.status.phase == "Paused"
    plan = h.run(command=("promote", "p1"))
    assert "StepPromoted" in reasons(plan) and h.status.current_step == 2
    plan = h.run(command=("promote", "p2"))
    assert "CommandIgnored" in reasons(plan) and "promote-full" in event(plan, "CommandIgnored").message
    assert h.status.current_step == 2
    plan = h.run(command=("promote", "p2"))  # the same id again: nothing at all
    assert reasons(plan) == []


def test_promote_full_skips_everything_left() -> None:
    h = stable_at(Harness(make_spec(weight(10), analysis("10m"))))
    h.deploy("r1")
    h.run()
    plan = h.run(command=("promote-full", "pf"))
    assert "PromotedFull" in reasons(plan)
    h.settle()
    assert h.status.stable_revision == "r1"


# --- analysis limits -----------------------------------------------------------------------------


def test_failed_measurements_at_the_limit_roll_back() -> None:
    h = stable_at(Harness(make_spec(weight(25), analysis("5m"))))  # failureLimit 2
    h.deploy("r1")
    h.run()
    assert h.status.canary_weight == 25
    first, second = h.measure("Failed", 2)
    assert reasons(first) == ["MeasurementFailed"] and first.status.phase == "Progressing"
    assert event(first, "MeasurementFailed").message.endswith("failed 1/2")
    assert reasons(second)[-1] == "RolledBack"
    assert routing(second) == [SetWeight("r0", None, 0), ScaleRevision("r1", 0)]
    rolled_back = event(second, "RolledBack")
    assert rolled_back.type == "Warning"
    assert rolled_back.message == (
        "guardrail g0: 0.083 (rule <= 0.01, samples 1200) failed 2/2 — rolling back to r0"
    )
    st = h.status
    assert (st.phase, st.canary_weight, st.canary_revision, st.stable_revision) == (
        "RolledBack",
        0,
        None,
        "r0",
    )
    assert st.rollout is not None and st.rollout.aborted and st.rollout.revision == "r1"
    assert st.conditions[0].status == "False" and st.conditions[0].reason == "RolledBack"
    assert st.last_decision is not None and st.last_decision.action == "RolledBack"
    assert [m.verdict for m in st.measurements] == ["Failed", "Failed"]
    h.settle()
    assert set(h.pods) == {"r0"} and h.pods["r0"].ready_replicas == 10
    assert h.status.phase == "RolledBack"  # and it stays aborted: no automatic retry
    assert h.status.rollout is not None and h.status.rollout.aborted


def test_inconclusive_analysis_pauses_and_never_promotes() -> None:
    h = stable_at(Harness(make_spec(weight(10), analysis("30s"))))  # inconclusiveLimit 3
    h.deploy("r1")
    h.run()
    plans = h.measure("Inconclusive", 3)
    assert reasons(plans[2])[-1] == "InconclusiveAnalysis"
    assert h.status.phase == "Paused"
    assert h.status.rollout is not None
    assert h.status.rollout.pause_reason is not None
    assert h.status.rollout.pause_reason.startswith("inconclusive: no data / too few samples")
    assert h.status.conditions[0].status == "Unknown"
    assert not measurement_due(h.spec, h.status, h.now + timedelta(minutes=10))
    assert next_wakeup(h.spec, h.status, h.now) is None
    h.settle(advance=600)
    assert h.status.stable_revision == "r0" and h.status.phase == "Paused"
    plan = h.run(command=("resume", "go"))
    assert "RolloutResumed" in reasons(plan)
    assert h.status.rollout is not None and h.status.rollout.analysis is not None
    assert h.status.rollout.analysis.inconclusives == 0
    plans = h.measure("Successful", 1)
    assert "AnalysisPassed" in reasons(plans[0])


def test_prometheus_errors_pause_and_a_success_resets_the_streak() -> None:
    h = stable_at(Harness(make_spec(weight(10), analysis("5m"))))  # consecutiveErrorLimit 4
    h.deploy("r1")
    h.run()
    h.measure("Error", 3)
    h.measure("Successful", 1)
    assert h.status.rollout is not None and h.status.rollout.analysis is not None
    assert h.status.rollout.analysis.consecutive_errors == 0
    plans = h.measure("Error", 4)
    assert reasons(plans[-1])[-1] == "AnalysisError"
    paused = plans[-1].status.rollout
    assert paused is not None and paused.pause_reason is not None
    assert paused.pause_reason.startswith("Prometheus unreachable")


def test_an_error_as_last_measurement_blocks_passing() -> None:
    h = stable_at(Harness(make_spec(weight(10), analysis("30s"))))
    h.deploy("r1")
    h.run()
    h.measure("Successful", 1)
    plans = h.measure("Error", 1)
    assert "AnalysisPassed" not in reasons(plans[0])  # 30 s elapsed, but the last query failed
    plans = h.measure("Successful", 1)
    assert "AnalysisPassed" in reasons(plans[0])


# --- commands ------------------------------------------------------------------------------------


def test_abort_and_retry() -> None:
    h = stable_at(Harness(make_spec(weight(50), pause())))
    h.deploy("r1")
    h.run()
    plan = h.run(command=("abort", "a1"))
    assert routing(plan)[0] == SetWeight("r0", None, 0)
    assert reasons(plan) == ["RolloutAborted"] and h.status.phase == "RolledBack"
    h.settle()
    assert set(h.pods) == {"r0"} and h.status.rollout is not None
    plan = h.run(command=("pause", "p1"))
    assert reasons(plan) == ["CommandIgnored"]
    plan = h.run(command=("retry", "r1"))
    assert reasons(plan) == ["RolloutRetried"]
    assert h.status.rollout is not None and not h.status.rollout.aborted
    assert h.status.current_step == 0 and phase(h) == "Progressing"
    h.run()
    assert h.status.canary_weight == 50


def test_pause_and_resume_commands() -> None:
    h = stable_at(Harness(make_spec(weight(10), weight(20))))
    h.frozen = {"r1"}
    h.deploy("r1")
    plan = h.run(command=("pause", "p"))
    assert reasons(plan) == ["RolloutPaused"] and h.status.phase == "Paused"
    h.frozen = set()
    h.settle()
    assert h.status.canary_weight == 0  # paused: nothing moves
    h.run(command=("resume", "r"))
    h.settle()
    assert h.status.stable_revision == "r1"


def test_a_command_older_than_the_rollout_is_not_applied() -> None:
    h = stable_at(Harness(make_spec(weight(10), pause("1m"))))
    h.desired = "r1"
    plan = h.run(command=("abort", "old"))
    assert "RolloutAborted" not in reasons(plan)
    assert h.status.rollout is not None and h.status.rollout.last_command == "old"


# --- new revisions -------------------------------------------------------------------------------


def test_new_revision_mid_rollout_restarts_against_current_stable() -> None:
    h = stable_at(Harness(make_spec(weight(20), analysis("5m"))))
    h.deploy("r1")
    h.run()
    h.measure("Successful", 2)
    plan = h.deploy("r2")
    assert reasons(plan)[:2] == ["RevisionSuperseded", "RolloutStarted"]
    assert routing(plan) == [SetWeight("r0", None, 0), ScaleRevision("r1", 0), ScaleRevision("r2", 2)]
    assert (h.status.stable_revision, h.status.canary_revision, h.status.current_step) == ("r0", "r2", 0)
    h.settle()
    assert "r1" not in h.pods


def test_reverting_the_spec_cancels_the_rollout() -> None:
    h = stable_at(Harness(make_spec(weight(20), pause())))
    h.deploy("r1")
    h.run()
    plan = h.deploy("r0")
    assert reasons(plan) == ["RolloutReverted"]
    assert routing(plan) == [SetWeight("r0", None, 0), ScaleRevision("r1", 0)]
    assert h.status.rollout is None and h.status.canary_weight == 0
    h.settle()
    assert set(h.pods) == {"r0"} and h.status.phase == "Healthy"


def test_new_revision_after_an_abort_starts_fresh() -> None:
    h = stable_at(Harness(make_spec(weight(20), pause())))
    h.deploy("r1")
    h.run(command=("abort", "a"))
    plan = h.deploy("r2")
    assert reasons(plan) == ["RolloutStarted"]
    assert h.status.rollout is not None and h.status.rollout.revision == "r2"


# --- GPU budget ----------------------------------------------------------------------------------


def test_gpu_budget_zero_shrinks_stable_first() -> None:
    """4 replicas x 1 GPU, maxSurgeGPUs 0: a canary pod only after a stable pod is gone."""
    spec = make_spec(weight(50), pause(), replicas=4, max_surge_gpus=0).model_copy(
        update={"resources": Resources(gpu=GpuSpec(count=1))}
    )
    h = stable_at(Harness(spec))
    plan = h.deploy("r1")
    assert routing(plan) == [ScaleRevision("r0", 2), ScaleRevision("r1", 0)]
    h.pods["r0"] = RevisionObservation(2, 2, True, None, 4)  # two stable pods still terminating
    h.frozen = {"r0"}
    assert routing(h.run()) == []
    h.frozen = set()
    plan = h.run()
    assert routing(plan) == [ScaleRevision("r1", 2)]
    plan = h.run()
    assert routing(plan) == [SetWeight("r0", "r1", 50)]
    plan = h.run(command=("abort", "a"))
    assert routing(plan) == [SetWeight("r0", None, 0), ScaleRevision("r1", 0)]  # canary down first
    h.pods["r1"] = RevisionObservation(0, 0, False, None, 2)
    h.frozen = {"r1"}
    assert routing(h.run()) == []
    h.frozen = set()
    assert routing(h.run()) == [DeleteRevision("r1"), ScaleRevision("r0", 4)]


# --- purity --------------------------------------------------------------------------------------


def test_status_round_trips_and_timestamps_are_rfc3339() -> None:
    h = stable_at(Harness(make_spec(weight(20), analysis("1m"))))
    h.deploy("r1")
    h.run(advance=0.25)
    stored = ModelDeploymentStatus.model_validate(h.status.wire())
    assert stored == h.status
    assert h.status.rollout is not None
    assert h.status.rollout.step_started_at == "2024-05-01T12:00:00.250000Z"
    log = [a for a in h.plans[-1].actions if isinstance(a, Log)]
    assert len(log) == 1 and log[0].fields["stable"] == "r0"
