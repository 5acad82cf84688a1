"""The exactly-once record: every Event a pass decides carries an identity, the Event's name.

A pass acts, then stores its status. An operator killed in between (or a write lost to a
conflict) leaves the old status behind, and a later pass decides the same transition again. Its
Events must not be told twice. A later pass may also store something else first (a pod became
ready, a measurement came in) before it repeats the transition, so the identity cannot be the
whole stored status; it is *where the rollout stood* when the Event was decided:

    identity = hash(position, reason, n-th Event of that reason at that position)
    position = the desired revision, and
               in a rollout: its attempt number, revision, stage, step, paused, aborted, last command
               (plus the analysis counters for an Event about one measurement, the command's id
               for an ignored command);
               with none: the stable revision, the attempts so far, since when stable is unready

Each step of an attempt is left once, each attempt promotes or rolls back once, so a repeat
gets the same name and the API server answers its create with 409 AlreadyExists (a no-op). A
legitimate second Event of a reason comes from another position: a new attempt (numbered from
``status.rolloutAttempts``, so a revision rolled out again is a new one), another step, another
command, another measurement count. Level actions (weights, replicas, Services) need no identity:
applying them twice is applying them once.
"""

from __future__ import annotations

import hashlib
import json

from modeldeploy.api.status import ModelDeploymentStatus, RolloutState

# An Event name is a DNS subdomain (<= 253); the ModelDeployment name is a DNS label (<= 63).
IDENTITY_DIGITS = 20

# Events about one measurement or sequential check: each new measurement may tell one.
MEASUREMENT_REASONS = frozenset({"MeasurementFailed", "MeasurementError", "MeasurementInconclusive"})
# An ignored command changes nothing but itself: each command may tell one.
COMMAND_REASON = "CommandIgnored"


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


def position(
    stored: ModelDeploymentStatus, at: RolloutState | None, desired: str, command: str, reason: str
) -> str:
    """Where the rollout stood when an Event of ``reason`` was decided (see the module doc);
    ``command``: the id of the command this pass sees (empty: none)."""
    if at is None:
        where = ["idle", stored.stable_revision or "", str(stored.rollout_attempts or 0)]
        where.append(stored.stable_unready_since or "")
    else:
        where = ["rollout", str(at.attempt or 0), at.revision, at.stage, str(at.step_index)]
        where += [str(at.paused), str(at.aborted), at.last_command or ""]
        if reason in MEASUREMENT_REASONS and at.analysis is not None:
            where.append(json.dumps(at.analysis.wire(), sort_keys=True, separators=(",", ":")))
    if reason == COMMAND_REASON:
        where.append(command)
    return _digest(desired, *where)


def creation_is_news(stored: ModelDeploymentStatus, revision: str | None) -> bool:
    """Whether creating a child deserves a ``ChildCreated`` Event of its own: not when the pass's
    decision already tells it (the first revision: ``RevisionDeployed``; a revision the stored status
    has not recorded yet: ``RolloutStarted``), only when it re-creates what was there (someone
    deleted it) or adds a shared object later (a canary Service, an HPA). ``revision``: the
    revision a Deployment or ConfigMap belongs to (None: a shared object)."""
    if stored.stable_revision is None:
        return False
    if revision is None:
        return True
    return revision in (stored.stable_revision, stored.rollout.revision if stored.rollout else None)


def identity(where: str, reason: str, nth: int) -> str:
    return _digest(where, reason, str(nth))[:IDENTITY_DIGITS]


def event_name(owner_name: str, owner_uid: str, identity: str) -> str:
    """The Event's ``metadata.name``: ``<md>.<hash of uid and identity>`` (a re-created object of
    the same name has a new uid, so its Events never collide with the old one's)."""
    return f"{owner_name}.{_digest(owner_uid, identity)[:IDENTITY_DIGITS]}"
