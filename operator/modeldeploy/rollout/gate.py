"""What may reach the rollout decision this pass: the target revision and a pending command.

* Something only the operator can know (a policy violation, an unusable policy, a route it cannot
  manage) *blocks* the new revision: it is not rolled out, and what already runs keeps running -
  the decision works towards the stable revision instead. With no stable revision yet there is
  nothing to keep, so nothing is decided at all.
* The command annotation reaches the decision once: a value the rollout already consumed, or one
  that does not parse, does not.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from modeldeploy.api.command import COMMAND_ANNOTATION, CommandError, parse_command
from modeldeploy.api.spec import ModelDeploymentSpec
from modeldeploy.api.status import ModelDeploymentStatus
from modeldeploy.rollout.decide import decide
from modeldeploy.rollout.types import Command, Observations, Plan


@dataclass(frozen=True)
class Blocker:
    """Something only the operator can know that stops a new revision from rolling out."""

    reason: str
    message: str


@dataclass(frozen=True)
class Gate:
    target: str  # the revision the decision works towards
    hold: bool  # decide nothing: the new revision is blocked and there is no stable one to keep


def gate(desired: str, stable: str | None, blockers: Sequence[Blocker]) -> Gate:
    if blockers and stable is not None:
        return Gate(stable, hold=False)
    return Gate(desired, hold=bool(blockers))


def decide_gated(
    spec: ModelDeploymentSpec, status: ModelDeploymentStatus, obs: Observations, now: datetime, held: bool
) -> Plan:
    """:func:`~modeldeploy.rollout.decide.decide`, or no action and the status unchanged when held."""
    return Plan([], status) if held else decide(spec, status, obs, now)


@dataclass(frozen=True)
class PendingCommand:
    command: Command | None
    refused: str | None = None  # why the annotation's value was not understood


def pending_command(annotations: Mapping[str, str] | None, status: ModelDeploymentStatus) -> PendingCommand:
    value = (annotations or {}).get(COMMAND_ANNOTATION)
    if not value:
        return PendingCommand(None)
    try:
        parsed = parse_command(value)
    except CommandError as exc:
        return PendingCommand(None, str(exc))
    if status.rollout is not None and status.rollout.last_command == parsed.value:
        return PendingCommand(None)
    return PendingCommand(Command(kind=parsed.verb, id=parsed.value))
