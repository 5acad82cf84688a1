"""Worked examples of the blue-green rollout and of the scheduling helpers.

The small world here makes every workload ready one pass after it is scaled and remembers which
revision the active and preview Services point at.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import pytest

from modeldeploy.api.spec import (
    AnalysisStep,
    BlueGreenStrategy,
    GpuSpec,
    ModelDeploymentSpec,
    Resources,
    Rollout,
)
from modeldeploy.rollout import (
    SetPreview,
    SwitchActive,
    measurement_due,
    next_wakeup,
)
from modeldeploy.rollout.types import Action

from rollout_builders import Shell, build_spec, reasons

pytestmark = pytest.mark.unit


def make_spec(replicas: int = 3, **blue_green: object) -> ModelDeploymentSpec:
    rollout = Rollout(strategy="blueGreen", blue_green=BlueGreenStrategy.model_validate(blue_green))
    return build_spec(rollout, replicas=replicas, runtime="torchserve")


@dataclass
class World(Shell):
    """The shell (rollout_builders.Shell) plus where the active and preview Services point."""

    desired: str = "blue"
    active: str | None = None
    preview: str | None = None

    def apply(self, action: Action) -> None:
        super().apply(action)
        if isinstance(action, SwitchActive):
            self.active = action.revision
        elif isinstance(action, SetPreview):
            self.preview = action.revision


def blue(spec: ModelDeploymentSpec) -> World:
    w = World(spec)
    w.run()
    w.run()
    assert (w.active, w.preview, w.status.phase) == ("blue", "blue", "Healthy")
    return w


def test_auto_promote_switches_once_the_preview_is_ready_then_scales_down_after_the_delay() -> None:
    w = blue(make_spec(scale_down_delay_seconds=30))
    w.desired = "green"
    plan = w.run()
    assert reasons(plan) == ["RolloutStarted"]
    assert w.preview == "green" and w.active == "blue" and w.pods["green"].replicas == 3
    assert w.status.canary_revision == "green" and w.status.phase == "Progressing"
    plan = w.run()
    assert reasons(plan) == ["PreviewReady", "ActiveSwitched", "RolloutPromoted"]
    assert w.active == "green" and w.status.stable_revision == "green"
    assert w.status.rollout is not None and w.status.rollout.stage == "ScaleDown"
    assert plan.status.phase == "Healthy" and plan.status.canary_revision is None
    w.run(advance=20)
    assert w.pods["blue"].replicas == 3  # the old colour waits for the delay
    assert next_wakeup(w.spec, w.status, w.now) == 10
    plan = w.run(advance=10)
    assert reasons(plan) == ["OldRevisionScaledDown"] and w.pods["blue"].replicas == 0
    assert w.status.rollout is None
    w.run()
    assert set(w.pods) == {"green"}


def test_manual_promotion_waits_for_the_command() -> None:
    w = blue(make_spec(auto_promote=False))
    w.desired = "green"
    w.run()
    w.run()
    assert w.status.phase == "Paused" and w.active == "blue"
    assert w.status.conditions[0].message.endswith("waiting for promote")
    w.run(advance=3600)
    assert w.active == "blue"
    plan = w.run(command=("promote", "go"))
    assert "ActiveSwitched" in reasons(plan) and w.active == "green"


def test_failed_pre_promotion_analysis_never_switches() -> None:
    w = blue(make_spec(pre_promotion_analysis=AnalysisStep(duration="1m")))
    w.desired = "green"
    w.run()
    w.run()
    assert w.status.rollout is not None and w.status.rollout.stage == "PrePromotion"
    plans = w.measure("Failed", 2)
    assert reasons(plans[-1])[-1] == "RolledBack"
    assert w.active == "blue" and w.preview == "blue" and w.status.phase == "RolledBack"
    w.run()
    w.run()
    assert set(w.pods) == {"blue"}


def test_failed_post_promotion_analysis_switches_back() -> None:
    w = blue(make_spec(post_promotion_analysis=AnalysisStep(duration="1m")))
    w.desired = "green"
    w.run()
    w.run()
    assert w.active == "green" and w.status.stable_revision == "blue"  # not stable until analysed
    assert w.status.canary_weight == 100
    plans = w.measure("Failed", 2)
    assert SwitchActive("blue") in plans[-1].actions
    assert w.active == "blue" and w.status.canary_weight == 0 and w.status.phase == "RolledBack"
    assert w.status.stable_revision == "blue"


def test_passed_post_promotion_analysis_completes() -> None:
    w = blue(make_spec(post_promotion_analysis=AnalysisStep(duration="30s"), scale_down_delay_seconds=0))
    w.desired = "green"
    w.run()
    w.run()
    plans = w.measure("Successful", 2)
    assert "RolloutPromoted" in reasons(plans[-1]) and w.status.stable_revision == "green"
    w.run()
    w.run()
    assert set(w.pods) == {"green"} and w.status.rollout is None


def test_superseding_after_the_switch_goes_back_to_stable() -> None:
    w = blue(make_spec(post_promotion_analysis=AnalysisStep(duration="10m")))
    w.desired = "green"
    w.run()
    w.run()
    w.desired = "red"
    plan = w.run()
    assert reasons(plan)[:2] == ["RevisionSuperseded", "RolloutStarted"]
    assert w.active == "blue" and w.preview == "red" and w.status.stable_revision == "blue"


def test_gpu_budget_limits_the_preview() -> None:
    spec = make_spec(replicas=2).model_copy(
        update={
            "resources": Resources(gpu=GpuSpec(count=2)),
            "rollout": Rollout(strategy="blueGreen", max_surge_gpus=2),
        }
    )
    w = blue(spec)
    w.desired = "green"
    w.run()
    assert w.pods["green"].replicas == 1  # 2 extra GPUs: one 2-GPU preview replica
    w.run()
    assert w.active == "blue" and "allows 1 of 2 preview replicas" in w.status.conditions[0].message


def test_measurement_due_needs_an_active_unpaused_analysis() -> None:
    spec = make_spec(pre_promotion_analysis=AnalysisStep(duration="1m"))
    w = blue(spec)
    assert not measurement_due(spec, w.status, w.now)
    w.desired = "green"
    w.run()
    assert not measurement_due(spec, w.status, w.now + timedelta(minutes=5))  # preview not ready
    w.run()
    assert not measurement_due(spec, w.status, w.now + timedelta(seconds=14))
    assert measurement_due(spec, w.status, w.now + timedelta(seconds=15))
    w.run(command=("pause", "p"))
    assert not measurement_due(spec, w.status, w.now + timedelta(seconds=15))
