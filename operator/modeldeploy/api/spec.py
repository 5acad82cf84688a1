"""ModelDeployment spec: the source of truth for the CRD schema in crds/.

Every field carries a description (it becomes ``kubectl explain`` text), bounds and, where a rule
spans fields, a CEL ``x-kubernetes-validations`` entry so the API server refuses bad input before
the operator ever sees it. The same rules are enforced here by pydantic, so code that builds a spec
in Python gets the same answer as ``kubectl apply``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from pydantic import ConfigDict, Field, model_validator

from modeldeploy.api.common import (
    DNS_LABEL,
    DNS_SUBDOMAIN,
    QUANTITY,
    ApiModel,
    Duration,
    JsonDict,
    cel,
    exactly_one,
)
from modeldeploy.api.smoke import SmokeTest

RuntimeName = Literal["triton", "torchserve"]
StorageScheme = Literal["s3", "gs", "https", "pvc"]
STORAGE_URI = r"^(s3|gs)://[a-z0-9][a-z0-9.\-]{1,62}(/[^\s]*)?$|^https://[^\s]+$|^pvc://[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?(/[^\s]*)?$"
SHA256 = r"^[0-9a-f]{64}$"
ArchiveFormat = Literal["tar.gz", "zip"]
SAFE_SEGMENT = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,62}$"
MIG_PROFILE = r"^[1-7]g\.[0-9]{1,3}gb$"


def _one_of(model: ApiModel, fields: list[str], what: str) -> None:
    chosen = [f for f in fields if getattr(model, f) is not None]
    if len(chosen) != 1:
        names = ", ".join(model.model_fields[f].alias or f for f in fields)
        raise ValueError(f"{what}: set exactly one of {names}")


# --- model -------------------------------------------------------------------------------------


class DynamicBatching(ApiModel):
    """Server-side request batching (Triton dynamic_batching; TorchServe batch delay)."""

    max_queue_delay_microseconds: int = Field(
        500, ge=0, le=10_000_000, description="Longest a request waits for a batch to fill, in microseconds."
    )
    preferred_batch_sizes: list[int] | None = Field(
        None, max_length=8, description="Batch sizes the scheduler prefers to form (Triton only)."
    )


# Triton's DataType enum (model_config.proto), TYPE_INVALID excluded.
TritonDataType = Literal[
    "TYPE_BOOL",
    "TYPE_UINT8",
    "TYPE_UINT16",
    "TYPE_UINT32",
    "TYPE_UINT64",
    "TYPE_INT8",
    "TYPE_INT16",
    "TYPE_INT32",
    "TYPE_INT64",
    "TYPE_FP16",
    "TYPE_FP32",
    "TYPE_FP64",
    "TYPE_STRING",
    "TYPE_BF16",
]
TENSOR_NAME = r"^[A-Za-z0-9_][A-Za-z0-9_.:/\-]{0,127}$"
MAX_DIM = 2**31 - 1


def _unique_names_rule(field: str) -> str:
    return f"!has(self.{field}) || self.{field}.all(a, self.{field}.exists_one(b, b.name == a.name))"


def _require_unique_names(items: Sequence[TensorSpec | WarmupInput] | None, what: str) -> None:
    names = [i.name for i in items or []]
    if len(names) != len(set(names)):
        raise ValueError(f"{what} names must be unique")


def _dims_rule() -> JsonDict:
    # a fresh dict per model: a shared one would become YAML anchors in the generated CRD
    return {
        "x-kubernetes-validations": [
            cel("self.dims.all(d, d != 0)", "dims: each dimension is -1 (variable) or >= 1", ".dims")
        ]
    }


class TensorSpec(ApiModel):
    """A model input or output as Triton declares it (ModelInput / ModelOutput in model_config.proto)."""

    name: str = Field(..., max_length=128, pattern=TENSOR_NAME, description="Tensor name in the model.")
    data_type: TritonDataType = Field(..., description="Triton data type, e.g. TYPE_FP32.")
    dims: list[int] = Field(
        ...,
        min_length=1,
        max_length=8,
        json_schema_extra={"items": {"type": "integer", "minimum": -1, "maximum": MAX_DIM}},
        description="Shape without the batch dimension; -1 marks a variable-size dimension.",
    )

    @model_validator(mode="after")
    def _dims(self) -> TensorSpec:
        if any(d == 0 or d < -1 or d > MAX_DIM for d in self.dims):
            raise ValueError(f"{self.name}: dims must be -1 (variable) or between 1 and {MAX_DIM}")
        return self


class ModelInput(TensorSpec):
    """A model input (Triton ModelInput)."""

    model_config = ConfigDict(json_schema_extra=_dims_rule())


class ModelOutput(TensorSpec):
    """A model output (Triton ModelOutput)."""

    model_config = ConfigDict(json_schema_extra=_dims_rule())


class WarmupInput(ApiModel):
    """Data for one input of a warm-up request: zeros or random values (ModelWarmup.Input)."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "(has(self.zeroData) && self.zeroData) != (has(self.randomData) && self.randomData)",
                    "set exactly one of zeroData: true, randomData: true",
                )
            ]
        }
    )

    name: str = Field(..., max_length=128, pattern=TENSOR_NAME, description="Input tensor name.")
    data_type: TritonDataType = Field(..., description="Triton data type, e.g. TYPE_FP32.")
    dims: list[int] = Field(
        ...,
        min_length=1,
        max_length=8,
        json_schema_extra={"items": {"type": "integer", "minimum": 1, "maximum": MAX_DIM}},
        description="Concrete shape without the batch dimension (no -1).",
    )
    zero_data: bool | None = Field(None, description="Send zeros (empty strings for TYPE_STRING).")
    random_data: bool | None = Field(None, description="Send random values.")

    @model_validator(mode="after")
    def _data(self) -> WarmupInput:
        if any(d < 1 or d > MAX_DIM for d in self.dims):
            raise ValueError(f"warmup input {self.name}: dims must be between 1 and {MAX_DIM}")
        if bool(self.zero_data) == bool(self.random_data):
            raise ValueError(f"warmup input {self.name}: set exactly one of zeroData: true, randomData: true")
        return self


class Warmup(ApiModel):
    """A warm-up request Triton runs on every model instance before the model is ready (model_warmup)."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(_unique_names_rule("inputs"), "warmup input names must be unique", ".inputs")
            ]
        }
    )

    name: str = Field(..., max_length=63, pattern=SAFE_SEGMENT, description="Name shown in Triton's log.")
    batch_size: int = Field(
        1, ge=1, le=4096, description="Batch size of the request: 1 without batching, else <= maxBatchSize."
    )
    count: int = Field(1, ge=1, le=100, description="How many times the request is sent.")
    inputs: list[WarmupInput] = Field(..., min_length=1, max_length=32, description="Data for each input.")

    @model_validator(mode="after")
    def _unique(self) -> Warmup:
        _require_unique_names(self.inputs, "warmup input")
        return self


class RuntimeConfig(ApiModel):
    """Runtime knobs rendered into Triton's config.pbtxt or TorchServe's config.properties."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(_unique_names_rule("inputs"), "input names must be unique", ".inputs"),
                cel(_unique_names_rule("outputs"), "output names must be unique", ".outputs"),
                cel(
                    "!has(self.warmup) || self.warmup.all(w, !has(w.batchSize) || (self.maxBatchSize == 0 "
                    "? w.batchSize == 1 : w.batchSize <= self.maxBatchSize))",
                    "warmup batchSize must be 1 when maxBatchSize is 0, else at most maxBatchSize",
                    ".warmup",
                ),
            ]
        }
    )

    max_batch_size: int = Field(0, ge=0, le=4096, description="Largest batch; 0 disables batching.")
    dynamic_batching: DynamicBatching | None = Field(None, description="Enable dynamic batching.")
    instance_count: int = Field(
        1, ge=1, le=16, description="Model instances per pod (Triton instance_group count)."
    )
    workers: int = Field(1, ge=1, le=64, description="Worker processes per model (TorchServe).")
    response_timeout_seconds: int = Field(
        120, ge=1, le=3600, description="Seconds before a request to a worker times out (TorchServe)."
    )
    platform: str | None = Field(
        None,
        max_length=64,
        pattern=r"^[a-z0-9_]+$",
        description="Triton backend platform, e.g. onnxruntime_onnx, pytorch_libtorch, tensorrt_plan.",
    )
    handler: str | None = Field(
        None, max_length=253, description="TorchServe handler (built-in name or module:function)."
    )
    inputs: list[ModelInput] | None = Field(
        None,
        max_length=32,
        description="Triton: the model's inputs (config.pbtxt input); omitted: Triton auto-completes them.",
    )
    outputs: list[ModelOutput] | None = Field(
        None,
        max_length=32,
        description="Triton: the model's outputs (config.pbtxt output); omitted: auto-completed.",
    )
    warmup: list[Warmup] | None = Field(
        None,
        max_length=8,
        description="Triton: warm-up requests run before the model reports ready (model_warmup).",
    )

    @model_validator(mode="after")
    def _triton_tensors(self) -> RuntimeConfig:
        _require_unique_names(self.inputs, "input")
        _require_unique_names(self.outputs, "output")
        limit = max(self.max_batch_size, 1)
        for w in self.warmup or []:
            if w.batch_size > limit:
                raise ValueError(
                    f"warmup {w.name}: batchSize {w.batch_size} must be 1 when maxBatchSize is 0, "
                    "else at most maxBatchSize"
                )
        return self


class ModelSpec(ApiModel):
    """What to serve and where to fetch it from."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "!self.storageUri.startsWith('http://')",
                    "storageUri: plain http:// is refused (no TLS: the model could be altered in transit); "
                    "use https://",
                    ".storageUri",
                ),
                cel(
                    "self.storageUri.matches('^(s3|gs|https|pvc)://')",
                    "storageUri: unsupported scheme; use s3://bucket/path, gs://bucket/path, "
                    "https://host/path or pvc://claim/path",
                    ".storageUri",
                ),
                cel(
                    "!self.storageUri.startsWith('pvc://') || !has(self.credentialsSecret)",
                    "credentialsSecret does not apply to pvc:// storage: the claim is mounted directly",
                    ".credentialsSecret",
                ),
                cel(
                    "!self.storageUri.startsWith('pvc://') || (!has(self.sha256) && !has(self.archive)"
                    " && !has(self.caBundleConfigMap))",
                    "sha256, archive and caBundleConfigMap apply to downloaded models, not to pvc:// storage",
                ),
            ]
        }
    )

    name: str = Field(
        ...,
        pattern=SAFE_SEGMENT,
        max_length=63,
        description="Model name as the runtime knows it; a single safe path segment (no '/', no '..').",
    )
    version: str = Field(
        ...,
        pattern=SAFE_SEGMENT,
        max_length=63,
        description="Model version; a new version is a new revision.",
    )
    storage_uri: str = Field(
        ...,
        max_length=1024,
        pattern=STORAGE_URI,
        description="Where the model lives: s3://bucket/path, gs://bucket/path, https://..., or pvc://claim/path.",
    )
    credentials_secret: str | None = Field(
        None,
        max_length=253,
        pattern=DNS_SUBDOMAIN,
        description=(
            "Secret in the same namespace whose keys become the storage initializer's env; never logged."
        ),
    )
    sha256: str | None = Field(
        None,
        max_length=64,
        pattern=SHA256,
        description=(
            "Expected SHA-256 of the downloaded object (64 lowercase hex digits); a mismatch fails the "
            "download. For single objects (https://, or one s3/gs object)."
        ),
    )
    archive: ArchiveFormat | None = Field(
        None,
        description=(
            "The object is an archive (tar.gz or zip) unpacked into the model's place; members that "
            "escape it are refused. TorchServe: the archive holds exactly one .mar."
        ),
    )
    ca_bundle_config_map: str | None = Field(
        None,
        max_length=253,
        pattern=DNS_SUBDOMAIN,
        description=(
            "ConfigMap (same namespace) whose key ca.crt is the CA bundle that signs the storage "
            "server's certificate (private https:// or S3-compatible endpoints)."
        ),
    )
    runtime_config: RuntimeConfig = Field(
        default_factory=RuntimeConfig, description="Runtime-specific serving configuration."
    )

    @model_validator(mode="after")
    def _no_dotdot(self) -> ModelSpec:
        for value in (self.name, self.version):
            if ".." in value:
                raise ValueError(f"{value!r} must be a single path segment without '..'")
        if self.storage_uri.startswith("http://"):
            raise ValueError("storageUri: plain http:// is refused (no TLS); use https://")
        if self.storage_uri.startswith("pvc://") and self.credentials_secret:
            raise ValueError("credentialsSecret does not apply to pvc:// storage")
        if self.storage_uri.startswith("pvc://") and (
            self.sha256 or self.archive or self.ca_bundle_config_map
        ):
            raise ValueError("sha256, archive and caBundleConfigMap apply to downloaded models, not pvc://")
        return self

    @property
    def storage_scheme(self) -> str:
        return self.storage_uri.split("://", 1)[0]


# --- resources ---------------------------------------------------------------------------------


class GpuSpec(ApiModel):
    """GPUs per replica: whole GPUs (count) or one MIG slice (migProfile), not both."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "has(self.count) != has(self.migProfile)",
                    "set either gpu.count (whole GPUs) or gpu.migProfile (one MIG slice), not both",
                )
            ]
        }
    )

    count: int | None = Field(None, ge=1, le=16, description="Whole GPUs per replica (nvidia.com/gpu).")
    mig_profile: str | None = Field(
        None,
        pattern=MIG_PROFILE,
        max_length=16,
        description="MIG profile such as 1g.10gb, requested as nvidia.com/mig-<profile>.",
    )
    product: str | None = Field(
        None,
        max_length=63,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,62}$",
        description="Required nvidia.com/gpu.product node label, e.g. NVIDIA-A100-SXM4-80GB.",
    )

    @model_validator(mode="after")
    def _exclusive(self) -> GpuSpec:
        if (self.count is None) == (self.mig_profile is None):
            raise ValueError("set either gpu.count or gpu.migProfile, not both")
        return self

    @property
    def resource_name(self) -> str:
        return f"nvidia.com/mig-{self.mig_profile}" if self.mig_profile else "nvidia.com/gpu"

    @property
    def quantity(self) -> int:
        return self.count if self.count is not None else 1

    @property
    def whole_gpus(self) -> int:
        """GPUs counted against budgets: a MIG slice counts as one device."""
        return self.quantity


class Resources(ApiModel):
    """Per-replica compute; requests equal limits for GPUs."""

    cpu: str = Field("1", max_length=32, pattern=QUANTITY, description="CPU request, e.g. 500m or 2.")
    memory: str = Field("2Gi", max_length=32, pattern=QUANTITY, description="Memory request and limit.")
    gpu: GpuSpec | None = Field(None, description="GPUs per replica; omit for CPU-only serving.")
    shm_size: str | None = Field(
        None,
        max_length=32,
        pattern=QUANTITY,
        description="Size of the in-memory /dev/shm volume (default: runtime's choice, 1Gi for Triton).",
    )


# --- autoscaling -------------------------------------------------------------------------------


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
        _one_of(self, ["cpu", "memory", "pods"], "autoscaling metric")
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


# --- rollout -----------------------------------------------------------------------------------


def _policy_governed(schema: dict[str, Any]) -> None:
    """No ``default`` in the CRD schema: the API server must not fill a field a rollout policy may
    supply, or "the user set it" and "the schema defaulted it" look the same (modeldeploy.policy).
    The pydantic default stays: the operator applies it last (user > policy > built-in)."""
    schema.pop("default", None)


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
        _one_of(self, ["replicas", "gateway_api"], "trafficRouting")
        return self

    @property
    def kind(self) -> str:
        return "gatewayAPI" if self.gateway_api is not None else "replicas"


class PauseStep(ApiModel):
    duration: Duration | None = Field(
        None, description="How long to pause; omitted: wait for a promote command."
    )


class AnalysisStep(ApiModel):
    duration: Duration = Field(..., description="How long to measure the canary before the next step.")


class SetCanaryScale(ApiModel):
    """Canary pod count independent of weight (e.g. warm pods before any traffic)."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    exactly_one(["replicas", "weight", "matchTrafficWeight"]),
                    "setCanaryScale: set exactly one of replicas, weight, matchTrafficWeight",
                )
            ]
        }
    )

    replicas: int | None = Field(None, ge=0, le=1000, description="Canary replicas.")
    weight: int | None = Field(None, ge=0, le=100, description="Canary replicas as % of spec.replicas.")
    match_traffic_weight: bool | None = Field(None, description="Follow the traffic weight again.")

    @model_validator(mode="after")
    def _one(self) -> SetCanaryScale:
        _one_of(self, ["replicas", "weight", "match_traffic_weight"], "setCanaryScale")
        return self


class CanaryStep(ApiModel):
    """One canary step: exactly one of setWeight, pause, analysis, setCanaryScale."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    exactly_one(["setWeight", "pause", "analysis", "setCanaryScale"]),
                    "each step sets exactly one of setWeight, pause, analysis, setCanaryScale",
                )
            ]
        }
    )

    set_weight: int | None = Field(None, ge=0, le=100, description="Percent of traffic to the canary.")
    pause: PauseStep | None = Field(None, description="Hold the current weight (timed, or until promoted).")
    analysis: AnalysisStep | None = Field(None, description="Measure guardrails at the current weight.")
    set_canary_scale: SetCanaryScale | None = Field(None, description="Canary pod count, apart from weight.")

    @model_validator(mode="after")
    def _one(self) -> CanaryStep:
        _one_of(self, ["set_weight", "pause", "analysis", "set_canary_scale"], "canary step")
        return self


def _default_steps() -> list[CanaryStep]:
    return [
        CanaryStep(set_weight=10),
        CanaryStep(analysis=AnalysisStep(duration="1m")),
        CanaryStep(set_weight=50),
        CanaryStep(analysis=AnalysisStep(duration="1m")),
    ]


class CanaryStrategy(ApiModel):
    steps: list[CanaryStep] = Field(
        default_factory=_default_steps,
        max_length=32,
        description="Steps walked in order; 100% is reached by promotion after the last step.",
    )


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


BUILTIN_TEMPLATES = ("error-rate", "latency-p99-ms", "latency-p50-ms", "queue-time-p99-ms")


class CompareToStable(ApiModel):
    max_ratio: float = Field(
        ..., gt=0, le=1000, description="Fail when canary value > maxRatio x stable value (e.g. 1.2)."
    )


class SequentialTest(ApiModel):
    """An anytime-valid test of the canary's error rate against the stable revision's."""

    tolerance: float = Field(
        0.2,
        ge=0,
        le=10,
        description=(
            "Regression means: canary error rate > stable error rate x (1 + tolerance). The guardrail "
            "fails on evidence of a regression and passes only on evidence of none."
        ),
    )
    alpha: float = Field(
        0.01,
        gt=0,
        le=0.2,
        description=(
            "False-alarm level of each of the two tests (a false rollback, a false pass), valid however "
            "often the evidence is looked at."
        ),
    )


class Guardrail(ApiModel):
    """One SLO check: a built-in template or a PromQL query (jinja2), with thresholds."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(exactly_one(["template", "query"]), "a guardrail sets exactly one of template, query"),
                cel(
                    "has(self.min) || has(self.max) || has(self.compareToStable) || has(self.sequential)",
                    "a guardrail needs min, max, compareToStable or sequential",
                ),
                cel(
                    "!has(self.sequential) || (has(self.template) && self.template == 'error-rate' && "
                    "!has(self.min) && !has(self.max) && !has(self.compareToStable))",
                    "sequential needs template error-rate and no min, max or compareToStable",
                ),
                cel(
                    "!has(self.samplesQuery) || has(self.query)",
                    "samplesQuery goes with a custom query",
                ),
            ]
        }
    )

    name: str = Field(
        ..., max_length=63, pattern=DNS_LABEL, description="Guardrail name, unique in the list."
    )
    template: Literal["error-rate", "latency-p99-ms", "latency-p50-ms", "queue-time-p99-ms"] | None = Field(
        None, description="Built-in per-runtime PromQL template."
    )
    query: str | None = Field(
        None,
        max_length=4096,
        description=(
            "PromQL (jinja2) with variables namespace, name, revision, stable_revision, window; "
            "values are escaped for label matchers. Must return one number."
        ),
    )
    min: float | None = Field(None, description="Fail when the value is below this.")
    max: float | None = Field(None, description="Fail when the value is above this.")
    compare_to_stable: CompareToStable | None = Field(
        None, description="Also run the query for the stable revision and compare."
    )
    sequential: SequentialTest | None = Field(
        None,
        description=(
            "Judge canary against stable with an anytime-valid sequential test on the error and request "
            "counts of both revisions over the same intervals (template error-rate only): fails as soon "
            "as a regression is evident, passes once its absence is, otherwise inconclusive. "
            "minSampleSize does not apply."
        ),
    )
    samples_query: str | None = Field(
        None,
        max_length=4096,
        description=(
            "PromQL (jinja2, same variables as query) counting the canary's requests in the window, for "
            "minSampleSize. Default: the runtime's own request counter for the canary revision."
        ),
    )

    @model_validator(mode="after")
    def _shape(self) -> Guardrail:
        _one_of(self, ["template", "query"], f"guardrail {self.name}")
        checks = (self.min, self.max, self.compare_to_stable, self.sequential)
        if all(c is None for c in checks):
            raise ValueError(f"guardrail {self.name}: needs min, max, compareToStable or sequential")
        if self.sequential is not None and (
            self.template != "error-rate" or any(c is not None for c in checks[:3])
        ):
            raise ValueError(
                f"guardrail {self.name}: sequential needs template error-rate "
                "and no min, max or compareToStable"
            )
        if self.samples_query is not None and self.query is None:
            raise ValueError(f"guardrail {self.name}: samplesQuery goes with a custom query")
        return self


class Analysis(ApiModel):
    """How guardrails are measured and judged."""

    interval: Duration = Field(
        "15s", json_schema_extra=_policy_governed, description="Time between measurements (default 15s)."
    )
    window: Duration | None = Field(None, description="PromQL range window (default: 2 x interval, >= 30s).")
    failure_limit: int = Field(
        2,
        ge=1,
        le=100,
        json_schema_extra=_policy_governed,
        description="Failed measurements that trigger automatic rollback (default 2).",
    )
    inconclusive_limit: int = Field(
        3,
        ge=1,
        le=100,
        json_schema_extra=_policy_governed,
        description="Inconclusive measurements (no data, too few samples) before pausing (default 3).",
    )
    consecutive_error_limit: int = Field(
        4,
        ge=1,
        le=100,
        json_schema_extra=_policy_governed,
        description="Consecutive query errors (Prometheus down) before pausing (default 4).",
    )
    no_data_policy: Literal["pause", "fail", "pass"] = Field(
        "pause",
        json_schema_extra=_policy_governed,
        description="An empty result: pause (inconclusive, default), fail (counts as failed), or pass.",
    )
    min_sample_size: int = Field(
        20,
        json_schema_extra=_policy_governed,
        ge=0,
        le=10_000_000,
        description="Requests the canary must have served in the window; fewer = inconclusive (default 20).",
    )
    history: int = Field(20, ge=1, le=100, description="Measurements kept in status.")
    guardrails: list[Guardrail] = Field(
        default_factory=list,
        max_length=16,
        description="Checks every measurement runs; empty = the runtime's error-rate guardrail at 5%.",
    )

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "self.guardrails.all(g, self.guardrails.exists_one(h, h.name == g.name))",
                    "guardrail names must be unique",
                    ".guardrails",
                )
            ]
        }
    )

    @model_validator(mode="after")
    def _unique(self) -> Analysis:
        names = [g.name for g in self.guardrails]
        if len(names) != len(set(names)):
            raise ValueError("guardrail names must be unique")
        return self


class Rollout(ApiModel):
    """How a new revision replaces the stable one."""

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
        json_schema_extra=_policy_governed,
        description=(
            "Seconds a revision's pods may take to become Ready (counted from when they were asked "
            "for). Past it a new revision is aborted and rolled back (stable untouched), naming the "
            "pods' reason; a first revision is marked Degraded. Default 600."
        ),
    )


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
