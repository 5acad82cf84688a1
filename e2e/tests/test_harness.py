"""The e2e harness against the real control plane and Prometheus, without the operator.

Plain Deployments carry the labels the operator puts on serving pods; kwok makes their pods Ready
with pod IPs; the harness gives each one a model server, Prometheus scrapes it with the target
labels the guardrail queries use, and the load reaches pods through the Service's EndpointSlices.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness import Load, World
from harness.world import DEFAULT_JOB
from modeldeploy.analysis.render import Variables, render
from modeldeploy.analysis.templates import builtin_template
from modeldeploy_testing.cluster import REPO, Cluster, Prometheus, poll

MD = "fraud"
STABLE = "a1b2c3d4"
CANARY = "e5f6a7b8"


def serving_deployment(md: str, revision: str, runtime: str = "triton", replicas: int = 2) -> dict[str, Any]:
    """A Deployment whose pods carry the labels the operator sets on serving pods."""
    labels = {
        "app.kubernetes.io/name": md,
        "app.kubernetes.io/managed-by": "modeldeploy",
        "app.kubernetes.io/component": "model-server",
        "modeldeploy.dev/deployment": md,
        "modeldeploy.dev/revision": revision,
        "modeldeploy.dev/runtime": runtime,
    }
    port = 8000 if runtime == "triton" else 8080
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": f"{md}-{revision}", "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": {
                "matchLabels": {
                    k: labels[k] for k in ("modeldeploy.dev/deployment", "modeldeploy.dev/revision")
                }
            },
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "containers": [{"name": "server", "image": "harness", "ports": [{"containerPort": port}]}]
                },
            },
        },
    }


def main_service(md: str, runtime: str = "triton") -> dict[str, Any]:
    """The operator's main Service: every revision's serving pods."""
    port = 8000 if runtime == "triton" else 8080
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": md},
        "spec": {
            "selector": {"modeldeploy.dev/deployment": md, "app.kubernetes.io/component": "model-server"},
            "ports": [{"name": "http", "port": port, "targetPort": port}],
        },
    }


def ready_slice_addresses(cluster: Cluster, namespace: str, service: str) -> set[str]:
    out = cluster.kubectl(
        "get", "endpointslices", "-n", namespace, "-l", f"kubernetes.io/service-name={service}", "-o", "json"
    ).stdout
    return {
        address
        for s in json.loads(out)["items"]
        for ep in s.get("endpoints") or []
        if (ep.get("conditions") or {}).get("ready") is not False
        for address in ep.get("addresses") or []
    }


def guardrail_value(
    prometheus: Prometheus, runtime: str, template: str, namespace: str, revision: str
) -> float | None:
    """The operator's own built-in guardrail query for this revision, evaluated by Prometheus."""
    query = render(
        builtin_template(runtime, template), Variables(namespace, MD, revision, "10s"), guardrail=template
    )
    result = prometheus.query(query)
    return float(result[0]["value"][1]) if result else None


def harness_files(cluster: Cluster, namespace: str) -> list[Path]:
    assert cluster.prometheus_targets_dir is not None
    return sorted(cluster.prometheus_targets_dir.glob(f"harness-{namespace}-*.json"))


@pytest.fixture
def world(cluster: Cluster, namespace: str, prometheus: Prometheus) -> Iterator[World]:
    assert cluster.prometheus_targets_dir is not None  # the prometheus fixture fails the test otherwise
    w = World(cluster.kubeconfig, cluster.prometheus_targets_dir, namespace).start()
    try:
        yield w
    finally:
        w.stop()
    assert harness_files(cluster, namespace) == [], "World.stop() left target files behind"


def test_triton_pods_are_scraped_with_the_guardrail_labels_and_the_error_knob_shows(
    cluster: Cluster, namespace: str, prometheus: Prometheus, world: World
) -> None:
    cluster.apply([serving_deployment(MD, STABLE, replicas=2), main_service(MD)], namespace)
    servers = world.wait_for_servers(2, md=MD, revision=STABLE)
    files = harness_files(cluster, namespace)
    assert len(files) == 2
    target = json.loads(files[0].read_text())[0]
    assert set(target["labels"]) == {"job", "namespace", "pod", "revision", "md"}

    sel = f'namespace="{namespace}", md="{MD}"'
    with Load(world, namespace, MD, rps=20) as load:
        load.wait_for_requests(20)
        prometheus.wait_for(f"sum(rate(nv_inference_request_success{{{sel}}}[30s])) > 0", timeout=60)
        series = prometheus.wait_for(f'nv_inference_request_success{{{sel}, revision="{STABLE}"}}')
        assert {s["metric"]["pod"] for s in series} == {ps.pod for ps in servers}
        assert {s["metric"]["job"] for s in series} == {DEFAULT_JOB}
        assert {s["metric"]["model"] for s in series} == {MD}  # no model in the pod spec: the md name
        ok = poll(
            "the operator's error-rate query to read 0",
            lambda: guardrail_value(prometheus, "triton", "error-rate", namespace, STABLE) == 0.0,
        )
        assert ok

        world.set_behavior(namespace, MD, STABLE, error_rate=1.0)
        prometheus.wait_for(f"sum(rate(nv_inference_request_failure{{{sel}}}[30s])) > 0", timeout=60)
        poll(
            "the operator's error-rate query to exceed 0.5",
            lambda: (guardrail_value(prometheus, "triton", "error-rate", namespace, STABLE) or 0) > 0.5,
            timeout=60,
        )
        window = load.wait_for_requests(20, since=load.traffic())
        assert window.by_revision[STABLE].ok == 0 and window.by_revision[STABLE].error == window.total

        # the revision's behaviour also applies to servers started later
        cluster.kubectl("scale", "deployment", f"{MD}-{STABLE}", "-n", namespace, "--replicas=3")
        servers = world.wait_for_servers(3, md=MD, revision=STABLE)
        assert {ps.server.behavior.error_rate for ps in servers} == {1.0}


def test_load_follows_endpointslices_to_every_ready_pod(
    cluster: Cluster, namespace: str, prometheus: Prometheus, world: World
) -> None:
    cluster.apply([serving_deployment(MD, STABLE, replicas=3), main_service(MD)], namespace)
    servers = world.wait_for_servers(3, md=MD)
    pod_ips = {ps.ip for ps in servers}
    # the control plane's endpointslice controller lists kwok pods by their pod IPs
    poll(
        "EndpointSlices to list every ready pod",
        lambda: ready_slice_addresses(cluster, namespace, MD) == pod_ips,
    )

    with Load(world, namespace, MD, rps=30) as load:

        def every_pod_reached() -> bool:
            window = load.wait_for_requests(30, since=load.traffic())
            return set(window.by_pod) == {ps.pod for ps in servers}

        poll("load to reach every ready pod in one window", every_pod_reached, timeout=60)
        window = load.wait_for_requests(60, since=load.traffic())
        assert set(window.by_service) == {MD}  # routed through the main Service
        assert all(c.ok and not c.error and not c.refused for c in window.by_pod.values()), window.by_pod
        per_pod = sorted(c.total for c in window.by_pod.values())
        assert per_pod[-1] - per_pod[0] <= 3, f"round robin should be even: {window.by_pod}"
        for ps in servers:
            assert ps.server.stats().success > 0

        cluster.kubectl("scale", "deployment", f"{MD}-{STABLE}", "-n", namespace, "--replicas=1")
        (survivor,) = world.wait_for_servers(1, md=MD)
        assert [p.name for p in harness_files(cluster, namespace)] == [
            f"harness-{namespace}-{survivor.pod}.json"
        ]

        def only_survivor() -> bool:
            window = load.wait_for_requests(20, since=load.traffic())
            return set(window.by_pod) == {survivor.pod} and window.unmapped == 0

        poll("load to follow the EndpointSlice down to the surviving pod", only_survivor, timeout=60)


def test_canary_share_under_the_replicas_router_is_its_share_of_ready_pods(
    cluster: Cluster, namespace: str, world: World
) -> None:
    cluster.apply(
        [
            serving_deployment(MD, STABLE, replicas=3),
            serving_deployment(MD, CANARY, replicas=1),
            main_service(MD),
        ],
        namespace,
    )
    servers = world.wait_for_servers(4, md=MD)
    poll(
        "EndpointSlices to list all 4 pods",
        lambda: ready_slice_addresses(cluster, namespace, MD) == {ps.ip for ps in servers},
    )
    with Load(world, namespace, MD, rps=40) as load:
        load.wait_for_requests(10)
        window = load.wait_for_requests(200, since=load.traffic())
        assert window.share(CANARY) == pytest.approx(0.25, abs=0.05), window.summary()
        assert window.share(STABLE) == pytest.approx(0.75, abs=0.05), window.summary()


def test_torchserve_metrics_feed_the_operators_latency_and_error_queries(
    cluster: Cluster, namespace: str, prometheus: Prometheus, world: World
) -> None:
    world.set_behavior(namespace, MD, STABLE, latency_ms=50)  # before the pods exist
    cluster.apply(
        [serving_deployment(MD, STABLE, "torchserve", replicas=2), main_service(MD, "torchserve")], namespace
    )
    world.wait_for_servers(2, md=MD)
    with Load(world, namespace, MD, rps=20) as load:
        load.wait_for_requests(10)
        latency = poll(
            "the operator's TorchServe latency query",
            lambda: guardrail_value(prometheus, "torchserve", "latency-p99-ms", namespace, STABLE),
            timeout=60,
        )
        assert 45 <= latency < 200, latency
        world.set_behavior(namespace, MD, STABLE, error_rate=0.5)
        poll(
            "the operator's TorchServe error-rate query to approach 0.5",
            lambda: (
                0.4
                <= (guardrail_value(prometheus, "torchserve", "error-rate", namespace, STABLE) or 0)
                <= 0.6
            ),
            timeout=60,
        )


def test_cli_runs_the_world_until_interrupted(
    cluster: Cluster, namespace: str, prometheus: Prometheus
) -> None:
    assert cluster.prometheus_targets_dir is not None
    cluster.apply([serving_deployment(MD, STABLE, replicas=1), main_service(MD)], namespace)
    env = {**os.environ, "PYTHONPATH": str(REPO / "e2e")}
    args = [
        sys.executable, "-m", "harness", "run",
        "--kubeconfig", str(cluster.kubeconfig),
        "--targets-dir", str(cluster.prometheus_targets_dir),
        "--namespace", namespace,
        "--load", MD,
        "--report-every", "1",
    ]  # fmt: skip
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        poll("the CLI's target file", lambda: harness_files(cluster, namespace), timeout=60)
        prometheus.wait_for(f'nv_inference_request_success{{namespace="{namespace}", md="{MD}"}} > 0')
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    lines = out.splitlines()
    assert any(" started " in line and f"{namespace}/{MD}-{STABLE}-" in line for line in lines), out
    assert any(" stopped " in line for line in lines), out
    assert any(" traffic " in line for line in lines), out
    assert harness_files(cluster, namespace) == []


def revision_service(md: str, role: str, revision: str) -> dict[str, Any]:
    """The operator's per-role Service (``<md>-stable`` / ``<md>-canary``): one revision's pods."""
    service = main_service(md)
    service["metadata"]["name"] = f"{md}-{role}"
    service["spec"]["selector"]["modeldeploy.dev/revision"] = revision
    return service


def http_route(name: str, stable_weight: int, canary_weight: int) -> dict[str, Any]:
    refs = [
        {"group": "", "kind": "Service", "name": f"{MD}-stable", "port": 8000, "weight": stable_weight},
        {"group": "", "kind": "Service", "name": f"{MD}-canary", "port": 8000, "weight": canary_weight},
    ]
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": name},
        "spec": {"rules": [{"backendRefs": refs}]},
    }


def test_gateway_api_load_follows_the_httproute_weights(
    cluster: Cluster, namespace: str, world: World
) -> None:
    crd = cluster.kubectl("get", "crd", "httproutes.gateway.networking.k8s.io", check=False)
    if crd.returncode != 0:
        pytest.skip("the test cluster has no Gateway API CRDs (httproutes.gateway.networking.k8s.io)")
    cluster.apply(
        [
            serving_deployment(MD, STABLE, replicas=2),
            serving_deployment(MD, CANARY, replicas=1),
            revision_service(MD, "stable", STABLE),
            revision_service(MD, "canary", CANARY),
            http_route("fraud-route", 80, 20),
        ],
        namespace,
    )
    servers = world.wait_for_servers(3, md=MD)
    canary_ips = {ps.ip for ps in servers if ps.revision == CANARY}
    poll(
        "the canary Service's EndpointSlice",
        lambda: ready_slice_addresses(cluster, namespace, f"{MD}-canary") == canary_ips,
    )
    with Load(world, namespace, MD, rps=40, router="gatewayAPI", http_route="fraud-route") as load:
        load.wait_for_requests(10)
        window = load.wait_for_requests(100, since=load.traffic())
        assert window.share(CANARY) == pytest.approx(0.2, abs=0.03), window.summary()
        assert set(window.by_service) == {f"{MD}-stable", f"{MD}-canary"}

        cluster.apply(http_route("fraud-route", 50, 50), namespace)

        def half() -> bool:
            w = load.wait_for_requests(60, since=load.traffic())
            return abs(w.share(CANARY) - 0.5) <= 0.05

        poll("the load to follow the route's new weights (50/50)", half, timeout=30)
