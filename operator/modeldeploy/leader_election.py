"""Leader election's I/O: read and write the Lease, wait for it, renew it, give it back.

Every decision is a pure function of modeldeploy.leader; this module only calls the API, keeps time
and runs two daemon threads while leading: the renewer (one replace every retry period) and the
watchdog, which calls ``on_lost`` the moment the renew deadline passes without a renewal, however
long a renewal request hangs.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

from prometheus_client import Gauge

from modeldeploy.kube.rest import Kind, Kube, KubeError
from modeldeploy.leader import (
    LeaseRecord,
    Observed,
    Timing,
    acquired,
    can_acquire,
    lease_body,
    must_stop,
    observe,
    record_of,
    released,
    renewed,
)

LEASE = Kind("coordination.k8s.io/v1", "Lease", "leases")
IS_LEADER = Gauge("modeldeploy_leader", "1 while this replica holds the leader Lease and acts, else 0.")
log = logging.getLogger(__name__)


class LeaseStore:
    """One Lease object: read it, write a record conditioned on the resourceVersion seen."""

    def __init__(self, kube: Kube, namespace: str, name: str) -> None:
        self.kube, self.namespace, self.name = kube, namespace, name

    def read(self) -> tuple[LeaseRecord | None, str | None]:
        body = self.kube.get(LEASE, self.namespace, self.name)
        if body is None:
            return None, None
        return record_of(body), str(body["metadata"]["resourceVersion"])

    def write(self, record: LeaseRecord, resource_version: str | None) -> str | None:
        """The new resourceVersion, or None when someone else wrote first (409, or 409-like create)."""
        body = lease_body(self.namespace, self.name, record, resource_version)
        try:
            if resource_version is None:
                written = self.kube.request("POST", LEASE.path(self.namespace), body=body)
            else:
                written = self.kube.request("PUT", LEASE.path(self.namespace, self.name), body=body)
        except KubeError as exc:
            if exc.status == 409:
                return None
            raise
        return str(written["metadata"]["resourceVersion"])


def _utcnow() -> datetime:
    return datetime.now(UTC)


class LeaderElector:
    """``acquire()`` blocks until this process leads; ``keep_renewing()``; ``release()`` at exit."""

    def __init__(
        self,
        store: LeaseStore,
        identity: str,
        timing: Timing,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store, self.identity, self.timing, self.clock = store, identity, timing, clock
        self._observed: Observed | None = None
        self._resource_version: str | None = None
        self._record: LeaseRecord | None = None
        self._last_renewed = 0.0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        IS_LEADER.set(0)

    # --- standby ---------------------------------------------------------------------------------

    def try_acquire(self) -> bool:
        """One attempt: read the Lease, and write ourselves as holder if the rules allow it."""
        record, resource_version = self.store.read()
        now = self.clock()
        self._observed = observe(self._observed, record, resource_version, now)
        if not can_acquire(self._observed, self.identity, now):
            return False
        mine = acquired(record, self.identity, _utcnow(), self.timing)
        written = self.store.write(mine, resource_version)
        if written is None:
            return False
        with self._lock:
            self._record, self._resource_version, self._last_renewed = mine, written, now
        IS_LEADER.set(1)
        log.info(
            "became leader",
            extra={"identity": self.identity, "lease": self.store.name, "previous": record and record.holder},
        )
        return True

    def acquire(self, stop: threading.Event) -> bool:
        """Try every retry period until leading (True) or ``stop`` is set (False)."""
        holder: str | None = None
        while not stop.is_set():
            try:
                if self.try_acquire():
                    return True
            except (KubeError, OSError) as exc:
                log.warning("could not read or write the leader lease", extra={"error": str(exc)})
            seen = self._observed.record.holder if self._observed and self._observed.record else None
            if seen != holder:
                holder = seen
                log.info("standing by", extra={"identity": self.identity, "leader": holder})
            stop.wait(self.timing.retry_period)
        return False

    # --- leading ---------------------------------------------------------------------------------

    def keep_renewing(self, on_lost: Callable[[str], None]) -> None:
        """Renew every retry period; call ``on_lost(reason)`` once when leadership is lost."""
        lost = threading.Event()

        def lose(reason: str) -> None:
            if not self._stop.is_set() and not lost.is_set():
                lost.set()
                IS_LEADER.set(0)
                on_lost(reason)

        def renewer() -> None:
            while not self._stop.wait(self.timing.retry_period):
                reason = self._renew_once()
                if reason:
                    lose(reason)
                    return

        def watchdog() -> None:
            while True:
                with self._lock:
                    remaining = self._last_renewed + self.timing.renew_deadline - self.clock()
                if self._stop.wait(max(remaining, 0.0)):
                    return
                with self._lock:
                    late = must_stop(self._last_renewed, self.clock(), self.timing)
                if late:
                    lose(f"no renewal for {self.timing.renew_deadline:g}s (renew deadline)")
                    return

        self._threads = [
            threading.Thread(target=renewer, name="lease-renewer", daemon=True),
            threading.Thread(target=watchdog, name="lease-watchdog", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def _renew_once(self) -> str | None:
        """One renewal; the reason leadership is lost, or None (renewed, or worth another try)."""
        sent = self.clock()  # counted from the send: the server saw it no earlier
        with self._lock:
            record, resource_version = self._record, self._resource_version
        assert record is not None
        try:
            mine = renewed(record, _utcnow())
            written = self.store.write(mine, resource_version)
            if written is None:  # someone wrote since: ours (a lost response) or another holder's
                current, resource_version = self.store.read()
                if current is None or current.holder != self.identity:
                    return f"lease taken by {current.holder if current else 'nobody (deleted)'}"
                mine = renewed(current, _utcnow())
                written = self.store.write(mine, resource_version)
                if written is None:
                    return None
        except (KubeError, OSError) as exc:
            log.warning("lease renewal failed", extra={"error": str(exc)})
            return None
        with self._lock:
            self._record, self._resource_version, self._last_renewed = mine, written, sent
        return None

    def release(self) -> None:
        """Stop renewing and free the lease, so a standby takes over at its next retry."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=self.timing.retry_period * 2)
        IS_LEADER.set(0)
        with self._lock:
            record, resource_version = self._record, self._resource_version
        if record is None:
            return
        try:
            if self.store.write(released(record, _utcnow()), resource_version) is None:
                current, resource_version = self.store.read()
                if current is not None and current.holder == self.identity:
                    self.store.write(released(current, _utcnow()), resource_version)
        except (KubeError, OSError) as exc:
            log.warning("could not release the leader lease", extra={"error": str(exc)})
            return
        log.info("released the leader lease", extra={"identity": self.identity, "lease": self.store.name})
