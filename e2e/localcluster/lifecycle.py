"""`build`, `up` (local processes or `--kind`) and `down`."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

from .audit_policy import write_audit_policy
from .build import K8S_VERSION, bin_dir_for, ensure_binaries
from .certificates import ensure_pki, write_kubeconfig
from .components import COMPONENTS, argv_for, healthy, wait_healthy
from .config import REPO, Config, effective_config, read_state, write_env_file, write_state
from .gateway_crds import install_gateway_crds
from .kind_cluster import KIND_CLUSTER_NAME, KIND_CONFIG, kind_available
from .kubeapi import Api
from .messages import ClusterError, fmt_secs, say
from .nodes import default_sa_exists, ensure_nodes, nodes_ready
from .ports import COMPONENT_PORTS, check_ports
from .processes import live_pid, scan_processes, start_process, stop_pids, wait_until
from .prometheus import ensure_prometheus, write_prometheus_config
from .stale_state import clean_stale
from .status import print_status

KWOK_STAGES = REPO / "e2e" / "kwok" / "stages.yaml"


def cmd_build(cfg: Config) -> int:
    bin_dir = ensure_binaries(cfg)
    say(f"control-plane binaries: {bin_dir}")
    return 0


def cmd_up(cfg: Config) -> int:
    start = time.monotonic()
    clean_stale(cfg)
    cfg = effective_config(cfg)
    running = {n for n in COMPONENTS if live_pid(cfg, n)}
    if running == set(COMPONENTS) and all(healthy(cfg, n) for n in COMPONENTS):
        api = Api(cfg)
        if nodes_ready(api):
            install_gateway_crds(cfg, api, bin_dir_for(cfg))
            say(f"cluster already up in {cfg.cluster_dir}; nothing to do")
            print_status(cfg)
            return 0
    to_start = [n for n in COMPONENTS if n not in running]
    check_ports(cfg.ports, [port for n in to_start for port in COMPONENT_PORTS[n]])
    bin_dir = ensure_binaries(cfg)
    prometheus = ensure_prometheus()
    for d in (cfg.cluster_dir, cfg.logs, cfg.pids, cfg.prom_dir):
        d.mkdir(parents=True, exist_ok=True)
    check_ports(
        cfg.ports, [port for n in to_start for port in COMPONENT_PORTS[n]]
    )  # again: the build takes a while
    if running and to_start:
        say(f"repairing: restarting {', '.join(to_start)} (not running)")
    ensure_pki(cfg)
    write_kubeconfig(cfg, cfg.kubeconfig, "admin")
    write_kubeconfig(cfg, cfg.cluster_dir / "controller-manager.kubeconfig", "controller-manager")
    write_kubeconfig(cfg, cfg.cluster_dir / "scheduler.kubeconfig", "scheduler")
    write_audit_policy(cfg.cluster_dir / "audit-policy.yaml")
    shutil.copyfile(KWOK_STAGES, cfg.cluster_dir / "kwok-stages.yaml")
    write_prometheus_config(cfg)
    write_state(
        cfg, {"mode": "local", "ports": cfg.ports, "bin_dir": str(bin_dir), "kubernetes": K8S_VERSION}
    )

    def launch(name: str) -> None:
        if name in to_start:
            start_process(cfg, name, argv_for(cfg, name, bin_dir, prometheus))

    launch("prometheus")
    for name in ("etcd", "kube-apiserver"):
        launch(name)
        wait_healthy(cfg, name)
    for name in ("kube-controller-manager", "kube-scheduler", "kwok"):
        launch(name)
    for name in ("kube-controller-manager", "kube-scheduler", "kwok", "prometheus"):
        wait_healthy(cfg, name)
    api = Api(cfg)
    ensure_nodes(api)
    wait_until("kwok nodes Ready", lambda: nodes_ready(api), 90, cfg.logs / "kwok.log")
    wait_until(
        "default ServiceAccount (kube-controller-manager)",
        lambda: default_sa_exists(api),
        90,
        cfg.logs / "kube-controller-manager.log",
    )
    install_gateway_crds(cfg, api, bin_dir)
    write_env_file(cfg, bin_dir)
    say(f"cluster up in {fmt_secs(time.monotonic() - start)}")
    print_status(cfg)
    return 0


def cmd_up_kind(cfg: Config) -> int:
    start = time.monotonic()
    missing = kind_available()
    if missing:
        raise ClusterError(f"--kind needs kind and a running Docker daemon: {missing}")
    state = read_state(cfg)
    if (
        cfg.cluster_dir.is_dir()
        and state.get("mode") != "kind"
        and (any(live_pid(cfg, n) for n in COMPONENTS) or scan_processes(cfg.cluster_dir))
    ):
        raise ClusterError(f"a local (non-kind) cluster is running in {cfg.cluster_dir}; run `down` first")
    clean_stale(cfg)
    running = live_pid(cfg, "prometheus")
    if not running:
        check_ports(cfg.ports, ["prometheus"])
    prometheus = ensure_prometheus()
    for d in (cfg.cluster_dir, cfg.logs, cfg.pids, cfg.prom_dir):
        d.mkdir(parents=True, exist_ok=True)
    clusters = subprocess.run(["kind", "get", "clusters"], capture_output=True, text=True, timeout=60)
    if KIND_CLUSTER_NAME not in clusters.stdout.split():
        say(f"creating kind cluster {KIND_CLUSTER_NAME} ...")
        r = subprocess.run(
            [
                "kind",
                "create",
                "cluster",
                "--name",
                KIND_CLUSTER_NAME,
                "--config",
                str(KIND_CONFIG),
                "--kubeconfig",
                str(cfg.kubeconfig),
                "--wait",
                "180s",
            ],
            timeout=900,
        )
        if r.returncode != 0:
            raise ClusterError(f"`kind create cluster` failed (exit {r.returncode})")
    else:
        r2 = subprocess.run(
            ["kind", "get", "kubeconfig", "--name", KIND_CLUSTER_NAME],
            capture_output=True,
            text=True,
            timeout=60,
        )
        if r2.returncode != 0:
            raise ClusterError(f"`kind get kubeconfig` failed: {r2.stderr.strip()[-200:]}")
        cfg.kubeconfig.write_text(r2.stdout)
    write_prometheus_config(cfg)
    write_state(cfg, {"mode": "kind", "ports": cfg.ports, "kubernetes": "kind"})
    if not running:
        start_process(cfg, "prometheus", argv_for(cfg, "prometheus", Path("/nonexistent"), prometheus))
    wait_healthy(cfg, "prometheus")
    write_env_file(cfg, None)
    say(
        f"kind cluster up in {fmt_secs(time.monotonic() - start)} "
        "(no GPU nodes: add a GPU node or a kwok node for GPU tests)"
    )
    print_status(cfg)
    return 0


def cmd_down(cfg: Config) -> int:
    d = cfg.cluster_dir
    if not d.exists():
        say(f"nothing to stop: {d} does not exist")
        return 0
    if read_state(cfg).get("mode") == "kind" and shutil.which("kind"):
        say(f"deleting kind cluster {KIND_CLUSTER_NAME} ...")
        subprocess.run(["kind", "delete", "cluster", "--name", KIND_CLUSTER_NAME], timeout=300, check=False)
    pids: list[int] = []
    for name in reversed(COMPONENTS):
        pid = live_pid(cfg, name)
        if pid is not None:
            pids.append(pid)
    pids += [p for p in scan_processes(d) if p not in pids]
    left = stop_pids(pids, d)
    left += [p for p in scan_processes(d) if p not in left]
    if left:
        raise ClusterError(f"processes {left} of {d} survived SIGKILL; not removing state")
    shutil.rmtree(d, ignore_errors=True)
    if d.exists():
        raise ClusterError(f"could not remove {d}")
    say(f"stopped {len(pids)} process(es); removed {d}")
    return 0
