"""What the rollout decision reads (observations) and what it asks for (actions).

Everything here is a frozen dataclass: the shell builds :class:`Observations` from the cluster,
calls :func:`modeldeploy.rollout.decide`, applies the returned actions in order and then writes the
returned status. Actions are edges ("do this now"); the status is the level the shell may re-assert
at any time (``stableRevision``, ``canaryRevision``, ``canaryWeight``).

Contract with the shell: actions are applied in list order, and the new status is persisted only
after all of them succeeded. A failed action means the pass is retried from the old status, so a
``SetWeight`` in the list may be treated as applied once the status that follows it is stored.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, NamedTuple

from modeldeploy.api.canary import CanaryTraffic
from modeldeploy.api.command import COMMAND_KINDS, CommandKind
from modeldeploy.api.status import Measurement, ModelDeploymentStatus, SmokeTestResult
from modeldeploy.rollout.pod_health import PodProblem


@dataclass(frozen=True)
class RevisionObservation:
    """One revision's workload as the shell saw it this pass.

    ``replicas`` is the workload's desired count (its spec), ``ready_replicas`` the pods passing
    readiness, ``pods`` every pod that exists (pending, starting or terminating: they hold or
    are about to claim GPUs). The GPU budget counts ``max(replicas, ready_replicas, pods)``.
    """

    replicas: int
    ready_replicas: int = 0
    available: bool = False
    unschedulable_message: str | None = None
    pods: int = 0
    problem: PodProblem | None = None

    @property
    def in_use(self) -> int:
        """Replicas that hold (or the scheduler will try to give) resources."""
        return max(self.replicas, self.ready_replicas, self.pods)


@dataclass(frozen=True)
class Command:
    """A manual command (``kubectl modeldeploy promote`` ...); ``id`` makes it apply once."""

    kind: CommandKind
    id: str


@dataclass(frozen=True)
class Observations:
    """Everything the decision needs from the world, gathered by the shell before the pass.

    ``measurements`` are the guardrail results of the measurement the shell ran this pass
    because :func:`measurement_due` said so (empty otherwise); ``smoke_test`` likewise the answer
    to the smoke test :func:`smoke_test_due` asked for.
    """

    desired_revision: str
    revisions: Mapping[str, RevisionObservation] = field(default_factory=dict)
    measurements: Sequence[Measurement] = ()
    # The measurements are a sequential check between measurements (sequential_check_due): only
    # the sequential guardrails' evidence counts, no measurement is recorded.
    sequential_check: bool = False
    command: Command | None = None
    smoke_test: SmokeTestResult | None = None
    # The rollout policy that forbids promote-full (limits.allowPromoteFull: false), None when allowed.
    promote_full_forbidden_by: str | None = None


# --- actions -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScaleRevision:
    """Ensure the revision's workload exists with ``replicas`` pods (creating it if missing)."""

    revision: str
    replicas: int
    kind: Literal["ScaleRevision"] = "ScaleRevision"


@dataclass(frozen=True)
class SetWeight:
    """Route ``weight``% to ``canary_revision``, the rest to ``stable_revision``.

    ``canary_revision=None`` (weight 0) means: the stable revision alone serves all traffic.
    ``traffic`` (gatewayAPI only): requests matching it also go to the canary (A/B), or a share of
    live requests is mirrored to it (shadow); None: no A/B rule and no mirror.
    """

    stable_revision: str
    canary_revision: str | None
    weight: int
    traffic: CanaryTraffic | None = None
    kind: Literal["SetWeight"] = "SetWeight"


@dataclass(frozen=True)
class SwitchActive:
    """Blue-green: point the active (production) Service at ``revision``."""

    revision: str
    kind: Literal["SwitchActive"] = "SwitchActive"


@dataclass(frozen=True)
class SetPreview:
    """Blue-green: point the preview Service at ``revision``."""

    revision: str
    kind: Literal["SetPreview"] = "SetPreview"


@dataclass(frozen=True)
class DeleteRevision:
    """Delete the revision's workload (only emitted once it has no pods left)."""

    revision: str
    kind: Literal["DeleteRevision"] = "DeleteRevision"


EventType = Literal["Normal", "Warning"]


@dataclass(frozen=True)
class EmitEvent:
    """A Kubernetes Event on the ModelDeployment; ``reason`` is CamelCase and greppable.

    ``identity`` names the decision (:mod:`modeldeploy.rollout.record`): the shell uses it as the
    Event's name, so a pass repeated after a crash records it once.
    """

    type: EventType
    reason: str
    message: str
    identity: str = ""
    kind: Literal["EmitEvent"] = "EmitEvent"


@dataclass(frozen=True)
class Log:
    """One structured JSON log line describing the pass's decision."""

    fields: Mapping[str, object]
    kind: Literal["Log"] = "Log"


__all__ = ["COMMAND_KINDS", "CommandKind"]  # re-exported: the rollout's view of the command API

Action = ScaleRevision | SetWeight | SwitchActive | SetPreview | DeleteRevision | EmitEvent | Log


class Plan(NamedTuple):
    """The result of one pass: actions to apply in order, then the status to store."""

    actions: list[Action]
    status: ModelDeploymentStatus
