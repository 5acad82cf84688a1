"""Leader election decisions (modeldeploy.leader): safety and takeover time, by simulation.

The simulation runs candidates against a Lease store that, like the API server, refuses a write
whose resourceVersion is stale. Each candidate follows the same rules as the operator's shell
(modeldeploy.leader_election): a standby reads and tries to acquire every retry period; the holder
renews every retry period counting from the send, and stops the moment the renew deadline passes.
Hypothesis picks the schedule: who runs when, lost requests, lost responses, crashes.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from modeldeploy.leader import (
    LeaseRecord,
    Observed,
    Timing,
    acquired,
    can_acquire,
    expired,
    identity,
    lease_body,
    must_stop,
    observe,
    record_of,
    released,
    renewed,
)
from modeldeploy.settings import SettingsError, load

pytestmark = pytest.mark.unit

T0 = datetime(2026, 1, 1, tzinfo=UTC)
TIMING = Timing()


def held(holder: str, duration: int = 8) -> LeaseRecord:
    return LeaseRecord(holder=holder, lease_duration_seconds=duration, acquire_time=T0, renew_time=T0)


# --- the single decisions ---------------------------------------------------------------------------


def test_a_lease_expires_by_the_observers_clock_not_the_holders_timestamps() -> None:
    # renewTime far in the past (a skewed holder clock) does not make a just-seen lease expired
    stale_looking = LeaseRecord("a", 8, T0 - timedelta(days=1), T0 - timedelta(days=1))
    seen = observe(None, stale_looking, "1", now=100.0)
    assert not expired(seen, 107.9) and expired(seen, 108.0)
    # the same record seen again does not restart the clock; a renewed one does
    assert observe(seen, stale_looking, "1", now=105.0).since == 100.0
    assert observe(seen, renewed(stale_looking, T0), "2", now=105.0).since == 105.0


def test_who_may_acquire() -> None:
    seen = observe(None, held("a"), "1", now=0.0)
    assert can_acquire(seen, "a", 1.0)  # the holder itself
    assert not can_acquire(seen, "b", 7.9)
    assert can_acquire(seen, "b", 8.0)  # expired
    assert can_acquire(observe(None, None, None, 0.0), "b", 0.0)  # no Lease yet
    free = released(held("a"), T0)
    assert free.holder == "" and free.lease_duration_seconds == 1
    assert can_acquire(observe(None, free, "2", 0.0), "b", 0.0)  # released: at once


def test_acquiring_counts_transitions_and_keeps_a_term_when_renewing() -> None:
    first = acquired(None, "a", T0, TIMING)
    assert (first.holder, first.transitions, first.lease_duration_seconds) == ("a", 0, 8)
    later = T0 + timedelta(seconds=5)
    again = acquired(first, "a", later, TIMING)
    assert again.acquire_time == T0 and again.renew_time == later and again.transitions == 0
    taken = acquired(again, "b", later, TIMING)
    assert taken.holder == "b" and taken.acquire_time == later and taken.transitions == 1


def test_the_holder_stops_at_the_renew_deadline() -> None:
    assert not must_stop(last_renewed=10.0, now=15.9, timing=TIMING)
    assert must_stop(last_renewed=10.0, now=16.0, timing=TIMING)


def test_lease_object_round_trip() -> None:
    record = LeaseRecord("pod-1_7_ab", 8, T0, T0 + timedelta(microseconds=1500), 3)
    body = lease_body("ns", "lease", record, "42")
    assert body["metadata"] == {"name": "lease", "namespace": "ns", "resourceVersion": "42"}
    assert body["spec"]["renewTime"] == "2026-01-01T00:00:00.001500Z"
    assert record_of(body) == record
    assert "resourceVersion" not in lease_body("ns", "lease", record, None)["metadata"]
    assert record_of({"spec": {}}) == LeaseRecord("", 0)


def test_identities_are_unique_per_process_and_safe_to_write() -> None:
    assert identity("operator-7d9f-x2", 12, "ab12") == "operator-7d9f-x2_12_ab12"
    assert identity("host name/with:odd", 1, "ff") == "host-name-with-odd_1_ff"
    assert identity("", 1, "ff") == "operator_1_ff"
    assert identity("h", 1, "aa") != identity("h", 1, "bb")


@pytest.mark.parametrize(
    ("lease", "renew", "retry", "words"),
    [
        ("8", "8", "2", "renew deadline .* must be shorter than the lease duration"),
        ("8", "6", "6", "retry period .* must be shorter than the renew deadline"),
        ("7.5", "6", "2", "whole seconds"),
        ("0", "6", "2", "must be > 0"),
    ],
)
def test_unsafe_timings_are_refused(lease: str, renew: str, retry: str, words: str) -> None:
    argv = [
        "--lease-duration-seconds",
        lease,
        "--renew-deadline-seconds",
        renew,
        "--retry-period-seconds",
        retry,
    ]
    with pytest.raises(SettingsError, match=words):
        load(argv, {})


def test_leader_election_settings() -> None:
    assert load([], {}).leader_elect is False  # a local single run, and the tests' operator
    assert load(["--leader-elect"], {}).leader_elect is True
    assert load([], {"MODELDEPLOY_LEADER_ELECT": "true"}).leader_elect is True
    assert load(["--no-leader-elect"], {"MODELDEPLOY_LEADER_ELECT": "true"}).leader_elect is False
    s = load(["--leader-election-id", "x", "--leader-election-namespace", "ops"], {})
    assert (s.leader_election_id, s.leader_election_namespace) == ("x", "ops")
    with pytest.raises(SettingsError, match="MODELDEPLOY_LEADER_ELECT must be true or false"):
        load([], {"MODELDEPLOY_LEADER_ELECT": "maybe"})


# --- simulation -----------------------------------------------------------------------------------


@dataclass
class Store:
    """The API server's view of one Lease: a write must carry the current resourceVersion."""

    record: LeaseRecord | None = None
    version: int = 0

    def read(self) -> tuple[LeaseRecord | None, str | None]:
        return self.record, (str(self.version) if self.record is not None else None)

    def write(self, record: LeaseRecord, seen: str | None) -> bool:
        current = str(self.version) if self.record is not None else None
        if seen != current:
            return False
        self.record, self.version = record, self.version + 1
        return True


@dataclass
class Candidate:
    name: str
    observed: Observed | None = None
    leading: bool = False
    dead: bool = False
    last_renewed: float = 0.0
    resource_version: str | None = None
    terms: list[list[float]] = field(default_factory=list)  # [start, end] while believing it leads

    def stop_leading(self, at: float) -> None:
        self.leading, self.dead = False, True  # the operator exits; a restart is a new identity
        self.terms[-1][1] = at

    @property
    def deadline(self) -> float:
        """When its watchdog stops it, unless a renewal comes first."""
        return self.last_renewed + TIMING.renew_deadline

    def tick(self, store: Store, now: float, request_lost: bool, response_lost: bool) -> None:
        """One retry period's work, as leader_election.LeaderElector does it."""
        if self.dead:
            return
        wall = T0 + timedelta(seconds=now)
        if self.leading:
            if must_stop(self.last_renewed, now, TIMING):  # the watchdog fired at the deadline
                self.stop_leading(self.deadline)
                return
            record, _ = store.read()
            assert record is not None
            ok = not request_lost and store.write(renewed(record, wall), self.resource_version)
            if ok:
                self.resource_version = str(store.version)
                if not response_lost:
                    self.last_renewed = now
            elif not request_lost:
                current, version = store.read()
                if current is None or current.holder != self.name:
                    self.stop_leading(now)
            return
        record, version = store.read()
        self.observed = observe(self.observed, record, version, now)
        if not can_acquire(self.observed, self.name, now) or request_lost:
            return
        if store.write(acquired(record, self.name, wall, TIMING), version) and not response_lost:
            self.leading, self.last_renewed = True, now
            self.resource_version = str(store.version)
            self.terms.append([now, float("inf")])


rarely = st.integers(0, 5).map(lambda n: n == 0)
schedules = st.lists(
    st.tuples(
        st.integers(0, 2),  # who runs
        st.floats(0.0, 3.0),  # time passing before it runs
        rarely,  # the request is lost
        rarely,  # the response is lost
        st.integers(0, 30),  # 0: the candidate crashes instead
    ),
    max_size=120,
)


@settings(max_examples=400, deadline=None)
@given(schedules)
# the leader renews, a standby sees it, then retries until it judges the lease expired
@example([(0, 0.0, False, False, 5), (1, 0.5, False, False, 5)] + [(1, 3.0, False, False, 5)] * 3)
def test_two_candidates_never_both_act(schedule: list[tuple[int, float, bool, bool, int]]) -> None:
    store = Store()
    candidates = [Candidate(n) for n in ("a", "b", "c")]
    now = 0.0
    for who, dt, request_lost, response_lost, crash in schedule:
        now += dt
        for other in candidates:  # each leader's watchdog, wherever the schedule is
            if other.leading and must_stop(other.last_renewed, now, TIMING):
                other.stop_leading(other.deadline)
        c = candidates[who]
        if crash == 0 and c.leading:
            c.leading, c.dead = False, True
            c.terms[-1][1] = now  # SIGKILL: it acts no more
            continue
        c.tick(store, now, request_lost, response_lost)
    for c in candidates:
        if c.leading:  # acts on until its watchdog fires, if nothing stops it sooner
            c.stop_leading(c.deadline)
    terms = sorted((start, end, c.name) for c in candidates for start, end in c.terms)
    for (_, end1, who1), (start2, _, who2) in itertools.pairwise(terms):
        assert end1 <= start2, f"{who1} still acted until {end1} when {who2} took over at {start2}"


@settings(max_examples=300, deadline=None)
@given(
    renew_phase=st.floats(0.0, TIMING.retry_period),
    standby_phase=st.floats(0.0, TIMING.retry_period),
    killed_after=st.floats(0.0, 60.0),
)
def test_a_standby_takes_over_within_the_worst_case_after_a_kill(
    renew_phase: float, standby_phase: float, killed_after: float
) -> None:
    store, leader, standby = Store(), Candidate("a"), Candidate("b")
    leader.tick(store, 0.0, False, False)
    assert leader.leading
    events = [(renew_phase + k * TIMING.retry_period, leader) for k in range(60)]
    events += [(standby_phase + k * TIMING.retry_period, standby) for k in range(80)]
    taken_at = None
    for at, who in sorted(events, key=lambda e: e[0]):
        if who is leader and at > killed_after:
            continue  # SIGKILLed: it never renews again
        who.tick(store, at, False, False)
        if standby.leading:
            taken_at = at
            break
    assert taken_at is not None
    assert taken_at - killed_after <= TIMING.worst_case_takeover + 1e-9
