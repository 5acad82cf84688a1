"""`e2e/cluster.sh` lifecycle on a second, independent cluster (own dir and ports).

The shared test cluster is left alone: this one lives in a temporary MODELDEPLOY_CLUSTER_DIR
with free ports picked at random, reuses the cached binaries, and is stopped at the end.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from modeldeploy_testing.cluster import REPO

CLUSTER_SH = REPO / "e2e" / "cluster.sh"
PORT_VARS = (
    "MODELDEPLOY_ETCD_PORT",
    "MODELDEPLOY_ETCD_PEER_PORT",
    "MODELDEPLOY_APISERVER_PORT",
    "MODELDEPLOY_CONTROLLER_MANAGER_PORT",
    "MODELDEPLOY_SCHEDULER_PORT",
    "MODELDEPLOY_KWOK_PORT",
    "MODELDEPLOY_PROMETHEUS_PORT",
)


def free_ports(n: int) -> list[int]:
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def processes_of(cluster_dir: Path) -> list[int]:
    marker = str(cluster_dir) + os.sep
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            args = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(marker.encode() in a for a in args[1:]) and b"pytest" not in args[0]:
            found.append(int(entry.name))
    return found


class Runner:
    def __init__(self, env: dict[str, str], cluster_dir: Path) -> None:
        self.env = env
        self.dir = cluster_dir

    def __call__(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", str(CLUSTER_SH), *args], env=self.env, capture_output=True, text=True, timeout=timeout
        )

    def pids(self) -> dict[str, int]:
        return {p.stem: int(p.read_text()) for p in (self.dir / "pids").glob("*.pid")}


@pytest.fixture
def second_cluster(tmp_path: Path) -> Iterator[Runner]:
    cluster_dir = tmp_path / "cluster"
    env = {**os.environ, "MODELDEPLOY_CLUSTER_DIR": str(cluster_dir)}
    env.update(zip(PORT_VARS, map(str, free_ports(len(PORT_VARS))), strict=True))
    env.pop("KUBECONFIG", None)
    run = Runner(env, cluster_dir)
    try:
        yield run
    finally:
        run("down", timeout=120)
        for pid in processes_of(cluster_dir):  # last resort, so a failure leaves nothing running
            os.kill(pid, signal.SIGKILL)


def test_up_twice_repair_stale_and_down(second_cluster: Runner) -> None:
    run = second_cluster
    first = run("up")
    assert first.returncode == 0, first.stdout + first.stderr
    assert (run.dir / "kubeconfig").is_file()
    assert run("status").returncode == 0
    pids = run.pids()
    assert set(pids) == {
        "prometheus",
        "etcd",
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
        "kwok",
    }

    started = time.monotonic()
    again = run("up")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "already up" in again.stdout
    assert time.monotonic() - started < 30
    assert run.pids() == pids  # nothing restarted

    # Partial state is repaired: only the dead component is restarted.
    os.kill(pids["kube-scheduler"], signal.SIGKILL)
    time.sleep(0.5)
    repaired = run("up")
    assert repaired.returncode == 0, repaired.stdout + repaired.stderr
    assert "restarting kube-scheduler" in repaired.stdout
    new_pids = run.pids()
    assert new_pids["kube-scheduler"] != pids["kube-scheduler"]
    assert new_pids["kube-apiserver"] == pids["kube-apiserver"]

    # A killed run leaves stale state: `up` says so in one line and starts fresh.
    for pid in new_pids.values():
        os.kill(pid, signal.SIGKILL)
    time.sleep(0.5)
    status = run("status")
    assert status.returncode == 1 and "stale state" in status.stderr
    fresh = run("up")
    assert fresh.returncode == 0, fresh.stdout + fresh.stderr
    stale_lines = [line for line in fresh.stdout.splitlines() if "stale state" in line]
    assert len(stale_lines) == 1, fresh.stdout

    down = run("down", timeout=120)
    assert down.returncode == 0, down.stdout + down.stderr
    assert not run.dir.exists()
    assert processes_of(run.dir) == []
    assert run("down").returncode == 0  # harmless when nothing is there
    assert run("status").returncode == 1
