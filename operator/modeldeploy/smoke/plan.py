"""The HTTP exchanges of a smoke test, per runtime (pure).

Triton (KServe v2 protocol, what ``tritonclient.http`` sends): ``GET /v2/health/ready`` (server
ready), ``GET /v2/models/<model>/ready`` (model ready), then ``POST /v2/models/<model>/infer`` with
the spec's body. TorchServe: ``POST /predictions/<model>`` (the inference API; readiness is the
probe's job). Only the last exchange is judged against ``expect``; the others must answer 200.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

from modeldeploy.api.spec import ModelDeploymentSpec


@dataclass(frozen=True)
class Exchange:
    method: str
    path: str
    body: bytes | None = None
    content_type: str | None = None
    what: str = ""


def plan(spec: ModelDeploymentSpec) -> list[Exchange]:
    """The exchanges, in order; the last one is the inference the expectation judges."""
    test = spec.smoke_test
    if test is None:
        return []
    model = quote(spec.model.name, safe="")
    body = test.body.encode()
    if spec.runtime == "triton":
        return [
            Exchange("GET", "/v2/health/ready", what="server ready"),
            Exchange("GET", f"/v2/models/{model}/ready", what="model ready"),
            Exchange("POST", f"/v2/models/{model}/infer", body, test.content_type, "inference"),
        ]
    return [Exchange("POST", f"/predictions/{model}", body, test.content_type, "inference")]
