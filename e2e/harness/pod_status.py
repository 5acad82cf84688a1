"""Pod status documents as a kubelet writes them (pure; :mod:`harness.pod_runner` sends them).

Container states follow the kubelet: an init container that failed once shows ``terminated``
(reason ``Error``, exit code, termination message); failing again it shows ``waiting``
``CrashLoopBackOff`` with the failure kept in ``lastState.terminated``. Conditions ``Initialized``,
``ContainersReady`` and ``Ready`` carry the kubelet's reasons and messages, and a condition's
``lastTransitionTime`` only moves when its status changes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

MAX_MESSAGE_BYTES: Final = 4096  # the kubelet's limit on a termination message file
FALLBACK_LOG_LINES: Final = 80  # FallbackToLogsOnError: the log's last 80 lines ...
FALLBACK_LOG_BYTES: Final = 2048  # ... up to 2 KiB


def timestamp(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def waiting(reason: str, message: str | None = None) -> dict[str, Any]:
    return {"waiting": {"reason": reason, **({"message": message} if message else {})}}


def running(started_at: float) -> dict[str, Any]:
    return {"running": {"startedAt": timestamp(started_at)}}


def terminated(
    exit_code: int, started_at: float, finished_at: float, message: str | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "exitCode": exit_code,
        "reason": "Completed" if exit_code == 0 else "Error",
        "startedAt": timestamp(started_at),
        "finishedAt": timestamp(finished_at),
    }
    if message:
        body["message"] = message
    return {"terminated": body}


def termination_message(message_file: Path, log_file: Path, policy: str | None, exit_code: int) -> str:
    """The message file's content; when empty, for FallbackToLogsOnError and a failure, the log tail."""
    try:
        text = message_file.read_bytes()[:MAX_MESSAGE_BYTES].decode(errors="replace")
    except OSError:
        text = ""
    if text.strip() or policy != "FallbackToLogsOnError" or exit_code == 0:
        return text.strip()
    try:
        lines = log_file.read_bytes().splitlines()[-FALLBACK_LOG_LINES:]
    except OSError:
        return ""
    return b"\n".join(lines)[-FALLBACK_LOG_BYTES:].decode(errors="replace").strip()


@dataclass
class ContainerStatus:
    name: str
    image: str
    state: dict[str, Any] = field(default_factory=lambda: waiting("PodInitializing"))
    last_state: dict[str, Any] = field(default_factory=dict)
    ready: bool = False
    restart_count: int = 0

    @property
    def done(self) -> bool:
        """Finished successfully (what an init container must be before the next one starts)."""
        return bool(self.state.get("terminated", {}).get("exitCode") == 0)

    def failed(self, terminated_state: dict[str, Any], backoff_s: float, pod: str) -> None:
        """Record a failure: the first shows as terminated, a repeated one as CrashLoopBackOff."""
        if self.restart_count == 0 and not self.last_state:
            self.state, self.ready = terminated_state, False
            return
        self.last_state = terminated_state
        self.state = waiting(
            "CrashLoopBackOff",
            f"back-off {backoff_s:.0f}s restarting failed container={self.name} pod={pod}",
        )
        self.ready = False

    def to_api(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "image": self.image,
            "imageID": "",
            "ready": self.ready,
            "restartCount": self.restart_count,
            "started": "running" in self.state,
            "state": self.state,
            "lastState": self.last_state,
        }


def _condition(
    kind: str, ok: bool, previous: Mapping[str, Mapping[str, Any]], now: str, reason: str, message: str
) -> dict[str, Any]:
    status = "True" if ok else "False"
    before = previous.get(kind) or {}
    changed = before.get("status") != status
    cond: dict[str, Any] = {
        "type": kind,
        "status": status,
        "lastProbeTime": None,
        "lastTransitionTime": now
        if changed or not before.get("lastTransitionTime")
        else before["lastTransitionTime"],
    }
    if not ok:
        cond.update(reason=reason, message=message)
    return cond


def pod_status(
    init: Sequence[ContainerStatus],
    main: Sequence[ContainerStatus],
    *,
    pod_ip: str | None,
    host_ip: str | None,
    start_time: float,
    previous_conditions: Sequence[Mapping[str, Any]],
    now: float,
) -> dict[str, Any]:
    """The ``status`` of a pod with these container statuses (a strategic-merge patch body)."""
    at = timestamp(now)
    previous = {str(c.get("type")): c for c in previous_conditions}
    pending_init = [c.name for c in init if not c.done]
    unready = [c.name for c in main if not c.ready]
    initialized = not pending_init
    started = initialized and any("running" in c.state or c.restart_count for c in main)
    status: dict[str, Any] = {
        "phase": "Running" if started else "Pending",
        "startTime": timestamp(start_time),
        "conditions": [
            _condition(
                "Initialized",
                initialized,
                previous,
                at,
                "ContainersNotInitialized",
                f"containers with incomplete status: [{' '.join(pending_init)}]",
            ),
            _condition(
                "ContainersReady",
                initialized and not unready,
                previous,
                at,
                "ContainersNotReady",
                f"containers with unready status: [{' '.join(unready)}]",
            ),
            _condition(
                "Ready",
                initialized and not unready,
                previous,
                at,
                "ContainersNotReady",
                f"containers with unready status: [{' '.join(unready)}]",
            ),
        ],
        "initContainerStatuses": [c.to_api() for c in init],
        "containerStatuses": [c.to_api() for c in main],
    }
    if host_ip:
        status["hostIP"] = host_ip
        status["hostIPs"] = [{"ip": host_ip}]
    if pod_ip and started:
        status["podIP"] = pod_ip
        status["podIPs"] = [{"ip": pod_ip}]
    return status
