"""Leader election decisions over a coordination.k8s.io/v1 Lease, as client-go takes them (pure).

One replica holds the Lease and acts; the others only read it. The rules:

- A candidate judges expiry by its *own* clock: it remembers when it first saw the current lease
  record, and the record has expired once ``lease_duration`` has passed since then without a change.
  The holder's timestamps are never compared with the local clock, so clock skew between hosts
  cannot cut a term short.
- The holder renews every ``retry_period``; a renewal counts from the moment it was *sent*. When no
  renewal has succeeded for ``renew_deadline`` it stops acting at once. Because
  ``renew_deadline < lease_duration`` and a candidate can only have seen a renewal after it was
  sent, the old holder has stopped before any candidate considers the lease expired.
- Writes carry the resourceVersion they were decided on, so two candidates acquiring the same expired
  lease cannot both win: the API server refuses the second (409).
- On a clean shutdown the holder releases the lease (no holder, duration 1 s), so a candidate
  takes over at its next retry instead of waiting for expiry.

The I/O around these functions (reads, writes, threads) is modeldeploy.leader_election.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

MICRO_TIME = "%Y-%m-%dT%H:%M:%S.%fZ"  # metav1.MicroTime, as the Lease API writes it
LEASE_API_VERSION = "coordination.k8s.io/v1"


@dataclass(frozen=True)
class Timing:
    """Seconds. Worst-case takeover after a holder dies: ``lease_duration + 2 * retry_period``, plus
    the requests' latency.

    The defaults keep that at 10 s, leaving 5 s of a 15 s takeover budget for the new leader's start
    (kopf, watch caches), for one Lease write per second while leading; client-go's 15/10/2 would take
    up to 19 s. A renewal request times out after a third of the renew deadline, so a slow API server
    gets two more tries before the leader gives up."""

    lease_duration: float = 8.0
    renew_deadline: float = 6.0
    retry_period: float = 1.0

    def problem(self) -> str | None:
        """Why these values cannot give safe election, or None when they can."""
        if min(self.lease_duration, self.renew_deadline, self.retry_period) <= 0:
            return "lease duration, renew deadline and retry period must all be > 0"
        if self.lease_duration != int(self.lease_duration):
            return f"lease duration must be whole seconds (the Lease API's unit), got {self.lease_duration}"
        if self.renew_deadline >= self.lease_duration:
            return (
                f"renew deadline ({self.renew_deadline:g}s) must be shorter than the lease duration "
                f"({self.lease_duration:g}s), or a deposed leader could still act after another took over"
            )
        if self.retry_period >= self.renew_deadline:
            return (
                f"retry period ({self.retry_period:g}s) must be shorter than the renew deadline "
                f"({self.renew_deadline:g}s), or the leader gets no second attempt to renew"
            )
        return None

    @property
    def worst_case_takeover(self) -> float:
        """Kill → lease seen expired and taken: the last renewal is seen up to one retry late, and
        expiry is noticed at the next retry after it (request latency not counted)."""
        return self.lease_duration + 2 * self.retry_period


@dataclass(frozen=True)
class LeaseRecord:
    """The election-relevant part of a Lease's spec; ``holder`` is empty when nobody holds it."""

    holder: str
    lease_duration_seconds: int
    acquire_time: datetime | None = None
    renew_time: datetime | None = None
    transitions: int = 0


@dataclass(frozen=True)
class Observed:
    """A lease record as a candidate last saw it, and when (local monotonic seconds) it first saw it."""

    record: LeaseRecord | None
    resource_version: str | None
    since: float


def observe(
    previous: Observed | None, record: LeaseRecord | None, resource_version: str | None, now: float
) -> Observed:
    """The new observation: the expiry clock restarts only when the record changed."""
    if previous is not None and previous.record == record:
        return replace(previous, resource_version=resource_version)
    return Observed(record, resource_version, now)


def expired(observed: Observed, now: float) -> bool:
    """Free (no record, no holder) or not renewed for its whole duration, by the observer's clock."""
    record = observed.record
    if record is None or not record.holder:
        return True
    return now >= observed.since + record.lease_duration_seconds


def can_acquire(observed: Observed, identity: str, now: float) -> bool:
    """Whether ``identity`` may try to write itself as holder now."""
    record = observed.record
    return (record is not None and record.holder == identity) or expired(observed, now)


def acquired(previous: LeaseRecord | None, identity: str, now: datetime, timing: Timing) -> LeaseRecord:
    """The record that makes ``identity`` the holder (a new term unless it already held it)."""
    if previous is not None and previous.holder == identity:
        return renewed(previous, now)
    return LeaseRecord(
        holder=identity,
        lease_duration_seconds=int(timing.lease_duration),
        acquire_time=now,
        renew_time=now,
        transitions=previous.transitions + 1 if previous is not None else 0,
    )


def renewed(record: LeaseRecord, now: datetime) -> LeaseRecord:
    return replace(record, renew_time=now)


def released(record: LeaseRecord, now: datetime) -> LeaseRecord:
    """What a holder writes on clean shutdown (client-go's ReleaseOnCancel): free at once."""
    return replace(record, holder="", lease_duration_seconds=1, acquire_time=now, renew_time=now)


def must_stop(last_renewed: float, now: float, timing: Timing) -> bool:
    """The holder has not renewed for the renew deadline: it must stop acting now."""
    return now - last_renewed >= timing.renew_deadline


# --- the Lease object ---------------------------------------------------------------------------


def _time(value: datetime | None) -> str | None:
    return value.astimezone(UTC).strftime(MICRO_TIME) if value is not None else None


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    text = value.rstrip("Z")
    for fmt in ("%Y-%m-%dT%H:%M:%S.%f", "%Y-%m-%dT%H:%M:%S"):
        try:
            return datetime.strptime(text, fmt).replace(tzinfo=UTC)
        except ValueError:
            continue
    return None


def record_of(lease: dict[str, Any]) -> LeaseRecord:
    """The record in a Lease object (missing fields read as a free lease)."""
    spec = lease.get("spec") or {}
    return LeaseRecord(
        holder=str(spec.get("holderIdentity") or ""),
        lease_duration_seconds=int(spec.get("leaseDurationSeconds") or 0),
        acquire_time=_parse_time(spec.get("acquireTime")),
        renew_time=_parse_time(spec.get("renewTime")),
        transitions=int(spec.get("leaseTransitions") or 0),
    )


def lease_body(
    namespace: str, name: str, record: LeaseRecord, resource_version: str | None
) -> dict[str, Any]:
    """The Lease to create (no resourceVersion) or to replace (with the one the decision saw)."""
    metadata: dict[str, Any] = {"name": name, "namespace": namespace}
    if resource_version is not None:
        metadata["resourceVersion"] = resource_version
    spec: dict[str, Any] = {
        "holderIdentity": record.holder,
        "leaseDurationSeconds": record.lease_duration_seconds,
        "leaseTransitions": record.transitions,
    }
    for key, value in (("acquireTime", record.acquire_time), ("renewTime", record.renew_time)):
        if value is not None:
            spec[key] = _time(value)
    return {"apiVersion": LEASE_API_VERSION, "kind": "Lease", "metadata": metadata, "spec": spec}


_NOT_IN_IDENTITY = re.compile(r"[^A-Za-z0-9._-]+")


def identity(base: str, pid: int, suffix: str) -> str:
    """A holder identity unique per process: two replicas on one host (same hostname, or a restarted
    process reusing a pid) never share one, because of the random ``suffix``."""
    cleaned = _NOT_IN_IDENTITY.sub("-", base).strip("-") or "operator"
    return f"{cleaned[:200]}_{pid}_{suffix}"
