"""Fixtures of the fault-matrix tests (docs/faults.md): their own operator, namespaces and Prometheus proxy.

The fault tests break things on purpose (Prometheus answers, child objects, whole namespaces), so they
run their own operator process, watching only ``fault-*`` namespaces, with its Prometheus URL pointing
at a :class:`~modeldeploy_testing.prometheus_proxy.PrometheusProxy` in front of the real Prometheus.
Other test sessions' operators (``t-*``) never see these objects, and these faults never reach theirs.

A test module uses them by importing the fixtures::

    from modeldeploy_testing.faults import fault_namespace, fault_operator, prometheus_proxy  # noqa: F401
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from modeldeploy_testing.cluster import Cluster, poll
from modeldeploy_testing.operator import OperatorProcess, install_manifests
from modeldeploy_testing.plugin import _test_namespace
from modeldeploy_testing.prometheus_proxy import PrometheusProxy

FAULT_NAMESPACE_PREFIX = "fault-"
INTERVAL_S = 2
# Judged by the real Prometheus without any model traffic: the value and the sample count are PromQL
# constants, so a measurement is Successful unless the fault under test gets in the way.
PASSING_GUARDRAIL: dict[str, Any] = {
    "name": "constant",
    "query": "vector(0)",
    "max": 1,
    "samplesQuery": "vector(100)",
}


PAUSE_STEPS: list[dict[str, Any]] = [{"setWeight": 50}, {"pause": {}}]  # waits at step 1 until promoted


def md_manifest(
    name: str,
    version: str,
    steps: list[dict[str, Any]],
    guardrails: list[dict[str, Any]] | None = None,
    replicas: int = 2,
    **analysis: Any,
) -> dict[str, Any]:
    """A CPU-only Triton ModelDeployment whose canary walks ``steps``, judged by ``guardrails``."""
    return {
        "apiVersion": "modeldeploy.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": name},
        "spec": {
            "runtime": "triton",
            "model": {"name": name, "version": version, "storageUri": f"s3://models/{name}/{version}"},
            "replicas": replicas,
            "resources": {"cpu": "100m", "memory": "128Mi"},
            "rollout": {
                "canary": {"steps": steps},
                "analysis": {
                    "interval": f"{INTERVAL_S}s",
                    "failureLimit": 2,
                    "inconclusiveLimit": 3,
                    "consecutiveErrorLimit": 3,
                    "minSampleSize": 10,
                    "guardrails": guardrails if guardrails is not None else [PASSING_GUARDRAIL],
                    **analysis,
                },
            },
        },
    }


def get_json(cluster: Cluster, *args: str) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(cluster.kubectl("get", *args, "-o", "json").stdout)
    return body


def md_status(cluster: Cluster, ns: str, name: str) -> dict[str, Any]:
    st: dict[str, Any] = get_json(cluster, "md", name, "-n", ns).get("status") or {}
    return st


def rollout_state(cluster: Cluster, ns: str, name: str) -> dict[str, Any]:
    st: dict[str, Any] = md_status(cluster, ns, name).get("rollout") or {}
    return st


def wait_stable(cluster: Cluster, ns: str, name: str, timeout: float = 120) -> str:
    def healthy() -> str | None:
        st = md_status(cluster, ns, name)
        done = st.get("phase") == "Healthy" and st.get("stableRevision") and not st.get("canaryRevision")
        return st["stableRevision"] if done else None

    rev: str = poll(f"{name} Healthy", healthy, timeout=timeout)
    return rev


def wait_canary(cluster: Cluster, ns: str, name: str, timeout: float = 60) -> str:
    rev: str = poll(
        f"{name} canary", lambda: md_status(cluster, ns, name).get("canaryRevision"), timeout=timeout
    )
    return rev


def wait_step(cluster: Cluster, ns: str, name: str, step: int, timeout: float = 60) -> dict[str, Any]:
    st: dict[str, Any] = poll(
        f"{name} at step {step}",
        lambda: (s := md_status(cluster, ns, name)).get("currentStep") == step and s,
        timeout=timeout,
    )
    return st


def command(cluster: Cluster, ns: str, name: str, verb: str) -> None:
    """The GitOps-safe command annotation (what ``kubectl modeldeploy <verb>`` sets)."""
    value = f"modeldeploy.dev/command={verb}/{time.time_ns()}"
    cluster.kubectl("annotate", f"md/{name}", "-n", ns, "--overwrite", value)


def event_reasons(cluster: Cluster, ns: str, name: str) -> Counter[str]:
    """How many Events of each reason the operator recorded on the ModelDeployment."""
    items = get_json(cluster, "events", "-n", ns, "--field-selector", f"involvedObject.name={name}")["items"]
    counts: Counter[str] = Counter()
    for e in items:
        if e.get("involvedObject", {}).get("kind") == "ModelDeployment":
            counts[e["reason"]] += int(e.get("count") or 1)
    return counts


def event_messages(cluster: Cluster, ns: str, name: str, reason: str) -> list[str]:
    items = get_json(cluster, "events", "-n", ns, "--field-selector", f"involvedObject.name={name}")["items"]
    return sorted(
        e["message"] for e in items if e["reason"] == reason for _ in range(int(e.get("count") or 1))
    )


def children(cluster: Cluster, ns: str, name: str) -> list[str]:
    """kind/name of every object labelled as this ModelDeployment's child."""
    out = cluster.kubectl(
        "get",
        "deploy,rs,pods,svc,cm,hpa",
        "-n",
        ns,
        "-l",
        f"modeldeploy.dev/deployment={name}",
        "-o",
        "name",
        check=False,
    )
    return out.stdout.split()


@pytest.fixture(scope="session")
def prometheus_proxy(cluster: Cluster) -> Iterator[PrometheusProxy]:
    if not cluster.prometheus_url:
        pytest.fail("no Prometheus for this cluster: use `bash e2e/cluster.sh up`", pytrace=False)
    proxy = PrometheusProxy(cluster.prometheus_url).start()
    try:
        yield proxy
    finally:
        proxy.stop()


@pytest.fixture(autouse=False)
def healthy_proxy(prometheus_proxy: PrometheusProxy) -> Iterator[PrometheusProxy]:
    """The proxy, forwarding again after the test whatever the test did to it."""
    prometheus_proxy.set_mode("forward")
    try:
        yield prometheus_proxy
    finally:
        prometheus_proxy.set_mode("forward")


def start_fault_operator(
    cluster: Cluster, workdir: Any, proxy: PrometheusProxy, *extra: str
) -> OperatorProcess:
    """An operator watching ``fault-*`` whose Prometheus is ``proxy`` (the last --prometheus-url wins)."""
    install_manifests(cluster)
    op = OperatorProcess(
        cluster,
        workdir,
        extra_args=("--namespace", f"{FAULT_NAMESPACE_PREFIX}*", "--prometheus-url", proxy.url, *extra),
    )
    try:
        op.start()
    except BaseException:
        op.kill()  # never leave a half-started operator behind to fight the next one
        raise
    return op


@pytest.fixture(scope="session")
def fault_operator(
    cluster: Cluster, tmp_path_factory: pytest.TempPathFactory, prometheus_proxy: PrometheusProxy
) -> Iterator[OperatorProcess]:
    op = start_fault_operator(cluster, tmp_path_factory.mktemp("fault-operator"), prometheus_proxy)
    try:
        yield op
    finally:
        op.stop()


@pytest.fixture
def fault_namespace(request: pytest.FixtureRequest, cluster: Cluster, api: Any) -> Iterator[str]:
    """A fresh ``fault-<test>-<rand>`` namespace (the fault operator's), deleted afterwards."""
    yield from _test_namespace(request, cluster, api, FAULT_NAMESPACE_PREFIX)


def mid_rollout(
    cluster: Cluster, ns: str, name: str, steps: list[dict[str, Any]] = PAUSE_STEPS, **kw: Any
) -> tuple[str, str]:
    """A ModelDeployment whose second revision has reached step 1 of ``steps``: (stable, canary)."""
    cluster.apply(md_manifest(name, "1", steps, **kw), namespace=ns)
    stable = wait_stable(cluster, ns, name)
    cluster.apply(md_manifest(name, "2", steps, **kw), namespace=ns)
    canary = wait_canary(cluster, ns, name)
    wait_step(cluster, ns, name, 1)
    return stable, canary


def healthz(op: OperatorProcess) -> bool:
    with urllib.request.urlopen(f"http://127.0.0.1:{op.health_port}/healthz", timeout=5) as r:
        return bool(r.status == 200)
