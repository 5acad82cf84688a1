"""Writes the API server received in a time window, by user and by verb and resource, from the local
control plane's audit log (its policy logs every write at Metadata level).

The log rotates (``--audit-log-maxsize``, two backups kept), so a window is read from the live file
and its rotated siblings (``<stem>-<time><suffix>``), by each event's receive time. Used by
bench/scale.py to say where a phase's extra control-plane work came from: a user is a controller
(the controller manager runs each under its own ServiceAccount), the scheduler, kwok, kubectl or the
operator.
"""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from pathlib import Path


def audit_time(epoch: float) -> str:
    """``epoch`` in the audit log's timestamp format, which sorts like time."""
    whole = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch))
    return f"{whole}.{int((epoch % 1) * 1e6):06d}Z"


def audit_files(log: Path) -> list[Path]:
    rotated = sorted(log.parent.glob(f"{log.stem}-*{log.suffix}"))
    return [*rotated, log] if log.exists() else rotated


def short_user(username: str) -> str:
    """``system:serviceaccount:kube-system:replicaset-controller`` -> ``replicaset-controller``."""
    if username.startswith("system:serviceaccount:"):
        return username.rsplit(":", 1)[1]
    return username.removeprefix("system:")


def writes_in_window(log: Path, start: float, end: float, min_count: int = 50) -> dict[str, dict[str, int]]:
    """{"user (agent)": {"<verb> <resource>[/<subresource>]": count}} for writes received in [start, end);
    entries under ``min_count`` are summed into "other" per user. Says so on stderr when the kept log
    begins after ``start`` (rotated away: the counts are short)."""
    lo, hi = audit_time(start), audit_time(end)
    counts: Counter[tuple[str, str]] = Counter()
    first = ""
    for path in audit_files(log):
        with path.open("rb") as f:
            for line in f:
                try:
                    event = json.loads(line)
                except ValueError:
                    continue
                received = event.get("requestReceivedTimestamp", "")
                first = min(first, received) if first else received
                if not lo <= received < hi:
                    continue
                ref = event.get("objectRef") or {}
                what = ref.get("resource", "?") + (f"/{ref['subresource']}" if ref.get("subresource") else "")
                user = short_user(event["user"]["username"])
                agent = str(event.get("userAgent", "?")).split("/", 1)[0]  # kwok and kubectl share a user
                counts[(f"{user} ({agent})", f"{event['verb']} {what}")] += 1
    if first > lo:
        print(f"audit_window: the kept log begins at {first}, after {lo}: counts are short", file=sys.stderr)
    out: dict[str, dict[str, int]] = {}
    for (user, what), n in counts.most_common():
        key = what if n >= min_count else "other"
        by_user = out.setdefault(user, {})
        by_user[key] = by_user.get(key, 0) + n
    return out
