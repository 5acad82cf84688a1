"""The shipped manifests run the operator highly available: two leader-elected replicas that a rolling
update or a drain never takes both down, and the Lease permission only in the operator's namespace."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from modeldeploy.settings import load

pytestmark = pytest.mark.unit

BASE = Path(__file__).resolve().parents[2] / "manifests" / "base"


def documents(name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((BASE / name).read_text()) if d]


def test_two_replicas_roll_one_at_a_time_and_elect_a_leader() -> None:
    (deployment,) = documents("deployment.yaml")
    spec = deployment["spec"]
    assert spec["replicas"] == 2
    assert spec["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
    }
    pod = spec["template"]["spec"]
    container = pod["containers"][0]
    settings = load(container["args"], {})  # the flags parse, and turn election on
    assert settings.leader_elect
    env = {e["name"]: e["valueFrom"]["fieldRef"]["fieldPath"] for e in container["env"]}
    assert env["POD_NAME"] == "metadata.name"  # the identity's base
    assert env["MODELDEPLOY_LEADER_ELECTION_NAMESPACE"] == "metadata.namespace"
    anti = pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"][0]
    assert anti["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    assert anti["podAffinityTerm"]["labelSelector"]["matchLabels"] == spec["selector"]["matchLabels"]


def test_a_disruption_budget_keeps_one_replica() -> None:
    (deployment,) = documents("deployment.yaml")
    (pdb,) = documents("pdb.yaml")
    assert pdb["kind"] == "PodDisruptionBudget" and pdb["spec"]["minAvailable"] == 1
    assert pdb["spec"]["selector"] == deployment["spec"]["selector"]


def test_lease_permissions_are_namespaced_and_nowhere_else() -> None:
    role, binding = documents("leader-election-rbac.yaml")
    assert role["kind"] == "Role" and role["metadata"]["namespace"] == "modeldeploy-system"
    assert role["rules"] == [
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["get", "create", "update"]}
    ]
    assert binding["kind"] == "RoleBinding" and binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "modeldeploy-operator", "namespace": "modeldeploy-system"}
    ]
    cluster_wide = [d for d in documents("rbac.yaml") if d["kind"] == "ClusterRole"]
    assert cluster_wide and not any(
        "coordination.k8s.io" in rule["apiGroups"] for d in cluster_wide for rule in d["rules"]
    )
    kustomization = yaml.safe_load((BASE / "kustomization.yaml").read_text())
    assert {"leader-election-rbac.yaml", "pdb.yaml"} <= set(kustomization["resources"])
