"""The command verbs: promote, promote-full, abort, pause, resume, retry.

Each writes the one annotation ``modeldeploy.dev/command: <verb>/<nonce>`` (format in
:mod:`modeldeploy.api.command`, mirrored by the Argo CD actions) and never the spec. Before writing,
the plugin checks that the verb means something now (``promote`` with nothing rolling out, ``resume``
when not paused ... are refused with one line) and sends the patch only against the state it checked:
the patch carries that resourceVersion, and a conflict (the operator wrote status meanwhile) re-reads
and re-checks. ``--force`` skips the check (the operator still ignores a command that does not apply,
with a CommandIgnored event).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from modeldeploy.api.command import COMMAND_ANNOTATION, ParsedCommand, parse_command
from modeldeploy.cli.client import Client
from modeldeploy.cli.errors import CliError
from modeldeploy.cli.objects import read_md
from modeldeploy.cli.view import in_flight, observed
from modeldeploy.kube.rest import MODELDEPLOYMENT

ATTEMPTS = 5


def refusal(verb: str, md: Mapping[str, Any]) -> str | None:
    """Why ``verb`` does not apply to the ModelDeployment as it is now; None when it does."""
    meta, status = md.get("metadata") or {}, md.get("status") or {}
    name = meta.get("name", "?")
    rollout = status.get("rollout") or {}
    revision = rollout.get("revision")
    if not observed(md):
        return None  # the operator has not seen the latest spec yet: status cannot tell
    aborted = bool(rollout.get("aborted"))
    if verb == "retry":
        return None if aborted else f"nothing to retry: {name} has no aborted rollout ({_state(status)})"
    if aborted:
        return f"the rollout of {revision} was aborted; use `retry` to start it again from the first step"
    if not in_flight(md):
        return f"nothing is rolling out: {name} is {_state(status)}"
    paused = bool(rollout.get("paused"))
    if verb == "resume" and not paused:
        if status.get("phase") == "Paused":  # a pause step without a duration, or awaiting promotion
            return (
                f"{name} is not paused by a command or a guardrail: it waits for `promote` ({_state(status)})"
            )
        return f"{name} is not paused ({_state(status)}); `resume` continues a paused rollout"
    if verb == "pause" and paused:
        return f"{name} is already paused: {rollout.get('pauseReason') or 'paused'}"
    return None


def _state(status: Mapping[str, Any]) -> str:
    phase = status.get("phase") or "Pending"
    stable = status.get("stableRevision")
    step = status.get("currentStep")
    where = f" at step {step + 1}" if status.get("canaryRevision") and step is not None else ""
    return f"{phase}{where}" + (f", stable revision {stable}" if stable else "")


def run(client: Client, namespace: str, name: str, verb: str, force: bool = False) -> ParsedCommand:
    """Write the command annotation once the check passes (re-checked after a conflict)."""
    for _ in range(ATTEMPTS):
        md = read_md(client, namespace, name)
        why = None if force else refusal(verb, md)
        if why:
            raise CliError(f"{verb} refused: {why}")
        command = parse_command(f"{verb}/{time.time_ns()}")
        metadata: dict[str, Any] = {"annotations": {COMMAND_ANNOTATION: command.value}}
        if not force:
            metadata["resourceVersion"] = md["metadata"]["resourceVersion"]
        try:
            client.request(
                "PATCH",
                MODELDEPLOYMENT.path(namespace, name),
                body={"metadata": metadata},
                content_type="application/merge-patch+json",
                namespace=namespace,
            )
        except CliError as exc:
            if exc.status == 409:
                continue
            raise
        return command
    raise CliError(f"{verb}: {name} kept changing while the command was being sent; try again")
