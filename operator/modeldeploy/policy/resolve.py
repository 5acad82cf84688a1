"""Which rollout policy governs a ModelDeployment; pure (the shell reads the namespace and policies).

Resolution order (the first that applies wins):

1. ``spec.rollout.policyRef``: a ClusterRolloutPolicy, or a RolloutPolicy in the ModelDeployment's
   namespace;
2. the namespace label ``modeldeploy.dev/rollout-policy: <name>``: names a **ClusterRolloutPolicy**
   (label values cannot hold a kind, and a namespace-scoped policy is editable by the very team it
   governs, so a namespace label only ever points at a cluster-scoped one);
3. the cluster default: the one ClusterRolloutPolicy with ``spec.default: true`` (two or more is a
   ``MultiplePolicyDefaults`` condition that blocks new revisions until a platform team fixes it);
4. built-in defaults (no policy; the CRD's documented defaults).

A namespace labelled ``modeldeploy.dev/rollout-policy-mandatory: "true"`` makes its labelled policy
apply whatever ``policyRef`` says: a ModelDeployment cannot escape it by omitting or changing the
reference (a policyRef naming another policy is reported as ``status.policy.ignoredPolicyRef``).
The mandatory label without a policy label is a ``PolicyLabelMissing`` condition (fail closed).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from modeldeploy.api.policy import NAMESPACE_MANDATORY_LABEL, NAMESPACE_POLICY_LABEL
from modeldeploy.api.spec import PolicyRef
from modeldeploy.api.status import PolicySource

PolicyKind = Literal["ClusterRolloutPolicy", "RolloutPolicy"]
CLUSTER: PolicyKind = "ClusterRolloutPolicy"
NAMESPACED: PolicyKind = "RolloutPolicy"


@dataclass(frozen=True)
class PolicyId:
    """One policy object: a ClusterRolloutPolicy (namespace None) or a RolloutPolicy in a namespace."""

    kind: PolicyKind
    name: str
    namespace: str | None = None

    def __str__(self) -> str:
        return f"{self.kind}/{self.name}"


@dataclass(frozen=True)
class Choice:
    """The policy that applies (None: built-in defaults), why, and a problem that blocks rollouts."""

    policy: PolicyId | None
    source: PolicySource
    mandatory: bool = False
    ignored_ref: PolicyId | None = None
    problem: tuple[str, str] | None = None  # (reason, message)


def _ref_id(ref: PolicyRef, namespace: str) -> PolicyId:
    if ref.kind == NAMESPACED:
        return PolicyId(NAMESPACED, ref.name, namespace)
    return PolicyId(CLUSTER, ref.name)


def is_mandatory(labels: Mapping[str, str]) -> bool:
    return labels.get(NAMESPACE_MANDATORY_LABEL, "").strip().lower() == "true"


def choose(ref: PolicyRef | None, namespace: str, labels: Mapping[str, str]) -> Choice | None:
    """Steps 1 and 2 of the order; None means: look for the cluster default (:func:`choose_default`)."""
    mandatory = is_mandatory(labels)
    label = labels.get(NAMESPACE_POLICY_LABEL, "").strip()
    ref_id = _ref_id(ref, namespace) if ref is not None else None
    if mandatory and not label:
        return Choice(
            ref_id,
            "policyRef" if ref_id else "builtIn",
            problem=(
                "PolicyLabelMissing",
                f"namespace {namespace} has {NAMESPACE_MANDATORY_LABEL}=true but no "
                f"{NAMESPACE_POLICY_LABEL} label naming the ClusterRolloutPolicy to enforce",
            ),
        )
    labelled = PolicyId(CLUSTER, label) if label else None
    if mandatory and labelled is not None:
        ignored = ref_id if ref_id is not None and ref_id != labelled else None
        return Choice(labelled, "namespaceLabel", mandatory=True, ignored_ref=ignored)
    if ref_id is not None:
        return Choice(ref_id, "policyRef")
    if labelled is not None:
        return Choice(labelled, "namespaceLabel")
    return None


def choose_default(default_names: Sequence[str]) -> Choice:
    """Steps 3 and 4: the ClusterRolloutPolicies marked ``default: true`` -> the cluster default."""
    names = sorted(set(default_names))
    if not names:
        return Choice(None, "builtIn")
    if len(names) > 1:
        listed = ", ".join(names)
        return Choice(
            None,
            "clusterDefault",
            problem=(
                "MultiplePolicyDefaults",
                f"{len(names)} ClusterRolloutPolicies are marked default: true ({listed}); "
                "exactly one may be: new revisions wait until a platform team fixes it",
            ),
        )
    return Choice(PolicyId(CLUSTER, names[0]), "clusterDefault")
