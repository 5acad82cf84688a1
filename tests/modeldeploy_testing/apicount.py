"""One ServiceAccount's API requests by verb, counted by the real API server.

The audit policy of the local control plane logs writes only, and ``apiserver_request_total`` has no
user label. API Priority and Fairness does tell users apart: one FlowSchema per verb, matching only
this ServiceAccount and placed before every other schema, makes the API server's own
``apiserver_flowcontrol_dispatched_requests_total{flow_schema=...}`` count that account's requests
by verb. Each operator under test gets a ServiceAccount of its own (bound to the operator's
ClusterRole), so operators of other test sessions on a shared cluster are not counted.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path

from modeldeploy_testing.cluster import Cluster
from modeldeploy_testing.operator import NAMESPACE, service_account_kubeconfig

VERBS = ("get", "list", "watch", "create", "update", "patch", "delete")
READS = ("get", "list")
METRIC = "apiserver_flowcontrol_dispatched_requests_total"


class ApiRequestCounter:
    """A ServiceAccount bound to ``cluster_role``, its kubeconfig, and its requests by verb."""

    def __init__(
        self, cluster: Cluster, cluster_role: str, namespace: str = NAMESPACE, prefix: str = "md-count"
    ) -> None:
        self.cluster = cluster
        self.namespace = namespace
        self.cluster_role = cluster_role
        self.name = f"{prefix}-{secrets.token_hex(3)}"

    @property
    def user(self) -> str:
        return f"system:serviceaccount:{self.namespace}:{self.name}"

    def _objects(self) -> list[dict[str, object]]:
        subject = {"kind": "ServiceAccount", "name": self.name, "namespace": self.namespace}
        objects: list[dict[str, object]] = [
            {
                "apiVersion": "v1",
                "kind": "ServiceAccount",
                "metadata": {"name": self.name, "namespace": self.namespace},
            },
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRoleBinding",
                "metadata": {"name": self.name},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": self.cluster_role,
                },
                "subjects": [subject],
            },
        ]
        for verb in VERBS:
            objects.append(
                {
                    "apiVersion": "flowcontrol.apiserver.k8s.io/v1",
                    "kind": "FlowSchema",
                    "metadata": {"name": f"{self.name}-{verb}"},
                    "spec": {
                        "matchingPrecedence": 50,
                        "priorityLevelConfiguration": {"name": "workload-low"},
                        "distinguisherMethod": {"type": "ByUser"},
                        "rules": [
                            {
                                "subjects": [
                                    {
                                        "kind": "ServiceAccount",
                                        "serviceAccount": {"name": self.name, "namespace": self.namespace},
                                    }
                                ],
                                "resourceRules": [
                                    {
                                        "verbs": [verb],
                                        "apiGroups": ["*"],
                                        "resources": ["*"],
                                        "clusterScope": True,
                                        "namespaces": ["*"],
                                    }
                                ],
                            }
                        ],
                    },
                }
            )
        return objects

    def install(self) -> None:
        self.cluster.apply(self._objects())

    def remove(self) -> None:
        for obj in self._objects():
            meta = obj["metadata"]
            assert isinstance(meta, dict)
            ns = ["-n", str(meta["namespace"])] if "namespace" in meta else []
            kind = (
                f"{obj['kind']}.{str(obj['apiVersion']).split('/')[0]}"
                if "/" in str(obj["apiVersion"])
                else obj["kind"]
            )
            self.cluster.kubectl(
                "delete", str(kind), str(meta["name"]), *ns, "--ignore-not-found", check=False
            )

    def kubeconfig(self, path: Path) -> Path:
        """A kubeconfig that authenticates as this ServiceAccount only."""
        assert self.namespace == NAMESPACE, (
            "service_account_kubeconfig makes tokens in the operator's namespace"
        )
        return service_account_kubeconfig(self.cluster, path, self.name)

    def counts(self) -> dict[str, float]:
        """Requests the API server dispatched for this ServiceAccount so far, by verb."""
        text = self.cluster.kubectl("get", "--raw", "/metrics").stdout
        found = dict.fromkeys(VERBS, 0.0)
        for line in text.splitlines():
            if not line.startswith(METRIC + "{"):
                continue
            labels, _, value = line.rpartition(" ")
            for verb in VERBS:
                if f'flow_schema="{self.name}-{verb}"' in labels:
                    found[verb] += float(value)
        return found


def delta(after: dict[str, float], before: dict[str, float]) -> dict[str, float]:
    return {verb: after[verb] - before.get(verb, 0.0) for verb in after}


def as_json(counts: dict[str, float]) -> str:
    return json.dumps({k: v for k, v in counts.items() if v})
