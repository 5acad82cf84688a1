"""What one pass saw of a ModelDeployment's children: each revision's Deployment and the pods.

Plain API bodies in, the :class:`~modeldeploy.rollout.types.RevisionObservation` the decision reads
out. No I/O: the shell lists the objects and hands them over.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from modeldeploy.children.labels import REVISION
from modeldeploy.rollout.pod_health import revision_problem, unschedulable_message
from modeldeploy.rollout.types import RevisionObservation

Body = Mapping[str, Any]


def condition_status(obj: Body, type_: str) -> str | None:
    """``status.conditions[type].status`` of an API object ("True", "False", "Unknown"), or None."""
    for c in obj.get("status", {}).get("conditions", []) or []:
        if c.get("type") == type_:
            return str(c.get("status"))
    return None


def _revision(obj: Body) -> str | None:
    value = (obj["metadata"].get("labels") or {}).get(REVISION)
    return str(value) if value else None


@dataclass(frozen=True)
class ObservedChildren:
    """The revisions' Deployments (by revision label) and every pod of the ModelDeployment."""

    deployments: Mapping[str, Body]
    pods: Sequence[Body] = ()

    @classmethod
    def of(cls, deployments: Iterable[Body], pods: Iterable[Body]) -> ObservedChildren:
        by_revision = {rev: d for d in deployments if (rev := _revision(d)) is not None}
        return cls(by_revision, list(pods))

    def pods_of(self, revision: str) -> list[Body]:
        return [p for p in self.pods if _revision(p) == revision]

    def ready_pods(self, revision: str) -> list[Body]:
        """Pods of ``revision`` that pass readiness and are not going away (smoke-test candidates)."""
        return [
            p
            for p in self.pods_of(revision)
            if condition_status(p, "Ready") == "True" and not p["metadata"].get("deletionTimestamp")
        ]

    def live_replicas(self, revision: str) -> int | None:
        """The Deployment's ``spec.replicas``; None when the revision has no Deployment."""
        dep = self.deployments.get(revision)
        return int(dep["spec"].get("replicas", 0)) if dep is not None else None

    def ready_replicas(self, revision: str) -> int:
        dep = self.deployments.get(revision)
        return int(dep.get("status", {}).get("readyReplicas", 0)) if dep is not None else 0

    def total_replicas(self) -> int:
        return sum(int(d["spec"].get("replicas", 0)) for d in self.deployments.values())

    def observation(self, revision: str) -> RevisionObservation:
        dep = self.deployments[revision]
        pods = self.pods_of(revision)
        return RevisionObservation(
            replicas=int(dep["spec"].get("replicas", 0)),
            ready_replicas=self.ready_replicas(revision),
            available=condition_status(dep, "Available") == "True",
            unschedulable_message=unschedulable_message(pods),
            pods=len(pods),
            problem=revision_problem(pods),
        )

    def observations(self) -> dict[str, RevisionObservation]:
        return {revision: self.observation(revision) for revision in self.deployments}
