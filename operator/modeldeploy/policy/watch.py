"""Policy and namespace watch events -> the ModelDeployments to re-evaluate; pure bookkeeping.

A policy's spec (or a namespace's two policy labels) is remembered when first seen: kopf's initial
listing (event type None) only records it, since every ModelDeployment is reconciled at start-up
anyway. Afterwards an event whose spec (labels) differ from the remembered ones, or a deletion,
returns the ModelDeployments that used it (``PolicyUsage``); an event that changes nothing the
policy means (metadata only, a resync) returns none. The reconcile then writes a ModelDeployment's
status only if its effective settings changed, so a policy edit costs one status patch per
ModelDeployment whose settings it changed, and no write elsewhere.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from modeldeploy.api.policy import NAMESPACE_MANDATORY_LABEL, NAMESPACE_POLICY_LABEL
from modeldeploy.policy.resolve import CLUSTER, NAMESPACED, PolicyId
from modeldeploy.policy.usage import Key, PolicyUsage

_DELETED = object()


class PolicyWatch:
    def __init__(self, usage: PolicyUsage) -> None:
        self.usage = usage
        self._seen: dict[Any, Any] = {}

    def _changed(self, key: Any, event: Mapping[str, Any], value: Any) -> bool:
        kind = event.get("type")
        if kind == "DELETED":
            self._seen.pop(key, None)
            return True
        before = self._seen.get(key, _DELETED)
        self._seen[key] = value
        return kind is not None and before != value

    def cluster_policy_event(self, name: str, event: Mapping[str, Any]) -> list[Key]:
        policy = PolicyId(CLUSTER, name)
        spec = (event.get("object") or {}).get("spec")
        return self.usage.affected(policy) if self._changed(policy, event, spec) else []

    def policy_event(self, namespace: str, name: str, event: Mapping[str, Any]) -> list[Key]:
        policy = PolicyId(NAMESPACED, name, namespace)
        spec = (event.get("object") or {}).get("spec")
        return self.usage.affected(policy) if self._changed(policy, event, spec) else []

    def namespace_event(self, name: str, event: Mapping[str, Any]) -> list[Key]:
        labels = ((event.get("object") or {}).get("metadata") or {}).get("labels") or {}
        ours = (labels.get(NAMESPACE_POLICY_LABEL), labels.get(NAMESPACE_MANDATORY_LABEL))
        return self.usage.in_namespace(name) if self._changed(("ns", name), event, ours) else []
