"""Blue-green strategy: a full new colour behind the preview Service, then one switch.

Stages persisted in ``status.rollout.stage``:

``Preview`` (new colour scaling to full, ``SetPreview``) -> ``PrePromotion`` (analysis of the
preview, if configured) -> ``AwaitingPromotion`` (switches at once with ``autoPromote``, else on
``promote``) -> ``PostPromotion`` (analysis with all traffic on the new colour; failure switches
back) -> ``ScaleDown`` (the new colour is stable; the old one keeps running for
``scaleDownDelaySeconds``, then it is scaled to 0 and deleted). ``promote-full`` enters
``Promoting``: switch as soon as the new colour is ready, skipping both analyses.

Until the post-promotion analysis passes, ``stableRevision`` stays the old colour, so a switch
back (or a superseding revision) always returns to it.
"""

from __future__ import annotations

from datetime import datetime

from modeldeploy.api.spec import AnalysisStep, ModelDeploymentSpec
from modeldeploy.api.status import RolloutState
from modeldeploy.rollout.replicas import surge_limit
from modeldeploy.rollout.state import (
    AWAITING_PROMOTION,
    POST_PROMOTION,
    PRE_PROMOTION,
    PREVIEW,
    PROMOTING,
    SCALE_DOWN,
    Outcome,
    Pass,
    fresh_counters,
    judge_analysis,
    short,
)
from modeldeploy.rollout.timefmt import seconds_left, seconds_since
from modeldeploy.rollout.types import SetPreview, SwitchActive

_ORDER = (PREVIEW, PRE_PROMOTION, AWAITING_PROMOTION, PROMOTING, POST_PROMOTION, SCALE_DOWN)


def targets(ctx: Pass, st: RolloutState, stable: str) -> list[tuple[str, int]]:
    """Stable stays full (it serves everything until the switch); the new colour goes to full,
    as far as the GPU budget lets it."""
    if st.aborted or st.stage == SCALE_DOWN:
        return [(stable, ctx.spec.replicas)]
    return [(stable, ctx.spec.replicas), (st.revision, ctx.spec.replicas)]


def hold_others(ctx: Pass, st: RolloutState) -> bool:
    """The old colour is kept (not scaled down) until the scale-down delay has passed."""
    return st.stage == SCALE_DOWN and not st.aborted


def active_analysis(spec: ModelDeploymentSpec, st: RolloutState) -> AnalysisStep | None:
    if st.aborted:
        return None
    strategy = spec.rollout.blue_green
    if st.stage == PRE_PROMOTION:
        return strategy.pre_promotion_analysis
    if st.stage == POST_PROMOTION:
        return strategy.post_promotion_analysis
    return None


def waiting_for_promote(spec: ModelDeploymentSpec, st: RolloutState) -> bool:
    return st.stage == AWAITING_PROMOTION and not spec.rollout.blue_green.auto_promote and not st.aborted


def current_step(spec: ModelDeploymentSpec, st: RolloutState) -> int | None:
    return None if st.aborted or st.stage == SCALE_DOWN else _ORDER.index(st.stage)


def canary_weight(st: RolloutState) -> int:
    return 100 if st.stage == POST_PROMOTION and not st.aborted else 0


def progress(ctx: Pass, st: RolloutState) -> tuple[str, str]:
    ready = f"{ctx.ready(st.revision)}/{ctx.spec.replicas} ready"
    messages = {
        PREVIEW: f"preview {short(st.revision)} scaling up: {ready}{_budget_note(ctx, st)}",
        PRE_PROMOTION: f"pre-promotion analysis of {short(st.revision)}",
        AWAITING_PROMOTION: f"preview {short(st.revision)} ready ({ready}); waiting for promote",
        PROMOTING: f"switching to {short(st.revision)} when ready ({ready})",
        POST_PROMOTION: f"post-promotion analysis: {short(st.revision)} serves all traffic",
        SCALE_DOWN: f"{short(st.revision)} active; old revision scales down after the delay",
    }
    return f"BlueGreen{st.stage}", messages.get(st.stage, st.stage)


def _budget_note(ctx: Pass, st: RolloutState) -> str:
    limit = surge_limit(ctx.spec)
    if limit is None or limit >= 2 * ctx.spec.replicas:
        return ""
    return (
        f" (maxSurgeGPUs {ctx.spec.rollout.max_surge_gpus} allows {max(0, limit - ctx.spec.replicas)} "
        f"of {ctx.spec.replicas} preview replicas)"
    )


def start(ctx: Pass, revision: str, stable: str) -> RolloutState:
    ctx.act(SetPreview(revision))
    return RolloutState(revision=revision, strategy="blueGreen", stage=PREVIEW, step_started_at=ctx.stamp)


def undo_traffic(ctx: Pass, st: RolloutState, stable: str) -> None:
    """Switch back if the new colour is active; point the preview at the stable revision."""
    if st.stage == POST_PROMOTION:
        ctx.act(SwitchActive(stable))
    ctx.act(SetPreview(stable))


def next_wakeup(spec: ModelDeploymentSpec, st: RolloutState, now: datetime) -> float | None:
    """Seconds until the old colour may be scaled down."""
    if st.stage != SCALE_DOWN or st.aborted:
        return None
    return seconds_left(st.switched_at, spec.rollout.blue_green.scale_down_delay_seconds, now)


# --- the machine ---------------------------------------------------------------------------------


def advance(ctx: Pass, st: RolloutState, stable: str) -> Outcome:
    """Move through the stages as far as the observations allow this pass."""
    outcome = Outcome(st)
    for _ in range(len(_ORDER) + 1):
        promotable = st.stage == AWAITING_PROMOTION and ctx.pending_promote is not None
        if st.aborted or (st.paused and not promotable):
            return outcome
        ctx.at = st
        outcome = _once(ctx, st, stable)
        if outcome.promoted or outcome.state is None or outcome.state == st:
            return outcome
        st = outcome.state
    return outcome


def _once(ctx: Pass, st: RolloutState, stable: str) -> Outcome:
    strategy = ctx.spec.rollout.blue_green
    if st.stage == PREVIEW:
        if not _ready(ctx, st):
            return Outcome(st)
        ctx.event(
            "Normal", "PreviewReady", f"preview {short(st.revision)} ready ({ctx.ready(st.revision)} pods)"
        )
        if strategy.pre_promotion_analysis is not None:
            return Outcome(_stage(ctx, st, PRE_PROMOTION, analysis=True))
        return Outcome(_stage(ctx, st, AWAITING_PROMOTION))
    if st.stage == PRE_PROMOTION:
        return _analyse(ctx, st, stable, strategy.pre_promotion_analysis)
    if st.stage == AWAITING_PROMOTION:
        if strategy.auto_promote or ctx.take_promote():
            return _switch(ctx, st, stable, skip_analysis=False)
        return Outcome(st)
    if st.stage == PROMOTING:
        return _switch(ctx, st, stable, skip_analysis=True)
    if st.stage == POST_PROMOTION:
        return _analyse(ctx, st, stable, strategy.post_promotion_analysis)
    if st.stage == SCALE_DOWN and seconds_since(st.switched_at, ctx.now) >= strategy.scale_down_delay_seconds:
        ctx.event(
            "Normal", "OldRevisionScaledDown", f"scale-down delay over; only {short(st.revision)} remains"
        )
        return Outcome(None)
    return Outcome(st)


def _ready(ctx: Pass, st: RolloutState) -> bool:
    """The new colour can take all traffic: every replica ready (and at least one)."""
    return ctx.full(st.revision) and (ctx.ready(st.revision) > 0 or ctx.spec.replicas == 0)


def _stage(ctx: Pass, st: RolloutState, stage: str, analysis: bool = False) -> RolloutState:
    return st.model_copy(
        update={
            "stage": stage,
            "step_started_at": ctx.stamp,
            "analysis": fresh_counters(ctx) if analysis else None,
            "paused": False,
            "pause_reason": None,
        }
    )


def _switch(ctx: Pass, st: RolloutState, stable: str, skip_analysis: bool) -> Outcome:
    if not _ready(ctx, st):
        return Outcome(st)
    ctx.act(SwitchActive(st.revision))
    ctx.event(
        "Normal", "ActiveSwitched", f"active Service now serves {short(st.revision)} (was {short(stable)})"
    )
    switched = st.model_copy(update={"switched_at": ctx.stamp})
    if ctx.spec.rollout.blue_green.post_promotion_analysis is not None and not skip_analysis:
        return Outcome(_stage(ctx, switched, POST_PROMOTION, analysis=True))
    return _complete(ctx, switched, stable)


def _complete(ctx: Pass, st: RolloutState, stable: str) -> Outcome:
    ctx.event(
        "Normal",
        "RolloutPromoted",
        f"revision {short(st.revision)} promoted; {short(stable)} scales down in "
        f"{ctx.spec.rollout.blue_green.scale_down_delay_seconds}s",
    )
    return Outcome(_stage(ctx, st, SCALE_DOWN), promoted=True)


def _analyse(ctx: Pass, st: RolloutState, stable: str, step: AnalysisStep | None) -> Outcome:
    passed = step is None  # an analysis removed from the spec mid-rollout counts as passed
    if step is not None:
        st, passed = judge_analysis(ctx, st, stable, step, undo_traffic)
    if not passed:
        return Outcome(st)
    if st.stage == PRE_PROMOTION:
        return Outcome(_stage(ctx, st, AWAITING_PROMOTION))
    return _complete(ctx, st, stable)
