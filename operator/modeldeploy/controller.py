"""Level-based work queue: one worker per ModelDeployment, woken by watch events or a resync timer.

kopf's watch handlers only enqueue; the reconcile itself runs in a worker thread so the synchronous
Kubernetes and Prometheus clients never block the event loop. Work for one object is serialised;
events that arrive while it runs coalesce into one more pass.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

log = logging.getLogger(__name__)

Key = tuple[str, str]
# Returns seconds until the object wants another pass (None: the regular resync), or GONE.
Reconciler = Callable[[str, str], float | None]
GONE = -1.0


class Controller:
    def __init__(self, reconcile: Reconciler, resync_seconds: float, max_backoff: float = 60.0) -> None:
        self._reconcile = reconcile
        self._resync = resync_seconds
        self._max_backoff = max_backoff
        self._wake: dict[Key, asyncio.Event] = {}
        self._tasks: dict[Key, asyncio.Task[None]] = {}

    def enqueue(self, namespace: str, name: str) -> None:
        key = (namespace, name)
        if key not in self._tasks or self._tasks[key].done():
            self._wake[key] = asyncio.Event()
            self._tasks[key] = asyncio.create_task(self._worker(key), name=f"reconcile {namespace}/{name}")
        self._wake[key].set()

    def forget(self, namespace: str, name: str) -> None:
        task = self._tasks.pop((namespace, name), None)
        self._wake.pop((namespace, name), None)
        if task is not None:
            task.cancel()

    async def stop(self) -> None:
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _worker(self, key: Key) -> None:
        failures = 0
        while True:
            wake = self._wake[key]
            wake.clear()
            try:
                delay = await asyncio.to_thread(self._reconcile, *key)
                failures = 0
            except Exception:
                failures += 1
                delay = min(self._max_backoff, 2.0**failures)
                log.exception("reconcile of %s/%s failed; retrying in %.0fs", *key, delay)
            if delay == GONE:
                self._tasks.pop(key, None)
                return
            timeout = self._resync if delay is None else max(0.2, min(delay, self._resync))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), timeout=timeout)
