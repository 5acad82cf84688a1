"""The rollout decision: ``decide(spec, status, observations, now) -> Plan``, a pure function.

One pass, in order:

1. no stable revision yet: the desired revision becomes stable directly (no rollout);
2. the desired revision is compared with the rollout in status: spec reverted to the stable
   revision -> rollout cancelled; a new revision -> the rollout in flight (if any) is abandoned
   and a new one starts at step 0 against the *current* stable revision;
3. this pass's measurement is counted into the active analysis;
4. a manual command is consumed (once per id);
5. the strategy walks as far as the observations allow;
6. replica targets become scale actions (within the GPU budget), and the status is rebuilt.

No I/O and no clock: ``now`` is the only time, so the same inputs give the same plan.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import datetime

from modeldeploy.api.spec import ModelDeploymentSpec
from modeldeploy.api.status import Measurement, ModelDeploymentStatus, Phase, RolloutState
from modeldeploy.rollout.assessment import (
    collecting,
    culprit,
    describe,
    fold_evidence,
    has_failed,
    overall_verdict,
    record,
)
from modeldeploy.rollout.commands import apply_command, command_id, refuse_promote
from modeldeploy.rollout.conditions import ConditionStatus, set_condition
from modeldeploy.rollout.gates import (
    DEADLINE_REASON,
    check_deadline,
    check_smoke_test,
    deadline_message,
    past_deadline,
    stable_deadline_reported,
    unready_since,
)
from modeldeploy.rollout.replicas import ScaleAction, plan_scaling, surge_limit
from modeldeploy.rollout.state import (
    Outcome,
    Pass,
    clip,
    counters,
    finished,
    judge_analysis,
    short,
)
from modeldeploy.rollout.strategies import STRATEGIES, strategy_of
from modeldeploy.rollout.types import (
    Action,
    Log,
    Observations,
    Plan,
    RevisionObservation,
    ScaleRevision,
    SetPreview,
    SetWeight,
    SwitchActive,
)


def decide(
    spec: ModelDeploymentSpec, status: ModelDeploymentStatus, obs: Observations, now: datetime
) -> Plan:
    """The actions for this pass and the status to store after them (see the module doc)."""
    ctx = Pass.begin(spec, status, obs, now)
    if status.stable_revision is None:
        return _first_revision(ctx, status)
    stable = status.stable_revision
    model_version = status.model_version
    history = list(status.measurements)
    rollout = _reconcile_revision(ctx, stable, status.rollout)
    if rollout is None:
        return _finish(ctx, status, stable, None, history, model_version)
    ctx.at = rollout
    rollout, history = _measure(ctx, rollout, history)
    checked = _fail_fast(ctx, stable, rollout)
    rollout = apply_command(ctx, stable, checked, rolled_back_now=checked.aborted and not rollout.aborted)
    rollout, hold = _gates(ctx, stable, rollout)
    outcome = Outcome(rollout) if hold else strategy_of(rollout).advance(ctx, rollout, stable)
    if ctx.pending_promote is not None:
        refuse_promote(ctx, outcome.state or rollout)
    if outcome.promoted:
        stable, model_version = rollout.revision, spec.model.version
    return _finish(ctx, status, stable, outcome.state, history, model_version)


# --- 1. first revision ---------------------------------------------------------------------------


def _first_revision(ctx: Pass, status: ModelDeploymentStatus) -> Plan:
    revision = ctx.obs.desired_revision
    if ctx.spec.rollout.strategy == "blueGreen":
        ctx.act(SwitchActive(revision))
        ctx.act(SetPreview(revision))
    else:
        ctx.act(SetWeight(revision, None, 0))
    ctx.event(
        "Normal",
        "RevisionDeployed",
        f"first revision {short(revision)}: {ctx.spec.replicas} replicas, serving directly (no rollout)",
    )
    return _finish(ctx, status, revision, None, list(status.measurements), ctx.spec.model.version)


# --- 2. which revision is rolling out ------------------------------------------------------------


def _reconcile_revision(ctx: Pass, stable: str, st: RolloutState | None) -> RolloutState | None:
    desired = ctx.obs.desired_revision
    if desired == stable:
        if st is None or finished(st, stable):
            return st
        if not st.aborted:
            strategy_of(st).undo_traffic(ctx, st, stable)
        ctx.event(
            "Normal",
            "RolloutReverted",
            f"spec reverted to stable {short(stable)}: "
            f"rollout of {short(st.revision)} cancelled, canary removed",
        )
        return None
    if st is not None and st.revision == desired:
        return st
    if st is not None and not st.aborted and not finished(st, stable):
        strategy_of(st).undo_traffic(ctx, st, stable)
        _, where = strategy_of(st).progress(ctx, st)
        ctx.event(
            "Warning",
            "RevisionSuperseded",
            f"revision {short(st.revision)} superseded by {short(desired)} ({where}); "
            f"it is abandoned and the new rollout starts against stable {short(stable)}",
        )
    return _start(ctx, desired, stable)


def _start(ctx: Pass, revision: str, stable: str) -> RolloutState:
    """A new rollout at its first step. A command already present is older than the rollout and
    is recorded as consumed, so it can never act on it."""
    strategy = ctx.spec.rollout.strategy
    ctx.event(
        "Normal",
        "RolloutStarted",
        f"rolling out {short(revision)} ({strategy}) against stable {short(stable)}",
    )
    st = ctx.number(STRATEGIES[strategy].start(ctx, revision, stable))
    command = ctx.obs.command
    return st.model_copy(update={"last_command": command_id(command) if command else None})


# --- 3. measurements -----------------------------------------------------------------------------


def _measure(
    ctx: Pass, st: RolloutState, history: list[Measurement]
) -> tuple[RolloutState, list[Measurement]]:
    """Count this pass's measurement into the active analysis (results for other revisions, or
    arriving while paused or with no analysis active, are ignored)."""
    results = [m for m in ctx.obs.measurements if m.revision == st.revision]
    verdict = overall_verdict(results)
    active = strategy_of(st).active_analysis(ctx.spec, st)
    if verdict is None or active is None or st.paused or st.aborted:
        return st, history
    if ctx.obs.sequential_check:
        return _check_evidence(ctx, st, history, results)
    c = record(counters(ctx, st), verdict, ctx.stamp, results)
    ctx.results = results
    a = ctx.analysis
    notable = {
        "Failed": ("MeasurementFailed", f"failed {c.failures}/{a.failure_limit}"),
        "Error": (
            "MeasurementError",
            f"query errors {c.consecutive_errors}/{a.consecutive_error_limit} in a row",
        ),
        "Inconclusive": ("MeasurementInconclusive", f"inconclusive {c.inconclusives}/{a.inconclusive_limit}"),
    }
    if verdict in notable:
        reason, count = notable[verdict]
        worst = culprit(results, verdict)
        what = describe(worst) if worst is not None else verdict
        ctx.event("Normal" if verdict == "Inconclusive" else "Warning", reason, f"{what} — {count}")
    kept = (history + results)[-a.history :]
    return st.model_copy(update={"analysis": c}), kept


def _check_evidence(
    ctx: Pass, st: RolloutState, history: list[Measurement], results: list[Measurement]
) -> tuple[RolloutState, list[Measurement]]:
    """A sequential check between measurements: the evidence is kept; a decision (regression or
    none) goes into the history and a regression's event is emitted (the rollback follows)."""
    c = fold_evidence(counters(ctx, st), results)
    decided = [m for m in results if m.evidence is not None and not collecting(m) and m.verdict != "Error"]
    for m in decided:
        if m.verdict == "Failed":
            ctx.results = results
            ctx.event("Warning", "MeasurementFailed", f"{describe(m)} — sequential check")
    kept = (history + decided)[-ctx.analysis.history :]
    return st.model_copy(update={"analysis": c}), kept


def _fail_fast(ctx: Pass, stable: str, st: RolloutState) -> RolloutState:
    """An analysis at its failureLimit rolls back before any command is looked at: neither
    pause nor promote-full can keep traffic on a revision that has failed."""
    strategy = strategy_of(st)
    step = strategy.active_analysis(ctx.spec, st)
    if step is None or st.analysis is None or not has_failed(st.analysis, ctx.analysis):
        return st
    rolled_back, _ = judge_analysis(ctx, st, stable, step, strategy.undo_traffic)
    return rolled_back


def _gates(ctx: Pass, stable: str, st: RolloutState) -> tuple[RolloutState, bool]:
    """The progress deadline, then the smoke test (see :mod:`modeldeploy.rollout.gates`);
    ``hold``: the strategy takes no step this pass."""
    if st.aborted or finished(st, stable):
        return st, False
    undo = strategy_of(st).undo_traffic
    st = check_deadline(ctx, st, stable, undo)
    if st.aborted:
        return st, False
    st, hold = check_smoke_test(ctx, st, stable, undo)
    return st, hold and not st.aborted


# --- 6. status -----------------------------------------------------------------------------------


def _finish(
    ctx: Pass,
    status: ModelDeploymentStatus,
    stable: str,
    st: RolloutState | None,
    history: Sequence[Measurement],
    model_version: str | None,
) -> Plan:
    scaling, st = _scaling(ctx, stable, st)
    in_flight = st is not None and not st.aborted and not finished(st, stable)
    condition = _progressing(ctx, stable, st)
    phase = _phase(ctx, status.phase, stable, st)
    stable_since = None
    if st is None or finished(st, stable):
        stable_since = unready_since(_as_scaled(ctx, stable, scaling), status.stable_unready_since, ctx.stamp)
        if past_deadline(ctx.spec, stable_since, ctx.now):
            message = deadline_message(ctx, stable)
            if not stable_deadline_reported(status):
                ctx.event("Warning", DEADLINE_REASON, message)
            condition, phase = ("False", DEADLINE_REASON, message), "Degraded"
    new = status.model_copy(
        update={
            "phase": phase,
            "stable_unready_since": stable_since,
            "stable_revision": stable,
            "canary_revision": st.revision if in_flight and st is not None else None,
            "canary_weight": strategy_of(st).canary_weight(st) if st is not None else 0,
            "current_step": strategy_of(st).current_step(ctx.spec, st) if in_flight and st else None,
            "model_version": model_version,
            "rollout": st,
            "rollout_attempts": ctx.attempts or status.rollout_attempts,
            "last_decision": ctx.decision or status.last_decision,
            "measurements": list(history),
            "conditions": set_condition(status.conditions, "Progressing", *condition, ctx.now),
        }
    )
    actions: list[Action] = [*ctx.actions, *scaling]
    actions.append(Log(_log_fields(ctx, new, actions)))
    return Plan(actions, new)


def _as_scaled(ctx: Pass, revision: str, scaling: Sequence[ScaleAction]) -> RevisionObservation:
    """The revision as it stands once this pass's scaling is applied: a workload this pass creates
    or scales asks for its pods from now on (its not-Ready stretch starts with this pass, not the
    next one, so the status is written once for it)."""
    observed = ctx.observed(revision)
    for action in scaling:
        if action.revision == revision:
            replicas = action.replicas if isinstance(action, ScaleRevision) else 0
            return dataclasses.replace(observed, replicas=replicas)
    return observed


def _scaling(
    ctx: Pass, stable: str, st: RolloutState | None
) -> tuple[list[ScaleAction], RolloutState | None]:
    """Scale actions towards the strategy's replica targets (just the stable one when no rollout
    runs), and the rollout state recording those targets."""
    if st is None:
        return plan_scaling([(stable, ctx.spec.replicas)], ctx.obs.revisions, surge_limit(ctx.spec)), None
    strategy = strategy_of(st)
    targets = strategy.targets(ctx, st, stable)
    hold = strategy.hold_others(ctx, st)
    wanted = dict(targets)
    st = st.model_copy(
        update={
            "stable_replicas": wanted.get(stable, 0),
            "canary_replicas": wanted.get(st.revision, 0) if st.revision != stable else 0,
        }
    )
    return plan_scaling(targets, ctx.obs.revisions, surge_limit(ctx.spec), hold), st


def _phase(ctx: Pass, previous: Phase, stable: str, st: RolloutState | None) -> Phase:
    if st is not None and not finished(st, stable):
        if st.aborted:
            return "RolledBack"
        if st.paused or strategy_of(st).waiting_for_promote(ctx.spec, st):
            return "Paused"
        return "Progressing"
    if ctx.full(stable):
        return "Healthy"
    return "Progressing" if previous in ("Pending", "Progressing") else "Degraded"


def _progressing(ctx: Pass, stable: str, st: RolloutState | None) -> tuple[ConditionStatus, str, str]:
    if st is None or finished(st, stable):
        ready = f"{ctx.ready(stable)}/{ctx.spec.replicas} ready"
        if ctx.full(stable):
            return "True", "NewRevisionAvailable", f"revision {short(stable)} serves all traffic ({ready})"
        return "True", "ReplicasScaling", _with_unschedulable(ctx, stable, f"stable {short(stable)}: {ready}")
    if st.aborted:
        return "False", "RolledBack", st.abort_reason or "aborted"
    if st.paused:
        return "Unknown", "RolloutPaused", st.pause_reason or "paused"
    if ctx.spec.smoke_test is not None and st.smoke_test is None:
        message = f"waiting for a Ready pod of {short(st.revision)} to answer the smoke test"
        return "True", "SmokeTestPending", _with_unschedulable(ctx, st.revision, message)
    reason, message = strategy_of(st).progress(ctx, st)
    return "True", reason, _with_unschedulable(ctx, st.revision, message)


def _with_unschedulable(ctx: Pass, revision: str, message: str) -> str:
    why = ctx.observed(revision).unschedulable_message
    return clip(f"{message}; unschedulable: {why}" if why else message, 2048)


def _log_fields(ctx: Pass, status: ModelDeploymentStatus, actions: Sequence[Action]) -> dict[str, object]:
    st = status.rollout
    decision = ctx.decision
    return {
        "msg": "rollout decision",
        "desired": ctx.obs.desired_revision,
        "stable": status.stable_revision,
        "canary": status.canary_revision,
        "phase": status.phase,
        "stage": st.stage if st is not None else None,
        "step": status.current_step,
        "weight": status.canary_weight,
        "paused": bool(st and st.paused),
        "aborted": bool(st and st.aborted),
        "decision": decision.action if decision is not None else None,
        "reason": decision.reason if decision is not None else None,
        "command": f"{ctx.obs.command.kind}/{ctx.obs.command.id}" if ctx.obs.command else None,
        "actions": [a.kind for a in actions],
    }
