"""The policy shell: read the namespace and the policies, then hand plain data to the pure parts.

Reads per pass: the namespace (its labels), the chosen policy, and - only when neither policyRef
nor a namespace label chose one - the list of ClusterRolloutPolicies (for the default). Writes none.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from pydantic import ValidationError

from modeldeploy.api.policy import RolloutPolicySpec
from modeldeploy.api.spec import ModelDeploymentSpec
from modeldeploy.api.status import EffectiveRollout, PolicySummary
from modeldeploy.kube.rest import CLUSTER_POLICY, NS_POLICY, Kind, Kube
from modeldeploy.policy import apply_policy
from modeldeploy.policy.resolve import CLUSTER, Choice, PolicyId, choose, choose_default
from modeldeploy.policy.summary import effective_rollout, policy_summary

NAMESPACE: Final = Kind("v1", "Namespace", "namespaces", False)


@dataclass(frozen=True)
class Outcome:
    """What the policy means for one pass: the effective spec, what blocks rollouts, what status shows."""

    spec: ModelDeploymentSpec
    choice: Choice
    problems: list[tuple[str, str]] = field(default_factory=list)  # (reason, message)
    summary: PolicySummary | None = None
    effective: EffectiveRollout | None = None
    promote_full_forbidden_by: str | None = None


def _errors(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}".lstrip(": ") for e in exc.errors()[:5]
    )


def evaluate(kube: Kube, spec: ModelDeploymentSpec, raw_spec: Mapping[str, Any], namespace: str) -> Outcome:
    """Resolve the policy of a ModelDeployment (``spec`` is the user's, already valid) and apply it."""
    choice = _choose(kube, spec, namespace)
    problems: list[tuple[str, str]] = [choice.problem] if choice.problem else []
    policy: RolloutPolicySpec | None = None
    if choice.policy is not None and not problems:
        policy, problem = _read(kube, choice.policy)
        if problem is not None:
            problems.append(problem)
    name = str(choice.policy) if choice.policy else "built-in"
    try:
        applied = apply_policy(raw_spec, policy, name)
    except ValidationError as exc:
        problems.append(("PolicyInvalid", f"{name}: its defaults make the spec invalid: {_errors(exc)}"))
        applied = apply_policy(raw_spec, None, name)
    problems.extend(("PolicyViolation", v) for v in applied.violations)
    return Outcome(
        spec=applied.spec,
        choice=choice,
        problems=problems,
        summary=policy_summary(choice, applied.defaulted),
        effective=effective_rollout(applied.spec, applied.promote_full),
        promote_full_forbidden_by=None if applied.promote_full else name,
    )


def _choose(kube: Kube, spec: ModelDeploymentSpec, namespace: str) -> Choice:
    ns = kube.get(NAMESPACE, None, namespace)
    labels = ((ns or {}).get("metadata") or {}).get("labels") or {}
    chosen = choose(spec.rollout.policy_ref, namespace, labels)
    if chosen is not None:
        return chosen
    defaults = [
        p["metadata"]["name"] for p in kube.list(CLUSTER_POLICY, None) if (p.get("spec") or {}).get("default")
    ]
    return choose_default(defaults)


def _read(kube: Kube, policy: PolicyId) -> tuple[RolloutPolicySpec | None, tuple[str, str] | None]:
    kind = CLUSTER_POLICY if policy.kind == CLUSTER else NS_POLICY
    obj = kube.get(kind, policy.namespace, policy.name)
    if obj is None:
        where = f" in namespace {policy.namespace}" if policy.namespace else ""
        return None, ("PolicyNotFound", f"{policy.kind} {policy.name}{where} not found")
    try:
        return RolloutPolicySpec.model_validate(obj.get("spec") or {}), None
    except ValidationError as exc:
        return None, ("PolicyInvalid", f"{policy}: {_errors(exc)}")
