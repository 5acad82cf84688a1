"""The live view's loop: watch events applied to the state, a redraw per change (and per idle second),
the exit code once the operator has observed the latest spec and the rollout has an outcome."""

from __future__ import annotations

import queue
from typing import Any

import pytest

from modeldeploy.cli.errors import EXIT_OK, EXIT_ROLLED_BACK, EXIT_TIMEOUT, CliError
from modeldeploy.cli.verbs.watch import LiveState, Update, follow

pytestmark = pytest.mark.unit


def md(generation: int, observed: int, **status: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "fraud", "generation": generation},
        "status": {"observedGeneration": observed, **status},
    }


def synced(updates: queue.Queue[Update], first: dict[str, Any]) -> None:
    updates.put(("md", "SYNCED", [first]))
    for what in ("deployments", "pods", "events"):
        updates.put((what, "SYNCED", []))


def run(updates: queue.Queue[Update], timeout: float | None = None) -> tuple[int, list[dict[str, Any]]]:
    drawn: list[dict[str, Any]] = []
    state = LiveState(md(1, 1, phase="Healthy", stableRevision="a"))
    code = follow(state, updates, lambda s: drawn.append(s.md), timeout)
    return code, drawn


def test_waits_for_the_new_spec_then_follows_to_promotion() -> None:
    updates: queue.Queue[Update] = queue.Queue()
    synced(updates, md(2, 1, phase="Healthy", stableRevision="a"))  # applied, not yet observed
    updates.put(("md", "MODIFIED", md(2, 2, phase="Progressing", stableRevision="a", canaryRevision="b")))
    updates.put(("pods", "ADDED", {"metadata": {"name": "fraud-b-1"}}))
    updates.put(("md", "MODIFIED", md(2, 2, phase="Healthy", stableRevision="b")))
    code, drawn = run(updates)
    assert code == EXIT_OK
    assert drawn[-1]["status"]["stableRevision"] == "b"


def test_rolled_back_is_exit_3_and_idle_seconds_redraw() -> None:
    updates: queue.Queue[Update] = queue.Queue()
    synced(updates, md(2, 2, phase="Progressing", stableRevision="a", canaryRevision="b"))
    ticks = iter(range(100))
    state = LiveState(md(2, 2, phase="Progressing"))
    drawn: list[str] = []

    def draw(s: LiveState) -> None:
        drawn.append(s.md["status"]["phase"])
        if len(drawn) == 3:  # two idle redraws, then the operator rolls back
            updates.put(("md", "MODIFIED", md(2, 2, phase="RolledBack", stableRevision="a")))

    code = follow(state, updates, draw, timeout=None, clock=lambda: float(next(ticks)))
    assert code == EXIT_ROLLED_BACK
    assert drawn == ["Progressing", "Progressing", "Progressing", "RolledBack"]


def test_timeout_while_still_rolling_out() -> None:
    updates: queue.Queue[Update] = queue.Queue()
    synced(updates, md(2, 2, phase="Paused", stableRevision="a", canaryRevision="b"))
    now = iter([0.0, 1.0, 2.0, 3.0])
    state = LiveState(md(2, 2))
    assert follow(state, updates, lambda s: None, timeout=2.0, clock=lambda: next(now)) == EXIT_TIMEOUT


def test_deleted_or_failed_watch_is_an_error() -> None:
    updates: queue.Queue[Update] = queue.Queue()
    synced(updates, md(2, 2, phase="Progressing", canaryRevision="b"))
    updates.put(("md", "DELETED", md(2, 2)))
    with pytest.raises(CliError, match="was deleted"):
        run(updates)
    failing: queue.Queue[Update] = queue.Queue()
    failing.put(("pods", "FAILED", CliError("forbidden: ...")))
    with pytest.raises(CliError, match="forbidden"):
        run(failing)
