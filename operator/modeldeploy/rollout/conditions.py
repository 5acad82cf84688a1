"""Status conditions, the Kubernetes way: lastTransitionTime moves only when status changes."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Literal

from modeldeploy.api.status import Condition
from modeldeploy.rollout.timefmt import rfc3339

ConditionStatus = Literal["True", "False", "Unknown"]


def set_condition(
    conditions: Sequence[Condition],
    type_: str,
    status: ConditionStatus,
    reason: str,
    message: str,
    now: datetime,
) -> list[Condition]:
    """``conditions`` with ``type_`` set; other conditions and their order are kept.

    >>> from datetime import UTC, datetime
    >>> t0, t1 = datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 1, 2, tzinfo=UTC)
    >>> a = set_condition([], "Ready", "True", "Up", "", t0)
    >>> set_condition(a, "Ready", "True", "StillUp", "", t1)[0].last_transition_time
    '2024-01-01T00:00:00Z'
    """
    old = next((c for c in conditions if c.type == type_), None)
    changed = old is None or old.status != status
    new = Condition(
        type=type_,
        status=status,
        reason=reason[:128],
        message=message if len(message) <= 2048 else message[:2047] + "…",
        last_transition_time=rfc3339(now) if changed or old is None else old.last_transition_time,
        observed_generation=old.observed_generation if old is not None else None,
    )
    if old is None:
        return [*conditions, new]
    return [new if c.type == type_ else c for c in conditions]


def get_condition(conditions: Sequence[Condition], type_: str) -> Condition | None:
    return next((c for c in conditions if c.type == type_), None)
