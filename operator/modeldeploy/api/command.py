"""Manual commands travel as one annotation on the ModelDeployment, never as a spec edit.

``modeldeploy.dev/command: <verb>/<nonce>``. The operator acts on a value once (it records the
value it consumed in ``status.rollout.lastCommand``), so re-applying the same annotation - or Argo CD
re-syncing the object - never repeats a promotion. Annotations outside the Git manifest do not show
as drift in Argo CD's three-way diff, and the spec stays exactly as Git has it.

The CLI writes these values (``kubectl modeldeploy promote``), the operator reads them: both use
this module.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, TypeGuard

COMMAND_ANNOTATION = "modeldeploy.dev/command"
CommandKind = Literal["promote", "promote-full", "abort", "pause", "resume", "retry"]
COMMAND_KINDS: tuple[CommandKind, ...] = ("promote", "promote-full", "abort", "pause", "resume", "retry")


def is_command_kind(verb: str) -> TypeGuard[CommandKind]:
    return verb in COMMAND_KINDS


@dataclass(frozen=True)
class ParsedCommand:
    verb: CommandKind
    nonce: str

    @property
    def value(self) -> str:
        return f"{self.verb}/{self.nonce}"


class CommandError(ValueError):
    pass


def parse_command(value: str) -> ParsedCommand:
    """``"promote/1732550000"`` -> ParsedCommand; a value without a nonce is refused."""
    verb, sep, nonce = value.strip().partition("/")
    if not is_command_kind(verb):
        raise CommandError(
            f"unknown command {verb!r} in {COMMAND_ANNOTATION}: use one of {', '.join(COMMAND_KINDS)}"
        )
    if not sep or not nonce:
        raise CommandError(
            f"{COMMAND_ANNOTATION}={value!r} needs a nonce so it runs once: e.g. {verb}/$(date +%s)"
        )
    return ParsedCommand(verb, nonce)
