"""ModelDeployment spec: the source of truth for the CRD schema in crds/.

Every field carries a description (it becomes ``kubectl explain`` text), bounds and, where a rule
spans fields, a CEL ``x-kubernetes-validations`` entry so the API server refuses bad input before
the operator ever sees it. The same rules are enforced here by pydantic, so code that builds a spec
in Python gets the same answer as ``kubectl apply``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field, model_validator

from modeldeploy.api.analysis import (
    BUILTIN_TEMPLATES as BUILTIN_TEMPLATES,
)
from modeldeploy.api.analysis import (
    Analysis as Analysis,
)
from modeldeploy.api.analysis import (  # re-exported: the spec is read from one module
    CompareToStable as CompareToStable,
)
from modeldeploy.api.analysis import (
    Guardrail as Guardrail,
)
from modeldeploy.api.analysis import (
    SequentialTest as SequentialTest,
)
from modeldeploy.api.autoscaling import (  # re-exported
    Autoscaling as Autoscaling,
)
from modeldeploy.api.autoscaling import (
    PodsMetricTarget as PodsMetricTarget,
)
from modeldeploy.api.autoscaling import (
    ScalingMetric as ScalingMetric,
)
from modeldeploy.api.autoscaling import (
    UtilizationTarget as UtilizationTarget,
)
from modeldeploy.api.canary import (
    GATEWAY_ONLY_STEPS_RULE,
    gateway_steps_error,
)
from modeldeploy.api.canary import (  # re-exported
    AnalysisStep as AnalysisStep,
)
from modeldeploy.api.canary import (
    CanaryStep as CanaryStep,
)
from modeldeploy.api.canary import (
    CanaryStrategy as CanaryStrategy,
)
from modeldeploy.api.canary import (
    PauseStep as PauseStep,
)
from modeldeploy.api.canary import (
    SetCanaryScale as SetCanaryScale,
)
from modeldeploy.api.common import (
    DNS_LABEL,
    DNS_SUBDOMAIN,
    ApiModel,
    cel,
    exactly_one,
    policy_governed,
    require_one_of,
)
from modeldeploy.api.model import (  # re-exported
    MIG_PROFILE as MIG_PROFILE,
)
from modeldeploy.api.model import (
    SHA256 as SHA256,
)
from modeldeploy.api.model import (
    STORAGE_URI as STORAGE_URI,
)
from modeldeploy.api.model import (
    ArchiveFormat as ArchiveFormat,
)
from modeldeploy.api.model import (
    GpuSpec as GpuSpec,
)
from modeldeploy.api.model import (
    ModelSpec as ModelSpec,
)
from modeldeploy.api.model import (
    Resources as Resources,
)
from modeldeploy.api.model import (
    RuntimeName as RuntimeName,
)
from modeldeploy.api.model import (
    StorageScheme as StorageScheme,
)
from modeldeploy.api.runtime_config import (
    MAX_DIM as MAX_DIM,
)
from modeldeploy.api.runtime_config import (
    TENSOR_NAME as TENSOR_NAME,
)
from modeldeploy.api.runtime_config import (  # re-exported
    DynamicBatching as DynamicBatching,
)
from modeldeploy.api.runtime_config import (
    ModelInput as ModelInput,
)
from modeldeploy.api.runtime_config import (
    ModelOutput as ModelOutput,
)
from modeldeploy.api.runtime_config import (
    RuntimeConfig as RuntimeConfig,
)
from modeldeploy.api.runtime_config import (
    TensorSpec as TensorSpec,
)
from modeldeploy.api.runtime_config import (
    Warmup as Warmup,
)
from modeldeploy.api.runtime_config import (
    WarmupInput as WarmupInput,
)
from modeldeploy.api.smoke import SmokeTest

# --- rollout -----------------------------------------------------------------------------------


class PolicyRef(ApiModel):
    kind: Literal["ClusterRolloutPolicy", "RolloutPolicy"] = Field(
        "ClusterRolloutPolicy", description="ClusterRolloutPolicy, or a RolloutPolicy in this namespace."
    )
    name: str = Field(..., max_length=253, pattern=DNS_SUBDOMAIN, description="The policy's name.")


class ReplicasRouting(ApiModel):
    """No mesh: stable and canary pods share one Service; weight is approximated by replica share."""


class GatewayApiRouting(ApiModel):
    """Gateway API: weighted backendRefs on an HTTPRoute pointing at stable and canary Services."""

    http_route: str = Field(
        ...,
        max_length=253,
        pattern=DNS_SUBDOMAIN,
        description="HTTPRoute (same namespace) the operator manages.",
    )
    gateway: str | None = Field(
        None,
        max_length=253,
        pattern=DNS_SUBDOMAIN,
        description="parentRef Gateway name, if the route is created.",
    )
    gateway_namespace: str | None = Field(
        None, max_length=63, pattern=DNS_LABEL, description="Namespace of the parent Gateway."
    )
    rule_name: str | None = Field(
        None,
        max_length=63,
        pattern=DNS_LABEL,
        description=(
            "Name of the HTTPRoute rule (Gateway API v1.4 rules[].name) whose backendRef weights the "
            "operator sets; unset: the first rule with a backendRef to <name>-stable or <name>-canary. "
            "On a route the operator did not create, only those weights change."
        ),
    )


class TrafficRouting(ApiModel):
    """How traffic weight is realised: exactly one router."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(exactly_one(["replicas", "gatewayAPI"]), "set exactly one of replicas, gatewayAPI")
            ]
        }
    )

    replicas: ReplicasRouting | None = None
    gateway_api: GatewayApiRouting | None = Field(None, alias="gatewayAPI")

    @model_validator(mode="after")
    def _one(self) -> TrafficRouting:
        require_one_of(self, ["replicas", "gateway_api"], "trafficRouting")
        return self

    @property
    def kind(self) -> str:
        return "gatewayAPI" if self.gateway_api is not None else "replicas"


class BlueGreenStrategy(ApiModel):
    pre_promotion_analysis: AnalysisStep | None = Field(
        None, description="Analysis of the preview colour before traffic switches."
    )
    post_promotion_analysis: AnalysisStep | None = Field(
        None, description="Analysis after the switch; failure switches back automatically."
    )
    auto_promote: bool = Field(True, description="Switch automatically once pre-promotion analysis passes.")
    scale_down_delay_seconds: int = Field(
        30, ge=0, le=86_400, description="Seconds the old colour keeps running after the switch."
    )


class Rollout(ApiModel):
    """How a new revision replaces the stable one."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [GATEWAY_ONLY_STEPS_RULE]})

    policy_ref: PolicyRef | None = Field(None, description="Platform policy supplying defaults and limits.")
    strategy: Literal["canary", "blueGreen"] = Field("canary", description="canary or blueGreen.")
    traffic_routing: TrafficRouting = Field(
        default_factory=lambda: TrafficRouting(replicas=ReplicasRouting()),
        description="How weight is applied (default: replicas).",
    )
    max_surge_gpus: int | None = Field(
        None,
        alias="maxSurgeGPUs",
        ge=0,
        le=1024,
        description="Extra GPUs the rollout may use above steady state; stable shrinks as the canary grows.",
    )
    canary: CanaryStrategy = Field(default_factory=CanaryStrategy, description="Canary steps.")
    blue_green: BlueGreenStrategy = Field(
        default_factory=BlueGreenStrategy, description="Blue-green settings."
    )
    analysis: Analysis = Field(default_factory=Analysis, description="Guardrails and limits.")
    progress_deadline_seconds: int = Field(
        600,
        ge=10,
        le=86_400,
        json_schema_extra=policy_governed,
        description=(
            "Seconds a revision's pods may take to become Ready (counted from when they were asked "
            "for). Past it a new revision is aborted and rolled back (stable untouched), naming the "
            "pods' reason; a first revision is marked Degraded. Default 600."
        ),
    )

    @model_validator(mode="after")
    def _gateway_steps(self) -> Rollout:
        problem = gateway_steps_error(self.canary, self.traffic_routing.kind)
        if problem:
            raise ValueError(problem)
        return self


# --- top level ---------------------------------------------------------------------------------


class ModelDeploymentSpec(ApiModel):
    """Desired state of a served model."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "self.runtime != 'torchserve' || self.model.storageUri.endsWith('.mar') "
                    "|| has(self.model.archive)",
                    "TorchServe serves a model archive: model.storageUri must name a .mar file, or set "
                    "model.archive (tar.gz or zip holding one .mar)",
                    ".model.storageUri",
                ),
                cel(
                    "self.runtime != 'torchserve' || !has(self.smokeTest) || self.disableAuth",
                    "smokeTest on TorchServe needs disableAuth: true: TorchServe 0.12 makes its inference "
                    "key inside the pod at start and offers no way to give it one, so the operator cannot "
                    "authenticate its request",
                    ".smokeTest",
                ),
            ]
        }
    )

    runtime: RuntimeName = Field(..., description="Serving runtime: triton or torchserve.")
    image: str | None = Field(
        None,
        max_length=512,
        pattern=r"^[^\s]*$",
        description="Override the runtime's pinned default image (empty: the default).",
    )
    model: ModelSpec = Field(..., description="The model to serve.")
    replicas: int = Field(
        1, ge=0, le=1000, description="Desired replicas (the scale subresource; an HPA may own it)."
    )
    resources: Resources = Field(default_factory=Resources, description="Per-replica resources.")
    autoscaling: Autoscaling | None = Field(None, description="Create an HPA for this ModelDeployment.")
    rollout: Rollout = Field(default_factory=Rollout, description="Progressive delivery settings.")
    service_account_name: str | None = Field(
        None, max_length=253, pattern=DNS_SUBDOMAIN, description="ServiceAccount for the serving pods."
    )
    disable_auth: bool = Field(
        False, description="TorchServe only: turn token authorization off (default: on)."
    )
    smoke_test: SmokeTest | None = Field(
        None, description="A request every new revision must answer correctly before it gets traffic."
    )

    @model_validator(mode="after")
    def _runtime_rules(self) -> ModelDeploymentSpec:
        if self.runtime == "torchserve":
            if not self.model.storage_uri.endswith(".mar") and self.model.archive is None:
                raise ValueError(
                    "TorchServe serves a model archive: model.storageUri must name a .mar file, "
                    "or set model.archive"
                )
            if self.smoke_test is not None and not self.disable_auth:
                raise ValueError("smokeTest on TorchServe needs disableAuth: true")
        return self


class RevisionTemplate(ApiModel):
    """The part of a spec that defines a revision's pods; its hash is the revision id.

    The stable revision's template is kept in status, so the stable Deployment can be rebuilt
    (drift repair, rollback) after the spec already describes a newer revision.
    """

    runtime: RuntimeName = Field(..., description="Serving runtime.")
    image: str | None = Field(None, max_length=512, description="Image override.")
    model: ModelSpec = Field(..., description="The model.")
    resources: Resources = Field(default_factory=Resources, description="Per-replica resources.")
    service_account_name: str | None = Field(None, max_length=253, description="Pod ServiceAccount.")
    disable_auth: bool = Field(False, description="TorchServe token auth off.")

    @classmethod
    def of(cls, spec: ModelDeploymentSpec) -> RevisionTemplate:
        return cls(
            runtime=spec.runtime,
            image=spec.image or None,
            model=spec.model,
            resources=spec.resources,
            service_account_name=spec.service_account_name,
            disable_auth=spec.disable_auth,
        )
