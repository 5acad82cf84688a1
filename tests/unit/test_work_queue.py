"""The work queue: coalescing, one pass per object, backoff events cannot bypass, the urgent lane."""

from __future__ import annotations

import random
import threading
import time
from collections import Counter

import pytest

from modeldeploy.controller import COALESCE_SECONDS, GONE, Controller, WorkQueue

pytestmark = pytest.mark.unit

A, B, C = ("ns", "a"), ("ns", "b"), ("ns", "c")


def queue() -> WorkQueue:
    return WorkQueue(resync=30.0, base_backoff=1.0, max_backoff=8.0, jitter=0.1, rng=random.Random(1))


def test_events_for_a_queued_object_coalesce() -> None:
    q = queue()
    for _ in range(5):
        q.add(A, now=0.0)
    assert len(q) == 1
    assert q.pop(0.0) == (A, False)
    assert q.pop(0.0) is None


def test_an_event_during_a_pass_makes_exactly_one_more_pass_after_it() -> None:
    q = queue()
    q.add(A, now=0.0)
    assert q.pop(0.0) == (A, False)
    q.add(A, now=0.1)
    q.add(A, now=0.2)
    assert q.pop(0.3) is None  # never two passes of one object at once
    q.done(A, now=1.0, outcome=None, failed=False, urgent=False)
    assert q.pop(1.0) == (A, False)
    q.done(A, now=1.5, outcome=None, failed=False, urgent=False)
    assert q.pop(1.5) is None  # the next one is the resync


def test_resync_is_spread_with_jitter() -> None:
    q = queue()
    whens = []
    for n in range(20):
        key = ("ns", f"m{n}")
        q.add(key, now=0.0)
        assert q.pop(0.0) == (key, False)
        whens.append(q.done(key, now=0.0, outcome=None, failed=False, urgent=False))
    assert all(w is not None and 27.0 <= w <= 33.0 for w in whens)
    assert len(set(whens)) == 20


def test_backoff_doubles_and_events_cannot_bypass_it() -> None:
    q = queue()
    q.add(A, now=0.0)
    expected = [1.0, 2.0, 4.0, 8.0, 8.0]
    now = 0.0
    for backoff in expected:
        key = q.pop(now)
        assert key == (A, False)
        when = q.done(A, now=now, outcome=None, failed=True, urgent=False)
        assert when == pytest.approx(now + backoff)
        q.add(A, now=now + 0.1)  # a watch event during the backoff
        assert q.pop(now + backoff - 0.01) is None
        now += backoff
    assert q.pop(now) == (A, False)
    q.done(A, now=now, outcome=None, failed=False, urgent=False)
    assert q.failures(A) == 0
    q.add(A, now=now + 1)  # after a success, events act at once again
    assert q.pop(now + 1) == (A, False)


def test_urgent_lane_first_and_requested_delays_kept() -> None:
    q = queue()
    q.add(A, now=0.0)
    q.add(B, now=0.0)
    q.add(C, now=0.5, urgent=True)
    assert q.pop(1.0) == (C, True)
    assert q.pop(1.0, idle_allowed=False) is None  # a reserved worker takes urgent work only
    assert q.pop(1.0) == (A, False)
    # a rollout asks to come back in 10 s (its next measurement): that is when it is due
    assert q.done(C, now=1.0, outcome=10.0, failed=False, urgent=True) == 11.0
    assert q.pop(10.9, idle_allowed=False) is None
    assert q.pop(11.0, idle_allowed=False) == (C, True)


def test_gone_and_forget_stop_tracking() -> None:
    q = queue()
    q.add(A, now=0.0)
    q.pop(0.0)
    assert q.done(A, now=0.0, outcome=GONE, failed=False, urgent=False) is None
    assert q.pop(100.0) is None
    q.add(B, now=0.0)
    q.forget(B)
    assert q.pop(0.0) is None
    q.add(C, now=0.0)
    q.pop(0.0)
    q.forget(C)  # deleted while its pass runs
    assert q.done(C, now=1.0, outcome=None, failed=False, urgent=False) is None
    assert len(q) == 0


def test_controller_runs_one_pass_per_object_and_serves_rollouts_while_idle_work_blocks() -> None:
    """Two workers, one reserved: an idle pass that hangs does not delay a rollout's pass."""
    passes: dict[str, int] = {}
    running: dict[str, int] = {}
    overlap: list[str] = []
    idle_started = threading.Event()
    release_idle = threading.Event()
    urgent_done = threading.Event()
    lock = threading.Lock()

    def reconcile(namespace: str, name: str) -> float | None:
        with lock:
            passes[name] = passes.get(name, 0) + 1
            running[name] = running.get(name, 0) + 1
            if running[name] > 1:
                overlap.append(name)
        try:
            if name.startswith("idle"):
                idle_started.set()
                release_idle.wait(10)
            else:
                urgent_done.set()
            return None
        finally:
            with lock:
                running[name] -= 1

    controller = Controller(
        reconcile, resync_seconds=300, workers=2, reserved=1, urgent=lambda _ns, name: name == "rolling"
    )
    controller.start()
    expected = {"idle-0": 2, "idle-1": 1, "idle-2": 1, "rolling": 1}
    try:
        controller.enqueue("ns", "idle-0")
        assert idle_started.wait(5)
        controller.enqueue("ns", "idle-1")
        controller.enqueue("ns", "idle-2")
        controller.enqueue("ns", "rolling")
        assert urgent_done.wait(5), "the rollout's pass waited behind idle passes"
        with lock:
            assert passes == {"idle-0": 1, "rolling": 1}  # idle-1, -2 wait: one idle worker only
        for _ in range(20):  # events while idle-0 runs: one more pass, after this one
            controller.enqueue("ns", "idle-0")
        release_idle.set()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with lock:
                if passes == expected and not any(running.values()):
                    break
            time.sleep(0.02)
    finally:
        release_idle.set()
        controller.stop()
    assert passes == expected
    assert overlap == []


def test_a_pass_is_resync_only_when_no_event_came_since_the_last_one() -> None:
    q = queue()
    q.add(A, now=0.0)
    q.pop(0.0)
    assert not q.resync_only(A)  # an event's pass
    when = q.done(A, now=0.0, outcome=None, failed=False, urgent=False)
    assert when is not None
    q.pop(when)
    assert q.resync_only(A)  # the timer's
    q.done(A, now=when, outcome=None, failed=False, urgent=False)
    q.add(A, now=when + 1)  # an event before the next resync
    q.pop(when + 1)
    assert not q.resync_only(A)
    q.done(A, now=when + 1, outcome=5.0, failed=False, urgent=False)
    q.pop(when + 6)
    assert not q.resync_only(A)  # asked for by the pass itself (a measurement due): never skipped


def test_controller_skips_resyncs_of_unchanged_objects_but_not_events() -> None:
    passes: list[str] = []
    asked: list[tuple[str, str]] = []
    seen = threading.Event()

    def reconcile(namespace: str, name: str) -> float | None:
        passes.append(name)
        seen.set()
        return None

    def unchanged(namespace: str, name: str) -> bool:
        asked.append((namespace, name))
        return True

    controller = Controller(reconcile, resync_seconds=0.3, workers=2, reserved=1, unchanged=unchanged)
    controller.start()
    try:
        controller.enqueue("ns", "a")
        assert seen.wait(5)
        seen.clear()
        # resyncs come every ~0.3 s and find nothing changed: no pass
        deadline = time.monotonic() + 10
        while len(asked) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(asked) >= 3
        assert passes == ["a"]
        controller.enqueue("ns", "a")  # an event still makes a pass
        assert seen.wait(5)
    finally:
        controller.stop()
    assert passes == ["a", "a"]


def test_a_sooner_due_time_reaches_the_worker_keeping_time_for_a_later_one() -> None:
    """One worker waits for the next due time. A pass that asks to run again sooner than that (a
    measurement due in 0.2 s while another object's resync is minutes away) still runs then."""
    runs: Counter[str] = Counter()
    lock = threading.Lock()
    again = threading.Event()

    def reconcile(namespace: str, name: str) -> float | None:
        with lock:
            runs[name] += 1
            if name == "measuring" and runs[name] == 3:
                again.set()
        return 0.2 if name == "measuring" else None  # "idle": next pass at the resync, 300 s away

    controller = Controller(reconcile, resync_seconds=300, workers=3, reserved=1)
    controller.start()
    try:
        controller.enqueue("ns", "idle")
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not (runs["idle"] and controller._timekeeping):
            time.sleep(0.01)
        assert controller._timekeeping  # a worker waits for the resync 300 s away
        controller.enqueue("ns", "measuring")
        assert again.wait(10), f"the 0.2 s re-pass waited for the 300 s resync: {dict(runs)}"
    finally:
        controller.stop()
    assert runs["idle"] == 1


def test_a_childs_events_wait_for_their_siblings_unless_the_object_is_mid_rollout() -> None:
    """Events of an idle object's children (a pod starting, its Deployment's status) are queued
    COALESCE_SECONDS ahead, so a burst of them is one pass; the object's own events, and any event
    of an object mid-rollout, are due at once."""
    now = [100.0]
    controller = Controller(
        lambda _ns, _name: None,
        resync_seconds=300,
        urgent=lambda _ns, name: name == "rolling",
        clock=lambda: now[0],
    )
    for _ in range(5):
        controller.enqueue("ns", "idle", coalesce=True)
        now[0] += 0.05
    assert len(controller.queue) == 1
    assert controller.queue.pop(100.0 + COALESCE_SECONDS - 0.01) is None  # still waiting for siblings
    assert controller.queue.pop(100.0 + COALESCE_SECONDS) == (("ns", "idle"), False)
    controller.enqueue("ns", "rolling", coalesce=True)
    assert controller.queue.pop(now[0]) == (("ns", "rolling"), True)
    controller.enqueue("ns", "other", coalesce=True)
    controller.enqueue("ns", "other")  # its own event: at once, whatever a child's asked
    assert controller.queue.pop(now[0]) == (("ns", "other"), False)
