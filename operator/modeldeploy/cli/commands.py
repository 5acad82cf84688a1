"""Manual commands travel as one annotation on the ModelDeployment, never as a spec edit.

``modeldeploy.dev/command: <verb>/<nonce>``. The operator acts on a value once (it records the
value it consumed in ``status.rollout.lastCommand``), so re-applying the same annotation - or Argo CD
re-syncing the object - never repeats a promotion. Annotations outside the Git manifest do not show
as drift in Argo CD's three-way diff, and the spec stays exactly as Git has it.
"""

from __future__ import annotations

from dataclasses import dataclass

COMMAND_ANNOTATION = "modeldeploy.dev/command"
VERBS = ("promote", "promote-full", "abort", "pause", "resume", "retry")


@dataclass(frozen=True)
class ParsedCommand:
    verb: str
    nonce: str

    @property
    def value(self) -> str:
        return f"{self.verb}/{self.nonce}"


class CommandError(ValueError):
    pass


def parse_command(value: str) -> ParsedCommand:
    """``"promote/1732550000"`` -> ParsedCommand; a value without a nonce is refused."""
    verb, sep, nonce = value.strip().partition("/")
    if verb not in VERBS:
        raise CommandError(f"unknown command {verb!r} in {COMMAND_ANNOTATION}: use one of {', '.join(VERBS)}")
    if not sep or not nonce:
        raise CommandError(
            f"{COMMAND_ANNOTATION}={value!r} needs a nonce so it runs once: e.g. {verb}/$(date +%s)"
        )
    return ParsedCommand(verb, nonce)
