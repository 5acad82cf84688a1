"""Fault matrix rows 3, 6 and 13 (docs/faults.md): concurrent writers, children broken by hand, and an
operator upgrade under a running rollout. Real API server, the operator under its own ServiceAccount
watching ``fault-*``, the real Prometheus (through the test proxy) judging constant PromQL.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from modeldeploy.api.spec import ModelDeploymentSpec
from modeldeploy.children.revision import revision_hash
from modeldeploy_testing.cluster import Cluster, poll
from modeldeploy_testing.faults import (
    command,
    event_messages,
    event_reasons,
    get_json,
    md_manifest,
    mid_rollout,
    rollout_state,
    start_fault_operator,
    wait_canary,
    wait_stable,
)
from modeldeploy_testing.operator import OperatorProcess
from modeldeploy_testing.prometheus_proxy import PrometheusProxy


def deployment(cluster: Cluster, ns: str, name: str) -> dict[str, Any] | None:
    r = cluster.kubectl("get", "deploy", name, "-n", ns, "-o", "json", check=False)
    return json.loads(r.stdout) if r.returncode == 0 else None


def server_image(dep: dict[str, Any]) -> str:
    image: str = dep["spec"]["template"]["spec"]["containers"][0]["image"]
    return image


def revision_deployments(cluster: Cluster, ns: str, name: str) -> list[str]:
    out = cluster.kubectl("get", "deploy", "-n", ns, "-l", f"modeldeploy.dev/deployment={name}", "-o", "name")
    return sorted(out.stdout.split())


# --- row 6 -------------------------------------------------------------------------------------------


def test_children_deleted_or_edited_mid_rollout_are_restored_and_the_rollout_goes_on(
    cluster: Cluster,
    fault_namespace: str,
    fault_operator: OperatorProcess,
) -> None:
    ns = fault_namespace
    stable, canary = mid_rollout(cluster, ns, "mend")
    before = rollout_state(cluster, ns, "mend")
    canary_dep = deployment(cluster, ns, f"mend-{canary}")
    stable_dep = deployment(cluster, ns, f"mend-{stable}")
    assert canary_dep and stable_dep
    image = server_image(canary_dep)

    cluster.kubectl("delete", "deploy", f"mend-{canary}", "-n", ns, "--wait=true")
    poll(
        "canary Deployment re-created at its size",
        lambda: (
            (d := deployment(cluster, ns, f"mend-{canary}"))
            and d["metadata"]["uid"] != canary_dep["metadata"]["uid"]
            and d["spec"]["replicas"] == canary_dep["spec"]["replicas"]
        ),
        timeout=60,
    )
    cluster.kubectl("scale", "deploy", f"mend-{stable}", "-n", ns, "--replicas=5")
    cluster.kubectl(
        "set", "image", f"deploy/mend-{canary}", "-n", ns, "model-server=registry.local/tampered:1"
    )
    poll(
        "stable size and canary image restored",
        lambda: (
            (s := deployment(cluster, ns, f"mend-{stable}"))
            and s["spec"]["replicas"] == stable_dep["spec"]["replicas"]
            and (c := deployment(cluster, ns, f"mend-{canary}"))
            and server_image(c) == image
        ),
        timeout=60,
    )
    config_and_service = (f"configmap/mend-{canary}-config", "service/mend")
    cluster.kubectl("delete", *config_and_service, "-n", ns)
    poll(
        "ConfigMap and Service restored",
        lambda: cluster.kubectl("get", *config_and_service, "-n", ns, check=False).returncode == 0,
        timeout=60,
    )
    # the rollout's memory is untouched: same revision, same step, nothing started again
    after = rollout_state(cluster, ns, "mend")
    assert {k: after.get(k) for k in before} == before, (before, after)
    reasons = event_reasons(cluster, ns, "mend")
    assert reasons["RolloutStarted"] == 1 and reasons["StepAdvanced"] == 1, reasons
    command(cluster, ns, "mend", "promote")
    assert wait_stable(cluster, ns, "mend") == canary
    assert event_reasons(cluster, ns, "mend")["RolloutPromoted"] == 1


# --- row 3 -------------------------------------------------------------------------------------------

STEPS = [
    {"setWeight": 25},
    {"analysis": {"duration": "6s"}},
    {"setWeight": 50},
    {"analysis": {"duration": "6s"}},
]


class ConcurrentWriter:
    """Another client writing the ModelDeployment and its children as fast as it can, so that the
    operator's writes race with it (resourceVersions move under it; its fields are overwritten)."""

    def __init__(self, cluster: Cluster, ns: str, name: str) -> None:
        self.cluster, self.ns, self.name = cluster, ns, name
        self.writes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="concurrent-writer", daemon=True)

    def start(self) -> ConcurrentWriter:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=60)

    def _run(self) -> None:
        n = 0
        while not self._stop.is_set():
            n += 1
            k = ["-n", self.ns, "--overwrite"]
            self.cluster.kubectl(
                "annotate", f"md/{self.name}", f"test.modeldeploy.dev/noise={n}", *k, check=False
            )
            self.cluster.kubectl(
                "annotate", f"svc/{self.name}", f"test.modeldeploy.dev/noise={n}", *k, check=False
            )
            for dep in revision_deployments(self.cluster, self.ns, self.name):
                self.cluster.kubectl("scale", dep, "-n", self.ns, f"--replicas={1 + n % 6}", check=False)
            self.writes += 3


def operator_conflicts(op: OperatorProcess, ns: str, since: int) -> int:
    """409 answers the API server gave the operator in ``ns`` (audit log)."""
    assert op.cluster.audit_log is not None
    count = 0
    with op.cluster.audit_log.open("rb") as f:
        f.seek(since)
        for line in f:
            event = json.loads(line)
            if (
                event["user"]["username"] == op.user
                and f"/namespaces/{ns}/" in event["requestURI"]
                and (event.get("responseStatus") or {}).get("code") == 409
            ):
                count += 1
    return count


def test_concurrent_writers_conflicts_are_retried_and_the_rollout_converges(
    cluster: Cluster,
    fault_namespace: str,
    fault_operator: OperatorProcess,
) -> None:
    if cluster.audit_log is None:
        pytest.skip("counts the operator's 409s in the local control plane's audit log")
    ns = fault_namespace
    cluster.apply(md_manifest("race", "1", STEPS, replicas=4), namespace=ns)
    stable = wait_stable(cluster, ns, "race")
    since = fault_operator.audit_offset()
    writer = ConcurrentWriter(cluster, ns, "race").start()
    try:
        cluster.apply(md_manifest("race", "2", STEPS, replicas=4), namespace=ns)
        new = wait_canary(cluster, ns, "race")
        assert wait_stable(cluster, ns, "race", timeout=180) == new
    finally:
        writer.stop()
    assert new != stable and writer.writes > 0
    # every step recorded, one promotion, whatever the writer did meanwhile
    steps = event_messages(cluster, ns, "race", "StepAdvanced")
    assert len(set(steps)) == len(STEPS), steps
    assert event_reasons(cluster, ns, "race")["RolloutPromoted"] == 1
    # and the children converge to what the operator wants once the writer stops
    poll(
        "the stable Deployment back at 4 replicas, alone",
        lambda: (
            revision_deployments(cluster, ns, "race") == [f"deployment.apps/race-{new}"]
            and (d := deployment(cluster, ns, f"race-{new}")) is not None
            and d["spec"]["replicas"] == 4
        ),
        timeout=60,
    )
    conflicts = operator_conflicts(fault_operator, ns, since)
    print(f"operator writes answered 409 during the race: {conflicts}")
    # each step once: a pass decided again after a 409 names its Events as the lost one did
    assert len(steps) == len(STEPS), steps


# --- row 13 ------------------------------------------------------------------------------------------

UPGRADE_STEPS = [{"setWeight": 50}, {"analysis": {"duration": "40s"}}]


@pytest.fixture
def upgradable(
    cluster: Cluster,
    fault_operator: OperatorProcess,
    prometheus_proxy: PrometheusProxy,
) -> Iterator[tuple[OperatorProcess, list[OperatorProcess]]]:
    """The session's fault operator, and a list the test puts the upgraded operators in (stopped
    afterwards, and the session's operator started again)."""
    upgraded: list[OperatorProcess] = []
    try:
        yield fault_operator, upgraded
    finally:
        for op in upgraded:
            op.stop()
        if fault_operator.proc is None:
            fault_operator.start()


def test_an_operator_upgrade_keeps_revision_and_analysis(
    cluster: Cluster,
    fault_namespace: str,
    upgradable: tuple[OperatorProcess, list[OperatorProcess]],
    prometheus_proxy: PrometheusProxy,
    tmp_path: Path,
) -> None:
    ns = fault_namespace
    old_operator, upgraded = upgradable
    stable, canary = mid_rollout(cluster, ns, "upg", UPGRADE_STEPS)
    poll(
        "two measurements",
        lambda: ((rollout_state(cluster, ns, "upg").get("analysis") or {}).get("measurements") or 0) >= 2,
        timeout=60,
    )
    old_operator.stop()  # a Deployment rollout of the operator: SIGTERM, then the new version starts
    before = rollout_state(cluster, ns, "upg")
    deployments = revision_deployments(cluster, ns, "upg")
    new_operator = start_fault_operator(
        cluster, tmp_path, prometheus_proxy, "--resync-seconds", "7", "--log-format", "text"
    )
    upgraded.append(new_operator)
    poll(
        "a measurement by the new operator",
        lambda: (
            (rollout_state(cluster, ns, "upg").get("analysis") or {}).get("measurements", 0)
            > before["analysis"]["measurements"]
        ),
        timeout=60,
    )
    after = rollout_state(cluster, ns, "upg")
    assert after["revision"] == before["revision"] == canary
    assert after["analysis"]["startedAt"] == before["analysis"]["startedAt"]  # the analysis was not restarted
    assert after["analysis"]["successes"] >= before["analysis"]["successes"]
    assert revision_deployments(cluster, ns, "upg") == deployments  # no new revision
    assert wait_stable(cluster, ns, "upg", timeout=120) == canary
    reasons = event_reasons(cluster, ns, "upg")
    assert reasons["RolloutStarted"] == 1 and reasons["RolloutPromoted"] == 1, reasons
    assert len(event_messages(cluster, ns, "upg", "StepAdvanced")) == len(UPGRADE_STEPS)
    # the revision is a function of the user's spec as stored (the API server's defaults filled in)
    stored = get_json(cluster, "md", "upg", "-n", ns)["spec"]
    applied = md_manifest("upg", "2", UPGRADE_STEPS)["spec"]
    assert revision_hash(ModelDeploymentSpec.model_validate(stored)) == canary
    assert revision_hash(ModelDeploymentSpec.model_validate(applied)) == canary
    assert stable != canary
