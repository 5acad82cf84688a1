"""Platform policy: defaults fill what the user left out (even where the CRD used to default), limits
and required guardrails become violations naming the field and both values."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from modeldeploy.api.crd import all_crds
from modeldeploy.api.policy import RolloutPolicySpec
from modeldeploy.api.spec import ModelDeploymentSpec
from modeldeploy.policy import apply_policy
from modeldeploy.policy.summary import effective_rollout

pytestmark = pytest.mark.unit

BASE: dict[str, Any] = {
    "runtime": "triton",
    "model": {"name": "m", "version": "1", "storageUri": "s3://team-a-models/m/1"},
    "resources": {"gpu": {"count": 2}},
    "replicas": 2,
}


def with_rollout(**rollout: Any) -> dict[str, Any]:
    return {**copy.deepcopy(BASE), "rollout": rollout}


def run(spec: dict[str, Any], policy: dict[str, Any]) -> tuple[ModelDeploymentSpec, tuple[str, ...]]:
    applied = apply_policy(spec, RolloutPolicySpec.model_validate(policy), "P")
    return applied.spec, applied.violations


POLICY: dict[str, Any] = {
    "defaults": {
        "analysis": {"interval": "30s", "failureLimit": 3, "minSampleSize": 100},
        "canary": {"steps": [{"setWeight": 5}, {"analysis": {"duration": "5m"}}]},
        "progressDeadlineSeconds": 900,
    },
    "limits": {"maxSurgeGPUs": 4},
}


def test_defaults_fill_only_what_the_user_left_out() -> None:
    applied = apply_policy(BASE, RolloutPolicySpec.model_validate(POLICY), "P")
    spec = applied.spec
    assert applied.violations == ()
    assert [s.set_weight for s in spec.rollout.canary.steps] == [5, None]
    assert (spec.rollout.analysis.interval, spec.rollout.analysis.failure_limit) == ("30s", 3)
    assert spec.rollout.analysis.min_sample_size == 100
    assert spec.rollout.analysis.inconclusive_limit == 3  # neither user nor policy: built-in
    assert spec.rollout.progress_deadline_seconds == 900
    assert spec.rollout.max_surge_gpus == 4  # the limit is the budget when the spec sets none
    assert "rollout.analysis.interval" in applied.defaulted and "rollout.canary.steps" in applied.defaulted

    own = with_rollout(canary={"steps": [{"setWeight": 20}]}, analysis={"interval": "10s"})
    spec, _ = run(own, POLICY)
    assert [s.set_weight for s in spec.rollout.canary.steps] == [20]
    # the user wrote an analysis block with one field: the others still come from the policy
    assert (spec.rollout.analysis.interval, spec.rollout.analysis.failure_limit) == ("10s", 3)


def test_user_fields_win_over_policy_and_builtin_defaults_apply_last() -> None:
    own = with_rollout(analysis={"failureLimit": 7, "noDataPolicy": "fail"}, progressDeadlineSeconds=60)
    spec, _ = run(own, POLICY)
    assert spec.rollout.analysis.failure_limit == 7 and spec.rollout.analysis.no_data_policy == "fail"
    assert spec.rollout.progress_deadline_seconds == 60
    spec, _ = run(own, {})
    assert spec.rollout.analysis.interval == "15s"  # built-in


def test_the_crd_schema_no_longer_defaults_policy_governed_fields() -> None:
    """What makes "user set" tellable from "schema default": the API server fills none of them."""
    crd = all_crds()["modeldeploy.dev_modeldeployments.yaml"]
    spec = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    rollout = spec["properties"]["rollout"]["properties"]
    analysis = rollout["analysis"]["properties"]
    for field in ("interval", "failureLimit", "inconclusiveLimit", "consecutiveErrorLimit", "noDataPolicy"):
        assert "default" not in analysis[field], field
    assert "default" not in analysis["minSampleSize"] and "default" not in rollout["progressDeadlineSeconds"]
    assert analysis["history"]["default"] == 20  # fields no policy governs keep theirs


def test_required_guardrails_become_the_default_guardrails() -> None:
    required = {"name": "errors", "template": "error-rate", "max": 0.01}
    spec, violations = run(BASE, {"requiredGuardrails": [required]})
    assert violations == ()
    assert [(g.template, g.max) for g in spec.rollout.analysis.guardrails] == [("error-rate", 0.01)]


@pytest.mark.parametrize(
    ("limits", "spec", "words"),
    [
        (
            {"allowedRuntimes": ["torchserve"]},
            BASE,
            "spec.runtime 'triton' is not allowed (allowed: torchserve)",
        ),
        ({"allowedStorageSchemes": ["gs", "pvc"]}, BASE, "spec.model.storageUri scheme s3://"),
        ({"allowedBuckets": ["prod-models"]}, BASE, "names bucket 'team-a-models', not an allowed one"),
        ({"maxGPUsPerReplica": 1}, BASE, "spec.resources.gpu.count 2 exceeds maxGPUsPerReplica 1"),
        (
            {"maxGPUsPerModelDeployment": 3},
            BASE,
            "spec.replicas 2 x 2 GPU(s) per replica = 4 GPUs exceeds maxGPUsPerModelDeployment 3",
        ),
        (
            {"maxGPUsPerModelDeployment": 8},
            {**BASE, "autoscaling": {"maxReplicas": 5}},
            "spec.autoscaling.maxReplicas 5 x 2 GPU(s) per replica = 10 GPUs",
        ),
        (
            {"maxCanaryStepWeight": 50},
            with_rollout(canary={"steps": [{"setWeight": 80}]}),
            "steps[0].setWeight 80 exceeds maxCanaryStepWeight 50",
        ),
        ({"maxSurgeGPUs": 2}, with_rollout(maxSurgeGPUs=8), "maxSurgeGPUs 8 exceeds the limit 2"),
        (
            {"minAnalysisDuration": "5m"},
            with_rollout(canary={"steps": [{"setWeight": 10}, {"analysis": {"duration": "1m"}}]}),
            "steps[1].analysis.duration 1m is shorter than minAnalysisDuration 5m",
        ),
        (
            {"minAnalysisDuration": "5m"},
            with_rollout(strategy="blueGreen", blueGreen={"prePromotionAnalysis": {"duration": "30s"}}),
            "blueGreen.prePromotionAnalysis.duration 30s is shorter than minAnalysisDuration 5m",
        ),
        (
            {"minBakeTime": "30m"},
            with_rollout(
                canary={"steps": [{"setWeight": 10}, {"pause": {"duration": "10m"}}, {"pause": {}}]}
            ),
            "spec.rollout.canary.steps bake for 10m (analysis and timed pauses), less than minBakeTime 30m",
        ),
    ],
)
def test_limits_are_violations_naming_the_field(
    limits: dict[str, Any], spec: dict[str, Any], words: str
) -> None:
    _, violations = run(spec, {"limits": limits})
    assert len(violations) == 1, violations
    assert words in violations[0] and violations[0].startswith("policy P: ")


def test_allowed_buckets_match_exactly_or_by_prefix() -> None:
    assert run(BASE, {"limits": {"allowedBuckets": ["team-a-*"]}})[1] == ()
    assert run(BASE, {"limits": {"allowedBuckets": ["team-a-models"]}})[1] == ()
    https = {**BASE, "model": {**BASE["model"], "storageUri": "https://example.test/m.tar.gz"}}
    (violation,) = run(https, {"limits": {"allowedBuckets": ["team-a-*"]}})[1]
    assert "names no bucket" in violation


def test_bake_time_counts_analysis_and_timed_pauses() -> None:
    steps = [{"setWeight": 10}, {"analysis": {"duration": "10m"}}, {"pause": {"duration": "20m"}}]
    assert run(with_rollout(canary={"steps": steps}), {"limits": {"minBakeTime": "30m"}})[1] == ()


@pytest.mark.parametrize(
    ("have", "words"),
    [
        (
            {"name": "error-rate", "query": "vector(0)", "max": 0.01},
            "has no guardrail on template error-rate (required)",
        ),
        (
            {"name": "errors", "template": "error-rate", "max": 0.05},
            "'errors' on template error-rate is looser than the policy: max 0.05 (policy: max 0.01)",
        ),
        (
            {"name": "errors", "template": "error-rate", "compareToStable": {"maxRatio": 2}},
            "max unset (policy: max 0.01)",
        ),
    ],
)
def test_required_guardrails_are_matched_by_content(have: dict[str, Any], words: str) -> None:
    """The issue's example: a guardrail named error-rate querying vector(0) no longer passes."""
    policy = {"requiredGuardrails": [{"name": "error-rate", "template": "error-rate", "max": 0.01}]}
    _, violations = run(with_rollout(analysis={"guardrails": [have]}), policy)
    assert len(violations) == 1 and words in violations[0], violations


def test_a_stricter_guardrail_under_any_name_satisfies_the_policy() -> None:
    policy = {
        "requiredGuardrails": [
            {"name": "e", "template": "error-rate", "max": 0.01},
            {
                "name": "q",
                "query": "sum(rate(x[{{ window }}]))",
                "min": 5,
                "compareToStable": {"maxRatio": 1.5},
            },
        ]
    }
    have = [
        {"name": "mine", "template": "error-rate", "max": 0.001},
        {
            "name": "q2",
            "query": "sum(rate(x[{{ window }}]))  ",
            "min": 10,
            "compareToStable": {"maxRatio": 1.2},
        },
    ]
    assert run(with_rollout(analysis={"guardrails": have}), policy)[1] == ()
    looser = [have[0], {**have[1], "min": 1}]
    (violation,) = run(with_rollout(analysis={"guardrails": looser}), policy)[1]
    assert "min 1.0 (policy: min 5.0)" in violation


def test_policy_never_touches_a_compliant_spec() -> None:
    spec, violations = run(BASE, {"limits": {"allowedRuntimes": ["triton"], "maxGPUsPerReplica": 4}})
    assert violations == () and spec == ModelDeploymentSpec.model_validate(BASE)


def test_promote_full_permission_and_effective_summary() -> None:
    forbidding = RolloutPolicySpec.model_validate({**POLICY, "limits": {"allowPromoteFull": False}})
    applied = apply_policy(BASE, forbidding, "P")
    assert applied.promote_full is False
    assert apply_policy(BASE, None, "built-in").promote_full is True
    summary = effective_rollout(applied.spec, applied.promote_full)
    assert summary.steps == ["setWeight=5", "analysis=5m"]
    assert (summary.interval, summary.failure_limit, summary.promote_full) == ("30s", 3, False)
    assert summary.progress_deadline_seconds == 900
