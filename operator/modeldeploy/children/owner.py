"""The ModelDeployment that owns every child object."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class OwnerInfo:
    api_version: str
    kind: str
    name: str
    namespace: str
    uid: str

    @classmethod
    def from_object(cls, obj: Mapping[str, Any]) -> OwnerInfo:
        """From a Kubernetes object body (``apiVersion``, ``kind``, ``metadata.name/namespace/uid``)."""
        meta = obj["metadata"]
        return cls(obj["apiVersion"], obj["kind"], meta["name"], meta["namespace"], meta["uid"])

    def owner_reference(self) -> dict[str, Any]:
        """Controller reference: children are garbage-collected with the ModelDeployment."""
        return {
            "apiVersion": self.api_version,
            "kind": self.kind,
            "name": self.name,
            "uid": self.uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }


def metadata(owner: OwnerInfo, name: str, labels: Mapping[str, str]) -> dict[str, Any]:
    """``metadata`` for a child: name, owner's namespace, labels, controller owner reference."""
    return {
        "name": name,
        "namespace": owner.namespace,
        "labels": dict(labels),
        "ownerReferences": [owner.owner_reference()],
    }
