"""Carrying out one pass's plan: actions, the level of every child, Events and decision log lines.

Children are server-side applied only where they differ from the live object (``kube.diff``);
every action type is handled by :meth:`Executor.execute` (``Action`` is a closed union: a new
type that is not handled here fails type-checking). Events are named by their decision's
identity, so a pass repeated after a crash records nothing twice (:mod:`modeldeploy.rollout.record`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import assert_never

from modeldeploy.api.spec import ModelDeploymentSpec
from modeldeploy.api.status import ModelDeploymentStatus
from modeldeploy.children import BuildSettings, OwnerInfo, configmap_name, deployment_name
from modeldeploy.children.labels import managed
from modeldeploy.kube.diff import needs_apply
from modeldeploy.kube.rest import CONFIGMAP, DEPLOYMENT, HPA, HTTPROUTE, Body, Kube, KubeError, kind_of
from modeldeploy.observability import API_WRITES, DECISIONS
from modeldeploy.rollout import (
    Action,
    DeleteRevision,
    EmitEvent,
    Log,
    ScaleRevision,
    SetPreview,
    SetWeight,
    SwitchActive,
)
from modeldeploy.rollout.desired import (
    RouteRequest,
    SharedObjects,
    active_services,
    preview_services,
    revision_objects,
)
from modeldeploy.rollout.gate import Blocker
from modeldeploy.rollout.observed import ObservedChildren
from modeldeploy.rollout.record import creation_is_news, event_name
from modeldeploy.routers import GatewayApiRouter, get_router
from modeldeploy.routers.gateway_api import RouteNotManageable
from modeldeploy.runtimes import get_runtime

log = logging.getLogger("modeldeploy.reconcile")
decisions_log = logging.getLogger("modeldeploy.decision")
ROUTE_PATCH_ATTEMPTS = 3


def count_write(verb: str, kind: str) -> None:
    API_WRITES.labels(verb=verb, kind=kind).inc()


class Executor:
    """Applies the plan of one pass for the ModelDeployment ``md``."""

    def __init__(
        self,
        kube: Kube,
        build: BuildSettings,
        md: Body,
        stored: ModelDeploymentStatus,
        spec: ModelDeploymentSpec,
        templates: Mapping[str, ModelDeploymentSpec],
        observed: ObservedChildren,
    ) -> None:
        """``stored``: the status the pass decided from."""
        self.kube, self.build, self.md, self.stored, self.spec = kube, build, md, stored, spec
        self.templates, self.observed = templates, observed
        self.owner = OwnerInfo.from_object(md)
        self.runtime = get_runtime(spec.runtime)
        self.problems: list[Blocker] = []  # found while executing (an HTTPRoute it cannot manage)

    def run(self, actions: Sequence[Action]) -> None:
        for action in actions:
            self.execute(action)

    def execute(self, action: Action) -> None:
        match action:
            case ScaleRevision():
                self._scale(action.revision, action.replicas)
            case DeleteRevision():
                self._delete_revision(action.revision)
            case SetWeight():
                self.route(
                    RouteRequest(
                        action.stable_revision, action.canary_revision, action.weight, action.traffic
                    )
                )
            case SwitchActive():
                for service in active_services(self.owner, self.spec, self.runtime, action.revision):
                    self.apply(service)
            case SetPreview():
                for service in preview_services(self.owner, self.runtime, action.revision):
                    self.apply(service)
            case EmitEvent():
                self._event(action)
            case Log():
                self._log(action)
            case _:
                assert_never(action)

    def shared(self, objects: SharedObjects | None) -> None:
        """Services, the route and the HPA: level-triggered from the decided status."""
        if objects is None:
            return
        for service in objects.services:
            self.apply(service)
        if objects.route is not None:
            self.route(objects.route)
        if objects.hpa is not None:
            self.apply(objects.hpa)
            return
        hpa = self.kube.get(HPA, self.owner.namespace, self.owner.name)
        if hpa is not None and managed(hpa["metadata"].get("labels")):
            count_write("delete", HPA.kind)
            self.kube.delete(HPA, self.owner.namespace, self.owner.name)

    def apply(self, desired: Body, revision: str | None = None) -> None:
        """Server-side apply when the live object differs; an Event when it was repaired, or created
        and no decision of the pass tells it (``revision``: the one a Deployment/ConfigMap is of)."""
        kind = kind_of(desired)
        meta = desired["metadata"]
        live = self.kube.get(kind, meta.get("namespace"), meta["name"])
        why = needs_apply(desired, live)
        if not why:
            return
        log.info("apply %s %s/%s", kind.kind, meta.get("namespace"), meta["name"], extra={"changed": why[:5]})
        count_write("apply", kind.kind)
        self.kube.apply(desired)
        if live is None:
            if not creation_is_news(self.stored, revision):
                return
            reason, message = "ChildCreated", f"{kind.kind} {meta['name']} created"
        elif any(path != ".spec.replicas" for path in why):
            # Someone edited it by hand, or the spec changed: either way ours is back.
            reason = "ChildUpdated"
            message = (
                f"{kind.kind} {meta['name']} updated: {', '.join(why[:3])} differed from the desired state"
            )
        else:
            return  # a rollout scaling step; the rollout's own Events tell that story
        count_write("create", "Event")
        self.kube.event(self.md, "Normal", reason, message, action="Apply")

    def route(self, request: RouteRequest) -> None:
        """Realise a weight. The operator's own HTTPRoute is applied whole; a user's gets a JSON
        patch of the fields the operator owns, guarded by a test of its resourceVersion: re-read and
        rebuilt when someone wrote first."""
        router = get_router(self.spec.rollout.traffic_routing)
        port = self.runtime.serving_port
        if not isinstance(router, GatewayApiRouter):
            for obj in router.objects(
                self.owner,
                stable_revision=request.stable,
                canary_revision=request.canary,
                weight=request.weight,
                port=port,
            ):
                self.apply(obj)
            return
        name = router.config.http_route
        for attempt in range(ROUTE_PATCH_ATTEMPTS):
            live = self.kube.get(HTTPROUTE, self.owner.namespace, name)
            try:
                update = router.route_update(
                    self.owner,
                    live,
                    stable_revision=request.stable,
                    canary_revision=request.canary,
                    weight=request.weight,
                    port=port,
                    traffic=request.traffic,
                )
            except RouteNotManageable as exc:
                problem = Blocker("HTTPRouteNotManageable", str(exc))
                if problem not in self.problems:
                    self.problems.append(problem)
                return
            if isinstance(update, dict):
                self.apply(update)
                return
            if not update:
                return
            count_write("patch", HTTPROUTE.kind)
            try:
                self.kube.request(
                    "PATCH",
                    HTTPROUTE.path(self.owner.namespace, name),
                    body=update,
                    query=[("fieldManager", self.kube.field_manager)],
                    content_type="application/json-patch+json",
                )
                return
            except KubeError as exc:  # 422: the test op failed (the route changed since it was read)
                if exc.status not in (409, 422) or attempt + 1 == ROUTE_PATCH_ATTEMPTS:
                    raise

    def _scale(self, revision: str, replicas: int) -> None:
        template = self.templates.get(revision)
        if template is not None:
            for obj in revision_objects(self.owner, template, revision, replicas, self.build):
                self.apply(obj, revision)
            return
        # A revision whose pod template is no longer known (superseded): only its size changes.
        if self.observed.live_replicas(revision) in (None, replicas):
            return
        count_write("patch", DEPLOYMENT.kind)
        self.kube.request(
            "PATCH",
            DEPLOYMENT.path(self.owner.namespace, deployment_name(self.owner.name, revision)),
            body={"spec": {"replicas": replicas}},
            content_type="application/merge-patch+json",
        )

    def _delete_revision(self, revision: str) -> None:
        names = (deployment_name(self.owner.name, revision), configmap_name(self.owner.name, revision))
        for kind, name in zip((DEPLOYMENT, CONFIGMAP), names, strict=True):
            count_write("delete", kind.kind)
            self.kube.delete(kind, self.owner.namespace, name)

    def _event(self, action: EmitEvent) -> None:
        count_write("create", "Event")
        name = event_name(self.owner.name, self.owner.uid, action.identity) if action.identity else None
        self.kube.event(self.md, action.type, action.reason, action.message, action="Rollout", name=name)

    def _log(self, action: Log) -> None:
        decided = action.fields.get("decision") or action.fields.get("actions")
        ns, name = self.owner.namespace, self.owner.name
        if decided:
            DECISIONS.labels(ns, name, str(action.fields.get("decision") or "act")).inc()
        # one INFO line per decision; passes that change nothing are DEBUG
        decisions_log.log(
            logging.INFO if decided else logging.DEBUG,
            "decision",
            extra={"namespace": ns, "md": name, "decision": dict(action.fields)},
        )
