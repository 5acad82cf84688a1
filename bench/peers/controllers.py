"""The three rollout controllers of bench/vs_peers.py as host processes on the local control plane.

Each runs under its own ServiceAccount token (a kubeconfig holding only that token), so the API
server's audit log attributes every write to it and its RBAC is the one its project ships:

* Flagger v1.44.0: ServiceAccount + ClusterRole from its module's ``artifacts/flagger/account.yaml``;
* Argo Rollouts v1.10.2: ClusterRole from its module's ``manifests/role``, plus the Gateway API
  plugin's documented ClusterRole (services get; httproutes get/list/update/patch). The plugin is a
  child process of the controller and reads ``KUBECONFIG``: it gets the same token;
* modeldeploy: :class:`modeldeploy_testing.operator.OperatorProcess` (manifests/overlays/local).

Binaries and CRDs come from ``bench/peers/build.sh`` (cached under ~/.cache/modeldeploy).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from modeldeploy_testing.cluster import Cluster, poll

FLAGGER_VERSION = "v1.44.0"
ARGO_ROLLOUTS_VERSION = "v1.10.2"
GATEWAYAPI_PLUGIN_VERSION = "v0.15.0"
PEERS_NAMESPACE = "bench-peers-system"
GATEWAYAPI_PLUGIN_NAME = "argoproj-labs/gatewayAPI"

PLUGIN_RULES: list[dict[str, Any]] = [
    {"apiGroups": [""], "resources": ["services"], "verbs": ["get"]},
    {
        "apiGroups": ["gateway.networking.k8s.io"],
        "resources": ["httproutes", "grpcroutes"],
        "verbs": ["get", "list", "update", "patch"],
    },
]


def cache_dir() -> Path:
    root = os.environ.get("MODELDEPLOY_CACHE") or str(Path.home() / ".cache" / "modeldeploy")
    return Path(root).expanduser()


def build_dir(name: str, version: str) -> Path:
    """A peer's build directory; a clear error naming the build command when it is missing."""
    d = cache_dir() / f"peers-{name}-{version}"
    if not d.is_dir():
        raise SystemExit(f"vs_peers: {d} is missing: run `bash bench/peers/build.sh {name}` first")
    return d


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def yaml_docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def token_kubeconfig(cluster: Cluster, namespace: str, account: str, path: Path) -> Path:
    """A kubeconfig that authenticates as ServiceAccount ``namespace/account`` only."""
    token = cluster.kubectl("create", "token", account, "-n", namespace, "--duration=6h").stdout.strip()
    admin = yaml.safe_load(cluster.kubeconfig.read_text())
    ctx = next(c["context"] for c in admin["contexts"] if c["name"] == admin["current-context"])
    server = next(c["cluster"] for c in admin["clusters"] if c["name"] == ctx["cluster"])
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "local", "cluster": server}],
        "users": [{"name": account, "user": {"token": token}}],
        "contexts": [
            {"name": account, "context": {"cluster": "local", "user": account, "namespace": namespace}}
        ],
        "current-context": account,
    }
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return path


def bind_cluster_role(cluster: Cluster, role: dict[str, Any], account: str) -> None:
    """Apply a ClusterRole and bind it to ServiceAccount PEERS_NAMESPACE/account."""
    name = role["metadata"]["name"]
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": PEERS_NAMESPACE}],
    }
    cluster.apply([role, binding])


def wait_established(cluster: Cluster, crd: str) -> None:
    """Until the CRD is served (a just-created one has no status.conditions yet: kubectl wait errors)."""

    def established() -> bool:
        r = cluster.kubectl("wait", "--for=condition=Established", crd, "--timeout=10s", check=False)
        return r.returncode == 0

    poll(f"{crd} Established", established, timeout=120, interval=1)


def ensure_namespace(cluster: Cluster, name: str) -> None:
    cluster.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})


def service_account(cluster: Cluster, account: str) -> None:
    sa = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": account}}
    cluster.apply(sa, namespace=PEERS_NAMESPACE)


def process_tree_rss_kib(pid: int) -> int:
    """Resident memory of a process and its descendants (Argo's plugin is a child), KiB."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        todo.extend(children.get(p, []))
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total


@dataclass
class HostController:
    """A peer controller binary run on the host; ``health_url`` answers 200 once it is up."""

    name: str
    user: str
    args: Sequence[str]
    env: dict[str, str]
    workdir: Path
    health_url: str
    proc: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        return self.workdir / f"{self.name}.log"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> HostController:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            list(self.args),
            stdout=log,
            stderr=subprocess.STDOUT,
            env=self.env,
            cwd=self.workdir,
            start_new_session=True,
        )
        poll(f"{self.name} healthy", self.healthy, timeout=120, interval=0.5)
        return self

    def healthy(self) -> bool:
        if self.proc is None or self.proc.poll() is not None:
            tail = self.log_path.read_text(errors="replace").splitlines()[-30:]
            raise RuntimeError(f"{self.name} exited; log tail:\n" + "\n".join(tail))
        try:
            with urllib.request.urlopen(self.health_url, timeout=2) as r:
                return bool(r.status == 200)
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=20)
        self.proc = None


def base_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("KUBECONFIG", "POD_NAMESPACE")}


def start_flagger(cluster: Cluster, workdir: Path) -> HostController:
    """Flagger with the Gateway API provider (every namespace), under its own RBAC."""
    d = build_dir("flagger", FLAGGER_VERSION)
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(d / "crd.yaml"))
    for crd in ("canaries", "metrictemplates", "alertproviders"):
        wait_established(cluster, f"crd/{crd}.flagger.app")
    ensure_namespace(cluster, PEERS_NAMESPACE)
    account = yaml_docs(d / "manifests" / "account.yaml")
    role = next(doc for doc in account if doc["kind"] == "ClusterRole")
    role["metadata"]["name"] = "bench-flagger"
    service_account(cluster, "flagger")
    bind_cluster_role(cluster, role, "flagger")
    kubeconfig = token_kubeconfig(cluster, PEERS_NAMESPACE, "flagger", workdir / "flagger.kubeconfig")
    port = free_port()
    args = [
        str(d / "flagger"),
        f"-kubeconfig={kubeconfig}",
        "-mesh-provider=gatewayapi:v1",
        f"-metrics-server={cluster.prometheus_url}",
        f"-port={port}",
        "-log-level=info",
        "-enable-leader-election=false",
    ]
    user = f"system:serviceaccount:{PEERS_NAMESPACE}:flagger"
    return HostController(
        "flagger", user, args, base_env(), workdir, f"http://127.0.0.1:{port}/healthz"
    ).start()


def start_argo_rollouts(cluster: Cluster, workdir: Path) -> HostController:
    """Argo Rollouts with the Gateway API plugin (file:// in argo-rollouts-config), under its RBAC."""
    d = build_dir("argo-rollouts", ARGO_ROLLOUTS_VERSION)
    plugin = build_dir("gatewayapi-plugin", GATEWAYAPI_PLUGIN_VERSION) / "gatewayapi-plugin"
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-k", str(d / "manifests" / "crds"))
    for crd in ("rollouts", "analysistemplates", "analysisruns"):
        wait_established(cluster, f"crd/{crd}.argoproj.io")
    ensure_namespace(cluster, PEERS_NAMESPACE)
    role = yaml_docs(d / "manifests" / "role" / "argo-rollouts-clusterrole.yaml")[0]
    role["metadata"] = {"name": "bench-argo-rollouts"}
    service_account(cluster, "argo-rollouts")
    bind_cluster_role(cluster, role, "argo-rollouts")
    plugin_role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": "bench-argo-rollouts-gateway-api-plugin"},
        "rules": PLUGIN_RULES,
    }
    bind_cluster_role(cluster, plugin_role, "argo-rollouts")
    config = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "argo-rollouts-config"},
        "data": {
            "trafficRouterPlugins": yaml.safe_dump(
                [{"name": GATEWAYAPI_PLUGIN_NAME, "location": f"file://{plugin}"}]
            )
        },
    }
    cluster.apply(config, namespace=PEERS_NAMESPACE)
    kubeconfig = token_kubeconfig(cluster, PEERS_NAMESPACE, "argo-rollouts", workdir / "argo.kubeconfig")
    healthz, metrics = free_port(), free_port()
    args = [
        str(d / "rollouts-controller"),
        f"--kubeconfig={kubeconfig}",
        f"--healthzPort={healthz}",
        f"--metricsPort={metrics}",
        "--leader-elect=false",
        "--loglevel=info",
    ]
    env = {**base_env(), "KUBECONFIG": str(kubeconfig), "POD_NAMESPACE": PEERS_NAMESPACE}
    user = f"system:serviceaccount:{PEERS_NAMESPACE}:argo-rollouts"
    return HostController(
        "argo-rollouts", user, args, env, workdir, f"http://127.0.0.1:{healthz}/healthz"
    ).start()
