"""``spec.smokeTest``: one real request a new revision must answer before it gets any traffic.

The operator sends ``body`` to one Ready pod of the new revision (Triton: server ready, model ready,
then ``POST /v2/models/<model>/infer``; TorchServe: ``POST /predictions/<model>``) and checks the
answer against ``expect``. The response is recorded in status; a failure stops the rollout (rolled
back, no weight ever moved) with the response in the condition.
"""

from __future__ import annotations

import json

from pydantic import ConfigDict, Field, model_validator

from modeldeploy.api.common import ApiModel, cel

SMOKE_BODY_LIMIT = 65536


class SmokeExpectation(ApiModel):
    """What a good answer looks like; every rule that is set must hold."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "!has(self.min) || !has(self.max) || self.min <= self.max",
                    "smokeTest.expect: min must be <= max",
                ),
                cel(
                    "!has(self.shape) || has(self.output)",
                    "smokeTest.expect.shape needs output (the output it describes)",
                    ".shape",
                ),
            ]
        }
    )

    status: int = Field(200, ge=100, le=599, description="HTTP status the server must answer with.")
    output: str | None = Field(
        None,
        max_length=128,
        description=(
            "Output that must be present: Triton, the name in the response's outputs; TorchServe, a "
            "top-level key of a JSON object answer."
        ),
    )
    shape: list[int] | None = Field(
        None, max_length=8, description="Exact shape of that output (Triton), e.g. [1, 4]."
    )
    min: float | None = Field(None, description="Every number in the output (or answer) must be >= min.")
    max: float | None = Field(None, description="Every number in the output (or answer) must be <= max.")
    equals: str | None = Field(
        None,
        max_length=4096,
        description="The output (or answer) must equal this JSON value exactly, e.g. '[1, 2]' or '\"cat\"'.",
    )
    contains: str | None = Field(
        None, max_length=1024, description="The raw response body must contain this text."
    )

    @model_validator(mode="after")
    def _range(self) -> SmokeExpectation:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError("smokeTest.expect: min must be <= max")
        if self.shape is not None and self.output is None:
            raise ValueError("smokeTest.expect.shape needs output")
        if self.equals is not None:
            try:
                json.loads(self.equals)
            except ValueError as exc:
                raise ValueError(f"smokeTest.expect.equals is not a JSON value: {exc}") from None
        return self


class SmokeTest(ApiModel):
    """One inference request a new revision must answer correctly before any traffic moves to it."""

    body: str = Field(
        ...,
        min_length=1,
        max_length=SMOKE_BODY_LIMIT,
        description=(
            "Request body (at most 64 KiB). Triton: a KServe v2 inference request as JSON, e.g. "
            '{"inputs":[{"name":"INPUT0","shape":[1,4],"datatype":"FP32","data":[1,2,3,4]}]}. '
            "TorchServe: the body of POST /predictions/<model>."
        ),
    )
    content_type: str = Field(
        "application/json", max_length=128, pattern=r"^[\w.+-]+/[\w.+-]+$", description="Content-Type."
    )
    expect: SmokeExpectation = Field(
        default_factory=SmokeExpectation, description="What the answer must satisfy."
    )
    timeout_seconds: int = Field(10, ge=1, le=300, description="Time allowed for the whole check.")

    @model_validator(mode="after")
    def _json_body(self) -> SmokeTest:
        if self.content_type == "application/json":
            try:
                json.loads(self.body)
            except ValueError as exc:
                why = f"smokeTest.body is not JSON (contentType application/json): {exc}"
                raise ValueError(why) from None
        return self
