"""Progressive delivery end to end: the real control plane, the real Prometheus scraping the harness's
model servers, the operator under its own ServiceAccount, and load routed the way the cluster routes it
(EndpointSlices for the `replicas` router, HTTPRoute weights for `gatewayAPI`). The canary's traffic
share and its metrics come from what the operator set, never from the test.

Timings (rollback latency, per-step overhead) are recorded to .cluster/e2e-figures.json for the notes;
no test asserts a wall-clock time.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness import Load, World
from harness.recorder import Recorder
from modeldeploy_testing.cluster import REPO, Cluster, Prometheus, poll
from modeldeploy_testing.operator import OperatorProcess

INTERVAL = 3  # seconds between measurements
ANALYSIS = {
    "interval": f"{INTERVAL}s",
    "window": "30s",
    "failureLimit": 2,
    "inconclusiveLimit": 6,
    "consecutiveErrorLimit": 3,
    "minSampleSize": 10,
    "guardrails": [
        {"name": "error-rate", "template": "error-rate", "max": 0.05},
        {"name": "p99-latency", "template": "latency-p99-ms", "max": 500},
    ],
}
STEPS = [
    {"setWeight": 25},
    {"analysis": {"duration": "9s"}},
    {"setWeight": 50},
    {"analysis": {"duration": "9s"}},
]


def manifest(name: str, version: str, gpu: bool = True, **rollout: Any) -> dict[str, Any]:
    """4 replicas of a Triton model; with ``gpu`` 1 GPU each (4 of the cluster's 8, plus surge)."""
    spec_rollout: dict[str, Any] = {"analysis": ANALYSIS, "canary": {"steps": STEPS}}
    spec_rollout.update(rollout)
    resources: dict[str, Any] = {"cpu": "1", "memory": "4Gi"}
    if gpu:
        resources["gpu"] = {"count": 1}
    return {
        "apiVersion": "modeldeploy.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": name},
        "spec": {
            "runtime": "triton",
            "model": {"name": "fraud", "version": version, "storageUri": f"s3://models/fraud/{version}"},
            "replicas": 4,
            "resources": resources,
            "rollout": spec_rollout,
        },
    }


def md(cluster: Cluster, ns: str, name: str) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(cluster.kubectl("get", "md", name, "-n", ns, "-o", "json").stdout)
    return result


def status(cluster: Cluster, ns: str, name: str) -> dict[str, Any]:
    result: dict[str, Any] = md(cluster, ns, name).get("status") or {}
    return result


def record_figure(key: str, value: Any) -> None:
    path = REPO / ".cluster" / "e2e-figures.json"
    data = json.loads(path.read_text()) if path.exists() else {}
    data.setdefault(key, []).append(value)
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(data, indent=2))


class Env:
    """One test's world: harness servers, load, and a recorder of the rollout."""

    def __init__(
        self, cluster: Cluster, ns: str, api: Any, prometheus: Prometheus, op: OperatorProcess
    ) -> None:
        assert cluster.prometheus_targets_dir is not None
        self.cluster, self.ns, self.api, self.prometheus, self.operator = cluster, ns, api, prometheus, op
        self.world = World(cluster.kubeconfig, cluster.prometheus_targets_dir, namespace=ns).start()
        self.loads: list[Load] = []
        self.recorders: list[Recorder] = []

    def deploy(self, body: dict[str, Any]) -> None:
        self.cluster.apply(body, namespace=self.ns)

    def stable(self, name: str, timeout: float = 120) -> str:
        def healthy() -> str | None:
            st = status(self.cluster, self.ns, name)
            ok = st.get("phase") == "Healthy" and st.get("stableRevision") and not st.get("canaryRevision")
            return st["stableRevision"] if ok else None

        rev: str = poll(f"{name} Healthy", healthy, timeout=timeout)
        return rev

    def load(self, name: str, rps: float = 25) -> Load:
        """Client traffic to the ModelDeployment's main Service (or any Service of that name)."""
        load = Load(self.world, self.ns, name, rps=rps).start()
        self.loads.append(load)
        return load

    def record(self, name: str) -> Recorder:
        rec = Recorder(self.api, self.ns, name).start()
        self.recorders.append(rec)
        return rec

    def canary(self, name: str, timeout: float = 60) -> str:
        rev: str = poll(
            f"{name} canary",
            lambda: status(self.cluster, self.ns, name).get("canaryRevision"),
            timeout=timeout,
        )
        return rev

    def close(self) -> None:
        for r in self.recorders:
            r.stop()
        for load in self.loads:
            load.stop()
        self.world.stop()


@pytest.fixture
def env(
    cluster: Cluster, namespace: str, api: Any, prometheus: Prometheus, operator_log: OperatorProcess
) -> Iterator[Env]:
    e = Env(cluster, namespace, api, prometheus, operator_log)
    try:
        yield e
    finally:
        e.close()


def step_messages(rec: Recorder) -> list[str]:
    """StepAdvanced Event messages, once each, in step order ("step N/M done; ...")."""
    messages = [e["message"] for e in rec.events if e["reason"] == "StepAdvanced"]
    return sorted(messages, key=lambda m: (m.startswith("all"), m))


def expected_steps(revision: str) -> list[str]:
    return [
        "step 1/4 done; step 2: analysis 9s",
        "step 2/4 done; step 3: setWeight 50",
        "step 3/4 done; step 4: analysis 9s",
        f"all 4 steps done; promoting {revision}",
    ]


def bump(env: Env, name: str, version: str, **rollout: Any) -> str:
    """Apply a new model version and return the canary revision it starts."""
    env.deploy(manifest(name, version, **rollout))
    return env.canary(name)


# --- 1. a healthy canary walks every step -----------------------------------------------------------


def test_healthy_canary_walks_every_step_and_becomes_stable(env: Env) -> None:
    env.deploy(manifest("good", "1"))
    old = env.stable("good")
    env.load("good")
    rec = env.record("good")
    started = time.time()
    new = bump(env, "good", "2")
    assert new != old
    final = env.stable("good", timeout=180)
    elapsed = time.time() - started
    reasons = rec.wait_for_reasons("RolloutPromoted", "RolloutStarted")
    rec.stop()

    assert final == new
    # every step exactly once, in order (the Events are the durable record; polling can miss a
    # step that lasts less than one poll)
    assert step_messages(rec) == expected_steps(new)
    # status.canaryWeight is the share the replicas router really reached (ready canary / ready pods)
    weights = [w for w in rec.distinct("weight") if w]
    assert 25 in weights and 50 in weights and weights.index(25) < weights.index(50), weights
    assert reasons.count("RolloutPromoted") == 1
    assert all(m["verdict"] != "Failed" for m in rec.measurements)
    assert any(m["verdict"] == "Successful" and m["revision"] == new for m in rec.measurements)
    # the old revision's workload is removed
    poll(
        "old revision removed",
        lambda: (
            env.cluster.kubectl("get", "deploy", f"good-{old}", "-n", env.ns, check=False).returncode != 0
        ),
        timeout=60,
    )
    configured = 9 + 9  # the two analysis steps
    record_figure(
        "healthy_canary_seconds",
        {
            "total": round(elapsed, 1),
            "configured_analysis": configured,
            "per_step_overhead": round((elapsed - configured) / len(STEPS), 2),
        },
    )


# --- 2. a bad canary is rolled back by itself --------------------------------------------------------


def test_bad_canary_is_rolled_back_automatically(env: Env) -> None:
    env.deploy(manifest("bad", "1"))
    stable = env.stable("bad")
    env.load("bad")
    rec = env.record("bad")
    # the next revision will fail 20% of its requests: set before it exists, it applies to its pods
    env.deploy(manifest("bad", "2"))
    canary = env.canary("bad")
    env.world.set_behavior(env.ns, "bad", canary, error_rate=0.2)
    selector = f'namespace="{env.ns}",md="bad",revision="{canary}"'
    query = f"sum(increase(nv_inference_request_failure{{{selector}}}[30s]))"
    poll(
        "breach visible in Prometheus",
        lambda: any(float(r["value"][1]) > 0 for r in env.prometheus.query(query)),
        timeout=90,
        interval=0.5,
    )
    breach = time.time()

    def back_on_stable() -> bool:
        st = status(env.cluster, env.ns, "bad")
        return st.get("phase") == "RolledBack" and st.get("canaryWeight") == 0

    poll("rolled back", back_on_stable, timeout=120, interval=0.25)
    rolled_back = time.time()
    poll(
        "stable at full capacity",
        lambda: status(env.cluster, env.ns, "bad").get("readyReplicas") == 4,
        timeout=60,
    )
    st = status(env.cluster, env.ns, "bad")
    assert st["stableRevision"] == stable
    failed = [m for m in rec.measurements if m["verdict"] == "Failed"]
    assert failed and failed[-1]["guardrail"] == "error-rate"
    rec.wait_for_reasons("RolledBack")
    assert (st.get("rollout") or {}).get("aborted") is True
    # traffic is back on stable: no ready endpoint of the Service belongs to the canary
    pods = json.loads(
        env.cluster.kubectl(
            "get", "pods", "-n", env.ns, "-l", f"modeldeploy.dev/revision={canary}", "-o", "json"
        ).stdout
    )["items"]
    assert [p for p in pods if not p["metadata"].get("deletionTimestamp")] == []
    record_figure("rollback_seconds_after_breach", round(rolled_back - breach, 2))
    if env.cluster.audit_log is not None:  # after the rollback the operator settles: no write loop
        time.sleep(3)
        since = env.operator.audit_offset()
        time.sleep(10)
        writes = env.operator.writes(env.ns, since)
        assert writes == [], [f"{w['verb']} {w['requestURI']}" for w in writes]


# --- 3. Prometheus down: pause, never promote --------------------------------------------------------


def _prometheus_pid(cluster: Cluster) -> int:
    assert cluster.cluster_dir is not None
    return int((cluster.cluster_dir / "pids" / "prometheus.pid").read_text().split()[0])


def test_prometheus_down_pauses_then_resumes(env: Env) -> None:
    if env.cluster.cluster_dir is None:
        pytest.skip("stops the local Prometheus")
    env.deploy(
        manifest("promdown", "1", canary={"steps": [{"setWeight": 25}, {"analysis": {"duration": "30s"}}]})
    )
    env.stable("promdown")
    env.load("promdown")
    canary = bump(
        env, "promdown", "2", canary={"steps": [{"setWeight": 25}, {"analysis": {"duration": "30s"}}]}
    )
    poll("a measurement", lambda: status(env.cluster, env.ns, "promdown").get("measurements"), timeout=60)
    os.kill(_prometheus_pid(env.cluster), signal.SIGKILL)
    try:
        paused = poll(
            "paused",
            lambda: (status(env.cluster, env.ns, "promdown").get("rollout") or {}).get("paused"),
            timeout=60,
        )
        assert paused
        st = status(env.cluster, env.ns, "promdown")
        assert st["phase"] == "Paused" and st["canaryRevision"] == canary
        assert "rometheus" in (st["rollout"].get("pauseReason") or "")
        assert any(m["verdict"] == "Error" for m in st["measurements"])
        time.sleep(2 * INTERVAL)
        assert status(env.cluster, env.ns, "promdown")["stableRevision"] != canary  # never promoted
    finally:
        subprocess.run(
            ["bash", str(REPO / "e2e/cluster.sh"), "up"], check=True, capture_output=True, timeout=300
        )
    poll("Prometheus ready", env.prometheus.ready, timeout=60)
    env.cluster.kubectl(
        "annotate",
        "md/promdown",
        "-n",
        env.ns,
        "--overwrite",
        f"modeldeploy.dev/command=resume/{time.time_ns()}",
    )
    assert env.stable("promdown", timeout=180) == canary


# --- 4. no traffic: inconclusive, paused, not failed -------------------------------------------------


def test_no_traffic_is_inconclusive_and_pauses(env: Env) -> None:
    env.deploy(manifest("quiet", "1"))
    stable = env.stable("quiet")
    canary = bump(env, "quiet", "2")  # no load at all
    poll(
        "paused",
        lambda: (status(env.cluster, env.ns, "quiet").get("rollout") or {}).get("paused"),
        timeout=90,
    )
    st = status(env.cluster, env.ns, "quiet")
    assert st["phase"] == "Paused" and st["stableRevision"] == stable and st["canaryRevision"] == canary
    assert "nconclusive" in st["rollout"]["pauseReason"]
    verdicts = {m["verdict"] for m in st["measurements"]}
    assert verdicts == {"Inconclusive"}, verdicts


# --- 5. blue-green -----------------------------------------------------------------------------------


def bluegreen(name: str, version: str, post: str = "9s") -> dict[str, Any]:
    return manifest(
        name,
        version,
        strategy="blueGreen",
        blueGreen={
            "prePromotionAnalysis": {"duration": "6s"},
            "postPromotionAnalysis": {"duration": post},
            "autoPromote": True,
            "scaleDownDelaySeconds": 5,
        },
    )


def _active_selector(env: Env, name: str) -> str | None:
    svc = json.loads(env.cluster.kubectl("get", "svc", f"{name}-active", "-n", env.ns, "-o", "json").stdout)
    rev: str | None = svc["spec"]["selector"].get("modeldeploy.dev/revision")
    return rev


def test_blue_green_good_is_promoted(env: Env) -> None:
    env.deploy(bluegreen("bg", "1"))
    blue = env.stable("bg")
    env.load("bg")
    env.load("bg-preview", rps=15)  # smoke traffic to the preview colour, as a tester would send
    rec = env.record("bg")
    env.deploy(bluegreen("bg", "2"))
    green = env.canary("bg")
    assert env.stable("bg", timeout=180) == green
    assert _active_selector(env, "bg") == green
    rec.wait_for_reasons("RolloutPromoted")
    poll(
        "blue scaled down",
        lambda: env.cluster.kubectl("get", "deploy", f"bg-{blue}", "-n", env.ns, check=False).returncode != 0,
        timeout=90,
    )


def test_blue_green_bad_after_promotion_switches_back(env: Env) -> None:
    env.deploy(bluegreen("bgbad", "1", post="30s"))
    blue = env.stable("bgbad")
    env.load("bgbad")
    env.load("bgbad-preview", rps=15)
    env.deploy(bluegreen("bgbad", "2", post="30s"))
    green = env.canary("bgbad")
    poll("switched to green", lambda: _active_selector(env, "bgbad") == green, timeout=120)
    env.world.set_behavior(env.ns, "bgbad", green, error_rate=0.5)
    poll(
        "switched back",
        lambda: status(env.cluster, env.ns, "bgbad").get("phase") == "RolledBack",
        timeout=120,
    )
    assert _active_selector(env, "bgbad") == blue
    assert status(env.cluster, env.ns, "bgbad")["stableRevision"] == blue


# --- 6. a third revision mid-canary ------------------------------------------------------------------


def test_new_revision_mid_canary_restarts_against_stable(env: Env) -> None:
    env.deploy(manifest("third", "1"))
    stable = env.stable("third")
    env.load("third")
    rec = env.record("third")
    second = bump(env, "third", "2")
    poll(
        "second at step 1+",
        lambda: (status(env.cluster, env.ns, "third").get("currentStep") or 0) >= 1,
        timeout=60,
    )
    env.deploy(manifest("third", "3"))
    third = poll(
        "third revision",
        lambda: (
            (status(env.cluster, env.ns, "third").get("canaryRevision") not in (None, second))
            and status(env.cluster, env.ns, "third")["canaryRevision"]
        ),
        timeout=60,
    )
    st = status(env.cluster, env.ns, "third")
    assert st["stableRevision"] == stable and st["currentStep"] in (0, 1)
    assert env.stable("third", timeout=180) == third
    rec.wait_for_reasons("RevisionSuperseded")
    assert second not in [s.stable for s in rec.snapshots]  # the half-analysed revision never became stable


# --- 7. operator killed mid-rollout ------------------------------------------------------------------


def test_operator_restart_resumes_at_the_same_step(env: Env) -> None:
    env.deploy(manifest("restart", "1"))
    env.stable("restart")
    env.load("restart")
    rec = env.record("restart")
    new = bump(env, "restart", "2")
    poll(
        "in an analysis step",
        lambda: status(env.cluster, env.ns, "restart").get("currentStep") == 1,
        timeout=60,
    )
    before = status(env.cluster, env.ns, "restart")
    env.operator.restart()  # SIGKILL, then start again
    after = status(env.cluster, env.ns, "restart")
    assert after["currentStep"] >= before["currentStep"]
    assert env.stable("restart", timeout=180) == new
    rec.wait_for_reasons("RolloutPromoted")
    rec.stop()
    # no step repeated or skipped across the restart, no double promotion
    assert step_messages(rec) == expected_steps(new)
    assert rec.reasons().count("RolloutPromoted") == 1


# --- 8. manual commands, GitOps-safe -----------------------------------------------------------------


def command(env: Env, name: str, verb: str) -> None:
    exe = Path(os.environ.get("VIRTUAL_ENV", REPO / ".venv")) / "bin" / "kubectl-modeldeploy"
    exe = exe if exe.exists() else REPO / ".venv" / "bin" / "kubectl-modeldeploy"
    subprocess.run(
        [str(exe), verb, name, "-n", env.ns, "--kubeconfig", str(env.cluster.kubeconfig)],
        check=True,
        capture_output=True,
        timeout=30,
    )


def test_manual_commands_never_change_the_spec(env: Env) -> None:
    steps = [{"setWeight": 25}, {"pause": {}}, {"setWeight": 50}, {"pause": {}}]
    env.deploy(manifest("manual", "1", canary={"steps": steps}))
    env.stable("manual")
    env.load("manual")
    canary = bump(env, "manual", "2", canary={"steps": steps})
    poll(
        "waiting at the first pause",
        lambda: status(env.cluster, env.ns, "manual").get("currentStep") == 1,
        timeout=60,
    )
    spec_before = md(env.cluster, env.ns, "manual")["spec"]
    generation = md(env.cluster, env.ns, "manual")["metadata"]["generation"]

    command(env, "manual", "promote")
    poll("next pause", lambda: status(env.cluster, env.ns, "manual").get("currentStep") == 3, timeout=60)
    command(env, "manual", "pause")
    poll(
        "paused",
        lambda: (status(env.cluster, env.ns, "manual").get("rollout") or {}).get("paused"),
        timeout=30,
    )
    command(env, "manual", "resume")
    poll(
        "resumed",
        lambda: not (status(env.cluster, env.ns, "manual").get("rollout") or {}).get("paused"),
        timeout=30,
    )
    command(env, "manual", "abort")
    poll(
        "aborted",
        lambda: (status(env.cluster, env.ns, "manual").get("rollout") or {}).get("aborted"),
        timeout=30,
    )
    assert status(env.cluster, env.ns, "manual")["canaryWeight"] == 0
    command(env, "manual", "retry")
    poll(
        "retried from step 0",
        lambda: (
            status(env.cluster, env.ns, "manual").get("currentStep") == 1
            and not (status(env.cluster, env.ns, "manual").get("rollout") or {}).get("aborted")
        ),
        timeout=60,
    )
    command(env, "manual", "promote-full")
    assert env.stable("manual", timeout=120) == canary

    after = md(env.cluster, env.ns, "manual")
    assert after["spec"] == spec_before and after["metadata"]["generation"] == generation


# --- 9. Gateway API weights follow the steps --------------------------------------------------------


def test_gateway_api_route_weights_follow_the_steps(env: Env) -> None:
    if env.cluster.kubectl("get", "crd", "httproutes.gateway.networking.k8s.io", check=False).returncode != 0:
        pytest.fail(
            "the Gateway API CRDs are not installed in this cluster (e2e/cluster.sh up installs them)"
        )
    routing = {"gatewayAPI": {"httpRoute": "gw-route"}}
    steps = [
        {"setWeight": 10},
        {"analysis": {"duration": "6s"}},
        {"setWeight": 40},
        {"analysis": {"duration": "6s"}},
        {"setWeight": 70},
        {"analysis": {"duration": "6s"}},
    ]
    env.deploy(manifest("gw", "1", trafficRouting=routing, canary={"steps": steps}))
    env.stable("gw")
    env.load("gw")
    rec = env.record("gw")
    canary = bump(env, "gw", "2", trafficRouting=routing, canary={"steps": steps})
    assert env.stable("gw", timeout=180) == canary
    rec.stop()
    canary_weights = []
    for weights in rec.distinct("route_weights"):
        if weights:
            w = dict(weights).get("gw-canary", 0)
            if not canary_weights or canary_weights[-1] != w:
                canary_weights.append(w)
    assert [w for w in canary_weights if w][:3] == [10, 40, 70], canary_weights
