"""``spec.model.runtimeConfig``: the runtime knobs rendered into Triton's config.pbtxt or
TorchServe's config.properties (batching, instances, workers, Triton's inputs, outputs and warm-up)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from pydantic import ConfigDict, Field, model_validator

from modeldeploy.api.common import SAFE_SEGMENT, ApiModel, JsonDict, cel


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
