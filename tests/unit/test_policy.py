"""Platform policy: defaults fill what the user left out, limits become violations naming the field."""

from __future__ import annotations

from typing import Any

import pytest

from modeldeploy.api.policy import RolloutPolicySpec
from modeldeploy.api.spec import ModelDeploymentSpec
from modeldeploy.policy import apply_policy

pytestmark = pytest.mark.unit

BASE: dict[str, Any] = {
    "runtime": "triton",
    "model": {"name": "m", "version": "1", "storageUri": "s3://bucket/m/1"},
    "resources": {"gpu": {"count": 2}},
}


def run(spec: dict[str, Any], policy: dict[str, Any]) -> tuple[ModelDeploymentSpec, tuple[str, ...]]:
    applied = apply_policy(
        ModelDeploymentSpec.model_validate(spec), spec, RolloutPolicySpec.model_validate(policy), "P"
    )
    return applied.spec, applied.violations


def test_defaults_fill_only_what_the_user_left_out() -> None:
    policy = {
        "defaults": {
            "analysis": {"interval": "30s", "failureLimit": 3},
            "canary": {"steps": [{"setWeight": 5}, {"analysis": {"duration": "5m"}}]},
        },
        "limits": {"maxSurgeGPUs": 4},
    }
    spec, violations = run(BASE, policy)
    assert violations == ()
    assert [s.set_weight for s in spec.rollout.canary.steps] == [5, None]
    assert spec.rollout.analysis.interval == "30s" and spec.rollout.analysis.failure_limit == 3
    assert spec.rollout.max_surge_gpus == 4  # the limit is the budget when the spec sets none

    own = {**BASE, "rollout": {"canary": {"steps": [{"setWeight": 20}]}, "analysis": {"interval": "10s"}}}
    spec, _ = run(own, policy)
    assert [s.set_weight for s in spec.rollout.canary.steps] == [20]
    assert spec.rollout.analysis.interval == "10s" and spec.rollout.analysis.failure_limit == 2


@pytest.mark.parametrize(
    ("limits", "spec_update", "words"),
    [
        ({"allowedRuntimes": ["torchserve"]}, {}, "spec.runtime 'triton' is not allowed"),
        ({"allowedStorageSchemes": ["gs", "pvc"]}, {}, "spec.model.storageUri scheme s3://"),
        ({"maxGPUsPerReplica": 1}, {}, "spec.resources.gpu.count 2 exceeds maxGPUsPerReplica 1"),
        (
            {"maxCanaryStepWeight": 50},
            {"rollout": {"canary": {"steps": [{"setWeight": 80}]}}},
            "steps[0].setWeight 80 exceeds maxCanaryStepWeight 50",
        ),
        ({"maxSurgeGPUs": 2}, {"rollout": {"maxSurgeGPUs": 8}}, "maxSurgeGPUs 8 exceeds the limit 2"),
    ],
)
def test_limits_are_violations_naming_the_field(
    limits: dict[str, Any], spec_update: dict[str, Any], words: str
) -> None:
    _, violations = run({**BASE, **spec_update}, {"limits": limits})
    assert len(violations) == 1 and words in violations[0] and violations[0].startswith("policy P: ")


def test_required_guardrails() -> None:
    policy = {"requiredGuardrails": ["error-rate", "p99"]}
    with_one = {
        **BASE,
        "rollout": {
            "analysis": {"guardrails": [{"name": "error-rate", "template": "error-rate", "max": 0.01}]}
        },
    }
    _, violations = run(with_one, policy)
    assert violations == ("policy P: spec.rollout.analysis.guardrails is missing required guardrail(s): p99",)


def test_policy_never_touches_a_compliant_spec() -> None:
    spec, violations = run(BASE, {"limits": {"allowedRuntimes": ["triton"], "maxGPUsPerReplica": 4}})
    assert violations == () and spec == ModelDeploymentSpec.model_validate(BASE)
