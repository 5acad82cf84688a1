"""`status`: each component's pid, port, health and memory; exit 0 only when all are healthy."""

from __future__ import annotations

from .components import COMPONENTS, healthy
from .config import Config, effective_config, read_state
from .kind_cluster import KIND_CLUSTER_NAME, kind_healthy
from .messages import ClusterError, say
from .ports import COMPONENT_PORTS
from .processes import live_pid
from .procfs import rss_mib
from .stale_state import find_stale


def print_status(cfg: Config) -> bool:
    cfg = effective_config(cfg)
    state = read_state(cfg)
    all_ok = True
    total_rss = 0.0
    say(f"cluster dir: {cfg.cluster_dir}")
    names: tuple[str, ...] = COMPONENTS
    if state.get("mode") == "kind":
        names = ("prometheus",)
        ok = kind_healthy(cfg)
        all_ok &= ok
        say(
            f"  {'kind-cluster':<24} {'-':>8} {'-':>6} {'ok' if ok else 'DOWN':<6} "
            f"(kind cluster {KIND_CLUSTER_NAME})"
        )
    say(f"  {'component':<24} {'pid':>8} {'port':>6} {'health':<6} {'rss':>8}")
    for name in names:
        pid = live_pid(cfg, name)
        port = cfg.ports[COMPONENT_PORTS[name][0]]
        ok = pid is not None and healthy(cfg, name)
        all_ok &= ok
        rss = rss_mib(pid) if pid else 0.0
        total_rss += rss
        health = "ok" if ok else ("DOWN" if pid is None else "unready")
        say(f"  {name:<24} {pid or '-':>8} {port:>6} {health:<6} {rss:>6.0f}Mi")
    say(f"  {'total':<24} {'':>8} {'':>6} {'':<6} {total_rss:>6.0f}Mi")
    say(f"kubeconfig:     {cfg.kubeconfig}")
    say(f"apiserver:      {cfg.apiserver_url}")
    say(f"prometheus:     {cfg.prometheus_url}  (targets: {cfg.targets_dir}/*.json)")
    say(f"audit log:      {cfg.audit_log}")
    say(f"env file:       source {cfg.env_file}")
    return all_ok


def cmd_status(cfg: Config) -> int:
    stale = find_stale(cfg)
    if stale:
        raise ClusterError(f"{stale}; `up` cleans it up, `down` removes it")
    if not cfg.cluster_dir.is_dir():
        say(f"not running: {cfg.cluster_dir} does not exist (start it with: bash e2e/cluster.sh up)")
        return 1
    return 0 if print_status(cfg) else 1
