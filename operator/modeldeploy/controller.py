"""The work queue: a bounded pool of worker threads running reconcile passes, rollouts first.

``WorkQueue`` is the bookkeeping alone (no threads, no clock of its own): at most one pass per object
at a time; events for an object already queued coalesce into its one entry, events for one that is
running make exactly one more pass after it; a failed pass backs off exponentially per object and
no event brings the retry forward; objects mid-rollout sit in an urgent lane that is always served
first, and ``reserved`` workers take urgent work only, so a measurement or rollback decision never
waits behind idle resyncs. Idle resyncs are spread with jitter.

``Controller`` runs it: watch events ``enqueue``; workers call the synchronous reconcile (which may
wait on Prometheus or the API server: that occupies one worker, never the others).
"""

from __future__ import annotations

import heapq
import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from modeldeploy.observability import RECONCILES

log = logging.getLogger(__name__)

Key = tuple[str, str]
# Returns seconds until the object wants another pass (None: the regular resync), or GONE.
ReconcileFn = Callable[[str, str], float | None]
GONE = -1.0
MIN_DELAY = 0.2
# A child's events (a pod starting, a Deployment's status) wait this long for their siblings before
# an idle object's pass: one pass for a burst of them. Objects mid-rollout never wait.
COALESCE_SECONDS = 0.5


@dataclass
class _Item:
    urgent: bool = False
    due: float | None = None  # queued for this time; None: not queued
    running: bool = False
    dirty: bool = False  # an event came while running: one more pass after it
    forgotten: bool = False
    resync: bool = False  # queued by the resync timer alone (no event, no requested delay)
    failures: int = 0
    not_before: float = 0.0  # backoff: no pass before this, whatever events say
    seq: int = 0


class WorkQueue:
    def __init__(
        self,
        resync: float,
        base_backoff: float = 1.0,
        max_backoff: float = 60.0,
        jitter: float = 0.1,
        rng: random.Random | None = None,
    ) -> None:
        self.resync = resync
        self.base_backoff = base_backoff
        self.max_backoff = max_backoff
        self.jitter = jitter
        self._rng = rng or random.Random()
        self._items: dict[Key, _Item] = {}
        self._lanes: dict[bool, list[tuple[float, int, Key]]] = {True: [], False: []}
        self._seq = 0
        self._popped_resync: dict[Key, bool] = {}

    def __len__(self) -> int:
        return sum(1 for i in self._items.values() if i.due is not None)

    def add(self, key: Key, now: float, urgent: bool = False, delay: float = 0.0) -> None:
        item = self._items.setdefault(key, _Item())
        item.forgotten = False
        item.resync = False
        if item.running:
            item.dirty = True
            item.urgent = item.urgent or urgent
            return
        want = max(now + delay, item.not_before)
        if item.due is None or want < item.due or (urgent and not item.urgent):
            self._schedule(key, item, min(want, item.due) if item.due is not None else want, urgent)

    def forget(self, key: Key) -> None:
        item = self._items.get(key)
        if item is None:
            return
        if item.running:
            item.forgotten = True
        else:
            del self._items[key]

    def pop(self, now: float, idle_allowed: bool = True) -> tuple[Key, bool] | None:
        """The next object due, urgent lane first: (key, urgent); None when nothing is due.
        ``resync_only(key)`` then says whether the pass is due to the resync timer alone."""
        for lane in (True, False) if idle_allowed else (True,):
            entry = self._peek(lane)
            if entry is not None and entry[0] <= now:
                heapq.heappop(self._lanes[lane])
                key = entry[2]
                item = self._items[key]
                item.due, item.running, item.dirty = None, True, False
                self._popped_resync[key] = item.resync
                item.resync = False
                return key, lane
        return None

    def next_due(self, idle_allowed: bool = True) -> float | None:
        times = [e[0] for lane in ((True, False) if idle_allowed else (True,)) if (e := self._peek(lane))]
        return min(times) if times else None

    def done(self, key: Key, now: float, outcome: float | None, failed: bool, urgent: bool) -> float | None:
        """A pass ended; returns when the object's next pass is due (None: no longer tracked)."""
        item = self._items.get(key)
        if item is None:
            return None
        item.running = False
        self._popped_resync.pop(key, None)
        resync = False
        if item.forgotten:
            del self._items[key]
            return None
        if failed:
            item.failures += 1
            backoff = min(self.max_backoff, self.base_backoff * 2.0 ** (item.failures - 1))
            item.not_before = now + backoff
            when = item.not_before
        else:
            item.failures, item.not_before = 0, 0.0
            if outcome == GONE and not item.dirty:
                del self._items[key]
                return None
            if item.dirty:
                when = now
            elif outcome is None or outcome == GONE:
                when = now + self.resync * self._rng.uniform(1 - self.jitter, 1 + self.jitter)
                resync = True
            else:
                when = now + max(MIN_DELAY, min(outcome, self.resync))
        item.dirty = False
        self._schedule(key, item, when, urgent or item.urgent)
        item.resync = resync
        return when

    def resync_only(self, key: Key) -> bool:
        return self._popped_resync.get(key, False)

    def failures(self, key: Key) -> int:
        item = self._items.get(key)
        return item.failures if item else 0

    def _schedule(self, key: Key, item: _Item, when: float, urgent: bool) -> None:
        self._seq += 1
        item.seq, item.due, item.urgent = self._seq, when, urgent
        heapq.heappush(self._lanes[urgent], (when, self._seq, key))

    def _peek(self, lane: bool) -> tuple[float, int, Key] | None:
        heap = self._lanes[lane]
        while heap:
            when, seq, key = heap[0]
            item = self._items.get(key)
            if item is not None and item.seq == seq and item.due == when and item.urgent == lane:
                return heap[0]
            heapq.heappop(heap)  # superseded by a later schedule of the same object
        return None


class Controller:
    """Runs ``reconcile`` for queued objects on ``workers`` threads; ``reserved`` of them urgent only."""

    def __init__(
        self,
        reconcile: ReconcileFn,
        resync_seconds: float,
        max_backoff: float = 60.0,
        workers: int = 8,
        reserved: int = 2,
        urgent: Callable[[str, str], bool] | None = None,
        unchanged: Callable[[str, str], bool] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 0 <= reserved < workers:
            raise ValueError("reserved workers must leave at least one for idle work")
        self._reconcile = reconcile
        self._urgent = urgent or (lambda _ns, _name: False)
        # a resync of an object whose inputs did not change since its last pass is skipped
        self._unchanged = unchanged or (lambda _ns, _name: False)
        self._clock = clock
        self._workers = workers
        self._reserved = reserved
        self.queue = WorkQueue(resync_seconds, max_backoff=max_backoff)
        lock = threading.Lock()
        self._cond = threading.Condition(lock)  # idle workers wait here for work due now
        self._timer = threading.Condition(lock)  # the timekeeper waits here for the next due time
        self._idle_running = 0
        self._timekeeping = False  # a worker is waiting for the next due time
        self._stopped = False
        self._threads: list[threading.Thread] = []

    def enqueue(self, namespace: str, name: str, coalesce: bool = False) -> None:
        """Work for an object; ``coalesce``: a child's event, which may wait ``COALESCE_SECONDS``
        for more of them unless the object is mid-rollout."""
        urgent = self._urgent(namespace, name)
        delay = COALESCE_SECONDS if coalesce and not urgent else 0.0
        with self._cond:
            self.queue.add((namespace, name), self._clock(), urgent=urgent, delay=delay)
            self._changed()

    def forget(self, namespace: str, name: str) -> None:
        with self._cond:
            self.queue.forget((namespace, name))

    def start(self) -> None:
        for n in range(self._workers):
            thread = threading.Thread(target=self._work, name=f"reconcile-{n}", daemon=True)
            self._threads.append(thread)
            thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
            self._timer.notify_all()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def _next(self) -> tuple[Key, bool, bool] | None:
        """The next object to work on. One idle worker at a time waits for the next due time (the
        timekeeper), the others until notified: a due object wakes one thread, not all of them."""
        with self._cond:
            while not self._stopped:
                idle_allowed = self._idle_running < self._workers - self._reserved
                now = self._clock()
                popped = self.queue.pop(now, idle_allowed)
                if popped is not None:
                    if not popped[1]:
                        self._idle_running += 1
                    if not self._timekeeping:
                        self._cond.notify()  # someone else keeps time for what is due next
                    return popped[0], popped[1], self.queue.resync_only(popped[0])
                due = self.queue.next_due(idle_allowed)
                if due is None or self._timekeeping:
                    self._cond.wait()
                    continue
                self._timekeeping = True
                try:
                    self._timer.wait(max(0.0, due - now))
                finally:
                    self._timekeeping = False
        return None

    def _changed(self) -> None:
        """The queue changed (the lock held): one worker for work due now, and the timekeeper to
        look at the next due time again."""
        self._cond.notify()
        self._timer.notify()

    def _work(self) -> None:
        while (popped := self._next()) is not None:
            key, lane, resync = popped
            failed, outcome = False, None
            try:
                if resync and self._unchanged(*key):
                    RECONCILES.labels(result="unchanged").inc()
                else:
                    outcome = self._reconcile(*key)
            except Exception:
                failed = True
                log.exception("reconcile of %s/%s failed", *key)
            urgent = not failed and outcome != GONE and self._urgent(*key)
            with self._cond:
                if not lane:
                    self._idle_running -= 1
                when = self.queue.done(key, self._clock(), outcome, failed, urgent)
                if failed and when is not None:
                    log.info("retrying %s/%s in %.1fs", *key, when - self._clock())
                self._changed()
