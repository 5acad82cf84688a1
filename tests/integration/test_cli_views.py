"""kubectl-modeldeploy against the real control plane and the real operator (under its own
ServiceAccount): list, get, history and the command verbs as a user runs them (a subprocess reading
the user's kubeconfig), and the one-line errors: no such object, unreachable, forbidden.

The rollout here needs no Prometheus: its steps are ``setWeight 25`` then a pause until promoted, so it
waits for the plugin's ``promote``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from modeldeploy_testing.cluster import Cluster, poll
from modeldeploy_testing.operator import OperatorProcess

pytestmark = pytest.mark.integration

PLUGIN = Path(sys.executable).with_name("kubectl-modeldeploy")
STEPS = [{"setWeight": 25}, {"pause": {}}]
GUARDRAILS = [{"name": "error-rate", "template": "error-rate", "max": 0.05}]


def manifest(name: str, version: str) -> dict[str, Any]:
    return {
        "apiVersion": "modeldeploy.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": name},
        "spec": {
            "runtime": "triton",
            "model": {"name": "fraud", "version": version, "storageUri": f"s3://models/fraud/{version}"},
            "replicas": 4,
            "resources": {"cpu": "100m", "memory": "256Mi"},
            "rollout": {"canary": {"steps": STEPS}, "analysis": {"guardrails": GUARDRAILS}},
        },
    }


def plugin(
    *args: str, kubeconfig: Path | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """The plugin as a user runs it; output is a pipe, so no colours."""
    env = {"PATH": "/usr/bin:/bin", "COLUMNS": "200", "HOME": str(Path.home())}
    head = ["--kubeconfig", str(kubeconfig)] if kubeconfig else []
    return subprocess.run(
        [str(PLUGIN), *head, *args], capture_output=True, text=True, timeout=timeout, env=env
    )


def status(cluster: Cluster, ns: str, name: str) -> dict[str, Any]:
    md = json.loads(cluster.kubectl("get", "md", name, "-n", ns, "-o", "json").stdout)
    result: dict[str, Any] = md.get("status") or {}
    return result


def one_error_line(r: subprocess.CompletedProcess[str]) -> str:
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    assert r.stdout == ""
    return lines[0]


def kubeconfig_for(cluster: Cluster, path: Path, user: dict[str, Any], namespace: str | None = None) -> Path:
    """The admin kubeconfig's server with another user (a token) and a context namespace."""
    admin = yaml.safe_load(cluster.kubeconfig.read_text())
    current = next(c["context"] for c in admin["contexts"] if c["name"] == admin["current-context"])
    server = next(c["cluster"] for c in admin["clusters"] if c["name"] == current["cluster"])
    context: dict[str, Any] = {"cluster": "local", "user": "someone"}
    if namespace:
        context["namespace"] = namespace
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "local", "cluster": server}],
        "users": [{"name": "someone", "user": user}],
        "contexts": [{"name": "plugin-user", "context": context}],
        "current-context": "plugin-user",
    }
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return path


@pytest.fixture
def paused_rollout(cluster: Cluster, namespace: str, operator_log: OperatorProcess) -> tuple[str, str]:
    """ModelDeployment ``fraud``: revision 1 stable, revision 2 at 25% waiting for promote."""
    cluster.apply(manifest("fraud", "1"), namespace=namespace)
    stable = poll(
        "fraud Healthy",
        lambda: (
            (s := status(cluster, namespace, "fraud")).get("phase") == "Healthy" and s.get("stableRevision")
        ),
        timeout=90,
    )
    cluster.apply(manifest("fraud", "2"), namespace=namespace)
    poll(
        "fraud paused at 25%",
        lambda: (
            (s := status(cluster, namespace, "fraud")).get("phase") == "Paused"
            and s.get("canaryWeight") == 25
        ),
        timeout=90,
    )
    return stable, status(cluster, namespace, "fraud")["canaryRevision"]


def test_list_get_promote_history(cluster: Cluster, namespace: str, paused_rollout: tuple[str, str]) -> None:
    stable, canary = paused_rollout
    kc = cluster.kubeconfig

    listed = plugin("list", "-n", namespace, kubeconfig=kc)
    assert listed.returncode == 0, listed.stderr
    header, row = listed.stdout.splitlines()
    assert header.split() == [
        "NAME",
        "PHASE",
        "STEP",
        "WEIGHT",
        "STABLE",
        "CANARY",
        "LAST",
        "DECISION",
        "AGE",
    ]
    assert row.split()[:7] == ["fraud", "॥", "Paused", "2/2", "25%", stable, canary]
    assert "\x1b[" not in listed.stdout  # not a terminal: no colours

    everywhere = json.loads(plugin("list", "-A", "-o", "json", kubeconfig=kc).stdout)
    mine = [r for r in everywhere if r["namespace"] == namespace]
    assert [(r["name"], r["step"], r["weight"], r["canary"]) for r in mine] == [("fraud", "2/2", 25, canary)]

    detail = yaml.safe_load(plugin("get", "fraud", "-n", namespace, "-o", "yaml", kubeconfig=kc).stdout)
    revisions = {r["revision"]: r for r in detail["revisions"]}
    assert (revisions[stable]["role"], revisions[stable]["weight"]) == ("stable", 75)
    assert (revisions[canary]["role"], revisions[canary]["weight"], revisions[canary]["replicas"]) == (
        "canary",
        25,
        "1/1",
    )
    pods = json.loads(
        cluster.kubectl(
            "get", "pods", "-n", namespace, "-l", f"modeldeploy.dev/revision={canary}", "-o", "json"
        ).stdout
    )["items"]
    assert [p["name"] for p in revisions[canary]["pods"]] == [p["metadata"]["name"] for p in pods]
    assert [(s["text"], s["state"]) for s in detail["steps"]] == [
        ("setWeight 25", "done"),
        ("pause (until promoted)", "current"),
    ]
    assert [(g["name"], g["threshold"], g["verdict"]) for g in detail["guardrails"]] == [
        ("error-rate", "<= 0.05", None)
    ]
    assert "WeightChanged" in [d["reason"] for d in detail["decisions"]]

    text = plugin("get", "fraud", "-n", namespace, kubeconfig=kc).stdout
    assert f"# revision {canary}  canary  weight 25%  pods 1/1" in text
    assert f"□ {pods[0]['metadata']['name']}  Running" in text
    assert "▶ 2. pause (until promoted)" in text

    # resume does not apply to a pause step: one line says to promote
    refused = one_error_line(plugin("resume", "fraud", "-n", namespace, kubeconfig=kc))
    assert refused.startswith("error: resume refused: fraud is not paused") and "`promote`" in refused

    promoted = plugin("promote", "fraud", "-n", namespace, kubeconfig=kc)
    assert promoted.returncode == 0 and "promote requested" in promoted.stdout, promoted.stderr
    poll(
        "promoted",
        lambda: (
            (s := status(cluster, namespace, "fraud")).get("phase") == "Healthy"
            and s.get("stableRevision") == canary
        ),
        timeout=90,
    )
    nothing = one_error_line(plugin("promote", "fraud", "-n", namespace, kubeconfig=kc))
    assert (
        nothing
        == f"error: promote refused: nothing is rolling out: fraud is Healthy, stable revision {canary}"
    )

    history = json.loads(plugin("history", "fraud", "-n", namespace, "-o", "json", kubeconfig=kc).stdout)
    assert [(h["revision"], h["outcome"], h["serving"]) for h in history] == [
        (stable, "Deployed", False),
        (canary, "Promoted", True),
    ]
    table = plugin("history", "fraud", "-n", namespace, kubeconfig=kc).stdout
    assert f"{canary} *" in table and "Promoted" in table


def test_context_namespace_is_the_default(cluster: Cluster, namespace: str, tmp_path: Path) -> None:
    admin = yaml.safe_load(cluster.kubeconfig.read_text())
    user = next(
        u["user"]
        for u in admin["users"]
        if u["name"]
        == next(c["context"]["user"] for c in admin["contexts"] if c["name"] == admin["current-context"])
    )
    kc = kubeconfig_for(cluster, tmp_path / "kubeconfig", user, namespace=namespace)
    cluster.apply(manifest("quiet", "1"), namespace=namespace)  # no operator needed: just listed
    r = plugin("list", "-o", "json", kubeconfig=kc)
    assert r.returncode == 0, r.stderr
    assert [(row["namespace"], row["name"]) for row in json.loads(r.stdout)] == [(namespace, "quiet")]
    assert one_error_line(plugin("--context", "nope", "list", kubeconfig=kc)) == (
        'error: context "nope" not found in the kubeconfig'
    )


def test_no_such_modeldeployment(cluster: Cluster, namespace: str) -> None:
    for verb in ("get", "history", "promote", "why"):
        line = one_error_line(plugin(verb, "ghost", "-n", namespace, kubeconfig=cluster.kubeconfig))
        assert line == f'error: modeldeployment "ghost" not found in namespace "{namespace}"', verb


def test_cluster_unreachable(tmp_path: Path, cluster: Cluster) -> None:
    from modeldeploy_testing.operator import free_port

    server = f"https://127.0.0.1:{free_port()}"  # nothing listens there
    kc = tmp_path / "kubeconfig"
    kc.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [
                    {"name": "gone", "cluster": {"server": server, "insecure-skip-tls-verify": True}}
                ],
                "users": [{"name": "u", "user": {"token": "x"}}],
                "contexts": [{"name": "c", "context": {"cluster": "gone", "user": "u"}}],
                "current-context": "c",
            }
        )
    )
    line = one_error_line(plugin("list", "-A", kubeconfig=kc))
    assert line == f"error: cannot reach the cluster at {server}: Connection refused"


def test_forbidden_names_the_missing_rbac_verb_and_resource(
    cluster: Cluster, namespace: str, tmp_path: Path
) -> None:
    cluster.kubectl("create", "serviceaccount", "nobody", "-n", namespace)
    token = cluster.kubectl("create", "token", "nobody", "-n", namespace, "--duration=10m").stdout.strip()
    kc = kubeconfig_for(cluster, tmp_path / "kubeconfig", {"token": token}, namespace=namespace)
    user = f"system:serviceaccount:{namespace}:nobody"

    line = one_error_line(plugin("list", kubeconfig=kc))
    assert line == (
        f'error: forbidden: User "{user}" cannot list modeldeployments.modeldeploy.dev in namespace '
        f'"{namespace}" (RBAC: needs verb "list" on resource "modeldeployments" in API group '
        '"modeldeploy.dev")'
    )
    line = one_error_line(plugin("get", "fraud", kubeconfig=kc))
    assert f'cannot get modeldeployments.modeldeploy.dev in namespace "{namespace}"' in line

    # with read access to ModelDeployments only, get stops at the next thing it reads: the Deployments
    cluster.kubectl(
        "create", "role", "md-reader", "-n", namespace, "--verb=get,list,watch",
        "--resource=modeldeployments.modeldeploy.dev",
    )  # fmt: skip
    cluster.kubectl(
        "create", "rolebinding", "md-reader", "-n", namespace, "--role=md-reader",
        f"--serviceaccount={namespace}:nobody",
    )  # fmt: skip
    cluster.apply(manifest("fraud", "1"), namespace=namespace)

    def denied_deployments() -> str | None:
        r = plugin("get", "fraud", kubeconfig=kc)
        return r.stderr if "deployments.apps" in r.stderr else None

    line = poll("RBAC allows the ModelDeployment", denied_deployments, timeout=30).strip()
    assert line == (
        f'error: forbidden: User "{user}" cannot list deployments.apps in namespace "{namespace}" '
        '(RBAC: needs verb "list" on resource "deployments" in API group "apps")'
    )
