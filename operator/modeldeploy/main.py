"""``modeldeploy-operator``: load settings, open the endpoints, wait for the leader Lease if asked to,
connect, and run kopf with our handlers.

With ``--leader-elect`` a standby replica starts no watch and makes no API call but the Lease reads
until it holds the Lease; meanwhile its /healthz answers (it is alive) and /metrics says
``modeldeploy_leader 0``. A leader that cannot renew within the renew deadline exits at once with
status 1 (its restart comes back as a standby); on SIGTERM it stops kopf, then releases the Lease.
"""

from __future__ import annotations

import logging
import os
import secrets
import signal
import socket
import sys
import threading
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType
from typing import NoReturn

import kopf
from kubernetes import client as k8s
from prometheus_client import start_http_server

from modeldeploy.controller import Controller
from modeldeploy.handlers import WATCHED, build_registry, in_scope, mid_rollout
from modeldeploy.kube.cache import CachedKube, ClusterCache
from modeldeploy.kube.rest import Kube, connect
from modeldeploy.leader import identity
from modeldeploy.leader_election import LeaderElector, LeaseStore
from modeldeploy.observability import setup_logging, track_gc
from modeldeploy.policy.watch import PolicyWatch
from modeldeploy.settings import Settings, SettingsError, load

log = logging.getLogger("modeldeploy")
PROG = "modeldeploy-operator"
EXIT_LOST_LEADERSHIP = 1


class PortInUse(Exception):
    """An endpoint's port is taken: one line on stderr, exit status 2."""


class _Alive(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        ok = self.path.split("?")[0] == "/healthz"
        self.send_response(200 if ok else 404)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"standby": true}' if ok else b"{}")

    def log_message(self, *_: object) -> None:  # no access log
        pass


def _port_in_use(what: str, flag: str, settings: Settings, port: int) -> NoReturn:
    raise PortInUse(
        f"{what} port {settings.bind_address}:{port} is already in use; choose another with {flag}"
    )


def open_endpoints(settings: Settings) -> ThreadingHTTPServer | None:
    """Start /metrics, and bind the health port for a plain /healthz (served once started) until kopf's
    own endpoint replaces it: a port in use is found at start, and a standby answers its probe."""
    if settings.metrics_port:
        try:
            start_http_server(settings.metrics_port, addr=settings.bind_address)
        except OSError:
            _port_in_use("metrics", "--metrics-port", settings, settings.metrics_port)
    if not settings.health_port:
        return None
    try:
        server = ThreadingHTTPServer((settings.bind_address, settings.health_port), _Alive)
    except OSError:
        _port_in_use("health", "--health-port", settings, settings.health_port)
    return server


def own_identity(settings: Settings) -> str:
    if settings.leader_election_identity:
        return settings.leader_election_identity
    base = os.environ.get("POD_NAME") or socket.gethostname()
    return identity(base, os.getpid(), secrets.token_hex(4))


def api_client(settings: Settings, me: str) -> k8s.ApiClient:
    """A client whose requests name this replica: the API server's audit log tells replicas apart."""
    api = connect(settings.kubeconfig)
    api.user_agent = f"{PROG}/{me}"
    return api


def catch_stop_signals(stop: threading.Event) -> Callable[[], None]:
    """Until kopf runs (it has its own handlers), SIGTERM/SIGINT set ``stop``; returns the undo."""

    def stop_waiting(signum: int, _: FrameType | None) -> None:
        log.info("stopping while standing by", extra={"signal": signal.Signals(signum).name})
        stop.set()

    previous = {sig: signal.signal(sig, stop_waiting) for sig in (signal.SIGTERM, signal.SIGINT)}

    def undo() -> None:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    return undo


def wait_for_leadership(settings: Settings, me: str, stop: threading.Event) -> LeaderElector | None:
    """Block until this replica holds the Lease (the elector), or None once ``stop`` is set."""
    timing = settings.leader_election_timing
    # its own connection pool, and requests that give up in time for two more tries before the deadline
    lease_kube = Kube(api_client(settings, me), timeout=timing.renew_deadline / 3)
    store = LeaseStore(lease_kube, settings.leader_election_namespace, settings.leader_election_id)
    elector = LeaderElector(store, me, timing)
    if not elector.acquire(stop):
        return None

    def lost(reason: str) -> None:
        # Stop acting at once, like controller-runtime: no handler may write after this point.
        log.error("lost leadership; exiting", extra={"identity": me, "reason": reason})
        for handler in logging.getLogger().handlers:
            handler.flush()
        os._exit(EXIT_LOST_LEADERSHIP)

    elector.keep_renewing(lost)
    return elector


def main(argv: Sequence[str] | None = None) -> int:
    try:
        settings = load(argv)
    except SettingsError as exc:
        print(f"modeldeploy-operator: {exc}", file=sys.stderr)
        return 2
    setup_logging(settings.log_format, settings.log_level)
    track_gc()
    from modeldeploy.reconcile import Reconciler  # after logging is set up

    me = own_identity(settings)
    stop = threading.Event()
    release_signals = catch_stop_signals(stop)  # a standby stops cleanly however early it is told to
    try:
        standby_health = open_endpoints(settings)
    except PortInUse as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2
    if settings.leader_elect:  # logged before /healthz answers: a started replica has said who it is
        lease = f"{settings.leader_election_namespace}/{settings.leader_election_id}"
        log.info("leader election", extra={"identity": me, "lease": lease})
    if standby_health is not None and not settings.leader_elect:
        standby_health.server_close()  # checked free; /healthz answers once kopf's endpoint is up
        standby_health = None
    if standby_health is not None:
        threading.Thread(target=standby_health.serve_forever, name="standby-health", daemon=True).start()
    # built before the election (no API call until kopf starts), so a new leader starts at once
    api = api_client(settings, me)
    # the informers hold one long watch per kind: a client (connection pool) of their own
    cache = ClusterCache(Kube(api_client(settings, me)), WATCHED, in_scope(settings.namespaces))
    kube = CachedKube(api, cache)
    reconciler = Reconciler(kube, settings)
    controller = Controller(
        kube.recording(reconciler.reconcile),
        settings.resync_seconds,
        urgent=mid_rollout(cache),
        unchanged=kube.unchanged,  # a resync that finds nothing changed in the cache makes no pass
    )
    registry = build_registry(controller, api, cache, PolicyWatch(reconciler.policy_usage))
    elector: LeaderElector | None = None
    if settings.leader_elect:
        elector = wait_for_leadership(settings, me, stop)
    release_signals()
    if stop.is_set():  # told to stop before kopf started
        if elector is not None:
            elector.release()
        return 0
    if standby_health is not None:
        standby_health.shutdown()
        standby_health.server_close()  # kopf's liveness endpoint takes the port over

    liveness = (
        f"http://{settings.bind_address}:{settings.health_port}/healthz" if settings.health_port else None
    )
    log.info(
        "starting",
        extra={
            "namespaces": list(settings.namespaces) or "all",
            "prometheus": settings.prometheus_url,
            "metrics_port": settings.metrics_port,
            "identity": me,
        },
    )
    try:
        kopf.run(
            registry=registry,
            standalone=True,
            clusterwide=not settings.namespaces,
            namespaces=settings.namespaces,
            liveness_endpoint=liveness,
        )
    finally:
        if elector is not None:
            elector.release()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
