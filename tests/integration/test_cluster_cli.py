"""e2e/cluster.sh (the e2e/localcluster package) refuses bad situations with one clear line; none of
this needs a cluster. The pure parts (port parsing, configuration) are tested directly.

Marked `unit` explicitly (it lives next to the integration tests it belongs with).
"""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from localcluster import build, config, ports, processes, stale_state
from localcluster.messages import ClusterError
from modeldeploy_testing.cluster import REPO

pytestmark = pytest.mark.unit
E2E = REPO / "e2e"


@pytest.fixture
def listener() -> Iterator[int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """What `bash e2e/cluster.sh ARGS` runs, on this interpreter (some tests empty PATH)."""
    return subprocess.run(
        [sys.executable, "-m", "localcluster", *args],
        env={**env, "PYTHONPATH": str(E2E)},
        capture_output=True,
        text=True,
        timeout=60,
    )


def isolated_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELDEPLOY_")}
    env["MODELDEPLOY_CLUSTER_DIR"] = str(tmp_path / "cluster")
    env["MODELDEPLOY_CACHE"] = str(tmp_path / "cache")
    # Keep other default ports out of the way of a real cluster that may be running.
    for var in (
        "MODELDEPLOY_ETCD_PORT",
        "MODELDEPLOY_ETCD_PEER_PORT",
        "MODELDEPLOY_CONTROLLER_MANAGER_PORT",
        "MODELDEPLOY_SCHEDULER_PORT",
        "MODELDEPLOY_KWOK_PORT",
        "MODELDEPLOY_PROMETHEUS_PORT",
        "MODELDEPLOY_APISERVER_PORT",
    ):
        env[var] = str(free_port())
    env.update(extra)
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def make_stale(cluster_dir: Path) -> int:
    """Leave what a SIGKILLed run leaves: pid files of dead processes and etcd data."""
    dead = subprocess.Popen(["true"])
    dead.wait()
    (cluster_dir / "pids").mkdir(parents=True)
    (cluster_dir / "pids" / "etcd.pid").write_text(f"{dead.pid}\n")
    (cluster_dir / "pids" / "kube-apiserver.pid").write_text(f"{dead.pid}\n")
    (cluster_dir / "etcd" / "member").mkdir(parents=True)
    return dead.pid


def test_port_in_use_is_one_clear_line(tmp_path: Path, listener: int) -> None:
    r = run_cli("up", env=isolated_env(tmp_path, MODELDEPLOY_APISERVER_PORT=str(listener)))
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert f"port {listener} is in use by another process (pid {os.getpid()}" in lines[0]
    assert "MODELDEPLOY_APISERVER_PORT" in lines[0]
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "cache").exists()  # failed before building anything


def test_port_owner_found_in_proc(listener: int) -> None:
    assert not ports.port_free(listener)
    assert ports.port_owner(listener) == os.getpid()


def test_bad_port_value(tmp_path: Path) -> None:
    r = run_cli("status", env=isolated_env(tmp_path, MODELDEPLOY_PROMETHEUS_PORT="90x"))
    assert r.returncode == 1
    assert (
        r.stderr.strip()
        == "cluster.sh status: error: MODELDEPLOY_PROMETHEUS_PORT='90x' is not a port number (1-65535)"
    )


def test_stale_state_detected(tmp_path: Path) -> None:
    env = isolated_env(tmp_path)
    cfg = config.load_config(env)
    assert stale_state.find_stale(cfg) is None  # no dir: nothing stale
    make_stale(cfg.cluster_dir)
    msg = stale_state.find_stale(cfg)
    assert msg is not None and "\n" not in msg
    assert "etcd" in msg and "kube-apiserver" in msg and "etcd data" in msg and "no component running" in msg

    status = run_cli("status", env=env)
    assert status.returncode == 1
    assert len(status.stderr.strip().splitlines()) == 1 and "stale state" in status.stderr

    down = run_cli("down", env=env)
    assert down.returncode == 0, down.stderr
    assert not cfg.cluster_dir.exists()


def test_up_cleans_stale_state_before_anything_else(tmp_path: Path, listener: int) -> None:
    env = isolated_env(tmp_path, MODELDEPLOY_APISERVER_PORT=str(listener))
    make_stale(Path(env["MODELDEPLOY_CLUSTER_DIR"]))
    r = run_cli("up", env=env)
    stale = [line for line in r.stdout.splitlines() if "stale state" in line]
    assert len(stale) == 1 and "removing it and starting fresh" in stale[0]
    assert not Path(env["MODELDEPLOY_CLUSTER_DIR"]).exists()
    assert r.returncode == 1 and f"port {listener} is in use" in r.stderr  # then the next check speaks


def test_recycled_pid_is_not_ours(tmp_path: Path) -> None:
    # Our own pid is alive but is not a component of that cluster dir.
    assert not processes.belongs_to(os.getpid(), tmp_path)


def fake_go(tmp_path: Path, version: str) -> str:
    bindir = tmp_path / "fakebin"
    bindir.mkdir()
    go = bindir / "go"
    go.write_text(f'#!/bin/sh\n[ "$1 $2" = "env GOVERSION" ] && echo {version} && exit 0\nexit 1\n')
    go.chmod(go.stat().st_mode | stat.S_IEXEC)
    return f"{bindir}:/usr/bin:/bin"


def test_build_without_go(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    r = run_cli("build", env=isolated_env(tmp_path, PATH=str(empty)))
    assert r.returncode == 1
    assert len(r.stderr.strip().splitlines()) == 1
    assert "go is not on PATH" in r.stderr and "install Go >=" in r.stderr


def test_build_with_old_go(tmp_path: Path) -> None:
    r = run_cli("build", env=isolated_env(tmp_path, PATH=fake_go(tmp_path, "go1.20.1")))
    assert r.returncode == 1
    assert len(r.stderr.strip().splitlines()) == 1
    assert "is go1.20.1 but e2e/controlplane/go.mod needs Go >=" in r.stderr


def test_build_with_unreachable_proxy(tmp_path: Path) -> None:
    go = subprocess.run(["sh", "-c", "command -v go"], capture_output=True, text=True).stdout.strip()
    if not go:
        pytest.skip("no Go toolchain")
    env = isolated_env(
        tmp_path,
        GOPROXY=f"http://127.0.0.1:{free_port()}",
        GOMODCACHE=str(tmp_path / "modcache"),
        GOFLAGS="-modcacherw",
    )
    r = run_cli("build", env=env)
    assert r.returncode == 1
    err = r.stderr.strip().splitlines()
    assert len(err) == 1, r.stderr
    assert "cannot reach the Go module proxy http://127.0.0.1:" in err[0]


def test_not_enough_disk_is_one_clear_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    free = build.free_gib(tmp_path)
    monkeypatch.setattr(build, "NEED_DISK_GIB", free + 1000)  # more than this disk has
    with pytest.raises(ClusterError) as err:
        build.check_disk([tmp_path / "cache" / "not-yet-created"])
    message = str(err.value)
    assert "\n" not in message
    assert "GiB free at" in message and "point MODELDEPLOY_CACHE/GOCACHE elsewhere" in message
    monkeypatch.setattr(build, "NEED_DISK_GIB", 0)
    build.check_disk([tmp_path])  # enough: no error


# --- pure parts: ports and configuration ------------------------------------------------------------


def test_ports_default_when_unset_or_blank() -> None:
    parsed = ports.parse_ports({"MODELDEPLOY_KWOK_PORT": "  "})
    assert parsed == {name: default for name, (_, default) in ports.PORT_SPECS.items()}


def test_ports_from_environment() -> None:
    parsed = ports.parse_ports({"MODELDEPLOY_APISERVER_PORT": "26443", "MODELDEPLOY_ETCD_PORT": " 22379 "})
    assert parsed["apiserver"] == 26443 and parsed["etcd"] == 22379
    assert parsed["prometheus"] == ports.PORT_SPECS["prometheus"][1]


@pytest.mark.parametrize("raw", ["0", "65536", "-1", "80a", "1e3"])
def test_port_out_of_range_or_not_a_number(raw: str) -> None:
    with pytest.raises(ClusterError) as err:
        ports.parse_ports({"MODELDEPLOY_SCHEDULER_PORT": raw})
    assert str(err.value) == f"MODELDEPLOY_SCHEDULER_PORT={raw!r} is not a port number (1-65535)"


def test_two_components_on_one_port_are_refused() -> None:
    with pytest.raises(ClusterError) as err:
        ports.parse_ports({"MODELDEPLOY_KWOK_PORT": str(ports.PORT_SPECS["prometheus"][1])})
    assert "MODELDEPLOY_PROMETHEUS_PORT and MODELDEPLOY_KWOK_PORT are both 19090" in str(err.value)


def test_every_component_port_has_a_variable() -> None:
    owned = [port for names in ports.COMPONENT_PORTS.values() for port in names]
    assert sorted(owned) == sorted(ports.PORT_SPECS)


def test_config_paths_follow_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    cfg = config.load_config(
        {"MODELDEPLOY_CLUSTER_DIR": "relative/cluster", "HOME": str(tmp_path / "home"), "X": "1"}
    )
    assert cfg.cluster_dir == tmp_path / "relative" / "cluster"
    assert cfg.cache_root == tmp_path / "home" / ".cache" / "modeldeploy"
    assert cfg.audit_log == cfg.cluster_dir / "logs" / "audit.log"
    assert cfg.apiserver_url == "https://127.0.0.1:16443"
    assert cfg.prometheus_url == "http://127.0.0.1:19090"
    default = config.load_config({"HOME": str(tmp_path)})
    assert default.cluster_dir == REPO / ".cluster"


def test_running_cluster_keeps_the_ports_it_started_with(tmp_path: Path) -> None:
    env = {"MODELDEPLOY_CLUSTER_DIR": str(tmp_path), "MODELDEPLOY_CACHE": str(tmp_path / "cache")}
    started = config.load_config({**env, "MODELDEPLOY_APISERVER_PORT": "26443"})
    config.write_state(started, {"mode": "local", "ports": started.ports})
    now = config.load_config(env)  # the variable is no longer set
    assert now.ports["apiserver"] == 16443
    assert config.effective_config(now).ports == started.ports
    config.write_state(started, {"mode": "local", "ports": {"apiserver": 1}})  # not a full set: ignored
    assert config.effective_config(now) == now
