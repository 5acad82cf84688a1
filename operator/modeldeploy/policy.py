"""Platform policy (ClusterRolloutPolicy / RolloutPolicy) applied to a ModelDeployment; pure.

A policy supplies defaults for what the ModelDeployment leaves out and limits it may not exceed. A
violated limit never changes the user's spec: it becomes a ``PolicyViolation`` condition and the new
revision is not rolled out, while what already runs keeps serving.

Defaults fill only what the user did not write: canary steps when ``spec.rollout.canary`` is absent,
analysis settings when ``spec.rollout.analysis`` is absent (the CRD's own schema defaults would otherwise
make every field look user-set). ``limits.maxSurgeGPUs`` is also the budget when the spec sets none.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from modeldeploy.api.policy import RolloutPolicySpec
from modeldeploy.api.spec import Analysis, CanaryStrategy, ModelDeploymentSpec


@dataclass(frozen=True)
class Applied:
    spec: ModelDeploymentSpec
    violations: tuple[str, ...]


def apply_policy(
    spec: ModelDeploymentSpec, raw_spec: Mapping[str, Any], policy: RolloutPolicySpec, policy_name: str
) -> Applied:
    """The effective spec under ``policy`` and every limit it breaks (as sentences naming the field)."""
    rollout = spec.rollout
    raw_rollout = raw_spec.get("rollout") or {}
    defaults = policy.defaults
    updates: dict[str, Any] = {}
    if defaults and defaults.canary and defaults.canary.steps and "canary" not in raw_rollout:
        updates["canary"] = CanaryStrategy(steps=list(defaults.canary.steps))
    if defaults and defaults.analysis and "analysis" not in raw_rollout:
        values = {k: v for k, v in defaults.analysis.model_dump().items() if v is not None}
        updates["analysis"] = Analysis.model_validate({**rollout.analysis.model_dump(), **values})
    limits = policy.limits
    if limits and limits.max_surge_gpus is not None and rollout.max_surge_gpus is None:
        updates["max_surge_gpus"] = limits.max_surge_gpus
    effective = spec.model_copy(update={"rollout": rollout.model_copy(update=updates)}) if updates else spec
    return Applied(effective, tuple(_violations(effective, policy, policy_name)))


def _violations(spec: ModelDeploymentSpec, policy: RolloutPolicySpec, name: str) -> list[str]:
    out: list[str] = []
    limits = policy.limits
    if limits is not None:
        if limits.allowed_runtimes is not None and spec.runtime not in limits.allowed_runtimes:
            allowed = ", ".join(limits.allowed_runtimes)
            out.append(f"spec.runtime {spec.runtime!r} is not allowed (allowed: {allowed})")
        scheme = spec.model.storage_scheme
        if limits.allowed_storage_schemes is not None and scheme not in limits.allowed_storage_schemes:
            allowed = ", ".join(limits.allowed_storage_schemes)
            out.append(f"spec.model.storageUri scheme {scheme}:// is not allowed (allowed: {allowed})")
        gpu = spec.resources.gpu
        if (
            limits.max_gpus_per_replica is not None
            and gpu is not None
            and gpu.quantity > limits.max_gpus_per_replica
        ):
            most = limits.max_gpus_per_replica
            out.append(f"spec.resources.gpu.count {gpu.quantity} exceeds maxGPUsPerReplica {most}")
        surge = spec.rollout.max_surge_gpus
        if limits.max_surge_gpus is not None and surge is not None and surge > limits.max_surge_gpus:
            out.append(f"spec.rollout.maxSurgeGPUs {surge} exceeds the limit {limits.max_surge_gpus}")
        if limits.max_canary_step_weight is not None:
            for i, step in enumerate(spec.rollout.canary.steps):
                if step.set_weight is not None and step.set_weight > limits.max_canary_step_weight:
                    out.append(
                        f"spec.rollout.canary.steps[{i}].setWeight {step.set_weight} exceeds "
                        f"maxCanaryStepWeight {limits.max_canary_step_weight}"
                    )
    have = {g.name for g in spec.rollout.analysis.guardrails}
    missing = [g for g in policy.required_guardrails if g not in have]
    if missing:
        out.append(f"spec.rollout.analysis.guardrails is missing required guardrail(s): {', '.join(missing)}")
    return [f"policy {name}: {v}" for v in out]
