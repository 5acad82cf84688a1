"""The status a pass stores: the decided status summarised with what the children show.

After the shell applied a plan it re-observes the children and :func:`summarize` adds what only the
cluster can tell: replica counts, the ``Ready`` and ``Degraded`` conditions, the phase a problem
turns it into, the canary weight the router really reached, the stable revision's pod template.
:func:`status_patch` is the JSON merge patch from the stored status to that one (empty: no write).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from modeldeploy.api.spec import ModelDeploymentSpec, RevisionTemplate
from modeldeploy.api.status import ModelDeploymentStatus
from modeldeploy.children import OwnerInfo, selector_all, selector_string
from modeldeploy.kube.diff import merge_patch
from modeldeploy.rollout.conditions import set_condition
from modeldeploy.rollout.desired import revisions_in_use, revisions_serving
from modeldeploy.rollout.gate import Blocker
from modeldeploy.rollout.observed import ObservedChildren
from modeldeploy.rollout.pod_health import revision_problem
from modeldeploy.routers import ObservedTraffic, get_router

Body = dict[str, Any]


def parse_status(raw: Mapping[str, Any]) -> ModelDeploymentStatus | None:
    """The stored status, or None when it cannot be read (the pass starts from an empty one)."""
    try:
        return ModelDeploymentStatus.model_validate(raw)
    except ValidationError:
        return None


def status_patch(stored: Mapping[str, Any], new: ModelDeploymentStatus) -> Body:
    """The JSON merge patch from the stored status to ``new`` ({}: nothing to write)."""
    old = parse_status(stored)
    return merge_patch(old.wire() if old is not None else dict(stored), new.wire())


@dataclass(frozen=True)
class StatusWrite:
    """A status write with its precondition: ``resource_version`` is the version the pass read, so
    the API server refuses it (409 Conflict) when anyone wrote the object since."""

    patch: Body
    resource_version: str | None


def status_write(md: Mapping[str, Any], new: ModelDeploymentStatus) -> StatusWrite | None:
    """The write that stores ``new`` over the status ``md`` was read with; None: nothing changed."""
    patch = status_patch(md.get("status") or {}, new)
    return StatusWrite(patch, md["metadata"].get("resourceVersion")) if patch else None


def validation_text(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        where = ".".join(str(p) for p in err["loc"])
        parts.append(f"spec.{where}: {err['msg']}" if where else err["msg"])
    return "; ".join(parts)


def invalid_spec(
    status: ModelDeploymentStatus, generation: int | None, exc: ValidationError, now: datetime
) -> ModelDeploymentStatus:
    """A spec the models refuse: Degraded with the reason, and nothing else changes."""
    conditions = set_condition(
        status.conditions, "Degraded", "True", "InvalidSpec", validation_text(exc), now
    )
    return status.model_copy(
        update={"observed_generation": generation, "phase": "Degraded", "conditions": conditions}
    )


def reached_weight(
    spec: ModelDeploymentSpec,
    status: ModelDeploymentStatus,
    observed: ObservedChildren,
    owner: OwnerInfo,
    route: Mapping[str, Any] | None,
) -> int:
    """The canary's traffic share as the router actually realises it (not just what was asked).

    replicas router: ready canary pods / all ready pods; gatewayAPI: the live HTTPRoute's weights.
    """
    r = status.rollout
    if spec.rollout.strategy != "canary" or r is None or r.aborted or status.stable_revision is None:
        return status.canary_weight
    traffic = ObservedTraffic(
        stable_ready=observed.ready_replicas(status.stable_revision),
        canary_ready=observed.ready_replicas(r.revision),
        route=route,
        asked_weight=r.weight,
    )
    reached = get_router(spec.rollout.traffic_routing).reached_weight(owner, traffic)
    return status.canary_weight if reached is None else reached


def _problems(
    status: ModelDeploymentStatus, observed: ObservedChildren, blockers: Sequence[Blocker]
) -> tuple[list[Blocker], list[Blocker]]:
    """(everything to report, what makes the phase Degraded). A new revision's pods that are not
    there yet (unschedulable until the GPU budget frees a device, an image still pulling) are
    reported, but the phase stays Progressing: the progress deadline decides. The stable
    revision's problems make the phase Degraded."""
    problems, degrading = [*blockers], [*blockers]
    for revision in revisions_in_use(status):
        found = revision_problem(observed.pods_of(revision))
        if found is not None:
            problems.append(Blocker(found.reason, found.message))
            if revision == status.stable_revision:
                degrading.append(problems[-1])
    return problems, degrading


def summarize(
    spec: ModelDeploymentSpec,
    status: ModelDeploymentStatus,
    observed: ObservedChildren,
    blockers: Sequence[Blocker],
    templates: Mapping[str, ModelDeploymentSpec],
    owner: OwnerInfo,
    generation: int | None,
    route: Mapping[str, Any] | None,
    now: datetime,
) -> ModelDeploymentStatus:
    """``status`` (as decided) with replica counts, conditions, phase and reached weight."""
    ready = sum(
        observed.ready_replicas(r) for r in revisions_serving(spec, status) if r in observed.deployments
    )
    problems, degrading = _problems(status, observed, blockers)
    conditions = list(status.conditions)
    if problems:
        message = "; ".join(p.message for p in problems)
        conditions = set_condition(conditions, "Degraded", "True", problems[0].reason, message, now)
    elif status.phase == "RolledBack":
        why = status.last_decision.reason if status.last_decision else "the last rollout was rolled back"
        conditions = set_condition(conditions, "Degraded", "True", "RolledBack", why, now)
    else:
        conditions = set_condition(conditions, "Degraded", "False", "AsExpected", "", now)
    serving = ready >= spec.replicas and status.stable_revision is not None
    conditions = set_condition(
        conditions,
        "Ready",
        "True" if serving else "False",
        "AllReplicasReady" if serving else "ReplicasNotReady",
        f"{ready}/{spec.replicas} replicas ready",
        now,
    )
    phase = status.phase
    if degrading and phase not in ("Paused", "RolledBack"):
        phase = "Degraded"
    elif phase == "Healthy" and not serving:
        phase = "Progressing"
    stable_template = status.stable_template
    if status.stable_revision and status.stable_revision in templates:
        stable_template = RevisionTemplate.of(templates[status.stable_revision])
    return status.model_copy(
        update={
            "observed_generation": generation,
            "phase": phase,
            "replicas": observed.total_replicas(),
            "ready_replicas": ready,
            "ready": f"{ready}/{spec.replicas}",
            "selector": selector_string(selector_all(owner.name)),
            "conditions": conditions,
            "stable_template": stable_template,
            "canary_weight": reached_weight(spec, status, observed, owner, route),
        }
    )
