"""Fault matrix rows 7, 8, 9 and 10 (docs/faults.md): objects deleted under a rollout, oversized and
hostile input. The real API server (with the controller-manager's garbage collector) and the operator
under its own ServiceAccount, watching ``fault-*`` namespaces, its Prometheus behind the test proxy.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from typing import Any

import pytest

from modeldeploy_testing.cluster import Cluster, poll
from modeldeploy_testing.faults import (
    FAULT_NAMESPACE_PREFIX,
    INTERVAL_S,
    PASSING_GUARDRAIL,
    PAUSE_STEPS,
    children,
    command,
    event_reasons,
    healthz,
    md_manifest,
    md_status,
    mid_rollout,
    wait_canary,
    wait_stable,
)
from modeldeploy_testing.operator import OperatorProcess
from modeldeploy_testing.prometheus_proxy import PrometheusProxy


def log_lines_about(op: OperatorProcess, since: int, text: str) -> list[str]:
    with op.log_path.open("rb") as f:
        f.seek(since)
        return [line for line in f.read().decode(errors="replace").splitlines() if text in line]


# --- row 7 -------------------------------------------------------------------------------------------


def test_deleting_a_model_deployment_mid_rollout_removes_everything(
    cluster: Cluster,
    fault_namespace: str,
    fault_operator: OperatorProcess,
) -> None:
    ns = fault_namespace
    mid_rollout(cluster, ns, "doomed")
    assert any(c.startswith("deployment.apps/") for c in children(cluster, ns, "doomed"))
    cluster.kubectl("delete", "md", "doomed", "-n", ns, "--wait=true", timeout=60)  # no finalizer holds it
    poll("every child garbage-collected", lambda: children(cluster, ns, "doomed") == [], timeout=90)
    since = fault_operator.log_offset()
    # the operator lets go: a new object of the same name starts from scratch, as a first revision
    cluster.apply(md_manifest("doomed", "3", PAUSE_STEPS), namespace=ns)
    wait_stable(cluster, ns, "doomed")
    assert md_status(cluster, ns, "doomed").get("rollout") is None
    assert not fault_operator.forbidden_since(since)


# --- row 8 -------------------------------------------------------------------------------------------


def test_deleting_a_namespace_mid_rollout_leaves_nothing_stuck(
    cluster: Cluster,
    api: Any,
    fault_namespace: str,
    fault_operator: OperatorProcess,
) -> None:
    from kubernetes import client

    core: Any = client.CoreV1Api(api)
    doomed = f"{FAULT_NAMESPACE_PREFIX}doomed-{secrets.token_hex(3)}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=doomed)))
    poll(
        "default ServiceAccount",
        lambda: cluster.kubectl("get", "sa/default", "-n", doomed, check=False).returncode == 0,
    )
    for name in ("one", "two"):
        mid_rollout(cluster, doomed, name)
    cluster.kubectl("delete", "namespace", doomed, "--wait=true", timeout=120)  # no stuck finalizer
    assert cluster.kubectl("get", "namespace", doomed, check=False).returncode != 0
    gone_at = fault_operator.log_offset()

    # the operator is healthy and keeps serving another namespace: a whole canary, promoted
    assert healthz(fault_operator)
    stable, canary = mid_rollout(cluster, fault_namespace, "survivor")
    command(cluster, fault_namespace, "survivor", "promote")
    assert wait_stable(cluster, fault_namespace, "survivor") == canary != stable
    # and it stopped working on the deleted namespace's objects (no retry loop on them)
    time.sleep(2 * INTERVAL_S)
    settled = fault_operator.log_offset()
    time.sleep(10)
    assert log_lines_about(fault_operator, settled, doomed) == []
    assert healthz(fault_operator)
    assert not fault_operator.forbidden_since(gone_at)


# --- row 9: the largest objects the schema admits do not hurt the operator ----------------------------


def largest_spec(name: str) -> dict[str, Any]:
    """Every list of the rollout at its maxItems, each query near its maxLength (no smoke test: kwok's
    pods serve nothing to send it to)."""
    body = md_manifest(name, "1", [{"setWeight": 1 + i % 99} for i in range(32)])
    body["spec"]["rollout"]["analysis"]["guardrails"] = [
        {"name": f"g{i}", "query": "vector(0)" + " " * 4000, "max": 1, "samplesQuery": "vector(100)"}
        for i in range(16)
    ]
    return body


def test_the_largest_admitted_spec_is_served_and_the_operator_stays_healthy(
    cluster: Cluster,
    fault_namespace: str,
    fault_operator: OperatorProcess,
) -> None:
    ns = fault_namespace
    big = largest_spec("big")
    assert len(json.dumps(big)) > 64 * 1024
    cluster.apply(big, namespace=ns)
    wait_stable(cluster, ns, "big")
    stored = json.loads(cluster.kubectl("get", "md", "big", "-n", ns, "-o", "json").stdout)
    assert len(json.dumps(stored)) < 1024 * 1024  # far below etcd's request limit, status included
    # refused oversized objects (tests/integration/test_bad_input.py) leave the operator serving others
    refused = cluster.kubectl(
        "create",
        "-n",
        ns,
        "-f",
        "-",
        input=json.dumps(md_manifest("huge", "1", [{"setWeight": 1}] * 10_000)),
        check=False,
    )
    assert refused.returncode != 0 and "Too many" in refused.stderr
    cluster.apply(md_manifest("small", "1", PAUSE_STEPS), namespace=ns)
    wait_stable(cluster, ns, "small")
    assert healthz(fault_operator)


# --- row 10 ------------------------------------------------------------------------------------------

HOSTILE_TEMPLATES = [
    # a value outside any quoted label matcher could change the query's shape
    ('sum(up{namespace="{{ namespace }}"}) or vector({{ revision }})', "outside"),
    # string building and filters could smuggle quotes or `}` into a matcher
    ('sum(up{namespace="{{ namespace ~ \'"} or vector(0) #\' }}"})', "not allowed"),
    ('sum(up{namespace="{{ namespace | safe }}"})', "not allowed"),
    # a value as a metric name
    ('sum({{ name }}_total{namespace="{{ namespace }}"})', "outside"),
]


@pytest.fixture
def hostile_md(
    cluster: Cluster,
    fault_namespace: str,
    fault_operator: OperatorProcess,
    healthy_proxy: PrometheusProxy,
) -> Iterator[tuple[str, PrometheusProxy]]:
    yield fault_namespace, healthy_proxy


@pytest.mark.parametrize(
    ("template", "why"), HOSTILE_TEMPLATES, ids=["outside-quotes", "concat", "filter", "metric-name"]
)
def test_hostile_promql_templates_are_refused_before_any_query(
    cluster: Cluster, hostile_md: tuple[str, PrometheusProxy], template: str, why: str
) -> None:
    ns, proxy = hostile_md
    guardrails = [
        PASSING_GUARDRAIL,
        {"name": "hostile", "query": template, "max": 1, "samplesQuery": "vector(100)"},
    ]
    steps = [{"setWeight": 50}, {"analysis": {"duration": "10s"}}]
    cluster.apply(md_manifest("hostile", "1", steps, guardrails), namespace=ns)
    stable = wait_stable(cluster, ns, "hostile")
    sent_before = len(proxy.promql)
    cluster.apply(md_manifest("hostile", "2", steps, guardrails), namespace=ns)
    canary = wait_canary(cluster, ns, "hostile")
    st = poll(
        "paused on the refused template",
        lambda: (s := md_status(cluster, ns, "hostile")).get("rollout", {}).get("paused") and s,
        timeout=60,
    )
    refused = [m for m in st.get("measurements") or [] if m["revision"] == canary]
    assert refused and all(m["verdict"] == "Error" and "query refused" in m["message"] for m in refused), (
        refused
    )
    assert any(why in m["message"] for m in refused), [m["message"] for m in refused]
    assert st["stableRevision"] == stable and event_reasons(cluster, ns, "hostile")["RolloutPromoted"] == 0
    # nothing of this ModelDeployment's guardrails reached Prometheus: the whole plan is refused first
    assert [q for q in proxy.promql[sent_before:] if ns in q] == []


@pytest.mark.parametrize("name", ['a"b', "a}b", "a\nb", "x or vector(0)"])
def test_hostile_names_are_refused_by_the_api_server(
    cluster: Cluster,
    fault_namespace: str,
    name: str,
) -> None:
    body = md_manifest("placeholder", "1", PAUSE_STEPS)
    body["metadata"]["name"] = name
    result = cluster.kubectl("create", "-n", fault_namespace, "-f", "-", input=json.dumps(body), check=False)
    assert result.returncode != 0 and "metadata.name" in result.stderr, result.stderr
    ns_result = cluster.kubectl("create", "namespace", f"fault-{name}", check=False)
    assert ns_result.returncode != 0, ns_result.stdout
