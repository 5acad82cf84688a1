"""Two operator replicas under leader election, for tests/integration/test_ha.py and bench/ha.py.

Each replica is a real operator process (modeldeploy_testing.operator) with ``--leader-elect`` and a
Lease of the caller's own name, so concurrent sessions on a shared control plane never compete for
the production Lease; both watch only the given namespace.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from modeldeploy_testing.cluster import Cluster, poll
from modeldeploy_testing.operator import NAMESPACE, OperatorProcess

CANARY_WEIGHTS = (20, 40, 60, 80)


def start_replica(cluster: Cluster, workdir: Path, namespace: str, lease: str) -> OperatorProcess:
    """One replica, started and answering /healthz (as leader or standby)."""
    workdir.mkdir(parents=True, exist_ok=True)
    replica = OperatorProcess(
        cluster,
        workdir,
        resync_seconds=5,
        extra_args=("--namespace", namespace, "--leader-elect", "--leader-election-id", lease),
    )
    replica.start()
    return replica


def lease(cluster: Cluster, name: str) -> dict[str, Any] | None:
    r = cluster.kubectl("get", "lease", name, "-n", NAMESPACE, "-o", "json", check=False)
    return json.loads(r.stdout) if r.returncode == 0 else None


def holder(cluster: Cluster, name: str) -> str:
    found = lease(cluster, name)
    return str(((found or {}).get("spec") or {}).get("holderIdentity") or "")


def delete_lease(cluster: Cluster, name: str) -> None:
    cluster.kubectl("delete", "lease", name, "-n", NAMESPACE, "--ignore-not-found")


def canary_manifest(name: str, version: str, pause_seconds: int = 3) -> dict[str, Any]:
    """A canary of len(CANARY_WEIGHTS) * 2 steps (setWeight, timed pause), no analysis: it walks
    its steps on the simulated nodes without Prometheus."""
    steps: list[dict[str, Any]] = []
    for weight in CANARY_WEIGHTS:
        steps += [{"setWeight": weight}, {"pause": {"duration": f"{pause_seconds}s"}}]
    return {
        "apiVersion": "modeldeploy.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": name},
        "spec": {
            "runtime": "triton",
            "model": {"name": "fraud", "version": version, "storageUri": f"s3://models/fraud/{version}"},
            "replicas": 2,
            "rollout": {"canary": {"steps": steps}},
        },
    }


def status(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    body = json.loads(cluster.kubectl("get", "md", name, "-n", namespace, "-o", "json").stdout)
    result: dict[str, Any] = body.get("status") or {}
    return result


def wait_stable(cluster: Cluster, namespace: str, name: str, timeout: float = 180) -> str:
    def stable() -> str | None:
        st = status(cluster, namespace, name)
        done = st.get("phase") == "Healthy" and st.get("stableRevision") and not st.get("canaryRevision")
        return str(st["stableRevision"]) if done else None

    revision: str = poll(f"md/{name} Healthy with no canary", stable, timeout=timeout)
    return revision


def events(cluster: Cluster, namespace: str, name: str, reason: str) -> list[dict[str, Any]]:
    """Events about md/``name`` with ``reason`` (each Event object once, with its repeat count)."""
    out = cluster.kubectl(
        "get",
        "events",
        "-n",
        namespace,
        "--field-selector",
        f"involvedObject.name={name},involvedObject.kind=ModelDeployment,reason={reason}",
        "-o",
        "json",
    ).stdout
    items: list[dict[str, Any]] = json.loads(out)["items"]
    return items


def step_counts(cluster: Cluster, namespace: str, name: str) -> dict[str, int]:
    """How often each StepAdvanced message was recorded (Event objects times their count)."""
    counts: dict[str, int] = {}
    for event in events(cluster, namespace, name, "StepAdvanced"):
        counts[event["message"]] = counts.get(event["message"], 0) + int(event.get("count") or 1)
    return counts


def _epoch(timestamp: str) -> float:
    return datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp()


@dataclass(frozen=True)
class Takeover:
    """Seconds from the leader's SIGKILL until the standby held the Lease (its acquireTime), and
    until its first write outside the Lease (the audit log's receive time); None: no write seen."""

    lease_acquired_s: float
    first_write_s: float | None


def measure_takeover(
    cluster: Cluster,
    standby: OperatorProcess,
    lease_name: str,
    namespace: str,
    killed_at: float,
    audit_from: int,
    write_timeout: float = 30,
) -> Takeover:
    """``killed_at``: time.time() of the kill; ``audit_from``: the audit-log offset before it."""
    me = standby.identity()
    poll(
        f"{me} holds lease {lease_name}", lambda: holder(cluster, lease_name) == me, timeout=60, interval=0.2
    )
    acquired = _epoch((lease(cluster, lease_name) or {})["spec"]["acquireTime"]) - killed_at
    try:
        writes = poll(
            f"a first write by {me} in {namespace}",
            lambda: standby.writes(namespace, audit_from, only_this_process=True),
            timeout=write_timeout,
            interval=0.2,
        )
    except AssertionError:
        return Takeover(acquired, None)
    first = min(_epoch(w["requestReceivedTimestamp"]) for w in writes) - killed_at
    return Takeover(acquired, first)
