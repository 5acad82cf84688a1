"""What the plugin shows, computed from the API's JSON (pure: no I/O, no terminal).

``summary`` is one ``list`` row; ``detail`` is everything ``get`` shows (revisions with their pods,
weights, step progress, each guardrail's last value against its threshold, the last decisions);
``outcome`` says when ``get --watch`` is done and with which exit code. Each view has ``as_dict`` for
``-o json|yaml``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from modeldeploy.analysis.evaluate import threshold_text
from modeldeploy.api.spec import Rollout
from modeldeploy.children import labels
from modeldeploy.cli.errors import EXIT_DEGRADED, EXIT_OK, EXIT_ROLLED_BACK
from modeldeploy.rollout.canary import describe_step

Body = Mapping[str, Any]


def parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def age(since: datetime | None, now: datetime) -> str:
    """kubectl's style: ``45s``, ``3m12s``, ``2h5m``, ``3d4h``; ``-`` when unknown."""
    if since is None:
        return "-"
    seconds = max(0, int((now - since).total_seconds()))
    if seconds < 120:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds}s" if minutes < 10 and seconds else f"{minutes}m"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h{minutes}m" if minutes else f"{hours}h"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours}h" if hours and days < 8 else f"{days}d"


def status_of(md: Body) -> Body:
    return md.get("status") or {}


def rollout_spec(md: Body) -> Rollout:
    """The spec's rollout settings with the operator's own defaults filled in."""
    try:
        return Rollout.model_validate((md.get("spec") or {}).get("rollout") or {})
    except ValidationError:
        return Rollout()


# --- list ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Summary:
    namespace: str
    name: str
    phase: str
    step: str  # "2/4", "Promoting", a blue-green stage, or "-"
    weight: int
    stable: str | None
    canary: str | None
    last_decision: str | None
    decided_at: str | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def in_flight(md: Body) -> bool:
    """A rollout is in progress (not aborted, not complete): what promote/pause/abort act on."""
    return bool(status_of(md).get("canaryRevision"))


def step_text(md: Body) -> str:
    status = status_of(md)
    rollout = status.get("rollout") or {}
    if not in_flight(md):
        return "-"
    if rollout.get("strategy") == "blueGreen":
        return str(rollout.get("stage") or "-")
    total = len(rollout_spec(md).canary.steps)
    current = status.get("currentStep")
    if current is None:
        current = rollout.get("stepIndex", 0)
    if current >= total:
        return "Promoting"
    return f"{current + 1}/{total}"


def summary(md: Body) -> Summary:
    meta, status = md.get("metadata") or {}, status_of(md)
    decision = status.get("lastDecision") or {}
    return Summary(
        namespace=meta.get("namespace", ""),
        name=meta.get("name", ""),
        phase=status.get("phase") or "Pending",
        step=step_text(md),
        weight=int(status.get("canaryWeight") or 0),
        stable=status.get("stableRevision"),
        canary=status.get("canaryRevision"),
        last_decision=decision.get("action"),
        decided_at=decision.get("at"),
    )


# --- get -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StepView:
    number: int
    text: str
    state: str  # done | current | pending


@dataclass(frozen=True)
class PodView:
    name: str
    status: str
    ready: str
    restarts: int
    created: str | None


@dataclass(frozen=True)
class RevisionView:
    revision: str
    role: str  # stable | canary | rolled-back | old
    weight: int
    replicas: str  # ready/desired of its Deployment
    pods: list[PodView] = field(default_factory=list)


@dataclass(frozen=True)
class GuardrailView:
    name: str
    threshold: str
    value: float | None
    stable_value: float | None
    verdict: str | None  # None: not measured yet for this revision
    at: str | None
    message: str


@dataclass(frozen=True)
class DecisionView:
    at: str | None
    type: str
    reason: str
    message: str


@dataclass(frozen=True)
class Detail:
    summary: Summary
    strategy: str
    paused_reason: str | None
    abort_reason: str | None
    model_version: str | None
    ready: str
    steps: list[StepView]
    revisions: list[RevisionView]
    guardrails: list[GuardrailView]
    decisions: list[DecisionView]
    conditions: list[dict[str, Any]]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def steps(md: Body) -> list[StepView]:
    """Canary steps with done/current/pending (all done once the rollout promotes or no rollout runs)."""
    status = status_of(md)
    rollout = status.get("rollout") or {}
    current = rollout.get("stepIndex", 0) if in_flight(md) else None
    out = []
    for i, step in enumerate(rollout_spec(md).canary.steps):
        if current is None:
            state = "pending" if rollout.get("aborted") else "done"
        else:
            state = "done" if i < current else "current" if i == current else "pending"
        out.append(StepView(i + 1, describe_step(step), state))
    return out


def pod_view(pod: Body) -> PodView:
    meta, status = pod.get("metadata") or {}, pod.get("status") or {}
    containers = status.get("containerStatuses") or []
    total = len((pod.get("spec") or {}).get("containers") or []) or len(containers)
    ready = sum(1 for c in containers if c.get("ready"))
    waiting = next(
        (c["state"]["waiting"].get("reason") for c in containers if (c.get("state") or {}).get("waiting")),
        None,
    )
    phase = "Terminating" if meta.get("deletionTimestamp") else waiting or status.get("phase") or "Pending"
    return PodView(
        name=meta.get("name", ""),
        status=phase,
        ready=f"{ready}/{total}",
        restarts=sum(int(c.get("restartCount") or 0) for c in containers),
        created=meta.get("creationTimestamp"),
    )


def revisions(md: Body, deployments: Sequence[Body], pods: Sequence[Body]) -> list[RevisionView]:
    """One entry per revision that has a Deployment or pods: stable first, then the canary."""
    status = status_of(md)
    stable, canary = status.get("stableRevision"), status.get("canaryRevision")
    rollout = status.get("rollout") or {}
    weight = int(status.get("canaryWeight") or 0)
    by_revision: dict[str, dict[str, Any]] = {}
    for d in deployments:
        rev = ((d.get("metadata") or {}).get("labels") or {}).get(labels.REVISION)
        if rev:
            ready = int((d.get("status") or {}).get("readyReplicas") or 0)
            desired = int((d.get("spec") or {}).get("replicas") or 0)
            by_revision.setdefault(rev, {"pods": []})["replicas"] = f"{ready}/{desired}"
    for p in pods:
        rev = ((p.get("metadata") or {}).get("labels") or {}).get(labels.REVISION)
        if rev:
            by_revision.setdefault(rev, {"pods": []})["pods"].append(pod_view(p))
    for rev in (stable, canary):
        if rev:
            by_revision.setdefault(rev, {"pods": []})

    def role(rev: str) -> str:
        if rev == canary:
            return "canary"
        if rev == stable:
            return "stable"
        return "rolled-back" if rollout.get("aborted") and rollout.get("revision") == rev else "old"

    def traffic(rev: str) -> int:
        if rev == canary:
            return weight
        return 100 - weight if rev == stable else 0

    order = {"stable": 0, "canary": 1, "rolled-back": 2, "old": 3}
    return [
        RevisionView(
            revision=rev,
            role=role(rev),
            weight=traffic(rev),
            replicas=entry.get("replicas", "-"),
            pods=sorted(entry["pods"], key=lambda pod: pod.name),
        )
        for rev, entry in sorted(by_revision.items(), key=lambda kv: (order[role(kv[0])], kv[0]))
    ]


def guardrails(md: Body) -> list[GuardrailView]:
    """Each guardrail of the spec with its latest measurement of the revision under analysis."""
    status = status_of(md)
    rollout = status.get("rollout") or {}
    history = status.get("measurements") or []
    latest = history[-1].get("revision") if history else None  # after a promotion: the new stable's
    revision = status.get("canaryRevision") or rollout.get("revision") or latest
    measured = [m for m in history if m.get("revision") == revision]
    out = []
    for g in rollout_spec(md).analysis.guardrails:
        last = next((m for m in reversed(measured) if m.get("guardrail") == g.name), None) or {}
        out.append(
            GuardrailView(
                name=g.name,
                threshold=last.get("threshold") or threshold_text(g),
                value=last.get("value"),
                stable_value=last.get("stableValue"),
                verdict=last.get("verdict"),
                at=last.get("at"),
                message=last.get("message") or "",
            )
        )
    return out


def event_time(event: Body) -> str:
    return str(
        event.get("lastTimestamp")
        or event.get("eventTime")
        or event.get("firstTimestamp")
        or (event.get("metadata") or {}).get("creationTimestamp")
        or ""
    )


def event_order(event: Body) -> tuple[str, int]:
    """Oldest first. Events of one reconcile share a second; the resourceVersion etcd gave each at
    creation breaks the tie in the order they were written."""
    rv = str((event.get("metadata") or {}).get("resourceVersion") or "0")
    return event_time(event), int(rv) if rv.isdigit() else 0


def own_events(md: Body, events: Sequence[Body]) -> list[Body]:
    """The ModelDeployment's events (not those of an earlier object of the same name), oldest first."""
    uid = (md.get("metadata") or {}).get("uid")
    mine = [e for e in events if not uid or (e.get("involvedObject") or {}).get("uid") in (uid, "", None)]
    return sorted(mine, key=event_order)


def decisions(md: Body, events: Sequence[Body], limit: int = 6) -> list[DecisionView]:
    """The latest decisions, newest first: the operator's events, else ``status.lastDecision``."""
    views = [
        DecisionView(event_time(e), e.get("type") or "Normal", e.get("reason") or "", e.get("message") or "")
        for e in own_events(md, events)
        if e.get("action") != "Apply"  # children created or restored: bookkeeping, not decisions
    ]
    last = status_of(md).get("lastDecision")
    if last and not any(v.reason == last.get("action") and v.message == last.get("reason") for v in views):
        views.append(DecisionView(last.get("at"), "Normal", last.get("action", ""), last.get("reason", "")))
    newest_first: list[DecisionView] = []
    for view in reversed(views):  # the same decision told twice (a retried write) shows once
        if not any((v.reason, v.message) == (view.reason, view.message) for v in newest_first):
            newest_first.append(view)
    return newest_first[:limit]


def detail(md: Body, deployments: Sequence[Body], pods: Sequence[Body], events: Sequence[Body]) -> Detail:
    status = status_of(md)
    rollout = status.get("rollout") or {}
    return Detail(
        summary=summary(md),
        strategy=rollout_spec(md).strategy,
        paused_reason=rollout.get("pauseReason") if rollout.get("paused") else None,
        abort_reason=rollout.get("abortReason") if rollout.get("aborted") else None,
        model_version=status.get("modelVersion"),
        ready=status.get("ready") or "0/0",
        steps=steps(md),
        revisions=revisions(md, deployments, pods),
        guardrails=guardrails(md),
        decisions=decisions(md, events),
        conditions=list(status.get("conditions") or []),
    )


# --- watch ---------------------------------------------------------------------------------------


def observed(md: Body) -> bool:
    """The operator has acted on the latest spec (else status still describes an older one)."""
    generation = (md.get("metadata") or {}).get("generation")
    seen = status_of(md).get("observedGeneration")
    return generation is None or (seen is not None and seen >= generation)


def outcome(md: Body) -> int | None:
    """The exit code of ``get --watch`` once the rollout has an outcome; None while it goes on."""
    if not observed(md):
        return None
    phase = status_of(md).get("phase")
    if phase == "RolledBack":
        return EXIT_ROLLED_BACK
    if phase == "Degraded":
        return EXIT_DEGRADED
    if phase == "Healthy" and not in_flight(md):
        return EXIT_OK
    return None


def now_utc() -> datetime:
    return datetime.now(UTC)
