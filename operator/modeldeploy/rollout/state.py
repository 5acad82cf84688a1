"""The working memory of one decision pass and the transitions both strategies share."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from modeldeploy.api.common import parse_duration
from modeldeploy.api.spec import Analysis, AnalysisStep, ModelDeploymentSpec
from modeldeploy.api.status import (
    AnalysisCounters,
    Decision,
    Measurement,
    ModelDeploymentStatus,
    RolloutState,
)
from modeldeploy.rollout import record
from modeldeploy.rollout.assessment import assess, culprit, describe
from modeldeploy.rollout.timefmt import rfc3339, seconds_since
from modeldeploy.rollout.types import Action, EmitEvent, EventType, Observations, RevisionObservation

# Stage names persisted in status.rollout.stage.
STEPS = "Steps"
PROMOTING = "Promoting"
PREVIEW = "Preview"
PRE_PROMOTION = "PrePromotion"
AWAITING_PROMOTION = "AwaitingPromotion"
POST_PROMOTION = "PostPromotion"
SCALE_DOWN = "ScaleDown"

_ABSENT = RevisionObservation(replicas=0)


def clip(text: str, limit: int) -> str:
    """``text`` shortened to fit a bounded status field."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def short(revision: str | None) -> str:
    return (revision or "-")[:10]


@dataclass(frozen=True)
class Outcome:
    """Where a strategy's machine left the rollout: ``state`` (``None``: cleared) and, when the
    rollout's revision just became the stable one, ``promoted``."""

    state: RolloutState | None
    promoted: bool = False


@dataclass
class Pass:
    """Inputs of one pass plus what it has decided so far (routing actions, events, decision).

    ``at`` is where the rollout stands while the pass decides (the machines move it step by
    step); each Event is named after it (:mod:`modeldeploy.rollout.record`). ``attempts`` counts
    the rollouts started, this pass's included.
    """

    spec: ModelDeploymentSpec
    stored: ModelDeploymentStatus
    obs: Observations
    now: datetime
    stamp: str
    at: RolloutState | None = None
    attempts: int = 0
    actions: list[Action] = field(default_factory=list)
    decision: Decision | None = None
    pending_promote: str | None = None
    results: Sequence[Measurement] = ()
    told: Counter[tuple[str, str]] = field(default_factory=Counter)

    @classmethod
    def begin(
        cls, spec: ModelDeploymentSpec, stored: ModelDeploymentStatus, obs: Observations, now: datetime
    ) -> Pass:
        rollout = stored.rollout
        attempts = max(stored.rollout_attempts or 0, (rollout.attempt or 0) if rollout else 0)
        return cls(spec, stored, obs, now, rfc3339(now), at=rollout, attempts=attempts)

    def number(self, st: RolloutState) -> RolloutState:
        """``st`` as the next rollout attempt."""
        self.attempts += 1
        return st.model_copy(update={"attempt": self.attempts})

    @property
    def analysis(self) -> Analysis:
        return self.spec.rollout.analysis

    def observed(self, revision: str) -> RevisionObservation:
        return self.obs.revisions.get(revision, _ABSENT)

    def ready(self, revision: str) -> int:
        return self.observed(revision).ready_replicas

    def full(self, revision: str) -> bool:
        """All ``spec.replicas`` pods of the revision are ready (at least one when replicas > 0)."""
        return self.ready(revision) >= self.spec.replicas

    def act(self, action: Action) -> None:
        self.actions.append(action)

    def event(self, kind: EventType, reason: str, message: str) -> None:
        """Emit an event named after where the rollout stands; the latest one becomes
        ``status.lastDecision``."""
        command = self.obs.command.id if self.obs.command is not None else ""
        where = record.position(self.stored, self.at, self.obs.desired_revision, command, reason)
        nth = self.told[(where, reason)]
        self.told[(where, reason)] += 1
        self.actions.append(EmitEvent(kind, reason, clip(message, 1024), record.identity(where, reason, nth)))
        self.decision = Decision(action=reason, reason=clip(message, 1024), at=self.stamp)

    def take_promote(self) -> bool:
        """Consume a pending ``promote`` command (each applies to one step at most)."""
        taken = self.pending_promote is not None
        self.pending_promote = None
        return taken


def finished(st: RolloutState, stable: str) -> bool:
    """A blue-green rollout whose revision is already stable (only the old colour is left)."""
    return st.stage == SCALE_DOWN and st.revision == stable and not st.aborted


def fresh_counters(ctx: Pass) -> AnalysisCounters:
    return AnalysisCounters(started_at=ctx.stamp)


def counters(ctx: Pass, st: RolloutState) -> AnalysisCounters:
    return st.analysis if st.analysis is not None else fresh_counters(ctx)


def pause(ctx: Pass, st: RolloutState, reason: str, event_reason: str) -> RolloutState:
    ctx.event("Warning", event_reason, f"rollout of {short(st.revision)} paused: {reason}")
    return st.model_copy(update={"paused": True, "pause_reason": clip(reason, 512)})


def mark_aborted(ctx: Pass, st: RolloutState, reason: str) -> RolloutState:
    """The rollout stays aborted for its revision until ``retry`` or a new revision; an A/B rule or a
    shadow mirror is gone with the traffic (a shadow that was running is ``Failed``)."""
    shadowing = st.traffic is not None and st.traffic.mirror_percent is not None
    return st.model_copy(
        update={
            "traffic": None,
            "shadow": "Failed" if shadowing else st.shadow,
            "aborted": True,
            "abort_reason": clip(reason, 1024),
            "paused": False,
            "pause_reason": None,
            "weight": 0,
            "canary_replicas": 0,
        }
    )


def failure_message(ctx: Pass, c: AnalysisCounters, stable: str) -> str:
    """``guardrail error-rate: 0.083 (rule <= 0.01) failed 2/2 — rolling back to 6b7f9c``."""
    bad = culprit(ctx.results, "Failed")
    what = describe(bad) if bad is not None else "analysis"
    return f"{what} failed {c.failures}/{ctx.analysis.failure_limit} — rolling back to {short(stable)}"


def pause_message(ctx: Pass, reason: str) -> str:
    """The assessment's reason plus the guardrail result that made the pass inconclusive."""
    worst = culprit(ctx.results, "Error") or culprit(ctx.results, "Inconclusive")
    return f"{reason}: {describe(worst)}" if worst is not None else reason


Undo = Callable[[Pass, RolloutState, str], None]


def judge_analysis(
    ctx: Pass, st: RolloutState, stable: str, step: AnalysisStep, undo: Undo
) -> tuple[RolloutState, bool]:
    """Apply the assessment of the active analysis: roll back (via ``undo``), pause, or report
    ``passed``; the returned state carries the counters."""
    c = counters(ctx, st)
    verdict = assess(c, ctx.analysis, seconds_since(c.started_at, ctx.now), parse_duration(step.duration))
    st = st.model_copy(update={"analysis": c})
    if verdict.outcome == "fail":
        undo(ctx, st, stable)
        message = failure_message(ctx, c, stable)
        ctx.event("Warning", "RolledBack", message)
        return mark_aborted(ctx, st, message), False
    if verdict.outcome == "pause":
        errors = c.consecutive_errors >= ctx.analysis.consecutive_error_limit
        event = "AnalysisError" if errors else "InconclusiveAnalysis"
        return pause(ctx, st, pause_message(ctx, verdict.reason), event), False
    if verdict.outcome == "pass":
        ctx.event("Normal", "AnalysisPassed", f"{short(st.revision)}: {verdict.reason}")
        return st, True
    return st, False
