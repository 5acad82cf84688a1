"""The operator's own logs (json or text) and Prometheus metrics."""

from __future__ import annotations

import gc
import json
import logging
import sys
import threading
import time
from contextlib import suppress
from datetime import UTC, datetime
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

from modeldeploy.api.status import ModelDeploymentStatus

RECONCILES = Counter("modeldeploy_reconciles_total", "Reconcile passes.", ["result"])
RECONCILE_SECONDS = Histogram(
    "modeldeploy_reconcile_duration_seconds",
    "Duration of one reconcile pass.",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
API_WRITES = Counter("modeldeploy_api_writes_total", "Write calls to the Kubernetes API.", ["verb", "kind"])
DECISIONS = Counter(
    "modeldeploy_rollout_decisions_total", "Rollout decisions taken.", ["namespace", "name", "action"]
)
GC_SECONDS = Counter(
    "modeldeploy_gc_seconds_total", "Time spent in Python's cyclic garbage collector.", ["generation"]
)
MEASUREMENTS = Counter("modeldeploy_measurements_total", "Guardrail measurements.", ["verdict"])
# every verdict exported from the start (at 0), so that increase() also counts the first one
for _verdict in ("Successful", "Failed", "Inconclusive", "Error"):
    MEASUREMENTS.labels(verdict=_verdict)
PHASE = Gauge(
    "modeldeploy_phase",
    "1 for the phase each ModelDeployment is in (one series per ModelDeployment).",
    ["namespace", "name", "phase"],
)
CANARY_WEIGHT = Gauge(
    "modeldeploy_canary_weight",
    "Traffic share (percent) of the revision being rolled out.",
    ["namespace", "name"],
)
REVISION_ROLE = Gauge(
    "modeldeploy_revision_role",
    "1 for each revision a ModelDeployment serves, by role (stable, canary): joins the model "
    "servers' metrics (label revision) to their role.",
    ["namespace", "name", "revision", "role"],
)
_roles: dict[tuple[str, str], set[tuple[str, str]]] = {}
_phases: dict[tuple[str, str], str] = {}
_roles_lock = threading.Lock()


def record_status(namespace: str, name: str, status: ModelDeploymentStatus) -> None:
    """Publish a ModelDeployment's phase, canary weight and revisions (the monitoring kit reads them)."""
    CANARY_WEIGHT.labels(namespace, name).set(status.canary_weight)
    roles = {
        (revision, role)
        for revision, role in ((status.stable_revision, "stable"), (status.canary_revision, "canary"))
        if revision
    }
    with _roles_lock:
        previous = _phases.get((namespace, name))
        if previous != status.phase:
            if previous is not None:
                PHASE.remove(namespace, name, previous)
            PHASE.labels(namespace, name, status.phase).set(1)
            _phases[(namespace, name)] = status.phase
        for revision, role in _roles.get((namespace, name), set()) - roles:
            REVISION_ROLE.remove(namespace, name, revision, role)
        for revision, role in roles:
            REVISION_ROLE.labels(namespace, name, revision, role).set(1)
        _roles[(namespace, name)] = roles


def forget_status(namespace: str, name: str) -> None:
    """Drop the series of a ModelDeployment that is gone."""
    with _roles_lock:
        for revision, role in _roles.pop((namespace, name), set()):
            REVISION_ROLE.remove(namespace, name, revision, role)
        phase = _phases.pop((namespace, name), None)
        if phase is not None:
            PHASE.remove(namespace, name, phase)
    with suppress(KeyError):  # never recorded (gone before its first status write)
        CANARY_WEIGHT.remove(namespace, name)


_RESERVED = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line; ``extra={...}`` fields become top-level keys."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _RESERVED and not key.startswith("_"):
                line[key] = value
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def setup_logging(fmt: str, level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("kubernetes", "urllib3", "httpx", "httpcore", "kopf.objects", "kopf.activities"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


_gc_tracked = False


def track_gc() -> None:
    """Count the cyclic garbage collector's pauses into ``GC_SECONDS`` (it runs holding the GIL,
    one collection at a time); a second call changes nothing."""
    global _gc_tracked
    if _gc_tracked:
        return
    _gc_tracked = True
    started: list[float] = []

    def timed(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started[:] = [time.perf_counter()]
        elif started:
            GC_SECONDS.labels(generation=str(info["generation"])).inc(time.perf_counter() - started.pop())

    for generation in ("0", "1", "2"):
        GC_SECONDS.labels(generation=generation)
    gc.callbacks.append(timed)
