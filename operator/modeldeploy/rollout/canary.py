"""Canary strategy: walk ``spec.rollout.canary.steps`` in order, then promote.

The persisted state is ``status.rollout``: ``stepIndex``, ``stepStartedAt``, ``weight`` (the weight
the router was last given), ``analysis`` counters for an analysis step, and ``stage``
(``Steps`` or ``Promoting``). Canary size is derived from the spec each pass, so an HPA changing
``replicas`` mid-rollout is followed.

Worked example, 10 replicas, steps ``[setWeight 20, analysis 1m]``:

* pass 1: canary scaled to ``ceil(10*20/100) = 2``; weight stays 0 (no ready pod yet);
* pass n: 2 canary pods ready -> ``SetWeight(stable, canary, 20)``, step 1 (analysis) starts;
* every ``interval``: a measurement; after 1m with a success and failures < failureLimit ->
  ``AnalysisPassed``, stage Promoting: canary scaled to 10;
* 10 canary pods ready -> ``SetWeight(stable, canary, 100)``, stable := canary, old stable -> 0.

Gateway API steps (``setMatch`` A/B, ``setMirror`` shadow): the last of ``setWeight``, ``setMatch``
and ``setMirror`` up to the current step decides the traffic. During an A/B or shadow step the live
weight is 0: only matching requests (A/B), or mirrored copies whose answers are discarded (shadow),
reach the canary; ``status.rollout.traffic`` holds what the router was asked for, so the shell can
re-assert it. A shadow's analysis passing is ``ShadowPassed``; any rollback while a mirror or A/B
rule is in effect takes it out in the same pass (``SetWeight(stable, None, 0)`` carries no traffic).
"""

from __future__ import annotations

from datetime import datetime

from modeldeploy.api.canary import CanaryTraffic, SessionCookie
from modeldeploy.api.common import parse_duration
from modeldeploy.api.spec import AnalysisStep, CanaryStep, ModelDeploymentSpec, SetCanaryScale
from modeldeploy.api.status import RolloutState
from modeldeploy.rollout.replicas import capped_stable, replicas_for_weight, surge_limit
from modeldeploy.rollout.state import (
    PROMOTING,
    STEPS,
    Outcome,
    Pass,
    fresh_counters,
    judge_analysis,
    short,
)
from modeldeploy.rollout.timefmt import seconds_left, seconds_since
from modeldeploy.rollout.types import SetWeight


def describe_step(step: CanaryStep) -> str:
    """``setWeight 25``, ``pause 30s``, ``pause (until promoted)``, ``analysis 5m``, ..."""
    if step.set_weight is not None:
        return f"setWeight {step.set_weight}"
    if step.pause is not None:
        return f"pause {step.pause.duration}" if step.pause.duration else "pause (until promoted)"
    if step.analysis is not None:
        return f"analysis {step.analysis.duration}"
    if step.set_match is not None:
        return (
            f"setMatch ({len(step.set_match.matches)} match{'es' if len(step.set_match.matches) > 1 else ''})"
        )
    if step.set_mirror is not None:
        return f"setMirror {step.set_mirror.percent}%"
    scale = step.set_canary_scale
    assert scale is not None
    if scale.replicas is not None:
        return f"setCanaryScale replicas {scale.replicas}"
    if scale.weight is not None:
        return f"setCanaryScale weight {scale.weight}"
    return "setCanaryScale matchTrafficWeight"


def _steps(spec: ModelDeploymentSpec) -> list[CanaryStep]:
    return spec.rollout.canary.steps


def _current(spec: ModelDeploymentSpec, st: RolloutState) -> CanaryStep | None:
    steps = _steps(spec)
    if st.stage != STEPS or st.aborted or st.step_index >= len(steps):
        return None
    return steps[st.step_index]


def _traffic_step(steps: list[CanaryStep], index: int) -> tuple[int, CanaryStep] | None:
    routing = [(i, s) for i, s in enumerate(steps[: index + 1]) if s.routes_traffic]
    return routing[-1] if routing else None


def target_weight(steps: list[CanaryStep], index: int) -> int:
    """The live weight the steps up to ``index`` ask for: the last ``setWeight`` unless a later
    ``setMatch``/``setMirror`` (live weight 0) came after it; 0 before any."""
    last = _traffic_step(steps, index)
    return last[1].set_weight or 0 if last is not None else 0


def target_traffic(steps: list[CanaryStep], index: int) -> CanaryTraffic | None:
    """The A/B match or the mirror the steps up to ``index`` ask for (None: weights alone)."""
    last = _traffic_step(steps, index)
    if last is None:
        return None
    i, step = last
    if step.set_match is not None:
        return CanaryTraffic(matches=step.set_match.matches, step=i)
    if step.set_mirror is not None:
        return CanaryTraffic(mirror_percent=step.set_mirror.percent, step=i)
    return None


def _scale_pin(steps: list[CanaryStep], index: int) -> SetCanaryScale | None:
    pins = [s.set_canary_scale for s in steps[: index + 1] if s.set_canary_scale is not None]
    if not pins or pins[-1].match_traffic_weight:
        return None
    return pins[-1]


def canary_target(spec: ModelDeploymentSpec, st: RolloutState) -> int:
    """Canary replicas wanted now: full when promoting, else per setCanaryScale or the weight.

    A canary that has (or is about to get) traffic always keeps at least one pod; no canary
    is bigger than the GPU budget's replica ceiling.
    """
    if st.aborted:
        return 0
    if st.stage == PROMOTING:
        return spec.replicas
    steps = _steps(spec)
    index = min(st.step_index, len(steps) - 1)
    weight = target_weight(steps, index)
    traffic = target_traffic(steps, index)
    pin = _scale_pin(steps, index)
    if pin is None:
        # a shadow gets pods for the mirrored share; an A/B group's size is unknown: one pod
        mirrored = traffic.mirror_percent if traffic is not None and traffic.mirror_percent else 0
        wanted = replicas_for_weight(spec.replicas, max(weight, mirrored))
    elif pin.replicas is not None:
        wanted = pin.replicas
    else:
        wanted = replicas_for_weight(spec.replicas, pin.weight or 0)
    if max(weight, st.weight) > 0 or traffic is not None or st.traffic is not None:
        wanted = max(wanted, 1)
    limit = surge_limit(spec)
    return wanted if limit is None else min(wanted, limit)


def stable_target(spec: ModelDeploymentSpec, st: RolloutState) -> int:
    """Stable replicas: full behind a Gateway; with the replicas router the stable gives up the
    pods the applied weight moved to the canary. Capped so the canary fits the GPU budget."""
    if st.aborted:
        return spec.replicas
    soft = spec.replicas
    if spec.rollout.traffic_routing.kind == "replicas":
        soft = max(0, spec.replicas - replicas_for_weight(spec.replicas, st.weight))
    return capped_stable(soft, canary_target(spec, st), surge_limit(spec))


def targets(ctx: Pass, st: RolloutState, stable: str) -> list[tuple[str, int]]:
    if st.aborted:
        return [(stable, ctx.spec.replicas)]
    return [(stable, stable_target(ctx.spec, st)), (st.revision, canary_target(ctx.spec, st))]


def hold_others(ctx: Pass, st: RolloutState) -> bool:
    return False


def active_analysis(spec: ModelDeploymentSpec, st: RolloutState) -> AnalysisStep | None:
    step = _current(spec, st)
    return step.analysis if step is not None else None


def waiting_for_promote(spec: ModelDeploymentSpec, st: RolloutState) -> bool:
    step = _current(spec, st)
    return step is not None and step.pause is not None and step.pause.duration is None


def current_step(spec: ModelDeploymentSpec, st: RolloutState) -> int | None:
    return None if st.aborted else min(st.step_index, len(_steps(spec)))


def canary_weight(st: RolloutState) -> int:
    return 0 if st.aborted else st.weight


def progress(ctx: Pass, st: RolloutState) -> tuple[str, str]:
    """Reason and message of the Progressing condition: ``step 3/6: setWeight 25``."""
    ready = f"canary {ctx.ready(st.revision)}/{canary_target(ctx.spec, st)} ready"
    if st.stage == PROMOTING:
        return "Promoting", f"promoting {short(st.revision)}: {ready}, weight {st.weight}"
    step = _current(ctx.spec, st)
    total = len(_steps(ctx.spec))
    what = describe_step(step) if step is not None else "done"
    return "CanaryStep", f"step {st.step_index + 1}/{total}: {what} ({ready}, weight {st.weight})"


def start(ctx: Pass, revision: str, stable: str) -> RolloutState:
    state = RolloutState(revision=revision, strategy="canary", stage=STEPS, step_started_at=ctx.stamp)
    return _enter(ctx, state, 0)


def undo_traffic(ctx: Pass, st: RolloutState, stable: str) -> None:
    """All traffic back to the stable revision, at once (an A/B rule or a mirror goes too)."""
    ctx.act(SetWeight(stable, None, 0))
    if st.traffic is not None and st.traffic.mirror_percent is not None:
        ctx.event(
            "Warning",
            "ShadowFailed",
            f"shadow of {short(st.revision)} removed: no user request ever reached it "
            f"({st.traffic.mirror_percent}% mirrored, answers discarded)",
        )
    elif st.traffic is not None and st.traffic.matches:
        ctx.event("Warning", "ABTestFailed", f"A/B route to {short(st.revision)} removed")


def next_wakeup(spec: ModelDeploymentSpec, st: RolloutState, now: datetime) -> float | None:
    """Seconds until a timed pause ends (``None`` when no timer runs)."""
    step = _current(spec, st)
    if st.paused or step is None or step.pause is None or step.pause.duration is None:
        return None
    return seconds_left(st.step_started_at, parse_duration(step.pause.duration), now)


# --- the machine ---------------------------------------------------------------------------------


def advance(ctx: Pass, st: RolloutState, stable: str) -> Outcome:
    """Walk as far as the observations allow this pass (several steps when nothing waits)."""
    for _ in range(len(_steps(ctx.spec)) + 2):
        if st.aborted or (st.paused and not _promotable(ctx, st)):
            return Outcome(st)
        ctx.at = st
        outcome = _once(ctx, st, stable)
        if outcome.promoted or outcome.state is None or outcome.state == st:
            return outcome
        st = outcome.state
    return Outcome(st)


def _promotable(ctx: Pass, st: RolloutState) -> bool:
    """A pending ``promote`` skips the current step unless it is an analysis."""
    step = _current(ctx.spec, st)
    return ctx.pending_promote is not None and step is not None and step.analysis is None


def _once(ctx: Pass, st: RolloutState, stable: str) -> Outcome:
    if st.stage == PROMOTING:
        return _promote(ctx, st, stable)
    step = _current(ctx.spec, st)
    if step is None:
        return Outcome(_enter(ctx, st, len(_steps(ctx.spec))))
    if _promotable(ctx, st):
        ctx.take_promote()
        ctx.event(
            "Normal", "StepPromoted", f"step {st.step_index + 1} ({describe_step(step)}) skipped by promote"
        )
        return Outcome(_next(ctx, st.model_copy(update={"paused": False, "pause_reason": None})))
    if step.set_weight is not None:
        return Outcome(_set_weight(ctx, st, stable, step.set_weight))
    if step.set_match is not None or step.set_mirror is not None:
        return Outcome(_set_traffic(ctx, st, stable))
    if step.pause is not None:
        done = step.pause.duration is not None and seconds_since(
            st.step_started_at, ctx.now
        ) >= parse_duration(step.pause.duration)
        return Outcome(_next(ctx, st) if done else st)
    if step.analysis is not None:
        return Outcome(_analyse(ctx, st, stable, step.analysis))
    return Outcome(_next(ctx, st) if ctx.ready(st.revision) >= canary_target(ctx.spec, st) else st)


def _set_weight(ctx: Pass, st: RolloutState, stable: str, weight: int) -> RolloutState:
    """Apply the weight once the canary's pods are ready (lowering it never waits)."""
    needed = canary_target(ctx.spec, st)
    ready = ctx.ready(st.revision)
    session = _session(ctx, st, weight)
    if weight != st.weight or st.traffic != session:
        if weight > st.weight and (ready < needed or ready == 0):
            return st
        ctx.act(SetWeight(stable, st.revision, weight, session))
        ctx.event(
            "Normal", "WeightChanged", f"canary {short(st.revision)} at {weight}% ({ready}/{needed} ready)"
        )
        st = st.model_copy(update={"weight": weight, "traffic": session, "shadow": _shadow_left(st)})
    return _next(ctx, st) if ready >= canary_target(ctx.spec, st) else st


def _session(ctx: Pass, st: RolloutState, weight: int) -> CanaryTraffic | None:
    """With sessionAffinity, a weighted step's canary answers set a cookie that keeps the user there."""
    affinity = ctx.spec.rollout.canary.session_affinity
    if affinity is None or not 0 < weight < 100 or ctx.spec.rollout.traffic_routing.kind != "gatewayAPI":
        return None
    cookie = SessionCookie(
        name=affinity.cookie_name, value=st.revision, max_age_seconds=int(parse_duration(affinity.max_age))
    )
    return CanaryTraffic(session=cookie)


def _set_traffic(ctx: Pass, st: RolloutState, stable: str) -> RolloutState:
    """An A/B match or a shadow mirror, live weight 0, once the canary's pods are ready."""
    wanted = target_traffic(_steps(ctx.spec), st.step_index)
    assert wanted is not None
    if ctx.spec.rollout.traffic_routing.kind != "gatewayAPI":  # e.g. steps from a rollout policy
        ctx.event("Warning", "StepSkipped", "setMatch and setMirror need trafficRouting.gatewayAPI")
        return _next(ctx, st)
    needed = canary_target(ctx.spec, st)
    ready = ctx.ready(st.revision)
    if wanted != st.traffic or st.weight != 0:
        if ready < needed or ready == 0:
            return st
        ctx.act(SetWeight(stable, st.revision, 0, wanted))
        rev = short(st.revision)
        if wanted.mirror_percent is not None:
            message = (
                f"shadow: {wanted.mirror_percent}% of live requests mirrored to {rev}, answers discarded"
            )
            ctx.event("Normal", "ShadowStarted", f"{message}; live weight 0 ({ready}/{needed} ready)")
        else:
            message = (
                f"A/B: requests matching {len(wanted.matches)} match(es) go to {rev}, the rest to stable"
            )
            ctx.event("Normal", "ABTestStarted", f"{message} ({ready}/{needed} ready)")
        shadow = "Running" if wanted.mirror_percent is not None else _shadow_left(st)
        st = st.model_copy(update={"weight": 0, "traffic": wanted, "shadow": shadow})
    return _next(ctx, st) if ready >= needed else st


def _shadow_left(st: RolloutState) -> str | None:
    """The shadow verdict once its mirror is taken out: a running shadow left without one has none."""
    return None if st.shadow == "Running" else st.shadow


def _analyse(ctx: Pass, st: RolloutState, stable: str, step: AnalysisStep) -> RolloutState:
    st, passed = judge_analysis(ctx, st, stable, step, undo_traffic)
    shadowing = st.traffic is not None and st.traffic.mirror_percent is not None
    if shadowing and passed:
        ctx.event("Normal", "ShadowPassed", f"shadow of {short(st.revision)} passed its analysis")
        st = st.model_copy(update={"shadow": "Passed"})
    return _next(ctx, st) if passed else st


def _next(ctx: Pass, st: RolloutState) -> RolloutState:
    steps = _steps(ctx.spec)
    done = st.step_index
    following = done + 1
    if following >= len(steps):
        message = f"all {len(steps)} steps done; promoting {short(st.revision)}"
    else:
        message = (
            f"step {done + 1}/{len(steps)} done; step {following + 1}: {describe_step(steps[following])}"
        )
    ctx.event("Normal", "StepAdvanced", message)
    return _enter(ctx, st, following)


def _enter(ctx: Pass, st: RolloutState, index: int) -> RolloutState:
    steps = _steps(ctx.spec)
    promoting = index >= len(steps)
    analysis = not promoting and steps[index].analysis is not None
    return st.model_copy(
        update={
            "step_index": min(index, len(steps)),
            "stage": PROMOTING if promoting else STEPS,
            "step_started_at": ctx.stamp,
            "analysis": fresh_counters(ctx) if analysis else None,
        }
    )


def _promote(ctx: Pass, st: RolloutState, stable: str) -> Outcome:
    """Canary at full size and ready -> 100% to it, and it becomes the stable revision."""
    if not ctx.full(st.revision):
        return Outcome(st)
    if ctx.spec.replicas > 0:
        ctx.act(SetWeight(stable, st.revision, 100))
    ctx.act(SetWeight(st.revision, None, 0))
    ctx.event(
        "Normal",
        "RolloutPromoted",
        f"revision {short(st.revision)} promoted: 100% traffic, {ctx.ready(st.revision)} ready; "
        f"replaces {short(stable)}",
    )
    return Outcome(None, promoted=True)
