"""Record a ModelDeployment's rollout as it happens: status snapshots, Events and route weights.

Used by the e2e tests (to check the sequence of steps and weights) and by the demo (to print one
timestamped line per change: step, weight, each guardrail's value against its threshold, decision).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


@dataclass(frozen=True)
class Snapshot:
    at: float  # time.time()
    phase: str | None
    stable: str | None
    canary: str | None
    weight: int
    step: int | None
    paused: bool
    route_weights: tuple[tuple[str, int], ...] | None

    def key(self) -> tuple[Any, ...]:
        return (self.phase, self.stable, self.canary, self.weight, self.step, self.paused, self.route_weights)


@dataclass
class Recorder:
    """Polls the ModelDeployment (and its HTTPRoute, if any) every ``interval`` seconds."""

    api: Any  # kubernetes ApiClient
    namespace: str
    name: str
    interval: float = 0.25
    on_change: Callable[[Snapshot, dict[str, Any]], None] | None = None
    snapshots: list[Snapshot] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    measurements: list[dict[str, Any]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _seen_events: set[str] = field(default_factory=set)
    _seen_measurements: set[tuple[str, str, str]] = field(default_factory=set)
    _polls: int = 0  # polls completed
    on_event: Callable[[dict[str, Any]], None] | None = None
    on_measurement: Callable[[dict[str, Any]], None] | None = None

    def start(self) -> Recorder:
        self._thread = threading.Thread(target=self._run, name=f"recorder-{self.name}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=10)

    # --- queries ---------------------------------------------------------------------------------

    def distinct(self, attr: str) -> list[Any]:
        """The successive distinct values of one snapshot attribute."""
        out: list[Any] = []
        for s in self.snapshots:
            value = getattr(s, attr)
            if not out or out[-1] != value:
                out.append(value)
        return out

    def first(self, predicate: Callable[[Snapshot], bool]) -> Snapshot | None:
        return next((s for s in self.snapshots if predicate(s)), None)

    def reasons(self) -> list[str]:
        return [e["reason"] for e in self.events]

    def wait_for_reasons(self, *wanted: str, timeout: float = 30) -> list[str]:
        """The Events' reasons once every one of ``wanted`` is among them. A test that waited for a
        status (RolledBack, a new stable) must still wait for the Event that tells it: the Event is
        written by its own request, and reaches this recorder on its next poll. On return the
        measurements too are at least as new as the status the test saw."""
        deadline = time.monotonic() + timeout
        polls = self._polls + 2  # and one whole poll begun after this call: the status it read is as new
        while not set(wanted) <= set(self.reasons()) or self._polls < polls:
            if self._thread is None or not self._thread.is_alive():
                raise RuntimeError("the recorder is not running: wait for Events before stop()")
            if time.monotonic() > deadline:
                missing = sorted(set(wanted) - set(self.reasons()))
                raise AssertionError(
                    f"Events {self.reasons()} lack {missing} after {timeout}s"
                    if missing
                    else f"the recorder completed no poll in {timeout}s"
                )
            time.sleep(self.interval)
        return self.reasons()

    # --- loop ------------------------------------------------------------------------------------

    def _run(self) -> None:
        from kubernetes import client

        custom: Any = client.CustomObjectsApi(self.api)
        core: Any = client.CoreV1Api(self.api)
        while True:
            stopping = self._stop.is_set()
            with contextlib.suppress(Exception):  # a transient API error must not end the recording
                self._poll(custom, core)
                self._polls += 1
            if stopping:
                return  # one last poll after stop(), so nothing written before it is missed
            self._stop.wait(self.interval)

    def _poll(self, custom: Any, core: Any) -> None:
        md = custom.get_namespaced_custom_object(
            "modeldeploy.dev", "v1alpha1", self.namespace, "modeldeployments", self.name
        )
        status = md.get("status") or {}
        rollout = status.get("rollout") or {}
        route = _route_weights(custom, self.namespace, md)
        snap = Snapshot(
            at=time.time(),
            phase=status.get("phase"),
            stable=status.get("stableRevision"),
            canary=status.get("canaryRevision"),
            weight=int(status.get("canaryWeight") or 0),
            step=status.get("currentStep"),
            paused=bool(rollout.get("paused")),
            route_weights=route,
        )
        if not self.snapshots or self.snapshots[-1].key() != snap.key():
            self.snapshots.append(snap)
            if self.on_change:
                self.on_change(snap, status)
        for m in status.get("measurements") or []:
            key = (m.get("at", ""), m.get("guardrail", ""), m.get("revision", ""))
            if key not in self._seen_measurements:
                self._seen_measurements.add(key)
                self.measurements.append(m)
                if self.on_measurement:
                    self.on_measurement(m)
        selector = f"involvedObject.name={self.name},involvedObject.kind=ModelDeployment"
        for ev in core.list_namespaced_event(self.namespace, field_selector=selector).items:
            uid = ev.metadata.uid
            if uid in self._seen_events:
                continue
            self._seen_events.add(uid)
            record = {"reason": ev.reason, "message": ev.message, "type": ev.type, "at": _ts(ev)}
            self.events.append(record)
            if self.on_event:
                self.on_event(record)


def _ts(ev: Any) -> str:
    t = ev.last_timestamp or ev.event_time or ev.first_timestamp
    return t.astimezone(UTC).strftime("%H:%M:%S") if isinstance(t, datetime) else str(t)


def _route_weights(custom: Any, namespace: str, md: dict[str, Any]) -> tuple[tuple[str, int], ...] | None:
    routing = ((md.get("spec") or {}).get("rollout") or {}).get("trafficRouting") or {}
    gateway = routing.get("gatewayAPI")
    if not gateway:
        return None
    try:
        route = custom.get_namespaced_custom_object(
            "gateway.networking.k8s.io", "v1", namespace, "httproutes", gateway["httpRoute"]
        )
    except Exception:
        return None
    refs = (route.get("spec", {}).get("rules") or [{}])[0].get("backendRefs") or []
    return tuple((r["name"], int(r.get("weight", 1))) for r in refs)
