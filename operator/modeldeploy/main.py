"""``modeldeploy-operator``: load settings, connect, and run kopf with our handlers."""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence

import kopf
from prometheus_client import start_http_server

from modeldeploy.controller import Controller
from modeldeploy.handlers import build_registry
from modeldeploy.kube.rest import Kube, connect
from modeldeploy.observability import setup_logging
from modeldeploy.policy.watch import PolicyWatch
from modeldeploy.settings import SettingsError, load

log = logging.getLogger("modeldeploy")


def main(argv: Sequence[str] | None = None) -> int:
    try:
        settings = load(argv)
    except SettingsError as exc:
        print(f"modeldeploy-operator: {exc}", file=sys.stderr)
        return 2
    setup_logging(settings.log_format, settings.log_level)
    from modeldeploy.reconcile import Reconciler  # after logging is set up

    api = connect(settings.kubeconfig)
    kube = Kube(api)
    reconciler = Reconciler(kube, settings)
    controller = Controller(reconciler.reconcile, settings.resync_seconds)
    registry = build_registry(controller, api, PolicyWatch(reconciler.policy_usage))
    if settings.metrics_port:
        start_http_server(settings.metrics_port, addr=settings.bind_address)
    liveness = (
        f"http://{settings.bind_address}:{settings.health_port}/healthz" if settings.health_port else None
    )
    log.info(
        "starting",
        extra={
            "namespaces": list(settings.namespaces) or "all",
            "prometheus": settings.prometheus_url,
            "metrics_port": settings.metrics_port,
        },
    )
    kopf.run(
        registry=registry,
        standalone=True,
        clusterwide=not settings.namespaces,
        namespaces=settings.namespaces,
        liveness_endpoint=liveness,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
