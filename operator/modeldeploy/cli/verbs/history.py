"""``kubectl modeldeploy history NAME``: each revision rolled out and how it ended.

Built from the operator's Events on the ModelDeployment (``list`` on events, filtered by
involvedObject) plus its status: the Events say when each rollout started and how it ended; the status
says what serves now and what is still rolling out (Events expire: the API server keeps them one hour
by default, so older rollouts drop out of the history while the status keeps the current state).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from modeldeploy.cli.client import Client
from modeldeploy.cli.objects import read_events, read_md
from modeldeploy.cli.view import event_time, own_events, status_of

Body = Mapping[str, Any]

# reason -> (pattern naming the revision, or None for "the rollout in progress"; outcome)
_OPEN = {
    "RevisionDeployed": re.compile(r"first revision (?P<rev>\S+?):"),
    "RolloutStarted": re.compile(r"rolling out (?P<rev>\S+) \("),
    "RolloutRetried": re.compile(r"retrying (?P<rev>\S+) from"),
}
_CLOSE: dict[str, tuple[re.Pattern[str] | None, str]] = {
    "RolloutPromoted": (re.compile(r"revision (?P<rev>\S+) promoted"), "Promoted"),
    "RolledBack": (None, "RolledBack"),
    "RolloutAborted": (None, "Aborted"),
    "SmokeTestFailed": (None, "RolledBack"),
    "ProgressDeadlineExceeded": (re.compile(r"revision (?P<rev>\S+?):"), "RolledBack"),
    "RevisionSuperseded": (re.compile(r"revision (?P<rev>\S+) superseded"), "Superseded"),
    "RolloutReverted": (re.compile(r"rollout of (?P<rev>\S+) cancelled"), "Reverted"),
}


@dataclass
class HistoryEntry:
    revision: str
    started: str | None
    ended: str | None
    outcome: str  # Deployed | Promoted | RolledBack | Aborted | Superseded | Reverted | InProgress
    message: str
    serving: bool = False  # the stable revision now

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def history(md: Body, events: Sequence[Body]) -> list[HistoryEntry]:
    """Oldest first. A rollout still open after the last event is InProgress (or as status says)."""
    entries: list[HistoryEntry] = []
    current: HistoryEntry | None = None
    for event in own_events(md, events):
        reason, message, at = event.get("reason") or "", event.get("message") or "", event_time(event)
        if reason in _OPEN and (found := _OPEN[reason].search(message)):
            deployed = reason == "RevisionDeployed"
            if _repeated(entries, current, found["rev"], deployed):
                continue
            entry = HistoryEntry(
                found["rev"], at, at if deployed else None, "Deployed" if deployed else "InProgress", message
            )
            entries.append(entry)
            current = None if deployed else entry
        elif reason in _CLOSE and current is not None:
            pattern, outcome = _CLOSE[reason]
            found = pattern.search(message) if pattern else None
            if pattern is not None and (found is None or found["rev"] != current.revision):
                continue  # e.g. a deadline of the stable revision, not of the rollout
            current.ended, current.outcome, current.message = at, outcome, message
            current = None
    _settle(md, entries)
    return entries


def _repeated(
    entries: list[HistoryEntry], current: HistoryEntry | None, revision: str, deployed: bool
) -> bool:
    """The same start told twice (an event written again after a conflict, or a second operator)."""
    if deployed:
        return any(e.revision == revision and e.outcome == "Deployed" for e in entries)
    return current is not None and current.revision == revision


def _settle(md: Body, entries: list[HistoryEntry]) -> None:
    """Complete the picture from status: what serves, what is rolling out, what it aborted."""
    status = status_of(md)
    rollout = status.get("rollout") or {}
    stable, canary = status.get("stableRevision"), status.get("canaryRevision")
    for entry in entries:
        if entry.outcome == "InProgress" and entry.revision != canary:
            if rollout.get("aborted") and rollout.get("revision") == entry.revision:
                entry.outcome, entry.message = "RolledBack", rollout.get("abortReason") or entry.message
            elif entry.revision == stable:
                entry.outcome = "Promoted"
    if canary and not any(e.revision == canary and e.outcome == "InProgress" for e in entries):
        entries.append(
            HistoryEntry(canary, rollout.get("stepStartedAt"), None, "InProgress", "(events expired)")
        )
    if stable and not any(e.revision == stable for e in entries):
        entries.insert(0, HistoryEntry(stable, None, None, "Deployed", "(events expired)"))
    serving = next(
        (e for e in reversed(entries) if e.revision == stable and e.outcome in ("Deployed", "Promoted")), None
    )
    if serving is not None:
        serving.serving = True


def run(client: Client, namespace: str, name: str) -> list[HistoryEntry]:
    md = read_md(client, namespace, name)
    return history(md, read_events(client, namespace, name))
