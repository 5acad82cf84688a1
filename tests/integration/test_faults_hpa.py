"""Fault matrix row 12 (docs/faults.md): the HPA scales the ModelDeployment while a canary runs.

The operator builds one HPA per ModelDeployment, aimed at its scale subresource (children/hpa.py): the
HPA sets ``spec.replicas`` and the operator splits it between revisions. The real HPA controller of
the local controller-manager (sync every 5 s) does the scaling here. The local cluster has no metrics
pipeline (kwok pods use no CPU), so the HPA is moved by its bounds: raising ``minReplicas`` mid-canary
makes the controller scale the ModelDeployment up through the subresource, as a load spike would.

What the HPA reads back matters (argo-rollouts #2857, #4607, #4847): ``status.replicas`` of the scale
subresource is the HPA's ``currentReplicas``; counting the canary's extra pods in it feeds them back
into the next desired count, and the ratchet ends at ``maxReplicas``.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from modeldeploy_testing.cluster import Cluster, poll
from modeldeploy_testing.faults import (
    PAUSE_STEPS,
    get_json,
    md_manifest,
    md_status,
    wait_canary,
    wait_stable,
    wait_step,
)
from modeldeploy_testing.operator import OperatorProcess

MAX_SURGE_GPUS = 1
BEFORE, AFTER = 2, 4  # replicas before and after the HPA scales (1 GPU each): at most 5 GPUs in use


def gpu_manifest(
    name: str, version: str, min_replicas: int, router: dict[str, Any] | None = None
) -> dict[str, Any]:
    body = md_manifest(name, version, PAUSE_STEPS, replicas=BEFORE)
    spec = body["spec"]
    spec["resources"]["gpu"] = {"count": 1}
    spec["autoscaling"] = {
        "minReplicas": min_replicas,
        "maxReplicas": 8,
        "metrics": [{"cpu": {"averageUtilization": 70}}],
    }
    spec["rollout"]["maxSurgeGPUs"] = MAX_SURGE_GPUS
    if router is not None:
        spec["rollout"]["trafficRouting"] = router
    return body


class GpuWatch:
    """The most GPUs this ModelDeployment's pods held at once (terminating pods included)."""

    def __init__(self, cluster: Cluster, ns: str, name: str) -> None:
        self.cluster, self.ns, self.name = cluster, ns, name
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> GpuWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        while not self._stop.wait(0.3):
            pods = get_json(
                self.cluster, "pods", "-n", self.ns, "-l", f"modeldeploy.dev/deployment={self.name}"
            )
            held = sum(
                int(c["resources"].get("limits", {}).get("nvidia.com/gpu", 0))
                for p in pods["items"]
                if p["status"].get("phase") not in ("Succeeded", "Failed")
                for c in p["spec"]["containers"]
            )
            self.peak = max(self.peak, held)


def scale_subresource(cluster: Cluster, ns: str, name: str) -> dict[str, Any]:
    out = cluster.kubectl("get", "md", name, "-n", ns, "--subresource=scale", "-o", "json")
    body: dict[str, Any] = json.loads(out.stdout)
    return body


@pytest.fixture
def gpu_room(cluster: Cluster) -> Iterator[None]:
    """Skip rather than fail when other tests hold the simulated GPUs this one needs."""
    pods = get_json(cluster, "pods", "-A", "--field-selector", "status.phase!=Succeeded,status.phase!=Failed")
    held = sum(
        int(c["resources"].get("limits", {}).get("nvidia.com/gpu", 0))
        for p in pods["items"]
        for c in p["spec"]["containers"]
    )
    if held > 8 - (AFTER + MAX_SURGE_GPUS):
        pytest.skip(f"{held} of the cluster's 8 simulated GPUs are held by other tests")
    yield


def test_hpa_scaling_mid_canary_keeps_weight_and_gpu_budget(
    cluster: Cluster,
    fault_namespace: str,
    fault_operator: OperatorProcess,
    gpu_room: None,
) -> None:
    ns = fault_namespace
    cluster.apply(gpu_manifest("scaled", "1", min_replicas=BEFORE), namespace=ns)
    wait_stable(cluster, ns, "scaled")
    poll(
        "HPA created", lambda: cluster.kubectl("get", "hpa", "scaled", "-n", ns, check=False).returncode == 0
    )
    with GpuWatch(cluster, ns, "scaled") as gpus:
        cluster.apply(gpu_manifest("scaled", "2", min_replicas=BEFORE), namespace=ns)
        canary = wait_canary(cluster, ns, "scaled")
        wait_step(cluster, ns, "scaled", 1)
        poll("canary at 50%", lambda: md_status(cluster, ns, "scaled").get("canaryWeight") == 50, timeout=60)
        # the HPA controller scales the ModelDeployment up through the scale subresource
        cluster.apply(gpu_manifest("scaled", "2", min_replicas=AFTER), namespace=ns)
        poll(
            f"HPA scaled the ModelDeployment to {AFTER}",
            lambda: get_json(cluster, "md", "scaled", "-n", ns)["spec"]["replicas"] == AFTER,
            timeout=90,
        )

        def split_again() -> dict[str, Any] | None:
            st = md_status(cluster, ns, "scaled")
            return st if st.get("readyReplicas") == AFTER and st.get("canaryWeight") == 50 else None

        st = poll(f"{AFTER} ready pods, half of them canary", split_again, timeout=120)
    assert st["canaryRevision"] == canary and st["currentStep"] == 1  # the rollout did not move
    assert gpus.peak <= AFTER + MAX_SURGE_GPUS, gpus.peak  # the budget held at every moment
    # what the HPA reads back is the size it set, not stable + canary: no feedback into its next count
    scale = scale_subresource(cluster, ns, "scaled")
    assert scale["status"]["replicas"] == scale["spec"]["replicas"] == AFTER, scale

    def hpa_settled() -> dict[str, Any] | None:  # the HPA writes its status at its next sync (5 s)
        hpa_status: dict[str, Any] = get_json(cluster, "hpa", "scaled", "-n", ns).get("status") or {}
        settled = hpa_status.get("desiredReplicas") == hpa_status.get("currentReplicas") == AFTER
        return hpa_status if settled else None

    poll(f"HPA status at {AFTER} replicas", hpa_settled, timeout=60)
    assert get_json(cluster, "md", "scaled", "-n", ns)["spec"]["replicas"] == AFTER  # never driven past it
