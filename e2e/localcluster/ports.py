"""The cluster's TCP ports: which variable sets each, which component owns it, and whether it is free."""

from __future__ import annotations

import socket
from collections.abc import Iterable, Mapping

from .messages import ClusterError
from .procfs import cmdline, port_owner

# name -> (environment variable, default port)
PORT_SPECS: dict[str, tuple[str, int]] = {
    "etcd": ("MODELDEPLOY_ETCD_PORT", 12379),
    "etcd-peer": ("MODELDEPLOY_ETCD_PEER_PORT", 12380),
    "apiserver": ("MODELDEPLOY_APISERVER_PORT", 16443),
    "controller-manager": ("MODELDEPLOY_CONTROLLER_MANAGER_PORT", 17257),
    "scheduler": ("MODELDEPLOY_SCHEDULER_PORT", 17259),
    "kwok": ("MODELDEPLOY_KWOK_PORT", 17247),
    "prometheus": ("MODELDEPLOY_PROMETHEUS_PORT", 19090),
}


COMPONENT_PORTS: dict[str, tuple[str, ...]] = {
    "prometheus": ("prometheus",),
    "etcd": ("etcd", "etcd-peer"),
    "kube-apiserver": ("apiserver",),
    "kube-controller-manager": ("controller-manager",),
    "kube-scheduler": ("scheduler",),
    "kwok": ("kwok",),
}


def port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def parse_ports(env: Mapping[str, str]) -> dict[str, int]:
    """The ports from MODELDEPLOY_*_PORT (defaults where unset); a bad or repeated one is a ClusterError."""
    ports: dict[str, int] = {}
    for name, (var, default) in PORT_SPECS.items():
        raw = env.get(var, "").strip()
        if not raw:
            ports[name] = default
            continue
        if not raw.isdigit() or not 1 <= int(raw) <= 65535:
            raise ClusterError(f"{var}={raw!r} is not a port number (1-65535)")
        ports[name] = int(raw)
    seen: dict[int, str] = {}
    for name, port in ports.items():
        if port in seen:
            raise ClusterError(
                f"{PORT_SPECS[name][0]} and {PORT_SPECS[seen[port]][0]} are both {port}; "
                "give them different ports"
            )
        seen[port] = name
    return ports


def check_ports(ports: Mapping[str, int], names: Iterable[str]) -> None:
    """A ClusterError naming the process that holds the first busy port and the variable to change."""
    for name in names:
        port = ports[name]
        if port_free(port):
            continue
        owner = port_owner(port)
        who = "another process"
        if owner is not None:
            args = " ".join(cmdline(owner))
            who = f"another process (pid {owner}: {args[:80]})"
        raise ClusterError(f"port {port} is in use by {who}; stop it or set {PORT_SPECS[name][0]}")
