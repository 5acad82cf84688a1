"""The operator's smoke test (modeldeploy.smoke) against the real tritonserver.

The model is served exactly as a pod would serve it (the operator's ConfigMap and container command
line, see modeldeploy_testing.triton_model); the operator's own client sends ``spec.smokeTest`` to
it and judges the answer. The model doubles INPUT into OUTPUT, and CONTROL=1 makes ``execute`` raise.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from modeldeploy.api.spec import ModelDeploymentSpec
from modeldeploy.smoke.client import run_smoke_test
from modeldeploy_testing.triton import missing_prerequisite
from modeldeploy_testing.triton_model import (
    OK,
    RAISE,
    TENSORS,
    ControlledModel,
    materialize,
    request_body,
    serving,
)

pytestmark = pytest.mark.integration

MODEL = "smoke"


def make_spec(control: int, **expect: Any) -> ModelDeploymentSpec:
    return ModelDeploymentSpec.model_validate(
        {
            "runtime": "triton",
            "model": {
                "name": MODEL,
                "version": "1",
                "storageUri": f"s3://models-bucket/{MODEL}/1",
                "runtimeConfig": {"platform": "python", "maxBatchSize": 4, **TENSORS},
            },
            "smokeTest": {"body": json.dumps(request_body(control)), "expect": expect, "timeoutSeconds": 20},
        }
    )


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlledModel]:
    why = missing_prerequisite()
    if why is not None:
        pytest.skip(why)
    pod = materialize(make_spec(OK), tmp_path_factory.mktemp("smoke") / "root", "smoke-md", "t-smoke")
    with serving(pod) as model:
        yield model


def address(model: ControlledModel) -> str:
    return model.triton.http_url.removeprefix("http://")


def test_a_correct_answer_passes(served: ControlledModel) -> None:
    spec = make_spec(OK, output="OUTPUT", shape=[1, 4], min=2.9, max=3.1)
    result = run_smoke_test(spec, "rev1", "pod-a", address(served), "2026-11-29T00:00:00Z")
    assert result.passed, result
    assert result.status_code == 200 and result.pod == "pod-a" and result.revision == "rev1"
    assert json.loads(result.response)["outputs"][0]["name"] in ("OUTPUT", "BATCH_SIZE")


def test_a_wrong_value_fails_with_the_response(served: ControlledModel) -> None:
    spec = make_spec(OK, output="OUTPUT", equals="[1.5, 1.5, 1.5, 1.5]")
    result = run_smoke_test(spec, "rev1", "pod-a", address(served), "t")
    assert not result.passed
    assert "!= expected [1.5, 1.5, 1.5, 1.5]" in result.message and "[3.0, 3.0, 3.0, 3.0]" in result.message


def test_a_model_that_raises_fails_the_smoke_test(served: ControlledModel) -> None:
    result = run_smoke_test(make_spec(RAISE), "rev1", "pod-a", address(served), "t")
    assert not result.passed and result.status_code is not None and result.status_code >= 400
    assert "expected 200" in result.message and "error" in result.response


def test_an_unknown_model_fails_at_the_model_ready_check(served: ControlledModel) -> None:
    spec = make_spec(OK)
    spec = spec.model_copy(update={"model": spec.model.model_copy(update={"name": "absent"})})
    result = run_smoke_test(spec, "rev1", "pod-a", address(served), "t")
    assert not result.passed and result.message.startswith("model ready: GET /v2/models/absent/ready")


def test_nothing_listening_fails_clearly(tmp_path: Path) -> None:
    result = run_smoke_test(make_spec(OK), "rev1", "pod-a", "127.0.0.1:9", "t")
    assert not result.passed and result.message.startswith("server ready: GET /v2/health/ready: ConnectError")
