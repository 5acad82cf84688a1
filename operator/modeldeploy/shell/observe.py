"""Reads of one pass: the children, the policy, Prometheus, the smoke test, the live HTTPRoute.

Every API read goes through ``kube.get`` / ``kube.list`` (a watch-fed cache in the operator), so a
pass costs no API request beyond the writes it decides.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from modeldeploy.analysis.prometheus import PrometheusClient, measure
from modeldeploy.analysis.render import TemplateRejected
from modeldeploy.api.spec import ModelDeploymentSpec
from modeldeploy.api.status import Measurement, ModelDeploymentStatus, SmokeTestResult
from modeldeploy.children.labels import selector_owned, selector_string
from modeldeploy.kube.rest import DEPLOYMENT, HTTPROUTE, POD, Body, Kube
from modeldeploy.observability import MEASUREMENTS
from modeldeploy.policy.lookup import Outcome, evaluate
from modeldeploy.policy.usage import PolicyUsage
from modeldeploy.rollout import measurement_due, sequential_check_due
from modeldeploy.rollout.observed import ObservedChildren
from modeldeploy.runtimes.base import Runtime
from modeldeploy.settings import Settings
from modeldeploy.smoke.client import pod_address, run_smoke_test


class Observer:
    def __init__(self, kube: Kube, settings: Settings, prometheus: PrometheusClient) -> None:
        self.kube = kube
        self.prometheus = prometheus
        self.address_map = Path(settings.pod_address_map) if settings.pod_address_map else None
        # Which policy each ModelDeployment uses: the policy watch re-evaluates exactly those.
        self.policy_usage = PolicyUsage()

    def children(self, namespace: str, name: str) -> ObservedChildren:
        selector = selector_string(selector_owned(name))
        return ObservedChildren.of(
            self.kube.list(DEPLOYMENT, namespace, selector), self.kube.list(POD, namespace, selector)
        )

    def policy(self, spec: ModelDeploymentSpec, raw: Body, namespace: str, name: str) -> Outcome:
        """The effective spec under the policy that applies (the spec is never edited), and a
        problem per violated limit or unusable policy (they block new revisions)."""
        outcome = evaluate(self.kube, spec, raw, namespace)
        self.policy_usage.record((namespace, name), outcome.choice.policy, outcome.choice.source)
        return outcome

    def route(self, spec: ModelDeploymentSpec, namespace: str) -> Body | None:
        """The live HTTPRoute of the Gateway API router (the weights it really carries)."""
        gateway = spec.rollout.traffic_routing.gateway_api
        return self.kube.get(HTTPROUTE, namespace, gateway.http_route) if gateway is not None else None

    def measurements(
        self,
        spec: ModelDeploymentSpec,
        status: ModelDeploymentStatus,
        namespace: str,
        name: str,
        now: datetime,
    ) -> tuple[list[Measurement], bool]:
        """The guardrails' results when :func:`measurement_due` says a measurement is due, only the
        sequential guardrails' when :func:`sequential_check_due` says a check between measurements
        is, else []; and whether they are such a check."""
        analysis = spec.rollout.analysis
        check = False
        if status.rollout is None:
            return [], False
        if not measurement_due(spec, status, now):
            if not sequential_check_due(spec, status, now):
                return [], False
            sequential = [g for g in analysis.guardrails if g.sequential is not None]
            analysis, check = analysis.model_copy(update={"guardrails": sequential}), True
        rollout = status.rollout
        try:
            results = measure(
                self.prometheus,
                analysis,
                spec.runtime,
                namespace,
                name,
                rollout.revision,
                status.stable_revision,
                now,
                evidence=rollout.analysis.sequential if rollout.analysis else (),
            )
        except TemplateRejected as exc:
            refused = f"query refused: {exc}"
            at = _stamp(now)
            results = [
                Measurement(
                    guardrail="template", revision=rollout.revision, verdict="Error", message=refused, at=at
                )
            ]
        for m in results:
            MEASUREMENTS.labels(verdict=m.verdict).inc()
        return results, check

    def smoke_test(
        self,
        spec: ModelDeploymentSpec,
        runtime: Runtime,
        revision: str | None,
        observed: ObservedChildren,
        now: datetime,
    ) -> SmokeTestResult | None:
        """Send the smoke test to one Ready pod of ``revision`` (the decision said it is due)."""
        if revision is None:
            return None
        for pod in observed.ready_pods(revision):
            address = pod_address(dict(pod), runtime.serving_port, self.address_map)
            if address is not None:
                return run_smoke_test(spec, revision, pod["metadata"]["name"], address, _stamp(now))
        return None


def _stamp(now: datetime) -> str:
    return now.strftime("%Y-%m-%dT%H:%M:%SZ")
