"""``python -m harness run``: a World (and optional load) until SIGINT/SIGTERM.

Run it from the repository root with ``e2e`` on the path, e.g.::

    source .cluster/env
    PYTHONPATH=e2e .venv/bin/python -m harness run --namespace demo --load fraud --rps 20

Prints one timestamped line per model server started or stopped, and (with ``--load``) a traffic
line per ModelDeployment every ``--report-every`` seconds.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
from datetime import datetime
from types import FrameType

from harness.load import Load, Traffic
from harness.world import PodServer, World


def _now() -> str:
    return datetime.now().astimezone().isoformat(timespec="milliseconds")


def _say(line: str) -> None:
    print(f"{_now()} {line}", flush=True)


def _on_event(what: str, ps: PodServer) -> None:
    _say(f"{what} {ps}")


def _load_target(spec: str, namespace: str | None) -> tuple[str, str]:
    if "/" in spec:
        ns, md = spec.split("/", 1)
        return ns, md
    if not namespace:
        raise SystemExit(f"--load {spec}: give it as NAMESPACE/NAME, or pass --namespace")
    return namespace, spec


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m harness", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="serve every Ready modeldeploy pod until interrupted")
    run.add_argument("--kubeconfig", default=os.environ.get("KUBECONFIG"), help="default: $KUBECONFIG")
    run.add_argument(
        "--targets-dir",
        default=os.environ.get("MODELDEPLOY_PROMETHEUS_TARGETS"),
        help="Prometheus file_sd directory (default: $MODELDEPLOY_PROMETHEUS_TARGETS)",
    )
    run.add_argument("--namespace", help="only pods in this namespace (default: all namespaces)")
    run.add_argument(
        "--load",
        action="append",
        default=[],
        metavar="[NS/]MD",
        help="send load to this ModelDeployment (repeatable; NS defaults to --namespace)",
    )
    run.add_argument("--rps", type=float, default=20.0, help="requests per second per --load (default 20)")
    run.add_argument("--report-every", type=float, default=10.0, help="seconds between traffic lines")
    args = parser.parse_args(argv)
    if not args.kubeconfig or not args.targets_dir:
        parser.error("--kubeconfig and --targets-dir are required (or source .cluster/env)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    world = World(args.kubeconfig, args.targets_dir, args.namespace, on_event=_on_event)
    loads: list[Load] = []
    try:
        world.start()
        _say(f"watching pods in {args.namespace or 'all namespaces'}; targets in {args.targets_dir}")
        for spec in args.load:
            ns, md = _load_target(spec, args.namespace)
            loads.append(Load(world, ns, md, rps=args.rps).start())
            _say(f"load {ns}/{md} at {args.rps:g} rps")
        last: dict[int, Traffic] = {}
        started = time.monotonic()

        def report() -> None:
            nonlocal started
            seconds, started = time.monotonic() - started, time.monotonic()
            for i, load in enumerate(loads):
                now = load.traffic()
                window = now - last.get(i, Traffic())
                last[i] = now
                _say(f"traffic {load.namespace}/{load.md} last {seconds:.3g}s: {window.summary()}")

        while not stop.wait(args.report_every):
            report()
        report()  # what was served since the last line, so a short run reports its traffic too
        _say("stopping")
    finally:
        for load in loads:
            load.stop()
        world.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
