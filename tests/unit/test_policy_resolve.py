"""Which policy applies (policyRef -> namespace label -> cluster default -> built-in), the mandatory
namespace label, re-evaluation bookkeeping on policy changes, and promote-full under a policy."""

from __future__ import annotations

from typing import Any

import pytest

from modeldeploy.api.spec import PolicyRef, Rollout
from modeldeploy.policy.resolve import Choice, PolicyId, choose, choose_default
from modeldeploy.policy.usage import PolicyUsage
from modeldeploy.policy.watch import PolicyWatch
from modeldeploy.rollout import Command, Observations, decide

from rollout_builders import Shell, build_spec, reasons

pytestmark = pytest.mark.unit

LABEL = "modeldeploy.dev/rollout-policy"
MANDATORY = "modeldeploy.dev/rollout-policy-mandatory"
CLUSTER_REF = PolicyRef(kind="ClusterRolloutPolicy", name="team")
NS_REF = PolicyRef(kind="RolloutPolicy", name="mine")


def resolve(ref: PolicyRef | None, labels: dict[str, str], defaults: list[str] | None = None) -> Choice:
    return choose(ref, "ns1", labels) or choose_default(defaults or [])


@pytest.mark.parametrize(
    ("ref", "labels", "defaults", "policy", "source"),
    [
        (NS_REF, {LABEL: "strict"}, ["base"], PolicyId("RolloutPolicy", "mine", "ns1"), "policyRef"),
        (CLUSTER_REF, {LABEL: "strict"}, ["base"], PolicyId("ClusterRolloutPolicy", "team"), "policyRef"),
        (None, {LABEL: "strict"}, ["base"], PolicyId("ClusterRolloutPolicy", "strict"), "namespaceLabel"),
        (None, {}, ["base"], PolicyId("ClusterRolloutPolicy", "base"), "clusterDefault"),
        (None, {"other": "x"}, [], None, "builtIn"),
    ],
)
def test_resolution_order(
    ref: PolicyRef | None, labels: dict[str, str], defaults: list[str], policy: PolicyId | None, source: str
) -> None:
    choice = resolve(ref, labels, defaults)
    assert (choice.policy, choice.source, choice.problem) == (policy, source, None)


def test_two_defaults_are_a_condition_naming_both() -> None:
    choice = resolve(None, {}, ["b", "a"])
    assert choice.problem is not None and choice.problem[0] == "MultiplePolicyDefaults"
    assert "(a, b)" in choice.problem[1] and choice.policy is None


@pytest.mark.parametrize("ref", [None, NS_REF, CLUSTER_REF])
def test_a_mandatory_namespace_policy_cannot_be_escaped(ref: PolicyRef | None) -> None:
    choice = resolve(ref, {LABEL: "strict", MANDATORY: "true"}, ["base"])
    assert choice.policy == PolicyId("ClusterRolloutPolicy", "strict") and choice.mandatory
    assert choice.source == "namespaceLabel"
    assert choice.ignored_ref == (None if ref is None else resolve(ref, {}).policy)


def test_mandatory_without_a_policy_label_fails_closed() -> None:
    choice = resolve(NS_REF, {MANDATORY: "true"}, ["base"])
    assert choice.problem is not None and choice.problem[0] == "PolicyLabelMissing"


def test_usage_names_exactly_the_affected_model_deployments() -> None:
    usage = PolicyUsage()
    strict, mine = PolicyId("ClusterRolloutPolicy", "strict"), PolicyId("RolloutPolicy", "mine", "ns1")
    usage.record(("ns1", "a"), strict, "namespaceLabel")
    usage.record(("ns1", "b"), mine, "policyRef")
    usage.record(("ns2", "c"), None, "builtIn")
    usage.record(("ns2", "d"), PolicyId("RolloutPolicy", "mine", "ns2"), "policyRef")
    assert usage.affected(mine) == [("ns1", "b")]
    # any cluster policy may become (or stop being) the default: built-in users are concerned too
    assert usage.affected(strict) == [("ns1", "a"), ("ns2", "c")]
    assert usage.in_namespace("ns2") == [("ns2", "c"), ("ns2", "d")]
    usage.forget(("ns1", "a"))
    assert usage.affected(strict) == [("ns2", "c")]


def event(kind: str | None, spec: dict[str, Any] | None = None, labels: dict[str, str] | None = None) -> Any:
    return {"type": kind, "object": {"metadata": {"labels": labels or {}}, "spec": spec}}


def test_watch_enqueues_only_on_a_real_change() -> None:
    usage = PolicyUsage()
    usage.record(("ns1", "a"), PolicyId("ClusterRolloutPolicy", "strict"), "namespaceLabel")
    watch = PolicyWatch(usage)
    assert watch.cluster_policy_event("strict", event(None, {"limits": {}})) == []  # initial listing
    assert watch.cluster_policy_event("strict", event("MODIFIED", {"limits": {}})) == []  # same spec
    assert watch.cluster_policy_event("strict", event("MODIFIED", {"limits": {"maxSurgeGPUs": 1}})) == [
        ("ns1", "a")
    ]
    assert watch.cluster_policy_event("strict", event("DELETED", {})) == [("ns1", "a")]
    assert watch.namespace_event("ns1", event(None, labels={LABEL: "strict"})) == []
    assert watch.namespace_event("ns1", event("MODIFIED", labels={LABEL: "strict", "team": "x"})) == []
    assert watch.namespace_event("ns1", event("MODIFIED", labels={LABEL: "other"})) == [("ns1", "a")]
    assert watch.policy_event("ns1", "mine", event("ADDED", {})) == []  # nobody uses it


def test_promote_full_is_ignored_when_the_policy_forbids_it() -> None:
    spec = build_spec(
        Rollout.model_validate({"canary": {"steps": [{"setWeight": 10}, {"analysis": {"duration": "10m"}}]}}),
        replicas=2,
    )
    h = Shell(spec)
    h.deploy("r0")
    h.settle()
    h.deploy("r1")
    h.run()
    assert h.status.rollout is not None and h.status.rollout.revision == "r1"
    obs = Observations(
        "r1",
        dict(h.pods),
        command=Command("promote-full", "pf1"),
        promote_full_forbidden_by="ClusterRolloutPolicy/strict",
    )
    plan = decide(h.spec, h.status, obs, h.now)
    assert "PromotedFull" not in reasons(plan) and "CommandIgnored" in reasons(plan)
    (ignored,) = [a for a in plan.actions if getattr(a, "reason", None) == "CommandIgnored"]
    assert "forbidden by ClusterRolloutPolicy/strict" in ignored.message
    assert plan.status.rollout is not None and plan.status.rollout.last_command == "pf1"  # consumed once
    allowed = decide(
        h.spec, h.status, Observations("r1", dict(h.pods), command=Command("promote-full", "pf1")), h.now
    )
    assert "PromotedFull" in reasons(allowed)
