"""Local Kubernetes control plane + Prometheus for modeldeploy's tests.

Standard library only: it runs before any `pip install`.

    bash e2e/cluster.sh up|down|status|build [--kind]      (or: python3 -m localcluster ..., from e2e/)

`up` starts, as plain processes on 127.0.0.1: etcd, kube-apiserver, kube-controller-manager,
kube-scheduler, kwok (fake GPU/CPU nodes whose pods become Running+Ready) and Prometheus.
Binaries are built once from e2e/controlplane into a cache outside the clone; state lives in
the cluster dir (default <repo>/.cluster, override with MODELDEPLOY_CLUSTER_DIR).

Environment:
  MODELDEPLOY_CLUSTER_DIR   state dir (pki, logs, pids, etcd data, kubeconfig, env file)
  MODELDEPLOY_CACHE         binary cache root (default $HOME/.cache/modeldeploy)
  MODELDEPLOY_*_PORT        ports: MODELDEPLOY_ETCD_PORT, MODELDEPLOY_ETCD_PEER_PORT,
                            MODELDEPLOY_APISERVER_PORT, MODELDEPLOY_CONTROLLER_MANAGER_PORT,
                            MODELDEPLOY_SCHEDULER_PORT, MODELDEPLOY_KWOK_PORT,
                            MODELDEPLOY_PROMETHEUS_PORT
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from .config import load_config
from .lifecycle import cmd_build, cmd_down, cmd_up, cmd_up_kind
from .messages import ClusterError
from .status import cmd_status


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="cluster.sh", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("command", choices=("up", "down", "status", "build"))
    parser.add_argument(
        "--kind", action="store_true", help="use a kind cluster (needs kind + Docker) for `up`"
    )
    args = parser.parse_args(argv)
    try:
        cfg = load_config()
        if args.command == "build":
            return cmd_build(cfg)
        if args.command == "up":
            return cmd_up_kind(cfg) if args.kind else cmd_up(cfg)
        if args.command == "down":
            return cmd_down(cfg)
        return cmd_status(cfg)
    except ClusterError as e:
        print(f"cluster.sh {args.command}: error: {e}", file=sys.stderr, flush=True)
        if e.context:
            print(e.context, file=sys.stderr, flush=True)
        return 1
    except BrokenPipeError:  # e.g. `cluster.sh status | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        print(f"cluster.sh {args.command}: interrupted", file=sys.stderr)
        return 130
