"""Where a cluster lives (its dir, binary cache and ports) and the files that describe a running one."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .ports import parse_ports

REPO = Path(__file__).resolve().parents[2]


SERVICE_CIDR = "10.96.0.0/16"


SERVICE_IP = "10.96.0.1"


POD_CIDR = "10.244.0.0/16"


SA_ISSUER = "https://kubernetes.default.svc.cluster.local"


@dataclass(frozen=True)
class Config:
    cluster_dir: Path
    cache_root: Path
    ports: dict[str, int]

    @property
    def pki(self) -> Path:
        return self.cluster_dir / "pki"

    @property
    def logs(self) -> Path:
        return self.cluster_dir / "logs"

    @property
    def pids(self) -> Path:
        return self.cluster_dir / "pids"

    @property
    def etcd_data(self) -> Path:
        return self.cluster_dir / "etcd"

    @property
    def prom_dir(self) -> Path:
        return self.cluster_dir / "prometheus"

    @property
    def targets_dir(self) -> Path:
        return self.prom_dir / "targets"

    @property
    def kubeconfig(self) -> Path:
        return self.cluster_dir / "kubeconfig"

    @property
    def env_file(self) -> Path:
        return self.cluster_dir / "env"

    @property
    def state_file(self) -> Path:
        return self.cluster_dir / "state.json"

    @property
    def audit_log(self) -> Path:
        return self.logs / "audit.log"

    @property
    def apiserver_url(self) -> str:
        return f"https://127.0.0.1:{self.ports['apiserver']}"

    @property
    def prometheus_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['prometheus']}"


def load_config(env: dict[str, str] | None = None) -> Config:
    env = dict(os.environ) if env is None else env
    ports = parse_ports(env)
    cluster_dir = Path(env.get("MODELDEPLOY_CLUSTER_DIR") or REPO / ".cluster").expanduser().resolve()
    home = Path(env.get("HOME") or Path.home())
    cache_root = Path(env.get("MODELDEPLOY_CACHE") or home / ".cache" / "modeldeploy").expanduser().resolve()
    return Config(cluster_dir=cluster_dir, cache_root=cache_root, ports=ports)


def read_state(cfg: Config) -> dict[str, Any]:
    try:
        data = json.loads(cfg.state_file.read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, json.JSONDecodeError):
        return {}


def write_state(cfg: Config, state: dict[str, Any]) -> None:
    tmp = cfg.state_file.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2) + "\n")
    tmp.replace(cfg.state_file)


def effective_config(cfg: Config) -> Config:
    """A running cluster keeps the ports it was started with."""
    state = read_state(cfg)
    ports = state.get("ports")
    if isinstance(ports, dict) and set(ports) == set(cfg.ports) and ports != cfg.ports:
        return Config(
            cluster_dir=cfg.cluster_dir,
            cache_root=cfg.cache_root,
            ports={k: int(v) for k, v in ports.items()},
        )
    return cfg


def write_env_file(cfg: Config, bin_dir: Path | None) -> None:
    lines = [
        "# Written by e2e/localcluster: `source` it to use the local test cluster.",
        f"export KUBECONFIG='{cfg.kubeconfig}'",
        f"export PROMETHEUS_URL='{cfg.prometheus_url}'",
        f"export MODELDEPLOY_CLUSTER_DIR='{cfg.cluster_dir}'",
        f"export MODELDEPLOY_PROMETHEUS_TARGETS='{cfg.targets_dir}'",
        f"export MODELDEPLOY_AUDIT_LOG='{cfg.audit_log}'",
    ]
    if bin_dir is not None:
        lines += [f"export MODELDEPLOY_BIN='{bin_dir}'", 'export PATH="$MODELDEPLOY_BIN:$PATH"']
    cfg.env_file.write_text("\n".join(lines) + "\n")
