"""The exactly-once record: every Event a pass decides carries an identity, the Event's name.

A pass acts, then stores its status. An operator killed in between leaves the old status behind,
and the next pass decides the same transition again from it. Its Events must not be told twice, so
each one is named after what the decision was made from and what it says:

    identity = hash(the stored status the pass started from, reason, n-th Event of that reason)

The re-run starts from the same stored status, so an Event it repeats gets the same name, and the
API server answers the second create with 409 AlreadyExists (a no-op). A pass that stored its
status changed that status (``lastDecision`` at least), so every later decision has new names: a
legitimate second Event of the same reason is never swallowed. Level actions (weights, replicas,
Services) need no identity: applying them twice is applying them once.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace

from modeldeploy.api.status import ModelDeploymentStatus
from modeldeploy.rollout.types import Action, EmitEvent

# An Event name is a DNS subdomain (<= 253); the ModelDeployment name is a DNS label (<= 63).
IDENTITY_DIGITS = 20


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


def basis(status: ModelDeploymentStatus) -> str:
    """A fingerprint of the stored status a pass decides from (its API shape, key order fixed)."""
    return _digest(json.dumps(status.wire(), sort_keys=True, separators=(",", ":")))


def with_identities(actions: Sequence[Action], stored: ModelDeploymentStatus) -> list[Action]:
    """``actions`` with each :class:`EmitEvent` given its identity (see the module doc)."""
    base = basis(stored)
    seen: Counter[str] = Counter()
    out: list[Action] = []
    for action in actions:
        if isinstance(action, EmitEvent):
            nth = seen[action.reason]
            seen[action.reason] += 1
            action = replace(action, identity=_digest(base, action.reason, str(nth))[:IDENTITY_DIGITS])
        out.append(action)
    return out


def event_name(owner_name: str, owner_uid: str, identity: str) -> str:
    """The Event's ``metadata.name``: ``<md>.<hash of uid and identity>`` (a re-created object of
    the same name has a new uid, so its Events never collide with the old one's)."""
    return f"{owner_name}.{_digest(owner_uid, identity)[:IDENTITY_DIGITS]}"
