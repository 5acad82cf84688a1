"""The rollout state machine: pure decisions, no I/O (no kopf, kubernetes or httpx here).

Entry points: :func:`decide` (one pass), :func:`measurement_due` (should the shell query
Prometheus now), :func:`sequential_check_due` (only the sequential guardrails' evidence),
:func:`next_wakeup` (when to requeue).
"""

from modeldeploy.rollout.conditions import set_condition
from modeldeploy.rollout.decide import decide
from modeldeploy.rollout.schedule import measurement_due, next_wakeup, sequential_check_due
from modeldeploy.rollout.types import (
    Action,
    Command,
    DeleteRevision,
    EmitEvent,
    Log,
    Observations,
    Plan,
    RevisionObservation,
    ScaleRevision,
    SetPreview,
    SetWeight,
    SwitchActive,
)

__all__ = [
    "Action",
    "Command",
    "DeleteRevision",
    "EmitEvent",
    "Log",
    "Observations",
    "Plan",
    "RevisionObservation",
    "ScaleRevision",
    "SetPreview",
    "SetWeight",
    "SwitchActive",
    "decide",
    "measurement_due",
    "next_wakeup",
    "sequential_check_due",
    "set_condition",
]
