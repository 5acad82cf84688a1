"""Manual commands in the rollout decision: each new command id acts once, at most.

``promote`` skips the current step unless it is an analysis (the strategy takes it via
``Pass.take_promote``), ``promote-full`` skips every remaining step and analysis (unless a policy
forbids it), ``abort`` rolls back, ``pause``/``resume`` hold the rollout, ``retry`` restarts an
aborted one from its first step. A command that cannot apply now is consumed with a
``CommandIgnored`` Event saying why.
"""

from __future__ import annotations

from modeldeploy.api.status import RolloutState
from modeldeploy.rollout.assessment import clear_for_resume
from modeldeploy.rollout.state import PROMOTING, Pass, finished, mark_aborted, short
from modeldeploy.rollout.strategies import STRATEGIES, strategy_of
from modeldeploy.rollout.types import Command

COMMAND_ID_LIMIT = 128


def command_id(command: Command) -> str:
    """The id as ``status.rollout.lastCommand`` stores it."""
    return command.id[:COMMAND_ID_LIMIT]


def apply_command(ctx: Pass, stable: str, st: RolloutState, rolled_back_now: bool) -> RolloutState:
    """Apply a new command once. One that arrives in the pass that rolled the rollout back was
    meant for the rollout as it was, so it is consumed without effect (even ``retry``)."""
    command = ctx.obs.command
    if command is None or command_id(command) == st.last_command:
        return st
    st = st.model_copy(update={"last_command": command_id(command)})
    if finished(st, stable):
        return _ignore(ctx, command, st, "the rollout is complete")
    if rolled_back_now:
        return _ignore(ctx, command, st, "the rollout was rolled back in this pass")
    if st.aborted:
        if command.kind != "retry":
            return _ignore(ctx, command, st, f"the rollout of {short(st.revision)} was aborted; use retry")
        ctx.event(
            "Normal", "RolloutRetried", f"retrying {short(st.revision)} from the first step ({command.id})"
        )
        fresh = ctx.number(STRATEGIES[ctx.spec.rollout.strategy].start(ctx, st.revision, stable))
        return fresh.model_copy(update={"last_command": st.last_command})
    return _apply(ctx, stable, st, command)


def _apply(ctx: Pass, stable: str, st: RolloutState, command: Command) -> RolloutState:
    kind = command.kind
    if kind == "abort":
        strategy_of(st).undo_traffic(ctx, st, stable)
        ctx.event(
            "Warning", "RolloutAborted", f"aborted by command: weight 0, rolling back to {short(stable)}"
        )
        return mark_aborted(ctx, st, f"aborted by command {command.id}")
    if kind == "pause":
        if st.paused:
            return st
        ctx.event("Normal", "RolloutPaused", f"rollout of {short(st.revision)} paused by command")
        return st.model_copy(update={"paused": True, "pause_reason": "paused by command"})
    if kind == "resume":
        if not st.paused:
            return _ignore(ctx, command, st, "the rollout is not paused")
        ctx.event(
            "Normal", "RolloutResumed", f"rollout of {short(st.revision)} resumed (was: {st.pause_reason})"
        )
        analysis = clear_for_resume(st.analysis) if st.analysis is not None else None
        return st.model_copy(update={"paused": False, "pause_reason": None, "analysis": analysis})
    if kind == "promote-full" and ctx.obs.promote_full_forbidden_by:
        return _ignore(ctx, command, st, f"forbidden by {ctx.obs.promote_full_forbidden_by}")
    if kind == "promote-full":
        ctx.event(
            "Warning",
            "PromotedFull",
            f"promote-full: remaining steps and analysis of {short(st.revision)} skipped",
        )
        return st.model_copy(
            update={
                "stage": PROMOTING,
                "paused": False,
                "pause_reason": None,
                "analysis": None,
                "step_started_at": ctx.stamp,
            }
        )
    if kind == "promote":
        ctx.pending_promote = command.id
        return st
    return _ignore(ctx, command, st, "the rollout was not aborted")


def _ignore(ctx: Pass, command: Command, st: RolloutState, why: str) -> RolloutState:
    ctx.event("Warning", "CommandIgnored", f"{command.kind} ({command.id}) ignored: {why}")
    return st


def refuse_promote(ctx: Pass, st: RolloutState) -> None:
    ctx.pending_promote = None
    _, where = strategy_of(st).progress(ctx, st)
    why = "nothing it can skip now (only promote-full skips an analysis)"
    ctx.event("Warning", "CommandIgnored", f"promote ignored at {where}: {why}")
