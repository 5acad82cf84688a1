"""``kubectl modeldeploy get NAME --watch``: the live view, redrawn in place (rich's Live), like
``kubectl argo rollouts get rollout --watch``, that exits with the rollout's outcome as its exit code.

It lists then watches (never polls) the ModelDeployment, its Deployments, its pods and its Events,
one thread each, and redraws on every change (and once a second, for the ages). It returns once the
operator has observed the latest spec and the rollout has an outcome: 0 promoted/Healthy, 3 rolled
back, 4 Degraded (:mod:`modeldeploy.cli.errors` lists every code); ``--timeout`` bounds the wait (5).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console, RenderableType
from rich.live import Live
from rich.text import Text

from modeldeploy.cli import render
from modeldeploy.cli.client import Client
from modeldeploy.cli.errors import EXIT_TIMEOUT, CliError
from modeldeploy.cli.objects import Objects, children_selector, events_selector, read_md
from modeldeploy.cli.verbs.get import view
from modeldeploy.cli.view import now_utc, outcome, summary
from modeldeploy.kube.rest import DEPLOYMENT, EVENT, MODELDEPLOYMENT, POD, Kind

Body = dict[str, Any]
Update = tuple[str, str, Any]  # (what, event type | SYNCED | FAILED, object | list | error)
WATCH_SECONDS = 120
OUTCOME_WORDS = {0: "promoted: Healthy", 3: "rolled back", 4: "Degraded"}


@dataclass
class LiveState:
    """The latest copy of every object the view shows, kept current from watch events."""

    md: Body
    collections: dict[str, dict[str, Body]] = field(
        default_factory=lambda: {"deployments": {}, "pods": {}, "events": {}}
    )
    synced: set[str] = field(default_factory=set)
    deleted: bool = False

    def apply(self, what: str, kind: str, payload: Any) -> None:
        if kind == "SYNCED":
            self.synced.add(what)
            if what == "md":
                if payload:
                    self.md = payload[0]
                else:
                    self.deleted = True
                return
            self.collections[what] = {_key(o): o for o in payload}
            return
        if what == "md":
            if kind == "DELETED":
                self.deleted = True
            else:
                self.md = payload
            return
        objects = self.collections[what]
        if kind == "DELETED":
            objects.pop(_key(payload), None)
        else:
            objects[_key(payload)] = payload

    def objects(self) -> Objects:
        c = self.collections
        return Objects(
            self.md, list(c["deployments"].values()), list(c["pods"].values()), list(c["events"].values())
        )


def _key(obj: Body) -> str:
    return str((obj.get("metadata") or {}).get("name"))


class Watcher(threading.Thread):
    """List, then watch from the list's resourceVersion; list again when the watch ends or expires."""

    def __init__(
        self,
        client: Client,
        what: str,
        kind: Kind,
        namespace: str,
        updates: queue.Queue[Update],
        **selectors: str,
    ) -> None:
        super().__init__(name=f"watch-{what}", daemon=True)
        self.client, self.what, self.kind, self.namespace = client, what, kind, namespace
        self.updates, self.selectors = updates, selectors

    def run(self) -> None:
        try:
            while True:
                items, version = self.client.list(self.kind, self.namespace, **self.selectors)
                self.updates.put((self.what, "SYNCED", items))
                for event in self.client.watch(
                    self.kind, self.namespace, version, timeout_seconds=WATCH_SECONDS, **self.selectors
                ):
                    if event.get("type") == "ERROR":
                        break  # 410 Gone: the resourceVersion expired; list again
                    if event.get("type") != "BOOKMARK":
                        self.updates.put((self.what, str(event.get("type")), event.get("object") or {}))
        except CliError as exc:
            self.updates.put((self.what, "FAILED", exc))
        except Exception as exc:  # a thread must report, not die silently
            self.updates.put((self.what, "FAILED", CliError(f"watching {self.what}: {exc}")))


def start_watchers(client: Client, namespace: str, name: str) -> queue.Queue[Update]:
    updates: queue.Queue[Update] = queue.Queue()
    children = children_selector(name)
    for what, kind, selectors in (
        ("md", MODELDEPLOYMENT, {"field_selector": f"metadata.name={name}"}),
        ("deployments", DEPLOYMENT, {"label_selector": children}),
        ("pods", POD, {"label_selector": children}),
        ("events", EVENT, {"field_selector": events_selector(name)}),
    ):
        Watcher(client, what, kind, namespace, updates, **selectors).start()
    return updates


def follow(
    state: LiveState,
    updates: queue.Queue[Update],
    draw: Callable[[LiveState], None],
    timeout: float | None,
    clock: Callable[[], float] = time.monotonic,
) -> int:
    """Apply updates and redraw until the rollout has an outcome; its exit code."""
    deadline = None if timeout is None else clock() + timeout
    while True:
        batch: list[Update] = []
        try:  # wait up to a second for a change (then redraw anyway: ages move), take all that came
            batch.append(updates.get(timeout=1.0))
            while True:
                batch.append(updates.get_nowait())
        except queue.Empty:
            pass
        for what, kind, payload in batch:
            if kind == "FAILED":
                raise payload
            state.apply(what, kind, payload)
        if state.deleted:
            raise CliError(f"modeldeployment {summary(state.md).name} was deleted")
        draw(state)
        code = outcome(state.md) if len(state.synced) == 4 else None
        if code is not None:
            return code
        if deadline is not None and clock() >= deadline:
            return EXIT_TIMEOUT


def run(client: Client, namespace: str, name: str, console: Console, timeout: float | None) -> int:
    state = LiveState(read_md(client, namespace, name))
    updates = start_watchers(client, namespace, name)

    def frame(s: LiveState) -> RenderableType:
        return render.detail_view(view(s.objects()), now_utc())

    if console.is_terminal:
        with Live(console=console, auto_refresh=False, transient=False) as live:
            code = follow(state, updates, lambda s: live.update(frame(s), refresh=True), timeout)
    else:  # into a pipe or a file: no redrawing, only the final view
        code = follow(state, updates, lambda s: None, timeout)
        console.print(frame(state))
    words = OUTCOME_WORDS.get(code, "timed out while still rolling out" if code == EXIT_TIMEOUT else "")
    console.print(Text(f"{name}: {words} (exit code {code})", style="green" if code == 0 else "red"))
    return code
