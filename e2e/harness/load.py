"""Load that reaches pods the way the cluster's data plane would, and counts where it landed.

Routing is re-read every ``refresh_s`` (default 1 s) from the API server, never from the operator:

* ``replicas`` router: the ModelDeployment's main Service ``<md>`` → its EndpointSlices
  (``discovery.k8s.io/v1``, label ``kubernetes.io/service-name=<md>``) → the addresses of endpoints
  whose ``conditions.ready`` is not false → round robin over those addresses, as kube-proxy spreads
  connections over ready endpoints;
* ``gatewayAPI`` router: the HTTPRoute named in ``spec.rollout.trafficRouting.gatewayAPI.httpRoute``
  → the rule whose match wins for the request (path = the runtime's inference path, method POST,
  the audience's headers and cookies; :mod:`harness.gateway` has the Gateway API's matching and
  precedence) → one of its backendRefs by smooth weighted round robin per rule (deterministic:
  weights 90/10 give exactly 9 of every 10 requests to the first), a missing weight counting 1 as
  the Gateway API says → that Service's ready endpoints, round robin. The rule's ``RequestMirror``
  filters copy exactly ``percent`` of its requests to the mirror's Service; the copy's answer is
  discarded and counted apart (``Traffic.mirrored``), never as a live request.

Audiences (:class:`harness.gateway.Audience`): ``Load(..., audiences=[Audience("beta", 0.3,
headers={"x-canary": "1"})])`` makes that share of requests (deterministically interleaved) carry
the headers/cookies; the rest are audience ``others``; ``Traffic.by_audience`` counts each apart.

A pod IP is mapped to the pod's harness server through :meth:`harness.world.World.server_for_ip`
(a packet to ``podIP:port`` reaches that pod), and the request is the runtime's inference call
(Triton ``POST /v2/models/<m>/infer``, TorchServe ``POST /predictions/<m>``). With a
:class:`harness.pod_runner.PodRunner` in place of the World, the pod IP maps to the pod's real server
and the request is the one :meth:`harness.pod_runner.RunningPod.inference_call` builds for the
model it serves.

Counting (:mod:`harness.counts`): :meth:`Load.traffic` returns a :class:`Traffic` snapshot (per
revision, per pod, per Service, per audience, mirrored copies apart); subtract two snapshots for
the traffic of a time window: ``(load.traffic() - before)``.
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
from typing import Any

from harness.counts import EVERYONE, Counts, Traffic
from harness.gateway import (
    Accumulator,
    Audience,
    Request,
    SmoothWeightedRoundRobin,
    rule_choice,
    select_rule,
)
from harness.gateway import route_backends as route_backends  # re-exported
from harness.pod_runner import PodRunner
from harness.routing_view import Router, RoutingView, read_view
from harness.routing_view import inference_path as inference_path  # re-exported
from harness.routing_view import ready_addresses as ready_addresses  # re-exported
from harness.running_pod import InferenceCall, RunningPod
from harness.world import PodServer, World

log = logging.getLogger(__name__)

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
        audiences: Sequence[Audience] = (),
    ) -> None:
        if rps <= 0:
            raise ValueError("rps must be > 0")
        shares = sum(a.share for a in audiences)
        if any(a.share <= 0 for a in audiences) or shares > 1 or EVERYONE in {a.name for a in audiences}:
            raise ValueError(f"audiences need shares > 0 summing to <= 1 and a name other than {EVERYONE}")
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
        self._rule_pickers: dict[tuple[int, tuple[tuple[str, int], ...]], SmoothWeightedRoundRobin] = {}
        self._mirror_credit: dict[tuple[int, str], Accumulator] = {}
        self._audiences = {a.name: a for a in audiences}
        self._jars: dict[str, dict[str, str]] = {}  # "<audience>/<i>" -> that user's cookies
        self._turn: dict[str, int] = {}
        self._history: dict[str, list[tuple[str, str]]] = {}  # user -> (route version, revision)
        scaled = [(a.name, round(a.share * 1000)) for a in audiences]
        self._audience_picker = SmoothWeightedRoundRobin(
            [*scaled, (EVERYONE, 1000 - sum(w for _, w in scaled))]
        )
        self._rr: dict[str, int] = {}
        self._by_revision: dict[str, Counts] = {}
        self._by_pod: dict[str, Counts] = {}
        self._by_service: dict[str, int] = {}
        self._by_audience: dict[str, dict[str, Counts]] = {}
        self._mirrored: dict[str, Counts] = {}
        self._routed: dict[str, dict[str, dict[str, int]]] = {}
        self._routed_mirrors: dict[str, dict[str, int]] = {}
        self._routes: dict[str, Mapping[str, Any]] = {}
        self._no_endpoints = self._unmapped = self._dropped = self._no_route = 0
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
                by_audience={k: dict(v) for k, v in self._by_audience.items()},
                mirrored=dict(self._mirrored),
                no_route=self._no_route,
                routed={v: {a: dict(r) for a, r in g.items()} for v, g in self._routed.items()},
                routed_mirrors={v: dict(r) for v, r in self._routed_mirrors.items()},
            )

    def history(self) -> dict[str, list[tuple[str, str]]]:
        """Per simulated user (``<audience>/<i>``): (route version, revision) of each request, in order."""
        with self._lock:
            return {user: list(h) for user, h in self._history.items()}

    def routes(self) -> dict[str, Mapping[str, Any]]:
        """Every HTTPRoute version the load routed by, keyed by resourceVersion (see Traffic.routed)."""
        with self._lock:
            return dict(self._routes)

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
                view = read_view(self._api, self.namespace, self.md, self.router, self.http_route)
            except Exception as e:
                view = RoutingView(self.view.router, problem=f"{type(e).__name__}: {e}")
            with self._lock:
                weights = [(b.service, b.weight) for b in view.backends]
                if view.route is None and weights != self._picker.weights:
                    self._picker = SmoothWeightedRoundRobin(weights)
                if view.route != self._view.route:
                    self._rule_pickers.clear()  # rules changed: per-rule round robins start over
                self._view = view
            if view.problem:
                log.debug("load %s/%s: %s", self.namespace, self.md, view.problem)
            self._refreshed.set()
            self._stop.wait(self.refresh_s)

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
            picked = self._pick()
            if picked is None:
                continue
            target, audience, mirrors = picked
            with self._lock:
                if self._in_flight >= self.max_in_flight:
                    self._dropped += 1
                    continue
                self._in_flight += 1
            pool = self._pool
            if pool is None:
                return
            try:
                pool.submit(self._send, target, audience)
                for copy in mirrors:
                    pool.submit(self._send, copy, audience, True)
            except RuntimeError:  # the pool shut down under us: stopping
                return

    def _pick(self) -> tuple[PodServer | RunningPod, str, list[PodServer | RunningPod]] | None:
        """The pod a request reaches, its audience, and the pods that get a mirrored copy."""
        with self._lock:
            view = self._view
            audience = self._audience_picker.next() or EVERYONE
            mirrors: list[str] = []
            who = self._audiences.get(audience)
            user = None
            if who is not None and who.users > 0:
                turn = self._turn.get(audience, 0)
                self._turn[audience] = turn + 1
                user = f"{audience}/{turn % who.users}"
            jar = self._jars.setdefault(user, {}) if user else None
            if view.route is None:
                service = self._picker.next()
            else:
                request = who.request(view.path, jar=jar) if who else Request(view.path)
                rule = select_rule(view.route, request)
                if rule is None:
                    self._no_route += 1
                    return None
                choice = rule_choice(view.route, rule)
                key = (rule, choice.backends)
                if key not in self._rule_pickers:
                    self._rule_pickers[key] = SmoothWeightedRoundRobin(choice.backends)
                service = self._rule_pickers[key].next()
                for svc, name, value in choice.set_cookies:
                    if jar is not None and svc == service:
                        jar[name] = value  # the answer's Set-Cookie, kept by the user's client
                for m in choice.mirrors:
                    if self._mirror_credit.setdefault((rule, m.service), Accumulator()).take(m.percent):
                        mirrors.append(m.service)
            address = self._address(view, service)
            if address is None:
                self._no_endpoints += 1
                return None
            self._by_service[str(service)] = self._by_service.get(str(service), 0) + 1
            mirror_addresses = [a for a in (self._address(view, m) for m in mirrors) if a is not None]
        target = self._resolve(address)
        if target is None:
            with self._lock:
                self._unmapped += 1
            return None
        mirror_targets = [t for t in (self._resolve(a) for a in mirror_addresses) if t is not None]
        if view.route is not None:
            version = str((view.route.get("metadata") or {}).get("resourceVersion", "-"))
            with self._lock:
                self._routes.setdefault(version, view.route)
                if user is not None:
                    self._history.setdefault(user, []).append((version, target.revision))
                group = self._routed.setdefault(version, {}).setdefault(user or audience, {})
                group[target.revision] = group.get(target.revision, 0) + 1
                copies = self._routed_mirrors.setdefault(version, {})
                for t in mirror_targets:
                    copies[t.revision] = copies.get(t.revision, 0) + 1
        return target, audience, mirror_targets

    def _address(self, view: RoutingView, service: str | None) -> str | None:
        """The next ready address of ``service`` (round robin); None when it has none. Lock held."""
        backend = next((b for b in view.backends if b.service == service), None)
        if backend is None or not backend.addresses:
            return None
        i = self._rr.get(backend.service, 0)
        self._rr[backend.service] = i + 1
        return backend.addresses[i % len(backend.addresses)]

    def _resolve(self, address: str) -> PodServer | RunningPod | None:
        target = self.world.server_for_ip(address)
        return target if target is not None and target.namespace == self.namespace else None

    def _send(self, target: PodServer | RunningPod, audience: str = EVERYONE, mirrored: bool = False) -> None:
        outcome = "refused"
        try:
            call = inference_call(target)
            conn = http.client.HTTPConnection(call.host, call.port, timeout=self.timeout_s)
            try:
                conn.request("POST", call.path, call.body, call.headers)
                response = conn.getresponse()
                response.read()  # a mirror's answer is read and thrown away, as the Gateway does
                outcome = "ok" if 200 <= response.status < 300 else "error"
            finally:
                conn.close()
        except (OSError, http.client.HTTPException, RuntimeError):
            outcome = "refused"  # connection refused/reset/timed out, or the server was stopped
        finally:
            delta = Counts(int(outcome == "ok"), int(outcome == "error"), int(outcome == "refused"))
            rev = target.revision
            with self._lock:
                if mirrored:
                    self._mirrored[rev] = self._mirrored.get(rev, Counts()) + delta
                else:
                    self._in_flight -= 1
                    self._by_revision[rev] = self._by_revision.get(rev, Counts()) + delta
                    self._by_pod[target.pod] = self._by_pod.get(target.pod, Counts()) + delta
                    group = self._by_audience.setdefault(audience, {})
                    group[rev] = group.get(rev, Counts()) + delta


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
