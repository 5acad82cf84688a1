"""Bad ModelDeployments are refused by the API server itself (OpenAPI schema and CEL rules from the
CRD generated out of the pydantic models), with a message that names the field."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from modeldeploy_testing.cluster import Cluster

pytestmark = pytest.mark.integration

GOOD: dict[str, Any] = {
    "apiVersion": "modeldeploy.dev/v1alpha1",
    "kind": "ModelDeployment",
    "metadata": {"name": "bad"},
    "spec": {
        "runtime": "triton",
        "model": {"name": "fraud", "version": "7", "storageUri": "s3://models/fraud/7"},
        "replicas": 1,
    },
}


def _set(body: dict[str, Any], path: str, value: Any) -> None:
    keys = path.split(".")
    node = body
    for key in keys[:-1]:
        node = node.setdefault(key, {})
    node[keys[-1]] = value


@pytest.fixture(scope="module")
def crds(cluster: Cluster) -> None:
    """The CRDs under test, applied from crds/ as committed."""
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-k", "crds/")
    cluster.kubectl("wait", "--for=condition=Established", "crd/modeldeployments.modeldeploy.dev")


MIB = 1024 * 1024


def _nested(depth: int) -> dict[str, Any]:
    node: dict[str, Any] = {}
    for _ in range(depth):
        node = {"x": node}
    return node


# (id, path, value, words the API server's message must contain)
CASES: list[tuple[str, str, Any, list[str]]] = [
    ("unknown runtime", "spec.runtime", "onnx", ["spec.runtime", "Unsupported value"]),
    ("negative replicas", "spec.replicas", -1, ["spec.replicas", "greater than or equal to 0"]),
    ("fractional gpu count", "spec.resources.gpu", {"count": 0.5}, ["spec.resources.gpu.count", "integer"]),
    ("zero gpus", "spec.resources.gpu", {"count": 0}, ["spec.resources.gpu.count"]),
    (
        "min above max replicas",
        "spec.autoscaling",
        {"minReplicas": 5, "maxReplicas": 2},
        ["spec.autoscaling", "minReplicas must be <= autoscaling.maxReplicas"],
    ),
    (
        "ftp storage",
        "spec.model.storageUri",
        "ftp://models/fraud",
        ["spec.model.storageUri", "unsupported scheme; use s3://bucket/path"],
    ),
    (
        "https without TLS",
        "spec.model.storageUri",
        "http://models.example/fraud.onnx",
        ["spec.model.storageUri", "plain http:// is refused (no TLS"],
    ),
    ("short sha256", "spec.model.sha256", "abc123", ["spec.model.sha256", "should match"]),
    ("uppercase sha256", "spec.model.sha256", "AB" * 32, ["spec.model.sha256"]),
    ("unknown archive", "spec.model.archive", "rar", ["spec.model.archive", "Unsupported value"]),
    (
        "smoke test body over 64 KiB",
        "spec.smokeTest",
        {"body": "x" * 65537},
        ["spec.smokeTest.body", "Too long", "65536"],
    ),
    (
        "torchserve model that is not a .mar",
        "spec",
        {"runtime": "torchserve", "model": {"name": "m", "version": "1", "storageUri": "s3://models/m/1"}},
        ["spec.model.storageUri", "must name a .mar file, or set model.archive"],
    ),
    (
        "torchserve smoke test with token auth on",
        "spec",
        {
            "runtime": "torchserve",
            "model": {"name": "m", "version": "1", "storageUri": "s3://models/m.mar"},
            "smokeTest": {"body": "{}"},
        },
        ["spec.smokeTest", "needs disableAuth: true"],
    ),
    (
        "progress deadline too short",
        "spec.rollout",
        {"progressDeadlineSeconds": 1},
        ["progressDeadlineSeconds"],
    ),
    ("dotdot model name", "spec.model.name", "../etc", ["spec.model.name"]),
    ("slash in version", "spec.model.version", "7/../../x", ["spec.model.version"]),
    ("unknown field", "spec.modle", {"name": "x"}, ['unknown field "spec.modle"']),
    (
        "mig and whole gpus",
        "spec.resources.gpu",
        {"count": 1, "migProfile": "1g.10gb"},
        ["spec.resources.gpu", "either gpu.count"],
    ),
    ("bad mig profile", "spec.resources.gpu", {"migProfile": "9g.999gb"}, ["spec.resources.gpu.migProfile"]),
    ("bad memory", "spec.resources.memory", "lots", ["spec.resources.memory"]),
    (
        "step with two actions",
        "spec.rollout",
        {"canary": {"steps": [{"setWeight": 10, "pause": {}}]}},
        ["spec.rollout.canary.steps[0]", "exactly one of setWeight"],
    ),
    ("weight above 100", "spec.rollout", {"canary": {"steps": [{"setWeight": 120}]}}, ["setWeight"]),
    ("bad duration", "spec.rollout", {"analysis": {"interval": "soon"}}, ["spec.rollout.analysis.interval"]),
    (
        "guardrail without threshold",
        "spec.rollout",
        {"analysis": {"guardrails": [{"name": "e", "template": "error-rate"}]}},
        ["a guardrail needs min, max"],
    ),
    (
        "guardrail with template and query",
        "spec.rollout",
        {"analysis": {"guardrails": [{"name": "e", "template": "error-rate", "query": "up", "max": 1}]}},
        ["exactly one of template, query"],
    ),
    (
        "duplicate guardrails",
        "spec.rollout",
        {"analysis": {"guardrails": [{"name": "e", "template": "error-rate", "max": 1}] * 2}},
        ["guardrail names must be unique"],
    ),
    ("unknown no-data policy", "spec.rollout", {"analysis": {"noDataPolicy": "ignore"}}, ["noDataPolicy"]),
    (
        "two traffic routers",
        "spec.rollout",
        {"trafficRouting": {"replicas": {}, "gatewayAPI": {"httpRoute": "r"}}},
        ["exactly one of replicas, gatewayAPI"],
    ),
    (
        "credentials with pvc",
        "spec.model",
        {"name": "m", "version": "1", "storageUri": "pvc://claim/m", "credentialsSecret": "s"},
        ["credentialsSecret does not apply to pvc://"],
    ),
    ("over-long name", "metadata.name", "m" * 41, ["at most 40 characters"]),
    # fault matrix row 9 (docs/faults.md): sizes are bounded by the schema, so no object can grow
    # without limit in etcd, in the operator's caches or in its status
    ("1 MiB smoke test body", "spec.smokeTest", {"body": "x" * MIB}, ["spec.smokeTest.body", "Too long"]),
    (
        "1 MiB storage URI",
        "spec.model.storageUri",
        "s3://models/" + "a" * MIB,
        ["spec.model.storageUri", "Too long"],
    ),
    ("1 MiB image", "spec.image", "registry.local/" + "a" * MIB, ["spec.image", "Too long"]),
    (
        "10,000 canary steps",
        "spec.rollout",
        {"canary": {"steps": [{"setWeight": 1}] * 10_000}},
        ["spec.rollout.canary.steps", "Too many", "at most 32 items"],
    ),
    (
        "10,000 guardrails",
        "spec.rollout",
        {"analysis": {"guardrails": [{"name": f"g{i}", "query": "up", "max": 1} for i in range(10_000)]}},
        ["spec.rollout.analysis.guardrails", "Too many", "at most 16 items"],
    ),
    (
        "1 MiB guardrail query",
        "spec.rollout",
        {"analysis": {"guardrails": [{"name": "q", "query": "up" + " " * MIB, "max": 1}]}},
        ["spec.rollout.analysis.guardrails[0].query", "Too long"],
    ),
    ("deep nesting", "spec.model.runtimeConfig", _nested(200), ['unknown field "spec.model.runtimeConfig.x']),
]


@pytest.mark.parametrize(("path", "value", "words"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_api_server_refuses_bad_input_naming_the_field(
    crds: None, cluster: Cluster, namespace: str, path: str, value: Any, words: list[str]
) -> None:
    body = copy.deepcopy(GOOD)
    _set(body, path, value)
    result = cluster.kubectl("create", "-n", namespace, "-f", "-", input=json.dumps(body), check=False)
    assert result.returncode != 0, f"accepted: {json.dumps(body)}"
    for word in words:
        assert word in result.stderr, f"{word!r} not in: {result.stderr}"
    assert "No resources found" in cluster.kubectl("get", "md", "-n", namespace).stderr


def test_the_good_manifest_is_accepted_and_explained(crds: None, cluster: Cluster, namespace: str) -> None:
    cluster.kubectl("create", "-n", namespace, "-f", "-", input=json.dumps(GOOD))
    md = json.loads(cluster.kubectl("get", "md", "bad", "-n", namespace, "-o", "json").stdout)
    assert md["spec"]["model"]["storageUri"] == "s3://models/fraud/7"
    explained = cluster.kubectl("explain", "modeldeployment.spec.model").stdout
    assert "single safe path segment" in explained  # the pydantic description of model.name
    assert "storageUri" in explained
