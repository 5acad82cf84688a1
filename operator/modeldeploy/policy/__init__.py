"""Platform rollout policies (ClusterRolloutPolicy / RolloutPolicy) applied to a ModelDeployment.

* Which policy applies: ``resolve`` (policyRef -> namespace label -> cluster default -> built-in,
  and the namespace's mandatory label); read from the cluster by ``lookup`` (the shell).
* The effective spec: ``merge`` (user fields > policy defaults > built-in defaults; the CRD has no
  schema defaults on the governed fields, so "the user set it" is told from the stored object).
* Limits and required guardrails: ``limits`` (violations name the field and both values). A
  violation never edits the user's spec: it is a ``PolicyViolation`` condition and the new revision
  is not rolled out, while what already runs keeps serving. ``limits.allowPromoteFull: false`` makes
  the rollout decision ignore ``promote-full`` (a CommandIgnored Event naming the policy).
* Status: ``summary`` (``status.policy``, ``status.effectiveRollout``).
* Re-evaluation when a policy or a namespace label changes: ``usage`` (which ModelDeployments use
  which policy, fed by every reconcile, read by the watch handlers).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from modeldeploy.api.policy import RolloutPolicySpec
from modeldeploy.api.spec import ModelDeploymentSpec
from modeldeploy.policy.limits import promote_full_allowed, violations
from modeldeploy.policy.merge import effective_spec


@dataclass(frozen=True)
class Applied:
    spec: ModelDeploymentSpec
    violations: tuple[str, ...]
    defaulted: tuple[str, ...]
    promote_full: bool


def apply_policy(raw_spec: Mapping[str, Any], policy: RolloutPolicySpec | None, policy_name: str) -> Applied:
    """The effective spec under ``policy`` (None: built-in defaults only) and every limit it breaks.

    Raises pydantic's ValidationError when the policy's defaults make the spec invalid.
    """
    spec, filled = effective_spec(raw_spec, policy)
    found = violations(spec, policy) if policy is not None else []
    return Applied(
        spec, tuple(f"policy {policy_name}: {v}" for v in found), filled, promote_full_allowed(policy)
    )


__all__ = ["Applied", "apply_policy"]
