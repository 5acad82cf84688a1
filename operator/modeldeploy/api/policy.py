"""ClusterRolloutPolicy / RolloutPolicy: platform defaults and limits for ModelDeployments.

How a ModelDeployment finds its policy, and how defaults and limits apply, is told in
``modeldeploy.policy`` (and the README's "Rollout policies" section).
"""

from __future__ import annotations

from typing import Annotated, Final, Literal

from pydantic import Field

from modeldeploy.api.common import ApiModel, Duration
from modeldeploy.api.spec import CanaryStep, Guardrail, RuntimeName, StorageScheme

# A bucket (at most 63 characters) or a claim name (253), optionally followed by a prefix's `*`.
BucketPattern = Annotated[str, Field(max_length=254)]

# Namespace labels a platform team sets (namespace users normally cannot edit their namespace).
NAMESPACE_POLICY_LABEL: Final = "modeldeploy.dev/rollout-policy"
NAMESPACE_MANDATORY_LABEL: Final = "modeldeploy.dev/rollout-policy-mandatory"


class AnalysisDefaults(ApiModel):
    interval: Duration | None = Field(None, description="Default analysis interval.")
    window: Duration | None = Field(None, description="Default PromQL range window.")
    failure_limit: int | None = Field(None, ge=1, le=100, description="Default failureLimit.")
    inconclusive_limit: int | None = Field(None, ge=1, le=100, description="Default inconclusiveLimit.")
    consecutive_error_limit: int | None = Field(
        None, ge=1, le=100, description="Default consecutiveErrorLimit."
    )
    min_sample_size: int | None = Field(None, ge=0, le=10_000_000, description="Default minSampleSize.")
    no_data_policy: Literal["pause", "fail", "pass"] | None = Field(None, description="Default noDataPolicy.")


class CanaryDefaults(ApiModel):
    steps: list[CanaryStep] | None = Field(None, max_length=32, description="Default canary steps.")


class PolicyDefaults(ApiModel):
    analysis: AnalysisDefaults | None = None
    canary: CanaryDefaults | None = None
    progress_deadline_seconds: int | None = Field(
        None, ge=10, le=86_400, description="Default rollout.progressDeadlineSeconds."
    )


class PolicyLimits(ApiModel):
    max_canary_step_weight: int | None = Field(
        None, ge=1, le=100, description="Largest setWeight a canary step may use before the final promotion."
    )
    min_analysis_duration: Duration | None = Field(
        None, description="Shortest duration any analysis step (canary or blue-green) may have."
    )
    min_bake_time: Duration | None = Field(
        None,
        description=(
            "Least time a new revision serves under analysis or a timed pause before it takes all "
            "traffic: canary, the sum of the analysis and timed pause steps; blue-green, the pre- and "
            "post-promotion analyses. An untimed pause counts as zero (it can be promoted at once)."
        ),
    )
    allow_promote_full: bool | None = Field(
        None,
        description="false: the promote-full command (skips remaining steps and analysis) is ignored.",
    )
    max_gpus_per_replica: int | None = Field(
        None, alias="maxGPUsPerReplica", ge=1, le=16, description="Most GPUs one replica may ask for."
    )
    max_gpus_per_model_deployment: int | None = Field(
        None,
        alias="maxGPUsPerModelDeployment",
        ge=1,
        le=16_384,
        description=(
            "Most GPUs a ModelDeployment may hold in steady state: GPUs per replica x replicas "
            "(autoscaling.maxReplicas when autoscaled); the rollout surge is limited by maxSurgeGPUs."
        ),
    )
    max_surge_gpus: int | None = Field(
        None,
        alias="maxSurgeGPUs",
        ge=0,
        le=1024,
        description="Largest rollout.maxSurgeGPUs allowed; also the budget when the spec sets none.",
    )
    allowed_runtimes: list[RuntimeName] | None = Field(None, max_length=8, description="Runtimes allowed.")
    allowed_storage_schemes: list[StorageScheme] | None = Field(
        None, max_length=8, description="Storage URI schemes allowed."
    )
    allowed_buckets: list[BucketPattern] | None = Field(
        None,
        max_length=64,
        description=(
            "Buckets (s3://, gs://) or claims (pvc://) model.storageUri may name; https:// URIs have none "
            "and are refused when this is set. A trailing * matches a prefix, e.g. team-a-*."
        ),
    )


class RolloutPolicySpec(ApiModel):
    """Defaults a ModelDeployment inherits and limits it may not exceed."""

    default: bool = Field(
        False,
        description=(
            "ClusterRolloutPolicy only: the cluster default, for ModelDeployments with no policyRef in "
            "namespaces without the modeldeploy.dev/rollout-policy label. Two defaults block rollouts."
        ),
    )
    required_guardrails: list[Guardrail] = Field(
        default_factory=list,
        max_length=16,
        description=(
            "Guardrails every ModelDeployment must carry, matched by content: same template (or query) "
            "and thresholds no looser (max <=, min >=, compareToStable.maxRatio <=); names do not "
            "matter. A ModelDeployment that lists no guardrails gets these."
        ),
    )
    defaults: PolicyDefaults | None = None
    limits: PolicyLimits | None = None
