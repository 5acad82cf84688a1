"""Why a revision's pods are not Ready, read from the pods' status as the kubelet reports it.

Pure: takes Pod bodies (plain dicts), returns the most telling problem, or ``None``. The order is
what an on-call engineer would want to read first: a failed init container (its termination
message is the storage initializer's one line: not found, access denied, checksum mismatch...), a
container that cannot start (image pull, missing Secret or ConfigMap, crash loop), then a pod the
scheduler cannot place.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

# Waiting reasons that mean "this will not become Ready by itself soon".
STUCK_WAITING = (
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "CreateContainerConfigError",
    "CreateContainerError",
    "CrashLoopBackOff",
    "RunContainerError",
)
_MISSING_SECRET = re.compile(r'secret "([^"]+)" not found')
MESSAGE_LIMIT = 1024


@dataclass(frozen=True)
class PodProblem:
    """A greppable ``reason`` (CamelCase) and a message naming the pod and what its status says."""

    reason: str
    message: str


def _clip(text: str) -> str:
    return text if len(text) <= MESSAGE_LIMIT else text[: MESSAGE_LIMIT - 1] + "…"


def _terminated_failure(status: Mapping[str, Any]) -> Mapping[str, Any] | None:
    for key in ("state", "lastState"):
        term = (status.get(key) or {}).get("terminated")
        if term and int(term.get("exitCode", 0)) != 0:
            return dict(term)
    return None


def _termination_text(term: Mapping[str, Any]) -> str:
    message = str(term.get("message") or "").strip()
    if message:
        return message.splitlines()[-1] if "\n" in message and len(message) > MESSAGE_LIMIT else message
    return f"{term.get('reason') or 'Error'} (exit code {term.get('exitCode')})"


def _init_failure(name: str, status: Mapping[str, Any]) -> PodProblem | None:
    for init in status.get("initContainerStatuses") or []:
        term = _terminated_failure(init)
        if term is not None:
            waiting = ((init.get("state") or {}).get("waiting") or {}).get("reason")
            retrying = f" ({waiting})" if waiting else ""
            what = f"init container {init.get('name')} failed{retrying}"
            text = f"pod {name}: {what}: {_termination_text(term)}"
            return PodProblem("InitContainerFailed", _clip(text))
        waiting = (init.get("state") or {}).get("waiting") or {}
        if waiting.get("reason") in STUCK_WAITING:
            return _waiting_problem(name, "init container", init, waiting)
    return None


def _waiting_problem(
    name: str, what: str, container: Mapping[str, Any], waiting: Mapping[str, Any]
) -> PodProblem:
    reason = str(waiting.get("reason"))
    message = str(waiting.get("message") or "").strip()
    missing = _MISSING_SECRET.search(message)
    if reason == "CreateContainerConfigError" and missing:
        text = (
            f"Secret {missing.group(1)} does not exist (pod {name}, {what} {container.get('name')}: "
            f"{message}); check spec.model.credentialsSecret"
        )
        return PodProblem("CredentialsSecretMissing", _clip(text))
    text = f"pod {name}: {what} {container.get('name')}: {reason}"
    if message:
        text += f": {message}"
    term = _terminated_failure(container)
    if reason == "CrashLoopBackOff" and term is not None:
        text += f"; last exit: {_termination_text(term)}"
    return PodProblem(reason, _clip(text))


def _scheduler_message(status: Mapping[str, Any]) -> str | None:
    """The scheduler's message when the pod cannot be placed (PodScheduled False, Unschedulable)."""
    for c in status.get("conditions") or []:
        scheduled = c.get("type") == "PodScheduled" and c.get("status") == "False"
        if scheduled and c.get("reason") == "Unschedulable":
            return str(c.get("message") or "unschedulable")
    return None


def unschedulable_message(pods: Iterable[Mapping[str, Any]]) -> str | None:
    """The scheduler's message for the first pod it cannot place, or ``None``."""
    return next((m for m in (_scheduler_message(p.get("status") or {}) for p in pods) if m), None)


def _unschedulable(name: str, status: Mapping[str, Any]) -> PodProblem | None:
    message = _scheduler_message(status)
    return None if message is None else PodProblem("Unschedulable", _clip(f"pod {name}: {message}"))


def pod_problem(pod: Mapping[str, Any]) -> PodProblem | None:
    """The problem of one pod, or ``None`` when it is fine or merely on its way."""
    name = str((pod.get("metadata") or {}).get("name", "?"))
    status = pod.get("status") or {}
    found = _init_failure(name, status)
    if found is not None:
        return found
    for c in status.get("containerStatuses") or []:
        waiting = (c.get("state") or {}).get("waiting") or {}
        if waiting.get("reason") in STUCK_WAITING:
            return _waiting_problem(name, "container", c, waiting)
    return _unschedulable(name, status)


def revision_problem(pods: Iterable[Mapping[str, Any]]) -> PodProblem | None:
    """The most telling problem among a revision's pods (see the module doc for the order)."""
    problems = [p for p in (pod_problem(pod) for pod in pods) if p is not None]
    if not problems:
        return None
    rank = {"InitContainerFailed": 0, "CredentialsSecretMissing": 1, "Unschedulable": 9}
    return min(problems, key=lambda p: rank.get(p.reason, 5))
