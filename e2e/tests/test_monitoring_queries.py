"""The monitoring kit against the real Prometheus during real rollouts: every alert expression of
manifests/monitoring/prometheusrule.yaml returns the ModelDeployment (or operator target) it is about,
and every query of the Grafana dashboard returns data, the canary-vs-stable panels for both roles.

The harness's Prometheus scrapes the model servers with the labels the PodMonitor gives them; the
operator's metrics port is added as a file_sd target with the ServiceMonitor's job name, plus a target
of that job that does not answer (the operator-down alert)."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from test_rollouts import ANALYSIS, Env, manifest, status

from modeldeploy_testing.cluster import REPO, Cluster, Prometheus, poll
from modeldeploy_testing.operator import OperatorProcess, free_port

KIT = REPO / "manifests" / "monitoring"
JOB = "modeldeploy-operator"  # the ServiceMonitor's Service name
STEPS = [
    {"setWeight": 25},
    {"analysis": {"duration": "9s"}},
    {"setWeight": 50},
    {"analysis": {"duration": "9s"}},
]
RATE_INTERVAL = "20s"  # what Grafana's $__rate_interval is at the harness's 2 s scrape interval


@pytest.fixture
def env(
    cluster: Cluster, namespace: str, api: Any, prometheus: Prometheus, operator_log: OperatorProcess
) -> Iterator[Env]:
    e = Env(cluster, namespace, api, prometheus, operator_log)
    try:
        yield e
    finally:
        e.close()


def model(name: str, version: str, runtime: str = "triton", **rollout: Any) -> dict[str, Any]:
    """CPU-only (the cluster's GPUs are few and shared), two replicas."""
    body = manifest(name, version, **{"canary": {"steps": STEPS}, **rollout})
    body["spec"].update(runtime=runtime, replicas=2, resources={"cpu": "250m", "memory": "1Gi"})
    if runtime == "torchserve":  # TorchServe serves a model archive
        body["spec"]["model"]["storageUri"] = f"s3://models/fraud/{version}/fraud.mar"
    return body


def range_query(prometheus: Prometheus, promql: str, start: float) -> list[dict[str, Any]]:
    code, body = prometheus.get(
        "/api/v1/query_range",
        {"query": promql, "start": str(start), "end": str(time.time()), "step": "2"},
    )
    data = json.loads(body)
    assert code == 200 and data["status"] == "success", f"{promql!r}: {data.get('error', body[:200])}"
    result: list[dict[str, Any]] = data["data"]["result"]
    return result


def with_data(series: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Series with at least one number (Grafana draws no NaN)."""
    return [s for s in series if any(not math.isnan(float(v)) for _, v in s["values"])]


def grafana(expr: str, namespace: str, md: str) -> str:
    return expr.replace("$namespace", namespace).replace("$md", md).replace("$__rate_interval", RATE_INTERVAL)


def alerts() -> dict[str, str]:
    groups = yaml.safe_load((KIT / "prometheusrule.yaml").read_text())["spec"]["groups"]
    return {r["alert"]: r["expr"] for g in groups for r in g["rules"]}


def test_every_alert_and_dashboard_query_returns_data_during_rollouts(env: Env) -> None:
    ns, prom = env.ns, env.prometheus
    prom.add_target(f"operator-{ns}", f"127.0.0.1:{env.operator.metrics_port}", {"job": JOB})
    prom.add_target(f"operator-gone-{ns}", f"127.0.0.1:{free_port()}", {"job": JOB})
    start = time.time()

    erroring = {  # a query Prometheus answers with a range vector: every measurement is an Error
        **ANALYSIS,
        "consecutiveErrorLimit": 2,
        "guardrails": [
            {
                "name": "range",
                "query": 'nv_inference_request_success{namespace="{{ namespace }}",md="{{ name }}"}'
                "[{{ window }}]",
                "max": 1,
            }
        ],
    }
    # a rollout that holds its weight: a long analysis step (the stuck alert, with its window shortened)
    slow = [{"setWeight": 25}, {"analysis": {"duration": "10m"}}]
    env.deploy(model("kit-triton", "1"))
    env.deploy(model("kit-ts", "1", runtime="torchserve"))
    env.deploy(model("kit-bad", "1"))
    env.deploy(model("kit-erroring", "1", analysis=erroring))
    env.deploy(model("kit-stuck", "1", canary={"steps": slow}))
    for name in ("kit-triton", "kit-ts", "kit-bad", "kit-erroring", "kit-stuck"):
        env.stable(name, timeout=180)
        env.load(name, rps=10)
    missing_policy = {"kind": "ClusterRolloutPolicy", "name": "no-such-policy"}  # a Degraded condition
    env.deploy(model("kit-degraded", "1", policyRef=missing_policy))

    env.deploy(model("kit-triton", "2"))
    env.deploy(model("kit-ts", "2", runtime="torchserve"))
    env.deploy(model("kit-bad", "2"))
    env.deploy(model("kit-erroring", "2", analysis=erroring))
    env.deploy(model("kit-stuck", "2", canary={"steps": slow}))
    env.world.set_behavior(ns, "kit-bad", env.canary("kit-bad"), error_rate=0.3)

    # --- alerts: each returns what it is about --------------------------------------------------
    expected = {
        "ModelDeploymentRolloutPaused": "kit-erroring",
        "ModelDeploymentRolloutStuck": "kit-stuck",
        "ModelDeploymentRolledBack": "kit-bad",
        "ModelDeploymentDegraded": "kit-degraded",
    }
    rules = alerts()
    # an hour without a weight change cannot be waited for here: the same expression over 1 minute
    assert "[1h]" in rules["ModelDeploymentRolloutStuck"]
    rules["ModelDeploymentRolloutStuck"] = rules["ModelDeploymentRolloutStuck"].replace("[1h]", "[1m]")
    assert set(expected) | {"ModelDeployAnalysisErroring", "ModelDeployOperatorDown"} == set(rules)

    def about(alert: str) -> set[str]:
        """The ModelDeployments of this test the alert's expression returns now."""
        return {r["metric"]["name"] for r in prom.query(rules[alert]) if r["metric"].get("namespace") == ns}

    for alert, name in expected.items():
        poll(f"{alert} returns {name}", lambda alert=alert, name=name: name in about(alert), timeout=240)
    erroring_found = poll(
        "ModelDeployAnalysisErroring returns the operator",
        lambda: prom.query(rules["ModelDeployAnalysisErroring"]),
        timeout=120,
    )
    assert {r["metric"]["job"] for r in erroring_found} == {JOB}
    down = prom.wait_for(rules["ModelDeployOperatorDown"], timeout=60)
    live = f"127.0.0.1:{env.operator.metrics_port}"
    assert live not in {r["metric"].get("instance") for r in down}  # the running operator is up
    assert any(r["metric"].get("instance", "").startswith("127.0.0.1:") for r in down)

    assert env.stable("kit-triton", timeout=240) and env.stable("kit-ts", timeout=240)
    assert status(env.cluster, ns, "kit-bad")["phase"] == "RolledBack"
    # with the healthy rollouts done, each alert is about its own ModelDeployment only
    healthy = f'namespace="{ns}",name=~"kit-triton|kit-ts",phase="Healthy"'
    poll(
        "the operator's Healthy phases scraped",
        lambda: len(prom.query(f"modeldeploy_phase{{{healthy}}} == 1")) == 2,
        timeout=30,
    )
    for alert, name in expected.items():
        assert about(alert) == {name}, alert

    # --- dashboard: every query returns data for the rollout just done --------------------------
    board = json.loads((KIT / "grafana-dashboard.json").read_text())
    checked = 0
    for panel in board["panels"]:
        for target in panel["targets"]:
            md = "kit-ts" if "TorchServe" in target["legendFormat"] else "kit-triton"
            series = with_data(range_query(prom, grafana(target["expr"], ns, md), start))
            where = f"{panel['title']} {target['refId']} ({md})"
            assert series, f"no data: {where}"
            if "modeldeploy_revision_role" in target["expr"]:
                assert {s["metric"]["role"] for s in series} == {"stable", "canary"}, where
            checked += 1
    for annotation in board["annotations"]["list"]:
        series = with_data(range_query(prom, grafana(annotation["expr"], ns, "kit-triton"), start))
        assert series, f"no data: annotation {annotation['name']}"
        checked += 1

    def decisions() -> set[str]:
        expr = grafana(board["annotations"]["list"][0]["expr"], ns, "kit-triton")
        return {s["metric"]["action"] for s in with_data(range_query(prom, expr, start))}

    # the promotion is in a scrape after the status said Healthy, and a range query's last step
    # (every 2 s from ``start``) can fall before that scrape: wait for it, do not read once
    poll(
        "the Decisions annotation shows RolloutPromoted", lambda: "RolloutPromoted" in decisions(), timeout=30
    )
    for variable in board["templating"]["list"]:
        if variable["type"] != "query":
            continue
        metric, label = variable["definition"].removeprefix("label_values(").removesuffix(")").rsplit(", ", 1)
        values = {r["metric"][label] for r in prom.query(grafana(metric, ns, "kit-triton"))}
        assert (ns if label == "namespace" else "kit-triton") in values, variable["name"]
        checked += 1
    assert checked == sum(len(p["targets"]) for p in board["panels"]) + len(board["annotations"]["list"]) + 2
