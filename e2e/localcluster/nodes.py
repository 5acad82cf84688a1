"""The fake kwok nodes (two 4-GPU nodes, one CPU node), created through the API and waited for."""

from __future__ import annotations

from typing import Any

from .kubeapi import Api
from .messages import ClusterError

GPU_NODES = (
    ("gpu-a100-0", "NVIDIA-A100-SXM4-80GB"),
    ("gpu-h100-0", "NVIDIA-H100-80GB-HBM3"),
)


CPU_NODES = ("cpu-0",)


BASE_LABELS = {"type": "kwok", "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64"}


def kwok_node(
    name: str,
    resources: dict[str, str],
    labels: dict[str, str] | None = None,
    taints: list[dict[str, str]] | None = None,
) -> dict[str, Any]:
    """One Node kwok simulates: its capacity (= allocatable), the base labels plus ``labels``."""
    node: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {**BASE_LABELS, "kubernetes.io/hostname": name, **(labels or {})},
        },
        "status": {"capacity": resources, "allocatable": resources},
    }
    if taints:
        node["spec"] = {"taints": taints}
    return node


def node_objects() -> list[dict[str, Any]]:
    gpu = {"cpu": "32", "memory": "256Gi", "pods": "110", "nvidia.com/gpu": "4", "ephemeral-storage": "1Ti"}
    cpu = {"cpu": "16", "memory": "64Gi", "pods": "110", "ephemeral-storage": "1Ti"}
    taint = [{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}]
    gpu_labels = {
        "nvidia.com/gpu.present": "true",
        "nvidia.com/gpu.count": "4",
        "nvidia.com/gpu.memory": "81920",
    }
    nodes = [
        kwok_node(name, gpu, {**gpu_labels, "nvidia.com/gpu.product": product}, taint)
        for name, product in GPU_NODES
    ]
    return nodes + [kwok_node(name, cpu) for name in CPU_NODES]


def ensure_nodes(api: Api) -> None:
    for node in node_objects():
        name = node["metadata"]["name"]
        code, body = api.request("GET", f"/api/v1/nodes/{name}")
        if code == 200:
            continue
        code, body = api.request("POST", "/api/v1/nodes", node)
        if code not in (201, 409):
            raise ClusterError(f"cannot create node {name}: HTTP {code} {body.get('message', '')}")


def nodes_ready(api: Api) -> bool:
    code, body = api.request("GET", "/api/v1/nodes?labelSelector=type%3Dkwok")
    if code != 200:
        return False
    want = {n["metadata"]["name"] for n in node_objects()}
    ready = set()
    for item in body.get("items", []):
        for cond in item.get("status", {}).get("conditions", []):
            if cond.get("type") == "Ready" and cond.get("status") == "True":
                ready.add(item["metadata"]["name"])
    return want <= ready


def default_sa_exists(api: Api) -> bool:
    return api.request("GET", "/api/v1/namespaces/default/serviceaccounts/default")[0] == 200
