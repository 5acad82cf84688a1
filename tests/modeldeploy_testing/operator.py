"""Run the real operator process under its own ServiceAccount's credentials.

The manifests (CRDs, namespace, ServiceAccount, least-privilege RBAC) are applied from
manifests/overlays/local exactly as a user would; a TokenRequest gives the ServiceAccount's token;
the operator runs on the host with a kubeconfig holding only that token. So every API call it makes
is judged by the real RBAC authorizer: a missing permission shows as a 403 in its log (and a failing
test), an excess one as a test of the ClusterRole itself.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

from modeldeploy_testing.cluster import REPO, Cluster, poll
from modeldeploy_testing.plugin import TEST_NAMESPACE_PREFIX

NAMESPACE = "modeldeploy-system"
SERVICE_ACCOUNT = "modeldeploy-operator"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def install_manifests(cluster: Cluster) -> None:
    cluster.kubectl(
        "apply", "--server-side", "--force-conflicts", "-k", str(REPO / "manifests/overlays/local")
    )
    for crd in ("modeldeployments", "clusterrolloutpolicies", "rolloutpolicies"):
        cluster.kubectl("wait", "--for=condition=Established", f"crd/{crd}.modeldeploy.dev", "--timeout=60s")


def service_account_kubeconfig(cluster: Cluster, path: Path, account: str = SERVICE_ACCOUNT) -> Path:
    """A kubeconfig that authenticates as the operator's ServiceAccount (or ``account``) only."""
    token = cluster.kubectl("create", "token", account, "-n", NAMESPACE, "--duration=3h").stdout.strip()
    admin = yaml.safe_load(cluster.kubeconfig.read_text())
    ctx_name = admin["current-context"]
    ctx = next(c["context"] for c in admin["contexts"] if c["name"] == ctx_name)
    server = next(c["cluster"] for c in admin["clusters"] if c["name"] == ctx["cluster"])
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "local", "cluster": server}],
        "users": [{"name": account, "user": {"token": token}}],
        "contexts": [{"name": "operator", "context": {"cluster": "local", "user": account}}],
        "current-context": "operator",
    }
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return path


class OperatorProcess:
    """The operator as a child process; ``restart()`` kills it hard and starts it again."""

    def __init__(
        self, cluster: Cluster, workdir: Path, resync_seconds: float = 5, extra_args: Sequence[str] = ()
    ) -> None:
        self.cluster = cluster
        self.workdir = workdir
        self.kubeconfig = service_account_kubeconfig(cluster, workdir / "operator.kubeconfig")
        self.log_path = workdir / "operator.log"
        self.resync_seconds = resync_seconds
        self.extra_args = tuple(extra_args)  # e.g. ("--namespace", "t-*")
        self.metrics_port = free_port()
        self.health_port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def user(self) -> str:
        return f"system:serviceaccount:{NAMESPACE}:{SERVICE_ACCOUNT}"

    def start(self) -> None:
        exe = Path(sys.executable).with_name("modeldeploy-operator")
        args = [
            str(exe),
            "--kubeconfig",
            str(self.kubeconfig),
            "--prometheus-url",
            self.cluster.prometheus_url or "http://127.0.0.1:9",
            "--metrics-port",
            str(self.metrics_port),
            "--health-port",
            str(self.health_port),
            "--bind-address",
            "127.0.0.1",
            "--resync-seconds",
            str(self.resync_seconds),
            "--log-format",
            "json",
            *self.extra_args,
        ]
        log = self.log_path.open("ab")
        env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
        self.proc = subprocess.Popen(
            args, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
        poll("operator /healthz", self.healthy, timeout=60, interval=0.3)

    def healthy(self) -> bool:
        if self.proc is None or self.proc.poll() is not None:
            raise AssertionError(f"operator exited; log tail:\n{self.log_tail()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.health_port}/healthz", timeout=2) as r:
                return bool(r.status == 200)
        except OSError:
            return False

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            self.proc.wait(timeout=30)
        self.proc = None

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()
        self.proc = None

    def restart(self) -> None:
        self.kill()
        self.start()

    def log_tail(self, lines: int = 60) -> str:
        if not self.log_path.exists():
            return "(no log)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def log_records(self, since: int = 0) -> list[dict[str, Any]]:
        """JSON log lines written after byte offset ``since``."""
        records = []
        with self.log_path.open("rb") as f:
            f.seek(since)
            for raw in f:
                try:
                    records.append(json.loads(raw))
                except ValueError:
                    continue
        return records

    def log_offset(self) -> int:
        return self.log_path.stat().st_size if self.log_path.exists() else 0

    def forbidden_since(self, offset: int) -> list[str]:
        """Log lines since ``offset`` that report a 403 from the API server (an RBAC gap)."""
        with self.log_path.open("rb") as f:
            f.seek(offset)
            text = f.read().decode(errors="replace")
        # RBAC denials read 'is forbidden: User "system:serviceaccount:..." cannot <verb> resource ...'
        return [line for line in text.splitlines() if "is forbidden: User" in line]

    def audit_offset(self) -> int:
        """Where the API server's audit log ends now (local control plane only)."""
        assert self.cluster.audit_log is not None, "the audit log exists only on the local control plane"
        return self.cluster.audit_log.stat().st_size

    def writes(self, namespace: str, since: int, only_this_process: bool = False) -> list[dict[str, Any]]:
        """Write calls this operator made in ``namespace`` since audit-log offset ``since``;
        ``only_this_process``: made by this process, not another replica under the same account."""
        assert self.cluster.audit_log is not None, "the audit log exists only on the local control plane"
        agent = f"modeldeploy-operator/{self.identity()}" if only_this_process else None
        found = []
        with self.cluster.audit_log.open("rb") as f:
            f.seek(since)
            for line in f:
                event = json.loads(line)
                if event["user"]["username"] != self.user:
                    continue
                if agent is not None and event.get("userAgent") != agent:
                    continue
                if event["verb"] in ("create", "update", "patch", "delete") and (
                    f"/namespaces/{namespace}/" in event["requestURI"]
                ):
                    found.append(event)
        return found

    def identity(self) -> str:
        """This process's holder identity (also its API user agent), from its first log lines."""
        for record in self.log_records():
            if record.get("msg") in ("leader election", "starting") and record.get("identity"):
                return str(record["identity"])
        raise AssertionError(f"no identity logged yet; log tail:\n{self.log_tail()}")

    def metric(self, name: str) -> float:
        """The sum of the samples whose series (as written) starts with ``name``."""
        return metric_sum(self.scrape(), name)

    def scrape(self) -> str:
        """One scrape of /metrics (rendering it costs the operator CPU: one per figure set)."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as r:
            text: str = r.read().decode()
        return text


def metric_sum(scraped: str, name: str) -> float:
    """The sum of the samples in ``scraped`` whose series (as written) starts with ``name``."""
    total = 0.0
    for line in scraped.splitlines():
        if line.startswith(name) and not line.startswith("#"):
            total += float(line.rsplit(" ", 1)[1])
    return total


# --- fixtures --------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def operator(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OperatorProcess]:
    """The operator, installed from manifests/ and running with its ServiceAccount's token.

    It watches only the tests' namespaces (``t-*``, see the ``namespace`` fixture), so it never
    reconciles objects of another operator sharing the cluster, e.g. the demo's in modeldeploy-demo.
    """
    install_manifests(cluster)
    # A finished demo leaves its namespace to look around in; its pods hold simulated GPUs the
    # tests need (the GPU-budget test wants a whole node), so the test session clears it first.
    cluster.kubectl(
        "delete", "namespace", "modeldeploy-demo", "--ignore-not-found", "--wait=true", timeout=120
    )
    proc = OperatorProcess(
        cluster,
        tmp_path_factory.mktemp("operator"),
        extra_args=("--namespace", f"{TEST_NAMESPACE_PREFIX}*"),
    )
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture
def operator_log(operator: OperatorProcess) -> Iterator[OperatorProcess]:
    """The operator, checked after the test for API calls RBAC refused."""
    offset = operator.log_offset()
    yield operator
    refused = operator.forbidden_since(offset)
    assert not refused, "the operator's ServiceAccount was refused API calls:\n" + "\n".join(refused[:5])
