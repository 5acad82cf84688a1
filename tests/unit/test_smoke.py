"""spec.smokeTest: the exchanges per runtime and the judgement of the answer (pure parts)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from modeldeploy.api.smoke import SMOKE_BODY_LIMIT, SmokeExpectation, SmokeTest
from modeldeploy.api.spec import ModelDeploymentSpec
from modeldeploy.smoke.client import pod_address
from modeldeploy.smoke.judge import judge
from modeldeploy.smoke.plan import plan

pytestmark = pytest.mark.unit

BODY = '{"inputs": [{"name": "INPUT0", "shape": [1, 2], "datatype": "FP32", "data": [1, 2]}]}'
ANSWER = json.dumps(
    {"outputs": [{"name": "OUTPUT0", "shape": [1, 2], "datatype": "FP32", "data": [0.2, 0.8]}]}
)


def spec(runtime: str = "triton", **smoke: object) -> ModelDeploymentSpec:
    uri = "s3://bucket/m" if runtime == "triton" else "s3://bucket/m.mar"
    body = {
        "runtime": runtime,
        "model": {"name": "fraud", "version": "1", "storageUri": uri},
        "smokeTest": {"body": BODY, **smoke},
    }
    if runtime == "torchserve":
        body["disableAuth"] = True
    return ModelDeploymentSpec.model_validate(body)


def test_triton_checks_server_and_model_readiness_before_inferring() -> None:
    ex = plan(spec())
    assert [(e.method, e.path) for e in ex] == [
        ("GET", "/v2/health/ready"),
        ("GET", "/v2/models/fraud/ready"),
        ("POST", "/v2/models/fraud/infer"),
    ]
    assert ex[-1].body == BODY.encode() and ex[-1].content_type == "application/json"


def test_torchserve_posts_to_the_predictions_api() -> None:
    ex = plan(spec("torchserve"))
    assert [(e.method, e.path) for e in ex] == [("POST", "/predictions/fraud")]


def test_torchserve_smoke_test_needs_auth_off() -> None:
    with pytest.raises(ValidationError, match="disableAuth"):
        ModelDeploymentSpec.model_validate(
            {
                "runtime": "torchserve",
                "model": {"name": "m", "version": "1", "storageUri": "s3://bucket/m.mar"},
                "smokeTest": {"body": "{}"},
            }
        )


def expect(**rules: object) -> SmokeExpectation:
    return SmokeExpectation.model_validate(rules)


def test_a_triton_answer_is_judged_by_output_name_shape_and_range() -> None:
    ok = judge("triton", expect(output="OUTPUT0", shape=[1, 2], min=0, max=1), 200, ANSWER)
    assert ok.passed, ok.message
    assert judge("triton", expect(output="OUTPUT0", equals="[0.2, 0.8]"), 200, ANSWER).passed
    cases = {
        "HTTP 400, expected 200": (expect(), 400, ANSWER),
        "no output 'PROB'": (expect(output="PROB"), 200, ANSWER),
        "has shape [1, 2], expected [2]": (expect(output="OUTPUT0", shape=[2]), 200, ANSWER),
        "value 0.8 > max 0.5": (expect(output="OUTPUT0", max=0.5), 200, ANSWER),
        "value 0.2 < min 0.5": (expect(output="OUTPUT0", min=0.5), 200, ANSWER),
        "!= expected [1]": (expect(output="OUTPUT0", equals="[1]"), 200, ANSWER),
        "not JSON": (expect(output="OUTPUT0"), 200, "<html>"),
        "does not contain 'cat'": (expect(contains="cat"), 200, ANSWER),
    }
    for message, (rules, code, body) in cases.items():
        verdict = judge("triton", rules, code, body)
        assert not verdict.passed and message in verdict.message, (message, verdict.message)


def test_a_torchserve_answer_is_judged_as_json_or_text() -> None:
    assert judge("torchserve", expect(output="label", equals='"cat"'), 200, '{"label": "cat"}').passed
    assert judge("torchserve", expect(min=0, max=1), 200, "[0.1, 0.9]").passed
    assert not judge("torchserve", expect(min=0, max=1), 200, '"no numbers"').passed
    assert judge("torchserve", expect(contains="cat"), 200, "a cat").passed


def test_bad_smoke_tests_are_refused_with_a_clear_message() -> None:
    with pytest.raises(ValidationError, match="at most 65536"):
        SmokeTest(body="x" * (SMOKE_BODY_LIMIT + 1))
    with pytest.raises(ValidationError, match=r"smokeTest\.body is not JSON"):
        SmokeTest(body="{not json")
    with pytest.raises(ValidationError, match="min must be <= max"):
        SmokeExpectation(min=2, max=1)
    with pytest.raises(ValidationError, match="equals is not a JSON value"):
        SmokeExpectation(equals="cat")
    assert SmokeTest(body="raw bytes", content_type="application/octet-stream").body == "raw bytes"


def test_pod_address_from_the_pod_ip_or_only_from_the_map(tmp_path: Path) -> None:
    pod = {"metadata": {"namespace": "ns", "name": "p"}, "status": {"podIP": "10.1.2.3"}}
    assert pod_address(pod, 8000, None) == "10.1.2.3:8000"
    v6 = {"metadata": {}, "status": {"podIP": "fd00::1"}}
    assert pod_address(v6, 8000, None) == "[fd00::1]:8000"
    assert pod_address({"metadata": {}, "status": {}}, 8000, None) is None
    assert pod_address(pod, 8000, tmp_path) is None, "with a map, never the pod IP"
    (tmp_path / "ns.p.json").write_text(json.dumps({"8000": "127.0.0.1:41000"}))
    assert pod_address(pod, 8000, tmp_path) == "127.0.0.1:41000"
    assert pod_address(pod, 8080, tmp_path) is None
