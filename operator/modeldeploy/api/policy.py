"""ClusterRolloutPolicy / RolloutPolicy: platform defaults and limits for ModelDeployments."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from modeldeploy.api.common import ApiModel, Duration
from modeldeploy.api.spec import CanaryStep, RuntimeName, StorageScheme


class AnalysisDefaults(ApiModel):
    interval: Duration | None = Field(None, description="Default analysis interval.")
    failure_limit: int | None = Field(None, ge=1, le=100, description="Default failureLimit.")
    inconclusive_limit: int | None = Field(None, ge=1, le=100, description="Default inconclusiveLimit.")
    min_sample_size: int | None = Field(None, ge=0, le=10_000_000, description="Default minSampleSize.")
    no_data_policy: Literal["pause", "fail", "pass"] | None = Field(None, description="Default noDataPolicy.")


class CanaryDefaults(ApiModel):
    steps: list[CanaryStep] | None = Field(None, max_length=32, description="Default canary steps.")


class PolicyDefaults(ApiModel):
    analysis: AnalysisDefaults | None = None
    canary: CanaryDefaults | None = None


class PolicyLimits(ApiModel):
    max_canary_step_weight: int | None = Field(
        None, ge=1, le=100, description="Largest setWeight a canary step may use before the final promotion."
    )
    max_gpus_per_replica: int | None = Field(
        None, alias="maxGPUsPerReplica", ge=1, le=16, description="Most GPUs one replica may ask for."
    )
    max_surge_gpus: int | None = Field(
        None, alias="maxSurgeGPUs", ge=0, le=1024, description="Largest rollout.maxSurgeGPUs allowed."
    )
    allowed_runtimes: list[RuntimeName] | None = Field(None, max_length=8, description="Runtimes allowed.")
    allowed_storage_schemes: list[StorageScheme] | None = Field(
        None, max_length=8, description="Storage URI schemes allowed."
    )


class RolloutPolicySpec(ApiModel):
    """Defaults a ModelDeployment inherits and limits it may not exceed."""

    required_guardrails: list[str] = Field(
        default_factory=list, max_length=16, description="Guardrail names every ModelDeployment must define."
    )
    defaults: PolicyDefaults | None = None
    limits: PolicyLimits | None = None
