"""The same model deployment, written for each controller of bench/vs_peers.py.

Every subject serves one Triton model ``fraud`` (2 replicas, CPU only) behind a Gateway API
HTTPRoute, its pods labelled like modeldeploy's so that the harness's World gives them model servers
and Prometheus targets (``md``, ``revision`` labels). A new version changes the pod template's
``modeldeploy.dev/revision`` label (peers) or the model version (modeldeploy). The canary steps are
the same everywhere: 10% for 1 minute, then 50% for 1 minute. Each is judged by the same PromQL,
modeldeploy's built-in Triton ``error-rate`` template (rendered from
``modeldeploy.analysis.templates``), with the canary selected the way each controller can name it:
the revision label (modeldeploy), the canary Deployment's pod names (Flagger), the canary ReplicaSet's
pod-template hash (Argo Rollouts); the same 30 s window and the same 5% threshold.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Final

from peers.controllers import GATEWAYAPI_PLUGIN_NAME, ensure_namespace

from modeldeploy.analysis.templates import (
    DEFAULT_ERROR_RATE_MAX,
    SELECTOR,
    builtin_template,
    sample_count_template,
)
from modeldeploy.api.analysis import Analysis
from modeldeploy_testing.cluster import Cluster, poll

APP: Final = "fraud"
REPLICAS: Final = 2
WINDOW: Final = "30s"
THRESHOLD: Final = DEFAULT_ERROR_RATE_MAX
GATEWAY: Final = "gw"
HTTP_PORT: Final = 8000
RUNTIME: Final = "triton"


@dataclass(frozen=True)
class Timing:
    """One configuration: seconds between measurements, and whether peers keep their defaults."""

    name: str
    interval_s: int
    defaults: bool


FASTEST: Final = Timing("fastest", 10, defaults=False)
SCRAPE_INTERVAL_S: Final = 2  # the local Prometheus' scrape interval (e2e/localcluster/prometheus.py)
# Flagger: analysis.interval 1m (its documented default), threshold 5 (its Gateway API tutorial's; the CRD
# requires one); Argo Rollouts has no default interval
# (an unset one measures once), so it gets Flagger's 1m, failureLimit 0 (its default);
# modeldeploy: interval 15s, failureLimit 2, sequentialInterval 5s.
DEFAULTS: Final = Timing("defaults", 60, defaults=True)


def error_rate_query(selector: str) -> str:
    """modeldeploy's Triton error-rate PromQL with another canary selector and a fixed window."""
    source = builtin_template(RUNTIME, "error-rate")
    assert SELECTOR in source
    return source.replace(SELECTOR, selector).replace("{{ window }}", WINDOW)


def sample_count_query(selector: str) -> str:
    """The requests the canary served in the window, as modeldeploy counts them for minSampleSize."""
    return sample_count_template(RUNTIME).replace(SELECTOR, selector).replace("{{ window }}", WINDOW)


def pod_labels(md: str, revision: str) -> dict[str, str]:
    return {
        "app": md,
        "app.kubernetes.io/managed-by": "modeldeploy",
        "modeldeploy.dev/deployment": md,
        "modeldeploy.dev/revision": revision,
        "modeldeploy.dev/runtime": RUNTIME,
    }


def pod_template(revision: str) -> dict[str, Any]:
    return {
        "metadata": {"labels": pod_labels(APP, revision)},
        "spec": {
            "containers": [
                {
                    "name": "triton",
                    "image": "nvcr.io/nvidia/tritonserver:24.10-py3",
                    "ports": [{"name": "http", "containerPort": HTTP_PORT}],
                    "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}},
                }
            ]
        },
    }


def service(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {"selector": {"app": APP}, "ports": [{"name": "http", "port": 80, "targetPort": HTTP_PORT}]},
    }


def get(cluster: Cluster, kind: str, ns: str, name: str) -> dict[str, Any]:
    r = cluster.kubectl("get", kind, name, "-n", ns, "-o", "json", check=False)
    if r.returncode != 0:
        return {}
    body: dict[str, Any] = json.loads(r.stdout)
    return body


class Subject:
    """One controller's deployment: set up at v1, then one new version per run."""

    controller: str
    namespace: str
    md: str = APP
    route: str
    canary_service: str

    def __init__(self, cluster: Cluster, timing: Timing) -> None:
        self.cluster = cluster
        self.timing = timing

    def setup(self) -> None:
        raise NotImplementedError

    def bump(self, n: int) -> None:
        raise NotImplementedError

    def canary_revision(self, n: int) -> str:
        return f"v{n}"

    def outcome(self) -> str:
        """'rolledBack', 'promoted' or 'progressing', from the controller's own status."""
        raise NotImplementedError

    def ready_for_next(self) -> bool:
        return self.outcome() != "progressing"

    def breach_query(self, selector: str) -> str | None:
        """PromQL that is non-empty once the canary's guardrail is breached as this controller
        judges it (None: not defined for this controller)."""
        return None


class FlaggerSubject(Subject):
    controller = "flagger"
    route = APP
    canary_service = f"{APP}-canary"

    def __init__(self, cluster: Cluster, timing: Timing, namespace: str) -> None:
        super().__init__(cluster, timing)
        self.namespace = namespace

    def deployment(self, revision: str) -> dict[str, Any]:
        return {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": APP},
            "spec": {
                "replicas": REPLICAS,
                "selector": {"matchLabels": {"app": APP}},
                "template": pod_template(revision),
            },
        }

    def setup(self) -> None:
        ensure_namespace(self.cluster, self.namespace)
        selector = (
            'namespace="{{ namespace }}", md="{{ target }}", pod=~"{{ target }}-[0-9a-zA-Z]+-[0-9a-zA-Z]+"'
        )
        template = {
            "apiVersion": "flagger.app/v1beta1",
            "kind": "MetricTemplate",
            "metadata": {"name": "error-rate"},
            "spec": {
                "provider": {"type": "prometheus", "address": self.cluster.prometheus_url},
                "query": error_rate_query(selector),
            },
        }
        analysis: dict[str, Any] = {
            "stepWeights": [10, 50],
            "metrics": [
                {
                    "name": "error-rate",
                    "templateRef": {"name": "error-rate"},
                    "thresholdRange": {"max": THRESHOLD},
                    "interval": WINDOW,
                }
            ],
        }
        # interval and threshold are required by the CRD; defaults: 1m (the documented default
        # interval) and threshold 5, as in Flagger's Gateway API tutorial
        analysis.update(interval=f"{self.timing.interval_s}s", threshold=5 if self.timing.defaults else 1)
        canary = {
            "apiVersion": "flagger.app/v1beta1",
            "kind": "Canary",
            "metadata": {"name": APP},
            "spec": {
                "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": APP},
                "service": {
                    "port": 80,
                    "targetPort": HTTP_PORT,
                    "gatewayRefs": [{"name": GATEWAY, "namespace": self.namespace}],
                },
                "analysis": analysis,
            },
        }
        self.cluster.apply([template, self.deployment("v1"), canary], namespace=self.namespace)
        poll(
            "Flagger canary Initialized",
            lambda: self.phase() == "Initialized",
            timeout=300,
            interval=1,
        )

    def phase(self) -> str:
        return str(
            (get(self.cluster, "canary.flagger.app", self.namespace, APP).get("status") or {}).get("phase")
        )

    def bump(self, n: int) -> None:
        self.cluster.apply(self.deployment(self.canary_revision(n)), namespace=self.namespace)

    def outcome(self) -> str:
        phase = self.phase()
        return {"Failed": "rolledBack", "Succeeded": "promoted", "Initialized": "promoted"}.get(
            phase, "progressing"
        )


class ArgoSubject(Subject):
    controller = "argo-rollouts"
    route = f"{APP}-route"
    canary_service = f"{APP}-canary"

    def __init__(self, cluster: Cluster, timing: Timing, namespace: str) -> None:
        super().__init__(cluster, timing)
        self.namespace = namespace

    def rollout(self, revision: str) -> dict[str, Any]:
        return {
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "Rollout",
            "metadata": {"name": APP},
            "spec": {
                "replicas": REPLICAS,
                "selector": {"matchLabels": {"app": APP}},
                "template": pod_template(revision),
                "strategy": {
                    "canary": {
                        "canaryService": f"{APP}-canary",
                        "stableService": f"{APP}-stable",
                        "trafficRouting": {
                            "plugins": {
                                GATEWAYAPI_PLUGIN_NAME: {"httpRoute": self.route, "namespace": self.namespace}
                            }
                        },
                        "analysis": {
                            "templates": [{"templateName": "error-rate"}],
                            "args": [
                                {"name": "namespace", "value": self.namespace},
                                {"name": "canary-hash", "valueFrom": {"podTemplateHashValue": "Latest"}},
                            ],
                        },
                        "steps": [
                            {"setWeight": 10},
                            {"pause": {"duration": "60s"}},
                            {"setWeight": 50},
                            {"pause": {"duration": "60s"}},
                        ],
                    }
                },
            },
        }

    def setup(self) -> None:
        ensure_namespace(self.cluster, self.namespace)
        selector = (
            'namespace="{{args.namespace}}", md="' + APP + '", pod=~"' + APP + '-{{args.canary-hash}}-.+"'
        )
        metric: dict[str, Any] = {
            "name": "error-rate",
            "interval": f"{self.timing.interval_s}s",
            # NaN (no canary request in the window yet) is not a breach, as in Flagger and modeldeploy
            "successCondition": f"isNaN(result[0]) || result[0] <= {THRESHOLD}",
            "provider": {
                "prometheus": {"address": self.cluster.prometheus_url, "query": error_rate_query(selector)}
            },
        }
        template = {
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "AnalysisTemplate",
            "metadata": {"name": "error-rate"},
            "spec": {"args": [{"name": "namespace"}, {"name": "canary-hash"}], "metrics": [metric]},
        }
        backend = {"group": "", "kind": "Service", "port": 80}
        route = {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "HTTPRoute",
            "metadata": {"name": self.route},
            "spec": {
                "parentRefs": [{"name": GATEWAY}],
                "rules": [
                    {
                        "backendRefs": [
                            {**backend, "name": f"{APP}-stable", "weight": 100},
                            {**backend, "name": f"{APP}-canary", "weight": 0},
                        ]
                    }
                ],
            },
        }
        objects = [service(f"{APP}-stable"), service(f"{APP}-canary"), route, template, self.rollout("v1")]
        self.cluster.apply(objects, namespace=self.namespace)
        poll("Argo rollout Healthy", lambda: self.phase() == "Healthy", timeout=300, interval=1)

    def status(self) -> dict[str, Any]:
        body: dict[str, Any] = (
            get(self.cluster, "rollout.argoproj.io", self.namespace, APP).get("status") or {}
        )
        return body

    def phase(self) -> str:
        return str(self.status().get("phase"))

    def bump(self, n: int) -> None:
        self.cluster.apply(self.rollout(self.canary_revision(n)), namespace=self.namespace)

    def outcome(self) -> str:
        st = self.status()
        if st.get("abort"):
            return "rolledBack"
        if st.get("phase") == "Healthy" and st.get("stableRS") == st.get("currentPodHash"):
            return "promoted"
        return "progressing"


class ModelDeploymentSubject(Subject):
    controller = "modeldeploy"
    route = f"{APP}-route"
    canary_service = f"{APP}-canary"

    def __init__(self, cluster: Cluster, timing: Timing, namespace: str, sequential: bool) -> None:
        super().__init__(cluster, timing)
        self.namespace = namespace
        self.sequential = sequential
        if sequential:
            self.controller = "modeldeploy-sequential"

    def manifest(self, version: int) -> dict[str, Any]:
        guardrail: dict[str, Any] = {"name": "error-rate", "template": "error-rate"}
        if self.sequential:
            guardrail["sequential"] = {}
        else:
            guardrail["max"] = THRESHOLD
        analysis: dict[str, Any] = {"window": WINDOW, "guardrails": [guardrail]}
        if not self.timing.defaults:
            analysis.update(interval=f"{self.timing.interval_s}s", failureLimit=1)
            if self.sequential:
                # its fastest legal setting: a check per Prometheus scrape (2 s here), which an
                # anytime-valid test allows; the interval stays the peers' 10 s
                analysis.update(sequentialInterval=f"{SCRAPE_INTERVAL_S}s")
        return {
            "apiVersion": "modeldeploy.dev/v1alpha1",
            "kind": "ModelDeployment",
            "metadata": {"name": APP},
            "spec": {
                "runtime": RUNTIME,
                "model": {"name": APP, "version": str(version), "storageUri": f"s3://models/{APP}/{version}"},
                "replicas": REPLICAS,
                "resources": {"cpu": "100m", "memory": "256Mi"},
                "rollout": {
                    "trafficRouting": {"gatewayAPI": {"httpRoute": self.route, "gateway": GATEWAY}},
                    "analysis": analysis,
                    "canary": {
                        "steps": [
                            {"setWeight": 10},
                            {"analysis": {"duration": "1m"}},
                            {"setWeight": 50},
                            {"analysis": {"duration": "1m"}},
                        ]
                    },
                },
            },
        }

    def breach_query(self, selector: str) -> str | None:
        """The threshold guardrail's breach: the error rate over the threshold with at least
        minSampleSize requests in the window (fewer is an Inconclusive measurement, not a breach)."""
        if self.sequential:
            return None
        minimum = Analysis.model_fields["min_sample_size"].default
        return (
            f"({error_rate_query(selector)}) > {THRESHOLD} "
            f"and on() ({sample_count_query(selector)}) >= {minimum}"
        )

    def status(self) -> dict[str, Any]:
        body: dict[str, Any] = get(self.cluster, "md", self.namespace, APP).get("status") or {}
        return body

    def setup(self) -> None:
        ensure_namespace(self.cluster, self.namespace)
        self.cluster.apply(self.manifest(1), namespace=self.namespace)
        poll("ModelDeployment Healthy", lambda: self.outcome() == "promoted", timeout=300, interval=1)

    def bump(self, n: int) -> None:
        self.cluster.apply(self.manifest(n), namespace=self.namespace)

    def canary_revision(self, n: int) -> str:
        rev: str = poll(
            "canary revision", lambda: self.status().get("canaryRevision"), timeout=120, interval=0.2
        )
        return rev

    def outcome(self) -> str:
        st = self.status()
        if st.get("phase") == "RolledBack":
            return "rolledBack"
        if st.get("phase") == "Healthy" and st.get("stableRevision") and not st.get("canaryRevision"):
            return "promoted"
        return "progressing"
