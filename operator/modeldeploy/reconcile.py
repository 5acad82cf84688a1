"""One reconcile pass: observe -> decide (pure) -> apply -> store the status, only if it changed.

The imperative shell around the pure modules of :mod:`modeldeploy.rollout`:

1. observe (:mod:`modeldeploy.shell.observe`): the ModelDeployment, its children, the policy,
   Prometheus when a measurement is due, the smoke test when it is due;
2. decide: :func:`~modeldeploy.rollout.gate.gate` (which revision is the target when something
   blocks), :func:`~modeldeploy.rollout.decide.decide` (the rollout), and
   :func:`~modeldeploy.rollout.desired.releveled` (the workloads to keep at their size);
3. apply (:mod:`modeldeploy.shell.execute`): the actions, then the shared Services, route and HPA
   (:func:`~modeldeploy.rollout.desired.shared_objects`);
4. store: :func:`~modeldeploy.rollout.summary.summarize` adds what the children show, and the
   status is written as a merge patch with the resourceVersion it was read at - a 409 means someone
   wrote since, and the pass is decided again from a fresh read, never written blindly.

A pass that finds nothing to change makes no write call at all.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime

from pydantic import ValidationError

from modeldeploy.analysis.prometheus import PrometheusClient
from modeldeploy.api.spec import ModelDeploymentSpec
from modeldeploy.api.status import ModelDeploymentStatus
from modeldeploy.children import BuildSettings, revision_for
from modeldeploy.controller import GONE
from modeldeploy.kube.rest import MODELDEPLOYMENT, Body, Kube, KubeError
from modeldeploy.observability import RECONCILE_SECONDS, RECONCILES, forget_status, record_status
from modeldeploy.rollout import Observations, next_wakeup
from modeldeploy.rollout.desired import releveled, revision_templates, shared_objects
from modeldeploy.rollout.gate import Blocker, decide_gated, gate, pending_command
from modeldeploy.rollout.gates import smoke_test_due
from modeldeploy.rollout.summary import invalid_spec, parse_status, status_write, summarize
from modeldeploy.runtimes import get_runtime
from modeldeploy.settings import Settings
from modeldeploy.shell.execute import Executor, count_write
from modeldeploy.shell.observe import Observer

log = logging.getLogger("modeldeploy.reconcile")
STATUS_CONFLICT_ATTEMPTS = 3


def utcnow() -> datetime:
    return datetime.now(UTC)


class Reconciler:
    def __init__(
        self,
        kube: Kube,
        settings: Settings,
        clock: Callable[[], datetime] = utcnow,
        prometheus: PrometheusClient | None = None,
    ) -> None:
        self.kube = kube
        self.clock = clock
        self.build = BuildSettings(
            images=dict(settings.images), storage_initializer_image=settings.storage_initializer_image
        )
        prometheus = prometheus or PrometheusClient(
            settings.prometheus_url, timeout=settings.prometheus_timeout_seconds
        )
        self.observer = Observer(kube, settings, prometheus)
        self.policy_usage = self.observer.policy_usage

    def reconcile(self, namespace: str, name: str) -> float | None:
        """One pass (run again on a status conflict); seconds until the next one, None or GONE."""
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
        now = self.clock()
        status = parse_status(md.get("status") or {})
        if status is None:
            log.warning("status unreadable; starting from an empty one", extra={"md": name})
            status = ModelDeploymentStatus()
        generation = md["metadata"].get("generation")
        try:
            spec = ModelDeploymentSpec.model_validate(md.get("spec") or {})
        except ValidationError as exc:
            self._write_status(md, invalid_spec(status, generation, exc, now))
            return None

        # observe
        policy = self.observer.policy(spec, md.get("spec") or {}, namespace, name)
        spec, blockers = policy.spec, [Blocker(reason, message) for reason, message in policy.problems]
        observed = self.observer.children(namespace, name)
        in_use = (status.stable_revision, status.rollout.revision if status.rollout else None)
        desired = revision_for(spec, self.build, in_use)
        gated = gate(desired, status.stable_revision, blockers)
        revisions = observed.observations()
        command = pending_command(md["metadata"].get("annotations"), status)
        if command.refused:
            log.warning("ignored command: %s", command.refused, extra={"md": name})
        runtime = get_runtime(spec.runtime)
        due_smoke_test = smoke_test_due(spec, status, revisions)
        measurements, sequential_check = self.observer.measurements(spec, status, namespace, name, now)
        observations = Observations(
            desired_revision=gated.target,
            revisions=revisions,
            measurements=measurements,
            sequential_check=sequential_check,
            command=command.command,
            smoke_test=self.observer.smoke_test(spec, runtime, due_smoke_test, observed, now),
            promote_full_forbidden_by=policy.promote_full_forbidden_by,
        )

        # decide
        plan = decide_gated(spec, status, observations, now, held=gated.hold)
        templates = revision_templates(spec, desired, status, plan.status)
        actions = [*plan.actions, *releveled(spec, plan.status, templates, plan.actions, observed)]

        # apply
        executor = Executor(self.kube, self.build, md, status, spec, templates, observed)
        executor.run(actions)
        executor.shared(shared_objects(executor.owner, spec, executor.runtime, plan.status))

        # store
        observed = self.observer.children(namespace, name) if actions else observed
        route = self.observer.route(spec, namespace)
        problems = blockers + executor.problems
        final = summarize(
            spec, plan.status, observed, problems, templates, executor.owner, generation, route, now
        )
        final = final.model_copy(update={"policy": policy.summary, "effective_rollout": policy.effective})
        self._write_status(md, final)
        return next_wakeup(spec, final, now)

    def _write_status(self, md: Body, new: ModelDeploymentStatus) -> None:
        meta = md["metadata"]
        record_status(meta["namespace"], meta["name"], new)
        write = status_write(md, new)
        if write is None:
            return
        count_write("patch", "ModelDeployment/status")
        try:
            self.kube.patch_status(
                MODELDEPLOYMENT, meta["namespace"], meta["name"], write.patch, write.resource_version
            )
        except KubeError as exc:
            if exc.status != 404:
                raise
