"""Worked examples of the two gates before traffic moves: the progress deadline and the smoke test."""

from __future__ import annotations

import pytest

from modeldeploy.api.smoke import SmokeTest
from modeldeploy.api.spec import AnalysisStep, CanaryStep, CanaryStrategy, ModelDeploymentSpec, Rollout
from modeldeploy.api.status import SmokeTestResult
from modeldeploy.rollout import RevisionObservation, SetWeight, next_wakeup
from modeldeploy.rollout.gates import smoke_test_due
from modeldeploy.rollout.pod_health import PodProblem

from rollout_builders import Shell, build_spec, reasons

pytestmark = pytest.mark.unit

STEPS = [CanaryStep(set_weight=20), CanaryStep(analysis=AnalysisStep(duration="1m"))]


def make_spec(deadline: int = 600, smoke: bool = False) -> ModelDeploymentSpec:
    spec = build_spec(
        Rollout(canary=CanaryStrategy(steps=STEPS), progress_deadline_seconds=deadline), replicas=4
    )
    if smoke:
        spec = spec.model_copy(update={"smoke_test": SmokeTest(body='{"inputs": []}')})
    return spec


def stable_shell(spec: ModelDeploymentSpec) -> Shell:
    shell = Shell(spec)
    shell.deploy("r0")
    shell.settle()
    assert shell.status.stable_revision == "r0" and shell.status.phase == "Healthy"
    return shell


def weights(shell: Shell) -> list[int]:
    return [a.weight for p in shell.plans for a in p.actions if isinstance(a, SetWeight)]


def answer(revision: str, passed: bool) -> SmokeTestResult:
    return SmokeTestResult(
        revision=revision,
        passed=passed,
        pod=f"md-{revision}-abc",
        status_code=200 if passed else 500,
        message="ok" if passed else "HTTP 500, expected 200",
        response='{"error": "boom"}' if not passed else "",
        at="t",
    )


def test_a_canary_whose_pods_never_become_ready_is_aborted_at_the_deadline_with_their_reason() -> None:
    shell = stable_shell(make_spec(deadline=120))
    shell.frozen.add("r1")
    shell.deploy("r1")
    problem = PodProblem(
        "InitContainerFailed", "pod md-r1-x: init container storage-initializer failed: not found"
    )
    shell.run()  # r1's pods are asked for and seen not Ready: the stretch starts now
    shell.pods["r1"] = RevisionObservation(1, 0, False, None, 1, problem)
    shell.run(119)
    assert shell.status.rollout is not None and not shell.status.rollout.aborted, "not yet: 119s < 120s"
    plan = shell.run(2)
    assert "ProgressDeadlineExceeded" in reasons(plan)
    st = shell.status.rollout
    assert st is not None and st.aborted and shell.status.phase == "RolledBack"
    assert "not found" in (st.abort_reason or "") and "0/1 pods Ready after 120s" in (st.abort_reason or "")
    assert shell.status.stable_revision == "r0"
    assert all(w == 0 for w in weights(shell)[1:]), "no traffic ever moved to r1"
    shell.settle()
    assert shell.status.stable_revision == "r0" and shell.pods["r0"].ready_replicas == 4


def test_the_deadline_counts_only_not_ready_stretches() -> None:
    shell = stable_shell(make_spec(deadline=120))
    shell.frozen.add("r1")
    shell.deploy("r1")
    shell.run(100)
    shell.frozen.discard("r1")
    shell.run(5)  # pods Ready: the stretch ends
    assert shell.status.rollout is not None and shell.status.rollout.unready_since is None
    shell.run(200)
    assert shell.status.rollout is not None and not shell.status.rollout.aborted


def test_a_first_revision_past_the_deadline_is_degraded_not_aborted() -> None:
    shell = Shell(make_spec(deadline=60))
    shell.frozen.add("r0")
    shell.deploy("r0")
    shell.pods["r0"] = RevisionObservation(
        4,
        0,
        False,
        None,
        4,
        PodProblem("ImagePullBackOff", "pod md-r0-x: container model-server: ImagePullBackOff"),
    )
    shell.run()  # the stretch starts when the operator first sees pods asked for and not Ready
    shell.run(59)
    assert shell.status.phase != "Degraded"
    plan = shell.run(2)
    assert reasons(plan) == ["ProgressDeadlineExceeded"]
    assert shell.status.phase == "Degraded" and shell.status.rollout is None
    progressing = next(c for c in shell.status.conditions if c.type == "Progressing")
    assert progressing.reason == "ProgressDeadlineExceeded" and "ImagePullBackOff" in progressing.message
    assert reasons(shell.run(10)) == [], "the event is emitted once, not every pass"
    shell.frozen.discard("r0")
    shell.settle()
    assert shell.status.phase == "Healthy" and shell.status.stable_unready_since is None


def test_the_not_ready_stretch_starts_in_the_pass_that_asks_for_the_pods() -> None:
    """The pass that creates the first revision's workload starts its stretch (the status is
    written once for it, not again on the next pass), and the deadline counts from there."""
    shell = Shell(make_spec(deadline=60))
    shell.frozen.add("r0")
    shell.deploy("r0")
    started = shell.status.stable_unready_since
    assert started is not None
    shell.run(30)
    assert shell.status.stable_unready_since == started, "the stretch keeps its start"
    shell.run(31)
    assert shell.status.phase == "Degraded"


def test_no_weight_moves_before_the_smoke_test_passes() -> None:
    shell = stable_shell(make_spec(smoke=True))
    shell.deploy("r1")
    shell.settle(3)
    assert smoke_test_due(shell.spec, shell.status, shell.pods) == "r1"
    assert weights(shell)[1:] == [] or set(weights(shell)[1:]) == {0}
    progressing = next(c for c in shell.status.conditions if c.type == "Progressing")
    assert progressing.reason == "SmokeTestPending"
    plan = shell.run(smoke_test=answer("r1", True))
    assert "SmokeTestPassed" in reasons(plan)
    assert any(isinstance(a, SetWeight) and a.weight == 20 for a in plan.actions)
    assert smoke_test_due(shell.spec, shell.status, shell.pods) is None, "asked once per rollout"


def test_a_failed_smoke_test_aborts_before_any_weight_with_the_response_in_status() -> None:
    shell = stable_shell(make_spec(smoke=True))
    shell.deploy("r1")
    shell.settle(2)
    plan = shell.run(smoke_test=answer("r1", False))
    assert "SmokeTestFailed" in reasons(plan)
    st = shell.status.rollout
    assert st is not None and st.aborted and st.smoke_test is not None and not st.smoke_test.passed
    assert '{"error": "boom"}' in (st.abort_reason or "") and "HTTP 500" in (st.abort_reason or "")
    assert all(w == 0 for w in weights(shell)[1:])
    assert smoke_test_due(shell.spec, shell.status, shell.pods) is None, "not retried by itself"
    shell.run(command=("retry", "1"))
    shell.settle(2)
    assert smoke_test_due(shell.spec, shell.status, shell.pods) == "r1", "retry asks again"


def test_an_answer_for_another_revision_is_ignored() -> None:
    shell = stable_shell(make_spec(smoke=True))
    shell.deploy("r1")
    shell.settle(2)
    shell.run(smoke_test=answer("r9", True))
    assert shell.status.rollout is not None and shell.status.rollout.smoke_test is None


def test_a_first_revision_waiting_for_its_pods_wakes_only_for_its_deadline() -> None:
    """With no rollout running, pods becoming Ready arrive as watch events: the only pass that no
    event starts is the one at the progress deadline (no polling while thousands of models wait
    for their pods), and none once the deadline is reported."""
    shell = Shell(make_spec(deadline=60))
    shell.frozen.add("r0")
    shell.deploy("r0")
    assert next_wakeup(shell.spec, shell.status, shell.now) == 60
    shell.run(45)
    assert next_wakeup(shell.spec, shell.status, shell.now) == 15
    shell.run(16)
    assert shell.status.phase == "Degraded"
    assert next_wakeup(shell.spec, shell.status, shell.now) is None
    shell.frozen.discard("r0")
    shell.settle()
    assert shell.status.phase == "Healthy"
    assert next_wakeup(shell.spec, shell.status, shell.now) is None
