"""Rollout policies against the real control plane and the real operator (its own ServiceAccount).

* Resolution: a namespace label makes a ClusterRolloutPolicy mandatory, so ``policyRef`` cannot
  escape it; fields the user left out of a block they did write are filled from the policy (the
  API server no longer defaults them); ``status.policy`` / ``status.effectiveRollout`` tell it.
* Re-evaluation at scale: many ModelDeployments (500 by default, ``MODELDEPLOY_POLICY_SCALE``) share
  two policies; editing one re-evaluates exactly its users at once, and the API server's audit log
  shows one status patch per ModelDeployment whose effective settings changed and no other write.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from modeldeploy_testing.cluster import Cluster, poll
from modeldeploy_testing.operator import OperatorProcess
from modeldeploy_testing.plugin import _test_namespace

pytestmark = pytest.mark.integration

API = "modeldeploy.dev/v1alpha1"
SCALE = int(os.environ.get("MODELDEPLOY_POLICY_SCALE", "500"))


def md(name: str, **rollout: Any) -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": "ModelDeployment",
        "metadata": {"name": name},
        "spec": {
            "runtime": "triton",
            "model": {"name": "fraud", "version": "1", "storageUri": "s3://models/fraud/1"},
            "replicas": 0,
            "rollout": rollout,
        },
    }


def policy(kind: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": API, "kind": kind, "metadata": {"name": name}, "spec": spec}


def statuses(cluster: Cluster, ns: str) -> dict[str, dict[str, Any]]:
    items = json.loads(cluster.kubectl("get", "md", "-n", ns, "-o", "json", timeout=120).stdout)["items"]
    return {i["metadata"]["name"]: i.get("status") or {} for i in items}


def condition(status: dict[str, Any], type_: str) -> dict[str, Any] | None:
    return next((c for c in status.get("conditions", []) if c["type"] == type_), None)


@pytest.fixture
def own_namespace(request: pytest.FixtureRequest, cluster: Cluster, api: Any) -> Iterator[str]:
    """A namespace outside the session operator's ``t-*``: only this test's operator reconciles it."""
    yield from _test_namespace(request, cluster, api, "pol-")


@pytest.fixture
def quiet_operator(
    cluster: Cluster, operator: OperatorProcess, own_namespace: str, tmp_path: Path
) -> Iterator[OperatorProcess]:
    """An operator for ``own_namespace`` alone, with a long resync: every pass is caused by an event."""
    proc = OperatorProcess(cluster, tmp_path, resync_seconds=3600, extra_args=("--namespace", own_namespace))
    proc.start()
    offset = proc.log_offset()
    try:
        yield proc
    finally:
        refused = proc.forbidden_since(offset)
        proc.stop()
        assert not refused, "RBAC refused the operator:\n" + "\n".join(refused[:5])


def wait_quiet(proc: OperatorProcess, ns: str, quiet_for: float = 5.0, timeout: float = 60 + SCALE) -> None:
    """Until the operator has made no write in ``ns`` for ``quiet_for`` seconds (the audit log says)."""
    state = {"offset": proc.audit_offset(), "since": time.monotonic()}

    def quiet() -> bool:
        if proc.writes(ns, state["offset"]):
            state["offset"], state["since"] = proc.audit_offset(), time.monotonic()
            return False
        return time.monotonic() - state["since"] >= quiet_for

    poll(f"no operator writes in {ns} for {quiet_for:.0f}s", quiet, timeout=timeout, interval=1)


def stamp(event: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(event["stageTimestamp"].replace("Z", "+00:00"))


def test_mandatory_namespace_policy_and_defaults_for_fields_left_out(
    cluster: Cluster, own_namespace: str, quiet_operator: OperatorProcess
) -> None:
    ns = own_namespace
    strict = f"strict-{ns}"
    cluster.apply(
        policy(
            "ClusterRolloutPolicy",
            strict,
            {
                "defaults": {
                    "analysis": {"interval": "45s", "failureLimit": 5},
                    "progressDeadlineSeconds": 900,
                },
                "requiredGuardrails": [{"name": "errors", "template": "error-rate", "max": 0.01}],
                "limits": {"allowPromoteFull": False},
            },
        )
    )
    cluster.apply(policy("RolloutPolicy", "lenient", {}), namespace=ns)
    try:
        cluster.kubectl(
            "label",
            "ns",
            ns,
            f"modeldeploy.dev/rollout-policy={strict}",
            "modeldeploy.dev/rollout-policy-mandatory=true",
        )
        # The user writes an analysis block (one field) and points policyRef elsewhere.
        guardrails = [{"name": "errors", "template": "error-rate", "max": 0.05}]
        cluster.apply(
            md(
                "escapee",
                policyRef={"kind": "RolloutPolicy", "name": "lenient"},
                analysis={"minSampleSize": 50, "guardrails": guardrails},
            ),
            namespace=ns,
        )
        stored = json.loads(cluster.kubectl("get", "md", "escapee", "-n", ns, "-o", "json").stdout)
        assert "interval" not in stored["spec"]["rollout"]["analysis"]  # the API server filled nothing

        def evaluated() -> dict[str, Any] | None:
            st = statuses(cluster, ns).get("escapee", {})
            return st if st.get("effectiveRollout") else None

        st = poll("status.effectiveRollout", evaluated, timeout=90)
        assert st["policy"] == {
            "kind": "ClusterRolloutPolicy",
            "name": strict,
            "source": "namespaceLabel",
            "mandatory": True,
            "ignoredPolicyRef": "RolloutPolicy/lenient",
            "defaulted": [
                "rollout.analysis.interval",
                "rollout.analysis.failureLimit",
                "rollout.progressDeadlineSeconds",
            ],
        }
        eff = st["effectiveRollout"]
        assert (eff["interval"], eff["failureLimit"], eff["minSampleSize"]) == ("45s", 5, 50)
        assert eff["progressDeadlineSeconds"] == 900 and eff["promoteFull"] is False
        degraded = condition(st, "Degraded")
        assert degraded is not None and degraded["reason"] == "PolicyViolation", degraded
        assert (
            "'errors' on template error-rate is looser than the policy: max 0.05 (policy: max 0.01)"
            in (degraded["message"])
        )

        # The platform team lifts the namespace label: policyRef applies again, at once.
        cluster.kubectl(
            "label", "ns", ns, "modeldeploy.dev/rollout-policy-", "modeldeploy.dev/rollout-policy-mandatory-"
        )

        def by_ref() -> dict[str, Any] | None:
            st = statuses(cluster, ns).get("escapee", {})
            return st if (st.get("policy") or {}).get("source") == "policyRef" else None

        st = poll("status.policy.source policyRef", by_ref, timeout=60)
        assert st["policy"]["name"] == "lenient" and st["effectiveRollout"]["interval"] == "15s"
        assert (condition(st, "Degraded") or {}).get("reason") != "PolicyViolation"
    finally:
        cluster.kubectl("delete", "clusterrolloutpolicy", strict, "--ignore-not-found")


@pytest.mark.timeout(600 + 4 * SCALE)  # creating SCALE ModelDeployments dominates; deadlines below scale too
def test_policy_change_reevaluates_its_users_at_once_without_a_storm_of_writes(
    cluster: Cluster, own_namespace: str, quiet_operator: OperatorProcess
) -> None:
    ns, proc = own_namespace, quiet_operator
    half = SCALE // 2
    cluster.apply(policy("RolloutPolicy", "a", {"defaults": {"analysis": {"interval": "30s"}}}), namespace=ns)
    cluster.apply(policy("RolloutPolicy", "b", {"defaults": {"analysis": {"interval": "20s"}}}), namespace=ns)
    users = {f"a-{i:04d}": "a" for i in range(half)} | {f"b-{i:04d}": "b" for i in range(SCALE - half)}
    items = [md(name, policyRef={"kind": "RolloutPolicy", "name": p}) for name, p in users.items()]
    for start in range(0, len(items), 100):
        batch = {"apiVersion": "v1", "kind": "List", "items": items[start : start + 100]}
        cluster.kubectl("apply", "--server-side", "-n", ns, "-f", "-", input=json.dumps(batch), timeout=600)

    def all_evaluated() -> bool:
        st = statuses(cluster, ns)
        return len(st) == SCALE and all(s.get("effectiveRollout") for s in st.values())

    poll(f"{SCALE} ModelDeployments evaluated", all_evaluated, timeout=120 + 2 * SCALE, interval=5)
    wait_quiet(proc, ns)

    # 1. Edit policy a: only its users' effective settings change.
    offset = proc.audit_offset()
    cluster.kubectl(
        "patch",
        "rolloutpolicy",
        "a",
        "-n",
        ns,
        "--type=merge",
        "-p",
        json.dumps({"spec": {"defaults": {"analysis": {"interval": "45s"}}}}),
    )

    def a_updated() -> bool:
        st = statuses(cluster, ns)
        return all(
            st[n]["effectiveRollout"]["interval"] == ("45s" if p == "a" else "20s") for n, p in users.items()
        )

    poll("every user of policy a re-evaluated", a_updated, timeout=60 + SCALE, interval=2)
    wait_quiet(proc, ns)
    writes = proc.writes(ns, offset)
    kinds = Counter(
        (w["objectRef"]["resource"], w["objectRef"].get("subresource"), w["verb"]) for w in writes
    )
    assert kinds == {("modeldeployments", "status", "patch"): half}, kinds
    assert Counter(w["objectRef"]["name"] for w in writes) == Counter(
        {n: 1 for n, p in users.items() if p == "a"}
    )
    changed_at = min(stamp(w) for w in _policy_writes(cluster, offset, ns, "a"))
    spread = (max(stamp(w) for w in writes) - changed_at).total_seconds()
    print(f"\npolicy a edited: {half} status patches, last {spread:.1f}s after the edit")

    # 2. Delete policy b: its users now say so (PolicyNotFound), one status patch each.
    offset = proc.audit_offset()
    cluster.kubectl("delete", "rolloutpolicy", "b", "-n", ns)

    def b_missing() -> bool:
        st = statuses(cluster, ns)
        return all(
            (condition(st[n], "Degraded") or {}).get("reason") == "PolicyNotFound"
            for n, p in users.items()
            if p == "b"
        )

    poll("every user of policy b told it is gone", b_missing, timeout=60 + SCALE, interval=2)
    wait_quiet(proc, ns)
    writes = proc.writes(ns, offset)
    assert Counter(w["objectRef"]["name"] for w in writes) == Counter(
        {n: 1 for n, p in users.items() if p == "b"}
    )
    assert {w["objectRef"].get("subresource") for w in writes} == {"status"}


def _policy_writes(cluster: Cluster, since: int, ns: str, name: str) -> list[dict[str, Any]]:
    """Audit events of anyone's writes to RolloutPolicy ``name`` in ``ns`` since offset ``since``."""
    assert cluster.audit_log is not None
    found = []
    with cluster.audit_log.open("rb") as f:
        f.seek(since)
        for line in f:
            event = json.loads(line)
            ref = event.get("objectRef") or {}
            if (
                ref.get("resource") == "rolloutpolicies"
                and ref.get("namespace") == ns
                and ref.get("name") == name
            ):
                found.append(event)
    assert found, f"no audit event for RolloutPolicy {ns}/{name}"
    return found
