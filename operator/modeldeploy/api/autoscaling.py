"""spec.autoscaling: the HPA a ModelDeployment gets (part of the spec; re-exported by
modeldeploy.api.spec)."""

from __future__ import annotations

from pydantic import ConfigDict, Field, model_validator

from modeldeploy.api.common import (
    QUANTITY,
    ApiModel,
    cel,
    exactly_one,
    require_one_of,
)


class UtilizationTarget(ApiModel):
    average_utilization: int = Field(..., ge=1, le=1000, description="Target average utilization in %.")


class PodsMetricTarget(ApiModel):
    metric: str = Field(
        ...,
        max_length=128,
        pattern=r"^[a-zA-Z_:][a-zA-Z0-9_:]*$",
        description="Per-pod metric served by a metrics adapter, e.g. nv_inference_queue_duration_us.",
    )
    average_value: str = Field(..., max_length=32, pattern=QUANTITY, description="Target per-pod average.")


class ScalingMetric(ApiModel):
    """One HPA metric: exactly one of cpu, memory, pods."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(exactly_one(["cpu", "memory", "pods"]), "set exactly one of cpu, memory, pods")
            ]
        }
    )

    cpu: UtilizationTarget | None = Field(None, description="Average CPU utilization of the pods.")
    memory: UtilizationTarget | None = Field(None, description="Average memory utilization of the pods.")
    pods: PodsMetricTarget | None = Field(None, description="A per-pod custom metric (metrics adapter).")

    @model_validator(mode="after")
    def _one(self) -> ScalingMetric:
        require_one_of(self, ["cpu", "memory", "pods"], "autoscaling metric")
        return self


class Autoscaling(ApiModel):
    """An autoscaling/v2 HPA that targets this ModelDeployment's scale subresource."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "self.minReplicas <= self.maxReplicas",
                    "autoscaling.minReplicas must be <= autoscaling.maxReplicas",
                    ".minReplicas",
                )
            ]
        }
    )

    min_replicas: int = Field(1, ge=1, le=1000, description="Lower bound for the HPA.")
    max_replicas: int = Field(..., ge=1, le=1000, description="Upper bound for the HPA.")
    metrics: list[ScalingMetric] = Field(
        default_factory=lambda: [ScalingMetric(cpu=UtilizationTarget(average_utilization=80))],
        max_length=8,
        description="Metrics the HPA follows (default: 80% CPU).",
    )

    @model_validator(mode="after")
    def _bounds(self) -> Autoscaling:
        if self.min_replicas > self.max_replicas:
            raise ValueError("autoscaling.minReplicas must be <= autoscaling.maxReplicas")
        return self
