"""GitOps with Argo CD, end to end on the real control plane: the ModelDeployment is applied the way
Argo CD syncs it (kubectl apply), its health is read by our health.lua and the rollout is promoted by
our promote action, both run in the Lua VM Argo CD uses (manifests/argocd/luatest) on the live object,
the action's result applied as Argo CD applies it (a JSON merge patch of the object). Over the whole
rollout the API server's audit log shows no write by the operator to any ModelDeployment other than
its status, and the spec and generation stay exactly what Git applied."""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_rollouts import Env, manifest, md, status

from modeldeploy_testing.cluster import REPO, Cluster, Prometheus, poll
from modeldeploy_testing.operator import OperatorProcess

CUSTOMIZATION = REPO / "manifests/argocd/resource_customizations/modeldeploy.dev/ModelDeployment"
STEPS = [{"setWeight": 25}, {"pause": {}}, {"setWeight": 50}, {"analysis": {"duration": "9s"}}]


def git_manifest(version: str) -> dict[str, Any]:
    """The ModelDeployment as kept in Git: CPU-only, so it never waits for the cluster's few GPUs."""
    body = manifest("gitops", version, canary={"steps": STEPS})
    body["spec"].update(replicas=2, resources={"cpu": "500m", "memory": "1Gi"})
    return body


@pytest.fixture(scope="module")
def luatest() -> Path:
    built = subprocess.run(
        ["bash", str(REPO / "e2e" / "argocd-luatest.sh")], capture_output=True, text=True, timeout=600
    )
    assert built.returncode == 0, built.stderr
    return Path(built.stdout.strip())


@pytest.fixture
def env(
    cluster: Cluster, namespace: str, api: Any, prometheus: Prometheus, operator_log: OperatorProcess
) -> Iterator[Env]:
    e = Env(cluster, namespace, api, prometheus, operator_log)
    try:
        yield e
    finally:
        e.close()


class ArgoView:
    """What Argo CD computes from the live object, with our scripts in its Lua VM."""

    def __init__(self, luatest: Path, env: Env, name: str) -> None:
        self.luatest, self.env, self.name = luatest, env, name

    def _run(self, obj: dict[str, Any], *args: str) -> Any:
        result = subprocess.run(
            [str(self.luatest), *args], input=json.dumps(obj), capture_output=True, text=True, timeout=30
        )
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    def health(self) -> dict[str, str]:
        found: dict[str, str] = self._run(
            md(self.env.cluster, self.env.ns, self.name), "health", str(CUSTOMIZATION)
        )
        return found

    def enabled_actions(self) -> set[str]:
        offered = self._run(md(self.env.cluster, self.env.ns, self.name), "discovery", str(CUSTOMIZATION))
        return {a["name"] for a in offered if not a["disabled"]}

    def run_action(self, action: str) -> dict[str, Any]:
        """Argo CD's resource action: run action.lua, patch the object with the merge patch of the change."""
        live = md(self.env.cluster, self.env.ns, self.name)
        changed = self._run(live, "action", str(CUSTOMIZATION), action)
        patch = merge_patch(live, changed)
        self.env.cluster.kubectl(
            "patch", "md", self.name, "-n", self.env.ns, "--type", "merge", "-p", json.dumps(patch)
        )
        return patch


def merge_patch(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """RFC 7386 merge patch from ``before`` to ``after`` (what Argo CD's CreateMergePatch computes)."""
    patch: dict[str, Any] = {k: None for k in before if k not in after}
    for key, value in after.items():
        old = before.get(key)
        if isinstance(old, dict) and isinstance(value, dict):
            nested = merge_patch(old, value)
            if nested:
                patch[key] = nested
        elif old != value:
            patch[key] = value
    return patch


def audit_writes(cluster: Cluster, since: int, namespace: str) -> list[dict[str, Any]]:
    """Every write to a ModelDeployment in ``namespace`` since audit-log offset ``since``, by anyone."""
    assert cluster.audit_log is not None
    found = []
    with cluster.audit_log.open("rb") as f:
        f.seek(since)
        for line in f:
            event = json.loads(line)
            ref = event.get("objectRef") or {}
            if (
                ref.get("resource") == "modeldeployments"
                and ref.get("namespace") == namespace
                and event["verb"] in ("create", "update", "patch", "delete")
            ):
                found.append(event)
    return found


def test_a_whole_rollout_seen_and_promoted_through_argo_cd(env: Env, luatest: Path) -> None:
    if env.cluster.audit_log is None:
        pytest.fail("the audit log is needed: run on the local control plane (bash e2e/cluster.sh up)")
    argo = ArgoView(luatest, env, "gitops")
    env.deploy(git_manifest("1"))
    env.stable("gitops")
    env.load("gitops")
    assert argo.health()["status"] == "Healthy"
    assert argo.enabled_actions() == set()

    healths: list[str] = []
    stop = threading.Event()

    def watch() -> None:  # what the Argo CD UI would show, sampled all through the rollout
        while not stop.is_set():
            state = argo.health()["status"]
            if not healths or healths[-1] != state:
                healths.append(state)
            stop.wait(0.3)

    watcher = threading.Thread(target=watch, daemon=True)
    since = env.cluster.audit_log.stat().st_size
    watcher.start()
    poll("the watcher's first sample", lambda: healths, timeout=30)
    env.deploy(git_manifest("2"))  # the Git commit, synced
    synced = md(env.cluster, env.ns, "gitops")
    try:
        poll("Suspended at the pause step", lambda: argo.health()["status"] == "Suspended", timeout=120)
        assert argo.enabled_actions() == {"promote", "promote-full", "pause", "abort"}
        patch = argo.run_action("promote")
        # the action's patch is one annotation: the plugin's command, nothing else
        (value,) = patch["metadata"]["annotations"].values()
        assert list(patch) == ["metadata"] and value.startswith("promote/")
        final = env.stable("gitops", timeout=180)
        # the watcher's own samples, not a separate read: a read of its own can see Healthy
        # just before the watcher's next sample would, and stopping then leaves it at Progressing
        poll("the watcher sees Healthy again", lambda: healths[-1] == "Healthy", timeout=30)
    finally:
        stop.set()
        watcher.join(timeout=10)

    assert final == status(env.cluster, env.ns, "gitops")["stableRevision"]
    # Healthy, (Progressing: setWeight 25, often too brief to sample), Suspended at the pause,
    # Progressing after the promote (setWeight 50, a 9 s analysis), Healthy; never Degraded
    assert healths[0] == "Healthy" and healths[-1] == "Healthy", healths
    assert "Progressing" in healths[healths.index("Suspended") :], healths
    assert "Degraded" not in healths, healths

    after = md(env.cluster, env.ns, "gitops")
    assert after["spec"] == synced["spec"]
    assert after["metadata"]["generation"] == synced["metadata"]["generation"]
    writes = audit_writes(env.cluster, since, env.ns)
    by_operator = [w for w in writes if w["user"]["username"] == env.operator.user]
    # the operator wrote status all along (so the log does see its writes) ...
    assert any(w["objectRef"].get("subresource") == "status" for w in by_operator)
    # ... and never anything else of a ModelDeployment: not spec, not metadata
    assert [w["requestURI"] for w in by_operator if w["objectRef"].get("subresource") != "status"] == []
    # the only other writes: the sync and the promote action
    others = [w for w in writes if w["user"]["username"] != env.operator.user]
    assert [w["verb"] for w in others if w["objectRef"].get("subresource") != "status"] == ["patch", "patch"]

    # a re-sync of the same Git state changes nothing and repeats no command
    env.deploy(git_manifest("2"))
    again = md(env.cluster, env.ns, "gitops")
    assert again["metadata"]["generation"] == synced["metadata"]["generation"]
    assert argo.health()["status"] == "Healthy"
