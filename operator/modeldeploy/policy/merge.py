"""The effective spec: the user's fields, then the policy's defaults, then the built-in defaults; pure.

The CRD schema has no ``default`` for the fields a policy may supply (``_policy_governed`` in
api/spec.py), so a field absent from the stored object is one the user did not write. The merge
works on the raw object (camelCase, as stored): each policy default is set only where the raw spec
has no value, then the pydantic model fills the built-in defaults for whatever is still absent.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from modeldeploy.api.policy import RolloutPolicySpec
from modeldeploy.api.spec import ModelDeploymentSpec

Raw = dict[str, Any]


def _absent(raw: Mapping[str, Any], path: tuple[str, ...]) -> bool:
    node: Any = raw
    for key in path:
        if not isinstance(node, Mapping) or node.get(key) is None:
            return True
        node = node[key]
    return isinstance(node, list) and not node  # an empty list (guardrails: []) is "left out" too


def _put(raw: Raw, path: tuple[str, ...], value: Any) -> None:
    node = raw
    for key in path[:-1]:
        child = node.get(key)
        if not isinstance(child, dict):
            child = node[key] = {}
        node = child
    node[path[-1]] = value


def policy_defaults(policy: RolloutPolicySpec) -> list[tuple[tuple[str, ...], Any]]:
    """(raw path, value) for every default the policy supplies, in wire form."""
    out: list[tuple[tuple[str, ...], Any]] = []
    defaults = policy.defaults
    if defaults is not None and defaults.analysis is not None:
        for key, value in defaults.analysis.wire().items():
            out.append((("rollout", "analysis", key), value))
    if defaults is not None and defaults.canary is not None and defaults.canary.steps:
        out.append((("rollout", "canary", "steps"), [s.wire() for s in defaults.canary.steps]))
    if defaults is not None and defaults.progress_deadline_seconds is not None:
        out.append((("rollout", "progressDeadlineSeconds"), defaults.progress_deadline_seconds))
    if policy.required_guardrails:
        out.append((("rollout", "analysis", "guardrails"), [g.wire() for g in policy.required_guardrails]))
    if policy.limits is not None and policy.limits.max_surge_gpus is not None:
        out.append((("rollout", "maxSurgeGPUs"), policy.limits.max_surge_gpus))
    return out


def merge(raw_spec: Mapping[str, Any], policy: RolloutPolicySpec | None) -> tuple[Raw, tuple[str, ...]]:
    """The raw spec with the policy's defaults where the user wrote nothing, and the paths filled."""
    merged: Raw = copy.deepcopy(dict(raw_spec))
    filled: list[str] = []
    for path, value in policy_defaults(policy) if policy is not None else []:
        if _absent(merged, path):
            _put(merged, path, copy.deepcopy(value))
            filled.append(".".join(path))
    return merged, tuple(filled)


def effective_spec(
    raw_spec: Mapping[str, Any], policy: RolloutPolicySpec | None
) -> tuple[ModelDeploymentSpec, tuple[str, ...]]:
    """The validated effective spec (raises pydantic's ValidationError) and the fields the policy filled."""
    merged, filled = merge(raw_spec, policy)
    return ModelDeploymentSpec.model_validate(merged), filled
