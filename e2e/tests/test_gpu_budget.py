"""The GPU budget (rollout.maxSurgeGPUs) under the real scheduler.

Given a ModelDeployment that fills a 4-GPU node (2 replicas x 2 GPUs, pinned to one GPU product) and a
budget of 0 extra GPUs, when a new revision rolls out, then the stable revision gives up pods before the
canary takes them: the pods in existence never ask for more than the node has, no pod is left
unschedulable, and the rollout completes. The same rollout without a budget would need 6 GPUs at once.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from modeldeploy_testing.cluster import Cluster, poll
from modeldeploy_testing.operator import OperatorProcess

PRODUCT = "NVIDIA-A100-SXM4-80GB"
NODE = "gpu-a100-0"
NODE_GPUS = 4


def manifest(version: str, budget: int | None) -> dict[str, Any]:
    rollout: dict[str, Any] = {"canary": {"steps": [{"setWeight": 50}, {"pause": {"duration": "2s"}}]}}
    if budget is not None:
        rollout["maxSurgeGPUs"] = budget
    return {
        "apiVersion": "modeldeploy.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": "budget"},
        "spec": {
            "runtime": "triton",
            "model": {"name": "m", "version": version, "storageUri": f"s3://models/m/{version}"},
            "replicas": 2,
            "resources": {"gpu": {"count": 2, "product": PRODUCT}, "cpu": "1", "memory": "4Gi"},
            "rollout": rollout,
        },
    }


def gpus_on_node(cluster: Cluster) -> tuple[int, list[str]]:
    """GPUs requested by the pods bound to (or waiting for) the node, and unschedulable messages."""
    pods = json.loads(cluster.kubectl("get", "pods", "-A", "-o", "json").stdout)["items"]
    used, pending = 0, []
    for pod in pods:
        if pod["status"].get("phase") in ("Succeeded", "Failed"):
            continue
        gpus = sum(
            int(c.get("resources", {}).get("requests", {}).get("nvidia.com/gpu", 0))
            for c in pod["spec"]["containers"]
        )
        if pod["spec"].get("nodeName") == NODE:
            used += gpus
        for c in pod["status"].get("conditions", []):
            if c["type"] == "PodScheduled" and c["status"] == "False":
                pending.append(f"{pod['metadata']['name']}: {c.get('message')}")
    return used, pending


@pytest.fixture
def watcher(cluster: Cluster) -> Iterator[list[tuple[int, list[str]]]]:
    samples: list[tuple[int, list[str]]] = []
    stop = threading.Event()

    def run() -> None:
        while not stop.is_set():
            samples.append(gpus_on_node(cluster))
            stop.wait(0.2)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    yield samples
    stop.set()
    thread.join(timeout=10)


def test_canary_stays_within_the_gpu_budget(
    cluster: Cluster, namespace: str, operator_log: OperatorProcess, watcher: list[tuple[int, list[str]]]
) -> None:
    poll("the A100 node is free", lambda: gpus_on_node(cluster)[0] == 0, timeout=120)
    cluster.apply(manifest("1", budget=0), namespace=namespace)

    def status() -> dict[str, Any]:
        md = json.loads(cluster.kubectl("get", "md", "budget", "-n", namespace, "-o", "json").stdout)
        return md.get("status") or {}

    stable = poll(
        "stable Healthy",
        lambda: status().get("phase") == "Healthy" and status()["stableRevision"],
        timeout=90,
    )
    watcher.clear()
    cluster.apply(manifest("2", budget=0), namespace=namespace)
    canary = poll("canary", lambda: status().get("canaryRevision"), timeout=60)
    poll(
        "promoted",
        lambda: status().get("stableRevision") == canary and status().get("phase") == "Healthy",
        timeout=180,
    )
    time.sleep(1)
    assert canary != stable
    peak = max(used for used, _ in watcher)
    assert peak <= NODE_GPUS, f"GPUs requested on {NODE} peaked at {peak} > {NODE_GPUS}"
    stuck = [p for _, pending in watcher for p in pending if "budget" in p]
    assert stuck == [], stuck
    # and the scheduler never had to refuse a pod of this rollout for lack of GPUs
    refused = {p for _, pending in watcher for p in pending if "Insufficient nvidia.com/gpu" in p}
    assert refused == set(), refused
