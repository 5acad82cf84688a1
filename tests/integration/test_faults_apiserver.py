"""Fault matrix row 2 (docs/faults.md): the API server restarts in the middle of a rollout.

Only kube-apiserver is stopped (etcd, the controller-manager, the scheduler and kwok keep running),
then ``e2e/cluster.sh up`` starts it again, as it repairs any dead component. The operator's watches
must reconnect and re-list, the rollout must finish, and nothing may be done twice.

This stops the API server of the shared local cluster for a few seconds: every client of the
cluster sees it go away. CI runs the tests one after another, so only this test is affected there.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from modeldeploy_testing.cluster import CLUSTER_SH, REPO, Cluster, api_answers, poll
from modeldeploy_testing.faults import (
    event_messages,
    event_reasons,
    healthz,
    md_manifest,
    mid_rollout,
    wait_canary,
    wait_stable,
)
from modeldeploy_testing.operator import OperatorProcess

STEPS = [
    {"setWeight": 25},
    {"analysis": {"duration": "20s"}},
    {"setWeight": 50},
    {"analysis": {"duration": "6s"}},
]
DOWN_S = 8  # how long the API server stays down: the fault itself


def operator_creates(op: OperatorProcess, ns: str, since: int, resource: str) -> list[str]:
    """URIs of the creates of ``resource`` the operator made in ``ns`` (audit log): a create, or a
    server-side apply answered 201 Created (the audit log records that one as a patch)."""
    assert op.cluster.audit_log is not None
    found = []
    with op.cluster.audit_log.open("rb") as f:
        f.seek(since)
        for line in f:
            event = json.loads(line)
            code = (event.get("responseStatus") or {}).get("code", 0)
            created = (event["verb"] == "create" and code < 300) or (event["verb"] == "patch" and code == 201)
            if (
                event["user"]["username"] == op.user
                and created
                and f"/namespaces/{ns}/{resource}" in event["requestURI"]
            ):
                found.append(event["requestURI"])
    return found


def test_api_server_restart_mid_rollout_the_rollout_finishes_once(
    cluster: Cluster,
    fault_namespace: str,
    fault_operator: OperatorProcess,
) -> None:
    if cluster.cluster_dir is None or cluster.audit_log is None:
        pytest.skip("restarts the local control plane's API server")
    ns = fault_namespace
    since = fault_operator.audit_offset()
    stable, canary = mid_rollout(cluster, ns, "restart", STEPS, replicas=4)  # in the 20 s analysis
    pid = int((cluster.cluster_dir / "pids" / "kube-apiserver.pid").read_text().split()[0])
    os.kill(pid, signal.SIGTERM)
    try:
        # gone and its port released: its graceful shutdown goes on after it stops answering
        poll("API server process gone", lambda: not Path(f"/proc/{pid}").exists(), timeout=120)
        time.sleep(DOWN_S)
        assert healthz(fault_operator)  # the operator rides it out
    finally:
        up = subprocess.run(
            ["bash", str(CLUSTER_SH), "up"], capture_output=True, text=True, timeout=300, cwd=REPO
        )
        assert up.returncode == 0, f"cluster.sh up failed: {up.stdout[-2000:]}{up.stderr[-2000:]}"
    poll("API server back", lambda: api_answers(cluster.kubeconfig), timeout=120)

    assert wait_stable(cluster, ns, "restart", timeout=180) == canary != stable
    steps = event_messages(cluster, ns, "restart", "StepAdvanced")
    assert len(steps) == len(STEPS) == len(set(steps)), steps
    reasons = event_reasons(cluster, ns, "restart")
    assert reasons["RolloutStarted"] == 1 and reasons["RolloutPromoted"] == 1, reasons
    # one Deployment created per revision: nothing re-created by a pass that re-listed an empty world
    creates = operator_creates(fault_operator, ns, since, "deployments")
    assert len(creates) == 2, creates
    assert healthz(fault_operator)
    # the watches are live again: a new revision is picked up and rolled out
    cluster.apply(md_manifest("restart", "3", [{"setWeight": 50}]), namespace=ns)
    third = wait_canary(cluster, ns, "restart")
    assert wait_stable(cluster, ns, "restart", timeout=120) == third
