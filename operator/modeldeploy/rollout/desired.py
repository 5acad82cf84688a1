"""The desired children of a ModelDeployment, from its spec and the status a pass decided.

Pure builders the shell applies (server-side apply of what differs from the live object):

* per revision: its ConfigMap and Deployment, built from the pod template that revision was made
  from (:func:`revision_templates`: the spec for the desired revision, ``status.stableTemplate``
  for a stable one the spec no longer describes);
* level, not edges: every revision in use keeps its workload at the size last asked for, so a
  Deployment deleted or edited by hand comes back (:func:`releveled`);
* shared: the Services, the route request and the HPA (:func:`shared_objects`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from modeldeploy.api.canary import CanaryTraffic
from modeldeploy.api.spec import ModelDeploymentSpec, RevisionTemplate
from modeldeploy.api.status import ModelDeploymentStatus
from modeldeploy.children import BuildSettings, OwnerInfo, build_configmap, build_deployment, build_hpa
from modeldeploy.children import build_service as service
from modeldeploy.rollout.observed import ObservedChildren
from modeldeploy.rollout.types import Action, DeleteRevision, ScaleRevision
from modeldeploy.routers.replicas import main_service_revision
from modeldeploy.runtimes import get_runtime
from modeldeploy.runtimes.base import Runtime

Body = dict[str, Any]


def _template_fields(t: RevisionTemplate) -> dict[str, Any]:
    return {
        "runtime": t.runtime,
        "image": t.image,
        "model": t.model,
        "resources": t.resources,
        "service_account_name": t.service_account_name,
        "disable_auth": t.disable_auth,
    }


def revision_templates(
    spec: ModelDeploymentSpec, desired: str, *statuses: ModelDeploymentStatus
) -> dict[str, ModelDeploymentSpec]:
    """Revision -> a spec that builds exactly that revision's pods (stable ones from ``statuses``)."""
    out = {desired: spec}
    for st in statuses:
        if st.stable_template is not None and st.stable_revision and st.stable_revision not in out:
            out[st.stable_revision] = spec.model_copy(update=_template_fields(st.stable_template))
    return out


def revisions_in_use(status: ModelDeploymentStatus) -> list[str]:
    """The stable revision and the one rolling out (unless its rollout was aborted)."""
    out = [status.stable_revision] if status.stable_revision else []
    r = status.rollout
    if r is not None and not r.aborted and r.revision not in out:
        out.append(r.revision)
    return out


def revisions_serving(spec: ModelDeploymentSpec, status: ModelDeploymentStatus) -> list[str]:
    """Revisions that receive client traffic (blue-green: only the active colour)."""
    r = status.rollout
    if spec.rollout.strategy == "blueGreen" and r is not None and not r.aborted:
        return [r.revision] if r.switched_at else [status.stable_revision] if status.stable_revision else []
    return revisions_in_use(status)


def level_replicas(spec: ModelDeploymentSpec, status: ModelDeploymentStatus, revision: str) -> int:
    """The size the rollout last asked for ``revision``."""
    r = status.rollout
    if r is not None and not r.aborted:
        return r.canary_replicas if revision == r.revision else r.stable_replicas
    return spec.replicas


def releveled(
    spec: ModelDeploymentSpec,
    status: ModelDeploymentStatus,
    templates: Mapping[str, ModelDeploymentSpec],
    actions: Sequence[Action],
    observed: ObservedChildren,
) -> list[ScaleRevision]:
    """Workloads of revisions in use that the plan does not touch, at their live size (the size last
    asked for when missing). Revisions no longer in use (an aborted canary, a replaced stable) are
    only ever scaled down and deleted by the rollout, never re-created here."""
    touched = {a.revision for a in actions if isinstance(a, ScaleRevision | DeleteRevision)}
    out = []
    for revision in revisions_in_use(status):
        if revision in touched or revision not in templates:
            continue
        live = observed.live_replicas(revision)
        out.append(
            ScaleRevision(revision, live if live is not None else level_replicas(spec, status, revision))
        )
    return out


def revision_objects(
    owner: OwnerInfo, template: ModelDeploymentSpec, revision: str, replicas: int, build: BuildSettings
) -> list[Body]:
    """The ConfigMap and the Deployment of one revision (ConfigMap first: the pods mount it)."""
    runtime = get_runtime(template.runtime)
    return [
        build_configmap(owner, template, revision, runtime),
        build_deployment(owner, template, revision, replicas, runtime, build),
    ]


def active_services(
    owner: OwnerInfo, spec: ModelDeploymentSpec, runtime: Runtime, revision: str
) -> list[Body]:
    """Services that send production traffic to ``revision`` (blue-green's switch)."""
    out = [service(owner, None, runtime, revision)]
    if spec.rollout.strategy == "blueGreen":
        out.append(service(owner, "active", runtime, revision))
    return out


def preview_services(owner: OwnerInfo, runtime: Runtime, revision: str) -> list[Body]:
    return [service(owner, "preview", runtime, revision)]


@dataclass(frozen=True)
class RouteRequest:
    """What the router must realise: ``weight``% to ``canary`` (and its A/B rule or mirror)."""

    stable: str
    canary: str | None
    weight: int
    traffic: CanaryTraffic | None = None


@dataclass(frozen=True)
class SharedObjects:
    services: list[Body]
    route: RouteRequest | None  # gatewayAPI: the HTTPRoute's weights; None: nothing to route
    hpa: Body | None  # None: no HPA wanted (one the operator made is deleted)


def shared_objects(
    owner: OwnerInfo, spec: ModelDeploymentSpec, runtime: Runtime, status: ModelDeploymentStatus
) -> SharedObjects | None:
    """Services, route and HPA for the decided status; None before there is a stable revision."""
    stable = status.stable_revision
    if stable is None:
        return None
    rollout = status.rollout
    live = rollout if rollout is not None and not rollout.aborted else None
    hpa = build_hpa(owner, spec) if spec.autoscaling is not None else None
    if spec.rollout.strategy == "blueGreen":
        switched = live is not None and live.switched_at is not None
        active = live.revision if switched and live is not None else stable
        preview = live.revision if live is not None else active
        services = [
            service(owner, None, runtime, active),
            service(owner, "active", runtime, active),
            service(owner, "preview", runtime, preview),
        ]
        return SharedObjects(services, None, hpa)
    canary = live.revision if live is not None else None
    weight = live.weight if live is not None else 0
    services = [service(owner, None, runtime, main_service_revision(stable, canary, weight))]
    route = None
    if spec.rollout.traffic_routing.kind == "gatewayAPI":
        services.append(service(owner, "stable", runtime, stable))
        services.append(service(owner, "canary", runtime, canary or stable))
        route = RouteRequest(stable, canary, weight, live.traffic if live is not None else None)
    return SharedObjects(services, route, hpa)
