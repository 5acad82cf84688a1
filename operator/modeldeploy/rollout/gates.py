"""Two gates a new revision passes before traffic moves: its pods become Ready in time (the
progress deadline), and one of them answers the smoke test correctly.

Pure, like the rest of the rollout core: ``now`` comes from the pass, the smoke test's answer
comes from the shell (which runs it when :func:`smoke_test_due` says so).

* Progress deadline (``spec.rollout.progressDeadlineSeconds``): counted from the moment a revision
  has fewer Ready pods than its workload asks for; any moment it has them all resets it. A rollout
  past it is aborted (stable untouched, weight 0) with the pods' own reason; a stable revision
  (the first one, or after a scale-up) past it makes the ModelDeployment Degraded.
* Smoke test (``spec.smokeTest``): no step of the strategy runs until a Ready pod of the new
  revision has answered; a wrong answer aborts the rollout before any weight moved.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from modeldeploy.api.spec import ModelDeploymentSpec
from modeldeploy.api.status import ModelDeploymentStatus, RolloutState
from modeldeploy.rollout.conditions import get_condition
from modeldeploy.rollout.state import Pass, Undo, mark_aborted, short
from modeldeploy.rollout.timefmt import seconds_since
from modeldeploy.rollout.types import RevisionObservation

DEADLINE_REASON = "ProgressDeadlineExceeded"


def behind(obs: RevisionObservation) -> bool:
    """The workload asks for pods that are not all Ready."""
    return obs.replicas > 0 and obs.ready_replicas < obs.replicas


def unready_since(obs: RevisionObservation, since: str | None, stamp: str) -> str | None:
    """The start of the current not-Ready stretch (``None`` when all asked-for pods are Ready)."""
    if not behind(obs):
        return None
    return since or stamp


def past_deadline(spec: ModelDeploymentSpec, since: str | None, now: datetime) -> bool:
    return since is not None and seconds_since(since, now) >= spec.rollout.progress_deadline_seconds


def stable_deadline_reported(status: ModelDeploymentStatus) -> bool:
    """A pass has seen the stable workload's progress deadline pass (its Event is out): the
    Progressing condition says so until the workload is Ready again."""
    progressing = get_condition(status.conditions, "Progressing")
    return progressing is not None and progressing.reason == DEADLINE_REASON


def deadline_message(ctx: Pass, revision: str) -> str:
    obs = ctx.observed(revision)
    why = obs.problem.message if obs.problem is not None else "no pod reported a reason"
    return (
        f"revision {short(revision)}: {obs.ready_replicas}/{obs.replicas} pods Ready after "
        f"{ctx.spec.rollout.progress_deadline_seconds}s (progressDeadlineSeconds): {why}"
    )


def check_deadline(ctx: Pass, st: RolloutState, stable: str, undo: Undo) -> RolloutState:
    """Track the rollout's not-Ready stretch; abort it once the stretch passes the deadline."""
    since = unready_since(ctx.observed(st.revision), st.unready_since, ctx.stamp)
    if not past_deadline(ctx.spec, since, ctx.now):
        return st if since == st.unready_since else st.model_copy(update={"unready_since": since})
    undo(ctx, st, stable)
    message = f"{deadline_message(ctx, st.revision)} — rolled back to {short(stable)}"
    ctx.event("Warning", DEADLINE_REASON, message)
    return mark_aborted(ctx, st, message).model_copy(update={"unready_since": since})


def check_smoke_test(ctx: Pass, st: RolloutState, stable: str, undo: Undo) -> tuple[RolloutState, bool]:
    """Record this pass's smoke-test answer; ``(state, hold)`` where ``hold`` keeps the strategy
    from taking any step (no answer yet, or a wrong one that just aborted the rollout)."""
    if ctx.spec.smoke_test is None or (st.smoke_test is not None and st.smoke_test.passed):
        return st, False
    answer = ctx.obs.smoke_test
    if answer is None or answer.revision != st.revision:
        return st, True
    st = st.model_copy(update={"smoke_test": answer})
    if answer.passed:
        ctx.event("Normal", "SmokeTestPassed", f"{short(st.revision)} (pod {answer.pod}): {answer.message}")
        return st, False
    undo(ctx, st, stable)
    message = f"smoke test failed on {short(st.revision)} (pod {answer.pod}): {answer.message}"
    if answer.response:
        message += f"; response: {answer.response}"
    ctx.event("Warning", "SmokeTestFailed", f"{message} — rolled back to {short(stable)}")
    return mark_aborted(ctx, st, message), True


def smoke_test_due(
    spec: ModelDeploymentSpec, status: ModelDeploymentStatus, revisions: Mapping[str, RevisionObservation]
) -> str | None:
    """The revision whose Ready pod the shell should send the smoke test to now, if any."""
    st = status.rollout
    if spec.smoke_test is None or st is None or st.aborted or st.smoke_test is not None:
        return None
    if st.revision == status.stable_revision:
        return None
    obs = revisions.get(st.revision)
    return st.revision if obs is not None and obs.ready_replicas > 0 else None
