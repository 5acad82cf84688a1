"""Load that reaches pods the way the cluster's data plane would, and counts where it landed.

Routing is re-read every ``refresh_s`` (default 1 s) from the API server, never from the operator:

* ``replicas`` router: the ModelDeployment's main Service ``<md>`` → its EndpointSlices
  (``discovery.k8s.io/v1``, label ``kubernetes.io/service-name=<md>``) → the addresses of endpoints
  whose ``conditions.ready`` is not false → round robin over those addresses, as kube-proxy spreads
  connections over ready endpoints;
* ``gatewayAPI`` router: the HTTPRoute named in ``spec.rollout.trafficRouting.gatewayAPI.httpRoute``
  → the first rule with Service backendRefs → one backendRef per request by smooth weighted round
  robin (deterministic: weights 90/10 give exactly 9 of every 10 requests to the first), a missing
  weight counting 1 as the Gateway API says → that Service's ready endpoints, round robin.

A pod IP is mapped to the pod's harness server through :meth:`harness.world.World.server_for_ip`
(a packet to ``podIP:port`` reaches that pod), and the request is the runtime's inference call
(Triton ``POST /v2/models/<m>/infer``, TorchServe ``POST /predictions/<m>``). With a
:class:`harness.pod_runner.PodRunner` in place of the World, the pod IP maps to the pod's real server
and the request is the one :meth:`harness.pod_runner.RunningPod.inference_call` builds for the
model it serves.

Counting: :meth:`Load.traffic` returns a :class:`Traffic` snapshot (per revision, per pod, per
Service); subtract two snapshots for the traffic of a time window: ``(load.traffic() - before)``.
``Traffic.share(revision)`` is the fraction of requests that reached a pod of that revision.
"""

from __future__ import annotations

import http.client
import json
import logging
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from harness.pod_runner import PodRunner
from harness.running_pod import InferenceCall, RunningPod
from harness.world import PodServer, World

log = logging.getLogger(__name__)

Router = Literal["replicas", "gatewayAPI"]
MD_GROUP: Final = "modeldeploy.dev"
MD_VERSION: Final = "v1alpha1"
MD_PLURAL: Final = "modeldeployments"
GATEWAY_GROUP: Final = "gateway.networking.k8s.io"
GATEWAY_VERSION: Final = "v1"
SERVICE_NAME_LABEL: Final = "kubernetes.io/service-name"
DEFAULT_BACKEND_WEIGHT: Final = 1


# --- routing (pure) --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Backend:
    service: str
    weight: int
    addresses: tuple[str, ...]


@dataclass(frozen=True)
class RoutingView:
    """Where requests go right now; ``problem`` says why nothing can be reached, if so."""

    router: Router
    backends: tuple[Backend, ...] = ()
    problem: str | None = None


def ready_addresses(slices: Sequence[Mapping[str, Any]]) -> tuple[str, ...]:
    """Addresses of the endpoints that are ready (a missing ``ready`` counts as ready), sorted, unique."""
    out: set[str] = set()
    for s in slices:
        if s.get("addressType", "IPv4") not in ("IPv4", "IPv6"):
            continue
        for ep in s.get("endpoints") or []:
            if (ep.get("conditions") or {}).get("ready") is False:
                continue
            out.update(ep.get("addresses") or [])
    return tuple(sorted(out))


def route_backends(route: Mapping[str, Any]) -> list[tuple[str, int]]:
    """(Service name, weight) of the first rule of an HTTPRoute that has Service backendRefs."""
    for rule in (route.get("spec") or {}).get("rules") or []:
        refs = [
            r
            for r in rule.get("backendRefs") or []
            if r.get("kind", "Service") == "Service" and r.get("group", "") in ("", "core")
        ]
        if refs:
            out = []
            for r in refs:
                w = r.get("weight", DEFAULT_BACKEND_WEIGHT)
                out.append((str(r["name"]), w if isinstance(w, int) and w > 0 else 0))
            return out
    return []


class SmoothWeightedRoundRobin:
    """nginx's smooth weighted round robin: exact proportions, interleaved (5/1/1 → a a b a c a a)."""

    def __init__(self, weights: Sequence[tuple[str, int]]) -> None:
        self.weights = [(name, w) for name, w in weights if w > 0]
        self._current = [0] * len(self.weights)
        self._total = sum(w for _, w in self.weights)

    def next(self) -> str | None:
        if not self.weights:
            return None
        best = 0
        for i, (_, w) in enumerate(self.weights):
            self._current[i] += w
            if self._current[i] > self._current[best]:
                best = i
        self._current[best] -= self._total
        return self.weights[best][0]


# --- counting --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Counts:
    """Outcomes of requests that reached a pod's server: 2xx, other HTTP status, or no answer."""

    ok: int = 0
    error: int = 0
    refused: int = 0

    @property
    def total(self) -> int:
        return self.ok + self.error + self.refused

    def __add__(self, other: Counts) -> Counts:
        return Counts(self.ok + other.ok, self.error + other.error, self.refused + other.refused)

    def __sub__(self, other: Counts) -> Counts:
        return Counts(self.ok - other.ok, self.error - other.error, self.refused - other.refused)


def _sub(a: Mapping[str, Counts], b: Mapping[str, Counts]) -> dict[str, Counts]:
    out = {k: v - b.get(k, Counts()) for k, v in a.items()}
    return {k: v for k, v in out.items() if v.total}


@dataclass(frozen=True)
class Traffic:
    """A snapshot of what the load did; ``later - earlier`` is the traffic in between."""

    by_revision: Mapping[str, Counts] = field(default_factory=dict)
    by_pod: Mapping[str, Counts] = field(default_factory=dict)  # pod name (the Load is per namespace)
    by_service: Mapping[str, int] = field(default_factory=dict)  # backend Service picked
    no_endpoints: int = 0  # nothing ready behind the route/Service
    unmapped: int = 0  # a ready address with no harness server (yet)
    dropped: int = 0  # too many requests in flight

    @property
    def total(self) -> int:
        """Requests that reached a pod's server."""
        return sum(c.total for c in self.by_revision.values())

    def share(self, revision: str) -> float:
        """Fraction (0..1) of the requests that reached a pod which reached one of ``revision``."""
        total = self.total
        return self.by_revision.get(revision, Counts()).total / total if total else 0.0

    def __sub__(self, other: Traffic) -> Traffic:
        services = {k: v - other.by_service.get(k, 0) for k, v in self.by_service.items()}
        return Traffic(
            by_revision=_sub(self.by_revision, other.by_revision),
            by_pod=_sub(self.by_pod, other.by_pod),
            by_service={k: v for k, v in services.items() if v},
            no_endpoints=self.no_endpoints - other.no_endpoints,
            unmapped=self.unmapped - other.unmapped,
            dropped=self.dropped - other.dropped,
        )

    def summary(self) -> str:
        revs = " ".join(
            f"{rev}={c.total} ({self.share(rev):.0%}, {c.error + c.refused} failed)"
            for rev, c in sorted(self.by_revision.items())
        )
        return (
            f"{self.total} reached pods: {revs or '-'}; no endpoints {self.no_endpoints}, "
            f"unmapped {self.unmapped}, dropped {self.dropped}"
        )


# --- the load generator ----------------------------------------------------------------------------


class Load:
    """Requests at ``rps`` to ModelDeployment ``md`` in ``namespace``, routed as the cluster would.

    ``router`` None: read from the ModelDeployment each refresh (``replicas`` when it has no
    trafficRouting or does not exist, e.g. in tests without the operator); ``http_route`` overrides
    the route name for ``gatewayAPI``.
    """

    def __init__(
        self,
        world: World | PodRunner,
        namespace: str,
        md: str,
        *,
        rps: float = 20.0,
        router: Router | None = None,
        http_route: str | None = None,
        refresh_s: float = 1.0,
        timeout_s: float = 10.0,
        max_in_flight: int = 64,
    ) -> None:
        if rps <= 0:
            raise ValueError("rps must be > 0")
        self.world = world
        self.namespace = namespace
        self.md = md
        self.rps = rps
        self.router = router
        self.http_route = http_route
        self.refresh_s = refresh_s
        self.timeout_s = timeout_s
        self.max_in_flight = max_in_flight
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._view = RoutingView(router or "replicas", problem="not refreshed yet")
        self._refreshed = threading.Event()
        self._picker = SmoothWeightedRoundRobin([])
        self._rr: dict[str, int] = {}
        self._by_revision: dict[str, Counts] = {}
        self._by_pod: dict[str, Counts] = {}
        self._by_service: dict[str, int] = {}
        self._no_endpoints = self._unmapped = self._dropped = 0
        self._in_flight = 0
        self._threads: list[threading.Thread] = []
        self._pool: ThreadPoolExecutor | None = None
        self._api: Any = None

    # --- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> Load:
        from kubernetes import config

        new_client: Any = config.new_client_from_config
        self._api = new_client(config_file=str(self.world.kubeconfig))
        self._stop.clear()
        self._pool = ThreadPoolExecutor(max_workers=min(self.max_in_flight, 32), thread_name_prefix="load")
        for target, name in ((self._refresh_loop, "load-refresh"), (self._send_loop, "load-send")):
            t = threading.Thread(target=target, name=f"{name}-{self.md}", daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=30)
        self._threads.clear()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        if self._api is not None:
            self._api.close()
            self._api = None

    def __enter__(self) -> Load:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- results -----------------------------------------------------------------------------------

    def traffic(self) -> Traffic:
        with self._lock:
            return Traffic(
                by_revision=dict(self._by_revision),
                by_pod=dict(self._by_pod),
                by_service=dict(self._by_service),
                no_endpoints=self._no_endpoints,
                unmapped=self._unmapped,
                dropped=self._dropped,
            )

    @property
    def view(self) -> RoutingView:
        with self._lock:
            return self._view

    def wait_for_requests(self, count: int, since: Traffic | None = None, timeout: float = 60) -> Traffic:
        """Wait until ``count`` requests reached pods after ``since``; returns that window's Traffic."""
        since = since or Traffic()
        deadline = time.monotonic() + timeout
        while True:
            window = self.traffic() - since
            if window.total >= count:
                return window
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"timed out after {timeout:.0f}s waiting for {count} requests to reach pods of "
                    f"{self.namespace}/{self.md}: {window.summary()}; routing: {self.view}"
                )
            self._stop.wait(0.1)

    # --- routing refresh ---------------------------------------------------------------------------

    def _refresh_loop(self) -> None:
        while not self._stop.is_set():
            try:
                view = self._read_view()
            except Exception as e:
                view = RoutingView(self.view.router, problem=f"{type(e).__name__}: {e}")
            with self._lock:
                weights = [(b.service, b.weight) for b in view.backends]
                if weights != self._picker.weights:
                    self._picker = SmoothWeightedRoundRobin(weights)
                self._view = view
            if view.problem:
                log.debug("load %s/%s: %s", self.namespace, self.md, view.problem)
            self._refreshed.set()
            self._stop.wait(self.refresh_s)

    def _custom(self, group: str, version: str, plural: str, name: str) -> dict[str, Any] | None:
        """A namespaced custom object as JSON; None when it (or its CRD) does not exist."""
        from kubernetes import client
        from kubernetes.client.exceptions import ApiException

        try:
            custom: Any = client.CustomObjectsApi(self._api)  # raw JSON: _preload_content=False
            response = custom.get_namespaced_custom_object(
                group, version, self.namespace, plural, name, _preload_content=False, _request_timeout=10
            )
        except ApiException as e:
            if e.status == 404:
                return None
            raise
        body: dict[str, Any] = json.loads(response.data)
        return body

    def _read_view(self) -> RoutingView:
        router, route_name = self.router, self.http_route
        if router is None or (router == "gatewayAPI" and route_name is None):
            md = self._custom(MD_GROUP, MD_VERSION, MD_PLURAL, self.md)
            routing = (((md or {}).get("spec") or {}).get("rollout") or {}).get("trafficRouting") or {}
            if "gatewayAPI" in routing:
                router = router or "gatewayAPI"
                route_name = route_name or routing["gatewayAPI"].get("httpRoute")
            router = router or "replicas"
        if router == "replicas":
            backend = self._backend(self.md, 1)
            problem = None if backend.addresses else f"Service {self.md} has no ready endpoints"
            return RoutingView("replicas", (backend,), problem)
        if not route_name:
            return RoutingView("gatewayAPI", problem=f"no httpRoute for {self.md}")
        route = self._custom(GATEWAY_GROUP, GATEWAY_VERSION, "httproutes", route_name)
        if route is None:
            return RoutingView(
                "gatewayAPI", problem=f"HTTPRoute {route_name} not found (or no Gateway API CRDs)"
            )
        refs = route_backends(route)
        if not refs:
            return RoutingView("gatewayAPI", problem=f"HTTPRoute {route_name} has no Service backendRefs")
        return RoutingView("gatewayAPI", tuple(self._backend(name, w) for name, w in refs))

    def _backend(self, service: str, weight: int) -> Backend:
        """A Service's ready endpoint addresses, from its EndpointSlices."""
        from kubernetes import client

        discovery: Any = client.DiscoveryV1Api(self._api)  # raw JSON: _preload_content=False
        response = discovery.list_namespaced_endpoint_slice(
            self.namespace,
            label_selector=f"{SERVICE_NAME_LABEL}={service}",
            _preload_content=False,
            _request_timeout=10,
        )
        body: dict[str, Any] = json.loads(response.data)
        return Backend(service, weight, ready_addresses(body.get("items") or []))

    # --- sending -----------------------------------------------------------------------------------

    def _send_loop(self) -> None:
        self._refreshed.wait(timeout=10)
        interval = 1.0 / self.rps
        next_at = time.monotonic()
        while not self._stop.is_set():
            now = time.monotonic()
            if next_at - now > 0 and self._stop.wait(next_at - now):
                return
            next_at = max(next_at + interval, time.monotonic() - 1.0)  # no bursts after a stall
            target = self._pick()
            if target is None:
                continue
            with self._lock:
                if self._in_flight >= self.max_in_flight:
                    self._dropped += 1
                    continue
                self._in_flight += 1
            pool = self._pool
            if pool is None:
                return
            try:
                pool.submit(self._send, target)
            except RuntimeError:  # the pool shut down under us: stopping
                return

    def _pick(self) -> PodServer | RunningPod | None:
        with self._lock:
            view = self._view
            backends = {b.service: b for b in view.backends}
            service = self._picker.next()
            backend = backends.get(service) if service else None
            if backend is None or not backend.addresses:
                self._no_endpoints += 1
                return None
            i = self._rr.get(backend.service, 0)
            self._rr[backend.service] = i + 1
            address = backend.addresses[i % len(backend.addresses)]
            self._by_service[backend.service] = self._by_service.get(backend.service, 0) + 1
        target = self.world.server_for_ip(address)
        if target is None or target.namespace != self.namespace:
            with self._lock:
                self._unmapped += 1
            return None
        return target

    def _send(self, target: PodServer | RunningPod) -> None:
        outcome = "refused"
        try:
            call = inference_call(target)
            conn = http.client.HTTPConnection(call.host, call.port, timeout=self.timeout_s)
            try:
                conn.request("POST", call.path, call.body, call.headers)
                response = conn.getresponse()
                response.read()
                outcome = "ok" if 200 <= response.status < 300 else "error"
            finally:
                conn.close()
        except (OSError, http.client.HTTPException, RuntimeError):
            outcome = "refused"  # connection refused/reset/timed out, or the server was stopped
        finally:
            delta = Counts(int(outcome == "ok"), int(outcome == "error"), int(outcome == "refused"))
            with self._lock:
                self._in_flight -= 1
                self._by_revision[target.revision] = self._by_revision.get(target.revision, Counts()) + delta
                self._by_pod[target.pod] = self._by_pod.get(target.pod, Counts()) + delta


def inference_call(target: PodServer | RunningPod) -> InferenceCall:
    """The runtime's inference request for a harness server or a pod the runner runs."""
    if isinstance(target, RunningPod):
        return target.inference_call()
    server = target.server
    if target.runtime == "triton":
        path = f"/v2/models/{server.model}/infer"
        body: dict[str, Any] = {
            "inputs": [{"name": "INPUT0", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]}]
        }
    else:
        path = f"/predictions/{server.model}"
        body = {"data": [1, 2, 3, 4]}
    headers = {"Content-Type": "application/json"}
    return InferenceCall(server.host, server.port, path, json.dumps(body).encode(), headers)
