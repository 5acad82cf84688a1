"""One reconcile pass: observe -> decide (pure) -> execute -> write status once, only if changed.

This is the imperative shell around :func:`modeldeploy.rollout.decide`. It reads the cluster and
Prometheus, hands plain data to the pure decision, turns the returned actions into API calls (server-
side apply of children that differ from their live state, deletes, Events, decision log lines) and
patches ``status`` when - and only when - it differs. A pass that finds nothing to change makes no
write call at all.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from modeldeploy.analysis.prometheus import PrometheusClient, measure
from modeldeploy.analysis.render import TemplateRejected
from modeldeploy.api.canary import CanaryTraffic
from modeldeploy.api.spec import ModelDeploymentSpec, RevisionTemplate
from modeldeploy.api.status import Measurement, ModelDeploymentStatus, SmokeTestResult
from modeldeploy.children import (
    BuildSettings,
    OwnerInfo,
    build_configmap,
    build_deployment,
    build_hpa,
    build_service,
    configmap_name,
    deployment_name,
    revision_hash,
    selector_all,
    selector_string,
)
from modeldeploy.children.labels import DEPLOYMENT as OWNER_LABEL
from modeldeploy.children.labels import MANAGED_BY, MANAGER, REVISION
from modeldeploy.cli.commands import COMMAND_ANNOTATION, CommandError, parse_command
from modeldeploy.controller import GONE
from modeldeploy.kube.diff import merge_patch, needs_apply
from modeldeploy.kube.rest import (
    CONFIGMAP,
    DEPLOYMENT,
    HPA,
    HTTPROUTE,
    MODELDEPLOYMENT,
    POD,
    Body,
    Kube,
    KubeError,
    kind_of,
)
from modeldeploy.observability import (
    API_WRITES,
    DECISIONS,
    MEASUREMENTS,
    RECONCILE_SECONDS,
    RECONCILES,
    forget_status,
    record_status,
)
from modeldeploy.policy.lookup import Outcome, evaluate
from modeldeploy.policy.usage import PolicyUsage
from modeldeploy.rollout import (
    Command,
    DeleteRevision,
    EmitEvent,
    Log,
    Observations,
    RevisionObservation,
    ScaleRevision,
    SetPreview,
    SetWeight,
    SwitchActive,
    decide,
    measurement_due,
    next_wakeup,
    set_condition,
)
from modeldeploy.rollout.gates import smoke_test_due
from modeldeploy.rollout.pod_health import revision_problem, unschedulable_message
from modeldeploy.rollout.record import event_name
from modeldeploy.routers import GatewayApiRouter, get_router
from modeldeploy.routers.base import ObservedTraffic
from modeldeploy.routers.gateway_api import RouteNotManageable
from modeldeploy.routers.replicas import main_service_revision
from modeldeploy.runtimes import get_runtime
from modeldeploy.settings import Settings
from modeldeploy.smoke.client import pod_address, run_smoke_test

log = logging.getLogger("modeldeploy.reconcile")
ROUTE_PATCH_ATTEMPTS = 3
STATUS_CONFLICT_ATTEMPTS = 3
decisions_log = logging.getLogger("modeldeploy.decision")


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class Blocker:
    """Something only the operator can know that stops a new revision from rolling out."""

    reason: str
    message: str


@dataclass
class World:
    """What one pass observed."""

    deployments: dict[str, Body] = field(default_factory=dict)  # revision -> Deployment
    pods: list[Body] = field(default_factory=list)

    def pods_of(self, revision: str) -> list[Body]:
        return [p for p in self.pods if p["metadata"].get("labels", {}).get(REVISION) == revision]

    def observation(self, revision: str) -> RevisionObservation:
        dep = self.deployments[revision]
        st = dep.get("status", {})
        pods = self.pods_of(revision)
        return RevisionObservation(
            replicas=int(dep["spec"].get("replicas", 0)),
            ready_replicas=int(st.get("readyReplicas", 0)),
            available=_condition(dep, "Available") == "True",
            unschedulable_message=unschedulable_message(pods),
            pods=len(pods),
            problem=revision_problem(pods),
        )


def _condition(obj: Body, type_: str) -> str | None:
    for c in obj.get("status", {}).get("conditions", []) or []:
        if c.get("type") == type_:
            return str(c.get("status"))
    return None


class Reconciler:
    def __init__(
        self,
        kube: Kube,
        settings: Settings,
        clock: Callable[[], datetime] = utcnow,
        prometheus: PrometheusClient | None = None,
    ) -> None:
        self.kube = kube
        self.settings = settings
        self.clock = clock
        self.build = BuildSettings(
            images=dict(settings.images), storage_initializer_image=settings.storage_initializer_image
        )
        # The object of the pass in progress, per worker thread (Events about children attach to it).
        self._local = threading.local()
        # Which policy each ModelDeployment uses: the policy watch re-evaluates exactly those.
        self.policy_usage = PolicyUsage()
        self.prometheus = prometheus or PrometheusClient(
            settings.prometheus_url, timeout=settings.prometheus_timeout_seconds
        )

    # --- entry -----------------------------------------------------------------------------------

    def reconcile(self, namespace: str, name: str) -> float | None:
        started = time.perf_counter()
        try:
            result = self._passes(namespace, name)
        except KubeError as exc:
            if exc.status == 403 and "being terminated" in exc.message:
                RECONCILES.labels(result="gone").inc()
                return GONE  # the namespace is going away with everything in it
            RECONCILES.labels(result="error").inc()
            raise
        except Exception:
            RECONCILES.labels(result="error").inc()
            raise
        finally:
            RECONCILE_SECONDS.observe(time.perf_counter() - started)
        RECONCILES.labels(result="ok").inc()
        return result

    def _passes(self, namespace: str, name: str) -> float | None:
        """A pass whose status write met a newer object (409) is run again from a fresh read."""
        for _ in range(STATUS_CONFLICT_ATTEMPTS - 1):
            try:
                return self._pass(namespace, name)
            except KubeError as exc:
                if exc.status != 409:
                    raise
                log.info("status of %s/%s changed since it was read; deciding again", namespace, name)
        return self._pass(namespace, name)

    def _pass(self, namespace: str, name: str) -> float | None:
        md = self.kube.get(MODELDEPLOYMENT, namespace, name)
        if md is None or md["metadata"].get("deletionTimestamp"):
            self.policy_usage.forget((namespace, name))
            forget_status(namespace, name)
            return GONE
        self._local.md = md
        self._local.problems = []  # found while executing (an HTTPRoute it cannot manage)
        now = self.clock()
        old_status = md.get("status") or {}
        status = _parse_status(old_status)
        try:
            spec = ModelDeploymentSpec.model_validate(md.get("spec") or {})
        except ValidationError as exc:
            new = status.model_copy(
                update={
                    "observed_generation": md["metadata"].get("generation"),
                    "phase": "Degraded",
                    "conditions": set_condition(
                        status.conditions, "Degraded", "True", "InvalidSpec", _validation_text(exc), now
                    ),
                }
            )
            self._write_status(md, old_status, new)
            return None

        policy = self._policy(spec, md.get("spec") or {}, namespace, name)
        spec, blockers = policy.spec, [Blocker(reason, message) for reason, message in policy.problems]
        owner = OwnerInfo.from_object(md)
        runtime = get_runtime(spec.runtime)
        world = self._observe(namespace, name)
        desired = revision_hash(spec, self.build)
        stable = status.stable_revision
        # A blocked revision is not rolled out; what already runs keeps running.
        target_revision = stable if (blockers and stable is not None) else desired
        revisions = {rev: world.observation(rev) for rev in world.deployments}
        observations = Observations(
            desired_revision=target_revision,
            revisions=revisions,
            measurements=self._measure(spec, status, namespace, name, now),
            command=self._command(md, status),
            smoke_test=self._smoke_test(spec, runtime, smoke_test_due(spec, status, revisions), world, now),
            promote_full_forbidden_by=policy.promote_full_forbidden_by,
        )
        if blockers and stable is None:
            plan_status = status
            actions: list[Any] = []
        else:
            plan = decide(spec, status, observations, now)
            plan_status, actions = plan.status, list(plan.actions)

        templates = self._templates(spec, desired, plan_status, status)
        self._execute(md, owner, spec, runtime, templates, world, actions, plan_status)
        self._ensure_shared(owner, spec, runtime, plan_status, templates)
        world = self._observe(namespace, name) if actions else world
        final = self._finish(md, spec, plan_status, world, blockers + self._local.problems, templates, now)
        final = final.model_copy(update={"policy": policy.summary, "effective_rollout": policy.effective})
        self._write_status(md, old_status, final)
        return next_wakeup(spec, final, now)

    # --- observe ---------------------------------------------------------------------------------

    def _observe(self, namespace: str, name: str) -> World:
        selector = f"{OWNER_LABEL}={name},{MANAGED_BY}={MANAGER}"
        world = World()
        for dep in self.kube.list(DEPLOYMENT, namespace, selector):
            rev = dep["metadata"].get("labels", {}).get(REVISION)
            if rev:
                world.deployments[rev] = dep
        world.pods = self.kube.list(POD, namespace, selector)
        return world

    def _policy(self, spec: ModelDeploymentSpec, raw: Body, namespace: str, name: str) -> Outcome:
        """The effective spec under the policy that applies (modeldeploy.policy; the spec is never
        edited), and a problem per violated limit or unusable policy (they block new revisions)."""
        outcome = evaluate(self.kube, spec, raw, namespace)
        self.policy_usage.record((namespace, name), outcome.choice.policy, outcome.choice.source)
        return outcome

    def _smoke_test(
        self, spec: ModelDeploymentSpec, runtime: Any, revision: str | None, world: World, now: datetime
    ) -> SmokeTestResult | None:
        """Send the smoke test to one Ready pod of ``revision`` (the decision said it is due)."""
        if revision is None:
            return None
        address_map = Path(self.settings.pod_address_map) if self.settings.pod_address_map else None
        for pod in world.pods_of(revision):
            if _condition(pod, "Ready") != "True" or pod["metadata"].get("deletionTimestamp"):
                continue
            address = pod_address(pod, runtime.serving_port, address_map)
            if address is not None:
                stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
                return run_smoke_test(spec, revision, pod["metadata"]["name"], address, stamp)
        return None

    def _command(self, md: Body, status: ModelDeploymentStatus) -> Command | None:
        value = (md["metadata"].get("annotations") or {}).get(COMMAND_ANNOTATION)
        if not value:
            return None
        try:
            parsed = parse_command(value)
        except CommandError as exc:
            log.warning("ignored command: %s", exc, extra={"md": md["metadata"]["name"]})
            return None
        if status.rollout is not None and status.rollout.last_command == parsed.value:
            return None
        return Command(kind=parsed.verb, id=parsed.value)  # type: ignore[arg-type]

    def _measure(
        self,
        spec: ModelDeploymentSpec,
        status: ModelDeploymentStatus,
        namespace: str,
        name: str,
        now: datetime,
    ) -> list[Measurement]:
        if status.rollout is None or not measurement_due(spec, status, now):
            return []
        try:
            results = measure(
                self.prometheus,
                spec.rollout.analysis,
                spec.runtime,
                namespace,
                name,
                status.rollout.revision,
                status.stable_revision,
                now,
                evidence=status.rollout.analysis.sequential if status.rollout.analysis else (),
            )
        except TemplateRejected as exc:
            results = [
                Measurement(
                    guardrail="template",
                    revision=status.rollout.revision,
                    verdict="Error",
                    message=f"query refused: {exc}",
                    at=now.strftime("%Y-%m-%dT%H:%M:%SZ"),
                )
            ]
        for m in results:
            MEASUREMENTS.labels(verdict=m.verdict).inc()
        return results

    # --- execute ---------------------------------------------------------------------------------

    def _templates(
        self,
        spec: ModelDeploymentSpec,
        desired: str,
        new: ModelDeploymentStatus,
        old: ModelDeploymentStatus,
    ) -> dict[str, ModelDeploymentSpec]:
        """Revision -> a spec that builds exactly that revision's pods."""
        out = {desired: spec}
        for st in (old, new):
            if st.stable_template is not None and st.stable_revision and st.stable_revision not in out:
                out[st.stable_revision] = spec.model_copy(update=_template_fields(st.stable_template))
        return out

    def _execute(
        self,
        md: Body,
        owner: OwnerInfo,
        spec: ModelDeploymentSpec,
        runtime: Any,
        templates: Mapping[str, ModelDeploymentSpec],
        world: World,
        actions: list[Any],
        status: ModelDeploymentStatus,
    ) -> None:
        scaled: dict[str, int] = {}
        deleted: set[str] = set()
        for action in actions:
            if isinstance(action, ScaleRevision):
                scaled[action.revision] = action.replicas
                self._scale(owner, runtime, templates, world, action.revision, action.replicas)
            elif isinstance(action, DeleteRevision):
                deleted.add(action.revision)
                self._delete_revision(owner, action.revision)
            elif isinstance(action, SetWeight):
                self._route(
                    owner,
                    spec,
                    runtime,
                    action.stable_revision,
                    action.canary_revision,
                    action.weight,
                    action.traffic,
                )
            elif isinstance(action, SwitchActive):
                self._apply(build_service(owner, None, runtime, action.revision))
                if spec.rollout.strategy == "blueGreen":
                    self._apply(build_service(owner, "active", runtime, action.revision))
            elif isinstance(action, SetPreview):
                self._apply(build_service(owner, "preview", runtime, action.revision))
            elif isinstance(action, EmitEvent):
                self._write("create", "Event")
                name = event_name(owner.name, owner.uid, action.identity) if action.identity else None
                self.kube.event(md, action.type, action.reason, action.message, action="Rollout", name=name)
            elif isinstance(action, Log):
                decided = action.fields.get("decision") or action.fields.get("actions")
                if decided:
                    DECISIONS.labels(
                        owner.namespace, owner.name, str(action.fields.get("decision") or "act")
                    ).inc()
                # one INFO line per decision; passes that change nothing are DEBUG
                decisions_log.log(
                    logging.INFO if decided else logging.DEBUG,
                    "decision",
                    extra={"namespace": owner.namespace, "md": owner.name, "decision": dict(action.fields)},
                )
        # Level: every revision in use has its workload (repaired if edited or deleted by hand), at
        # the replicas last asked for. Revisions no longer in use (an aborted canary, a replaced
        # stable) are only ever scaled down and deleted by the rollout, never re-created here.
        for revision in _revisions_in_use(status):
            if revision in scaled or revision in deleted or revision not in templates:
                continue
            live = world.deployments.get(revision)
            replicas = (
                int(live["spec"].get("replicas", 0)) if live else _level_replicas(spec, status, revision)
            )
            self._scale(owner, runtime, templates, world, revision, replicas)

    def _scale(
        self,
        owner: OwnerInfo,
        runtime: Any,
        templates: Mapping[str, ModelDeploymentSpec],
        world: World,
        revision: str,
        replicas: int,
    ) -> None:
        template = templates.get(revision)
        if template is None:
            # A revision whose pod template is no longer known (superseded): only its size changes.
            live = world.deployments.get(revision)
            if live is not None and int(live["spec"].get("replicas", 0)) != replicas:
                self._write("patch", "Deployment")
                self.kube.request(
                    "PATCH",
                    DEPLOYMENT.path(owner.namespace, live["metadata"]["name"]),
                    body={"spec": {"replicas": replicas}},
                    content_type="application/merge-patch+json",
                )
            return
        rt = get_runtime(template.runtime)
        self._apply(build_configmap(owner, template, revision, rt))
        self._apply(build_deployment(owner, template, revision, replicas, rt, self.build))

    def _delete_revision(self, owner: OwnerInfo, revision: str) -> None:
        names = (deployment_name(owner.name, revision), configmap_name(owner.name, revision))
        for kind, name in zip((DEPLOYMENT, CONFIGMAP), names, strict=True):
            self._write("delete", kind.kind)
            self.kube.delete(kind, owner.namespace, name)

    def _route(
        self,
        owner: OwnerInfo,
        spec: ModelDeploymentSpec,
        runtime: Any,
        stable: str,
        canary: str | None,
        weight: int,
        traffic: CanaryTraffic | None = None,
    ) -> None:
        router = get_router(spec.rollout.traffic_routing)
        if not isinstance(router, GatewayApiRouter):
            for obj in router.objects(
                owner,
                stable_revision=stable,
                canary_revision=canary,
                weight=weight,
                port=runtime.serving_port,
            ):
                self._apply(obj)
            return
        # The operator's own route is applied whole; a user's route gets a JSON patch of the weights
        # alone, guarded by a test of its resourceVersion: re-read and rebuilt when someone wrote first.
        path = HTTPROUTE.path(owner.namespace, router.config.http_route)
        for attempt in range(ROUTE_PATCH_ATTEMPTS):
            live = self.kube.get(HTTPROUTE, owner.namespace, router.config.http_route)
            try:
                update = router.route_update(
                    owner,
                    live,
                    stable_revision=stable,
                    canary_revision=canary,
                    weight=weight,
                    port=runtime.serving_port,
                    traffic=traffic,
                )
            except RouteNotManageable as exc:
                problem = Blocker("HTTPRouteNotManageable", str(exc))
                if problem not in self._local.problems:
                    self._local.problems.append(problem)
                return
            if isinstance(update, dict):
                self._apply(update)
                return
            if not update:
                return
            self._write("patch", "HTTPRoute")
            try:
                self.kube.request(
                    "PATCH",
                    path,
                    body=update,
                    query=[("fieldManager", self.kube.field_manager)],
                    content_type="application/json-patch+json",
                )
                return
            except KubeError as exc:  # 422: the test op failed (the route changed since it was read)
                if exc.status not in (409, 422) or attempt + 1 == ROUTE_PATCH_ATTEMPTS:
                    raise

    def _ensure_shared(
        self,
        owner: OwnerInfo,
        spec: ModelDeploymentSpec,
        runtime: Any,
        status: ModelDeploymentStatus,
        templates: Mapping[str, ModelDeploymentSpec],
    ) -> None:
        """Services, routes and the HPA: level-triggered from the new status."""
        stable = status.stable_revision
        if stable is None:
            return
        rollout = status.rollout
        live_rollout = rollout if rollout is not None and not rollout.aborted else None
        if spec.rollout.strategy == "blueGreen":
            switched = live_rollout is not None and live_rollout.switched_at is not None
            active = live_rollout.revision if switched and live_rollout else stable
            preview = live_rollout.revision if live_rollout else active
            self._apply(build_service(owner, None, runtime, active))
            self._apply(build_service(owner, "active", runtime, active))
            self._apply(build_service(owner, "preview", runtime, preview))
        else:
            canary = live_rollout.revision if live_rollout else None
            weight = live_rollout.weight if live_rollout else 0
            self._apply(build_service(owner, None, runtime, main_service_revision(stable, canary, weight)))
            if spec.rollout.traffic_routing.kind == "gatewayAPI":
                self._apply(build_service(owner, "stable", runtime, stable))
                self._apply(build_service(owner, "canary", runtime, canary or stable))
                traffic = live_rollout.traffic if live_rollout else None
                self._route(owner, spec, runtime, stable, canary, weight, traffic)
        if spec.autoscaling is not None:
            self._apply(build_hpa(owner, spec))
        else:
            hpa = self.kube.get(HPA, owner.namespace, owner.name)
            if hpa is not None and _ours(hpa):
                self._write("delete", "HorizontalPodAutoscaler")
                self.kube.delete(HPA, owner.namespace, owner.name)

    def _apply(self, desired: Body) -> None:
        kind = kind_of(desired)
        meta = desired["metadata"]
        live = self.kube.get(kind, meta.get("namespace"), meta["name"])
        why = needs_apply(desired, live)
        if not why:
            return
        log.info("apply %s %s/%s", kind.kind, meta.get("namespace"), meta["name"], extra={"changed": why[:5]})
        self._write("apply", kind.kind)
        self.kube.apply(desired)
        md = getattr(self._local, "md", None)
        if md is not None:
            if live is None:
                reason, message = "ChildCreated", f"{kind.kind} {meta['name']} created"
            elif any(path != ".spec.replicas" for path in why):
                # Someone edited it by hand, or the spec changed: either way ours is back.
                reason = "ChildUpdated"
                fields = ", ".join(why[:3])
                message = f"{kind.kind} {meta['name']} updated: {fields} differed from the desired state"
            else:
                return  # a rollout scaling step; the rollout's own Events tell that story
            self._write("create", "Event")
            self.kube.event(md, "Normal", reason, message, action="Apply")

    @staticmethod
    def _write(verb: str, kind: str) -> None:
        API_WRITES.labels(verb=verb, kind=kind).inc()

    # --- status ----------------------------------------------------------------------------------

    def _finish(
        self,
        md: Body,
        spec: ModelDeploymentSpec,
        status: ModelDeploymentStatus,
        world: World,
        blockers: list[Blocker],
        templates: Mapping[str, ModelDeploymentSpec],
        now: datetime,
    ) -> ModelDeploymentStatus:
        in_traffic = _revisions_serving(spec, status)
        total = sum(int(d["spec"].get("replicas", 0)) for d in world.deployments.values())
        ready = sum(
            int(world.deployments[r].get("status", {}).get("readyReplicas", 0))
            for r in in_traffic
            if r in world.deployments
        )
        conditions = list(status.conditions)
        problems = [*blockers]
        # A new revision's pods that are not there yet (unschedulable until the GPU budget frees a
        # device, an image still pulling) are reported, but the phase stays Progressing: the
        # progress deadline decides. The stable revision's problems make the phase Degraded.
        degrading = [*blockers]
        for revision in _revisions_in_use(status):
            found = revision_problem(world.pods_of(revision))
            if found is not None:
                problems.append(Blocker(found.reason, found.message))
                if revision == status.stable_revision:
                    degrading.append(problems[-1])
        if problems:
            conditions = set_condition(
                conditions,
                "Degraded",
                "True",
                problems[0].reason,
                "; ".join(p.message for p in problems),
                now,
            )
        elif status.phase == "RolledBack":
            conditions = set_condition(
                conditions,
                "Degraded",
                "True",
                "RolledBack",
                status.last_decision.reason if status.last_decision else "the last rollout was rolled back",
                now,
            )
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
        canary_weight = self._reached_weight(spec, status, world, OwnerInfo.from_object(md))
        stable_template = status.stable_template
        if status.stable_revision and status.stable_revision in templates:
            stable_template = RevisionTemplate.of(templates[status.stable_revision])
        return status.model_copy(
            update={
                "observed_generation": md["metadata"].get("generation"),
                "phase": phase,
                "replicas": total,
                "ready_replicas": ready,
                "ready": f"{ready}/{spec.replicas}",
                "selector": selector_string(selector_all(md["metadata"]["name"])),
                "conditions": conditions,
                "stable_template": stable_template,
                "canary_weight": canary_weight,
            }
        )

    def _reached_weight(
        self, spec: ModelDeploymentSpec, status: ModelDeploymentStatus, world: World, owner: OwnerInfo
    ) -> int:
        """The canary's traffic share as the router actually realises it (not just what was asked).

        replicas router: ready canary pods / all ready pods; gatewayAPI: the live HTTPRoute's weights.
        """
        r = status.rollout
        if spec.rollout.strategy != "canary" or r is None or r.aborted or status.stable_revision is None:
            return status.canary_weight
        route = None
        gateway = spec.rollout.traffic_routing.gateway_api
        if gateway is not None:
            route = self.kube.get(HTTPROUTE, owner.namespace, gateway.http_route)

        def ready(rev: str) -> int:
            dep = world.deployments.get(rev)
            return int(dep.get("status", {}).get("readyReplicas", 0)) if dep else 0

        observed = ObservedTraffic(
            stable_ready=ready(status.stable_revision),
            canary_ready=ready(r.revision),
            route=route,
            asked_weight=r.weight,
        )
        reached = get_router(spec.rollout.traffic_routing).reached_weight(owner, observed)
        return status.canary_weight if reached is None else reached

    def _write_status(self, md: Body, old: Body, new: ModelDeploymentStatus) -> None:
        record_status(md["metadata"]["namespace"], md["metadata"]["name"], new)
        patch = merge_patch(_normalise(old), new.wire())
        if not patch:
            return
        self._write("patch", "ModelDeployment/status")
        try:
            self.kube.patch_status(
                MODELDEPLOYMENT,
                md["metadata"]["namespace"],
                md["metadata"]["name"],
                patch,
                resource_version=md["metadata"].get("resourceVersion"),
            )
        except KubeError as exc:
            if exc.status != 404:
                raise


def _parse_status(raw: Body) -> ModelDeploymentStatus:
    try:
        return ModelDeploymentStatus.model_validate(raw)
    except ValidationError:
        log.warning("status unreadable; starting from an empty one")
        return ModelDeploymentStatus()


def _normalise(raw: Body) -> Body:
    try:
        return ModelDeploymentStatus.model_validate(raw).wire()
    except ValidationError:
        return raw


def _validation_text(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        where = ".".join(str(p) for p in err["loc"])
        parts.append(f"spec.{where}: {err['msg']}" if where else err["msg"])
    return "; ".join(parts)


def _template_fields(t: RevisionTemplate) -> dict[str, Any]:
    return {
        "runtime": t.runtime,
        "image": t.image,
        "model": t.model,
        "resources": t.resources,
        "service_account_name": t.service_account_name,
        "disable_auth": t.disable_auth,
    }


def _revisions_in_use(status: ModelDeploymentStatus) -> list[str]:
    out = [status.stable_revision] if status.stable_revision else []
    r = status.rollout
    if r is not None and not r.aborted and r.revision not in out:
        out.append(r.revision)
    return out


def _revisions_serving(spec: ModelDeploymentSpec, status: ModelDeploymentStatus) -> list[str]:
    """Revisions that receive client traffic (blue-green: only the active colour)."""
    r = status.rollout
    if spec.rollout.strategy == "blueGreen" and r is not None and not r.aborted:
        return [r.revision] if r.switched_at else [status.stable_revision] if status.stable_revision else []
    return _revisions_in_use(status)


def _level_replicas(spec: ModelDeploymentSpec, status: ModelDeploymentStatus, revision: str) -> int:
    r = status.rollout
    if r is not None and not r.aborted:
        return r.canary_replicas if revision == r.revision else r.stable_replicas
    return spec.replicas


def _ours(obj: Body) -> bool:
    return bool((obj["metadata"].get("labels") or {}).get(MANAGED_BY) == MANAGER)
