"""The traffic-router interface: pure builders that turn a desired canary weight into objects.

A router answers two questions for the rollout shell, without touching the cluster:

* ``objects(owner, ...)``: the extra objects that realise the weight (an HTTPRoute, or nothing);
* ``reached_weight(observed)``: the canary weight actually in effect, read back from the cluster
  (ready pods, or the live HTTPRoute), or None when it cannot be told yet.

How many pods each revision gets for a weight is not a router's business: that arithmetic
(with the GPU surge budget) lives in rollout/replicas.py, the same for every router.

Service names and labels come from children/ (service.py, labels.py), which builds those Services.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from modeldeploy.api.common import API_VERSION
from modeldeploy.children import labels
from modeldeploy.children.service import service_name

Manifest = dict[str, Any]


def stable_service_name(md_name: str) -> str:
    """The Gateway API stable backend: the Service children/service.py builds for role "stable"."""
    return service_name(md_name, "stable")


def canary_service_name(md_name: str) -> str:
    return service_name(md_name, "canary")


class OwnerLike(Protocol):
    """What a router needs of the owning ModelDeployment; children.owner.OwnerInfo fits."""

    @property
    def name(self) -> str: ...
    @property
    def namespace(self) -> str: ...
    def owner_reference(self) -> dict[str, Any]: ...


def object_labels(owner: OwnerLike) -> dict[str, str]:
    """Labels on objects a router builds: the owner's, plus managed-by and owner (children/labels.py)."""
    extra = getattr(owner, "labels", None)
    return {
        **(dict(extra) if isinstance(extra, Mapping) else {}),
        labels.MANAGED_BY: labels.MANAGER,
        labels.OWNER: owner.name,
    }


@dataclass(frozen=True)
class Owner:
    """A ready-made :class:`OwnerLike` (the ModelDeployment that owns what a router builds)."""

    name: str
    namespace: str
    uid: str
    labels: Mapping[str, str] = field(default_factory=dict)

    def owner_reference(self) -> dict[str, Any]:
        return {
            "apiVersion": API_VERSION,
            "kind": "ModelDeployment",
            "name": self.name,
            "uid": self.uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }


@dataclass(frozen=True)
class ObservedTraffic:
    """What the shell read back from the cluster for ``reached_weight``."""

    stable_ready: int = 0
    canary_ready: int = 0
    route: Mapping[str, Any] | None = None
    asked_weight: int | None = None  # the weight the rollout last asked the router for


class Router(Protocol):
    """One way of realising a canary weight (see the module docstring)."""

    kind: str

    def objects(
        self,
        owner: OwnerLike,
        *,
        stable_revision: str | None,
        canary_revision: str | None,
        weight: int,
        port: int,
    ) -> list[Manifest]:
        """Objects to apply (server-side apply) so that the canary receives ``weight`` percent."""
        ...

    def reached_weight(self, owner: OwnerLike, observed: ObservedTraffic) -> int | None:
        """The canary weight in effect (0..100), or None when it cannot be told."""
        ...


def check_weight(weight: int) -> int:
    if not 0 <= weight <= 100:
        raise ValueError(f"weight must be 0..100, got {weight}")
    return weight


def share(part: int, whole: int) -> int:
    """``part / whole`` as a whole percentage, rounded half up; 0 when ``whole`` is 0."""
    if whole <= 0:
        return 0
    return (200 * part + whole) // (2 * whole)
