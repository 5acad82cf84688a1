"""Rollouts on pods that really serve: the generated pod spec runs, nothing stands in for it.

In a ``modeldeploy-real-*`` namespace kwok leaves pods alone; the pod runner (harness.pod_runner)
runs each one as the pod spec says: the storage initializer pulls the model from the local S3
server with the credentials of the Secret the pod references, then the real tritonserver (bundled by
nvidia-pytriton) serves it on CPU, Ready through the declared readinessProbe. Prometheus scrapes
Triton's own metrics; the load sends real v2 inference requests routed by the EndpointSlices; the
operator (its own process, watching these namespaces, with MODELDEPLOY_POD_ADDRESS_MAP pointing at
the runner's address map) decides on real metrics:

(a) the first version becomes Ready and serves; a good new version is canaried and promoted;
(b) a version whose ``execute`` raises on every third call is rolled back by itself;
(c) a version whose object is not in the bucket never becomes Ready and is aborted by the progress
    deadline, with the initializer's termination message in the ModelDeployment's condition.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import pytest

from harness import Load
from harness.pod_body import Backoff
from harness.pod_runner import ADDRESS_MAP_ENV, REAL_NAMESPACE_PREFIX, PodRunner
from harness.recorder import Recorder
from modeldeploy_testing.cluster import REPO, Cluster, Prometheus, poll
from modeldeploy_testing.operator import OperatorProcess, install_manifests
from modeldeploy_testing.triton import missing_prerequisite

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]
if (why := missing_prerequisite()) is not None:
    pytest.skip(f"the real tritonserver cannot run here: {why}", allow_module_level=True)

MODEL = REPO / "e2e" / "models" / "scorer" / "model.py"
BUCKET = "real-serving"
SECRET = "model-store"
NAME = "scorer"
FAIL_EVERY = 3  # the bad version raises in every third execute call: a third of its requests fail
# Long enough for a generated Triton pod to pull its model and load it on a busy 2-core machine
# (about 6 s when idle); short enough to keep the missing-object scenario quick.
DEADLINE_S = 45
ANALYSIS = {
    "interval": "3s",
    "window": "20s",
    "failureLimit": 2,
    "inconclusiveLimit": 10,
    "consecutiveErrorLimit": 3,
    "minSampleSize": 10,
    "guardrails": [{"name": "error-rate", "template": "error-rate", "max": 0.05}],
}
STEPS = [{"setWeight": 50}, {"analysis": {"duration": "9s"}}]
SMOKE_REQUEST = {"inputs": [{"name": "INPUT", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]}]}


def manifest(version: str, storage_uri: str, smoke_test: bool = True, secret: str = SECRET) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": "modeldeploy.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": NAME},
        "spec": {
            "runtime": "triton",
            "model": {
                "name": NAME,
                "version": version,
                "storageUri": storage_uri,
                "credentialsSecret": secret,
                "runtimeConfig": {
                    "platform": "python",
                    "maxBatchSize": 8,
                    "inputs": [{"name": "INPUT", "dataType": "TYPE_FP32", "dims": [4]}],
                    "outputs": [{"name": "OUTPUT", "dataType": "TYPE_FP32", "dims": [4]}],
                },
            },
            "replicas": 2,
            "resources": {"cpu": "500m", "memory": "1Gi"},  # no GPU: config.pbtxt says KIND_CPU
            "rollout": {
                "strategy": "canary",
                "progressDeadlineSeconds": DEADLINE_S,
                "canary": {"steps": STEPS},
                "analysis": ANALYSIS,
            },
        },
    }
    if smoke_test:  # sent through the runner's address map (MODELDEPLOY_POD_ADDRESS_MAP)
        body["spec"]["smokeTest"] = {
            "body": json.dumps(SMOKE_REQUEST),
            "expect": {"output": "OUTPUT", "shape": [1, 4], "min": 2, "max": 8},
        }
    return body


@pytest.fixture(scope="module")
def address_map(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("pod-addresses")


@pytest.fixture(scope="module")
def real_operator(
    cluster: Cluster, tmp_path_factory: pytest.TempPathFactory, address_map: Path
) -> Iterator[OperatorProcess]:
    """The operator for the real-bodies namespaces only (the session's operator watches ``t-*``)."""
    install_manifests(cluster)
    proc = OperatorProcess(
        cluster,
        tmp_path_factory.mktemp("real-operator"),
        extra_args=("--namespace", f"{REAL_NAMESPACE_PREFIX}*"),
    )
    with mock.patch.dict(os.environ, {ADDRESS_MAP_ENV: str(address_map)}):
        proc.start()
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def versions(s3_server: Any) -> dict[str, str]:
    """storageUri per version: 1 and 2 good, 3 bad, 4 missing (each a model directory with its
    version folder, as the initializer's Triton layout wants)."""
    s3_server.create_bucket(BUCKET)
    good = MODEL.read_bytes()
    bad = MODEL.read_text().replace("FAIL_EVERY = 0", f"FAIL_EVERY = {FAIL_EVERY}").encode()
    assert bad != good
    for version, body in (("1", good), ("2", good), ("3", bad)):
        s3_server.put_object(BUCKET, f"{NAME}/v{version}/{version}/model.py", body)
    return {v: f"s3://{BUCKET}/{NAME}/v{v}" for v in ("1", "2", "3", "4")}


class RealWorld:
    """One test's namespace: the S3 Secret, the pod runner, load and a recorder."""

    def __init__(
        self, cluster: Cluster, ns: str, api: Any, s3: Any, address_map: Path, op: OperatorProcess
    ) -> None:
        assert cluster.prometheus_targets_dir is not None
        self.cluster, self.ns, self.api, self.operator = cluster, ns, api, op
        self.s3 = s3
        self.create_secret(SECRET)
        self.runner = PodRunner(
            cluster.kubeconfig,
            cluster.prometheus_targets_dir,
            address_map,
            ns,
            backoff=Backoff(initial_s=1, max_s=5),
        ).start()
        self.loads: list[Load] = []
        self.recorder = Recorder(api, ns, NAME).start()

    def deploy(self, version: str, uri: str, smoke_test: bool = True, secret: str = SECRET) -> None:
        self.cluster.apply(manifest(version, uri, smoke_test, secret), namespace=self.ns)

    def create_secret(self, name: str) -> None:
        secret = self.s3.env()  # the AWS_* variables: endpoint, region, credentials
        self.cluster.apply(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": name},
                "data": {k: base64.b64encode(v.encode()).decode() for k, v in secret.items()},
            },
            namespace=self.ns,
        )

    def status(self) -> dict[str, Any]:
        body = json.loads(self.cluster.kubectl("get", "md", NAME, "-n", self.ns, "-o", "json").stdout)
        status: dict[str, Any] = body.get("status") or {}
        return status

    def stable(self, timeout: float = 180) -> str:
        def healthy() -> str | None:
            st = self.status()
            ok = st.get("phase") == "Healthy" and st.get("stableRevision") and not st.get("canaryRevision")
            return st["stableRevision"] if ok else None

        rev: str = poll(f"{NAME} Healthy", healthy, timeout=timeout)
        return rev

    def canary(self, timeout: float = 60) -> str:
        rev: str = poll(f"{NAME} canary", lambda: self.status().get("canaryRevision"), timeout=timeout)
        return rev

    def load(self, rps: float = 10) -> Load:
        load = Load(self.runner, self.ns, NAME, rps=rps).start()
        self.loads.append(load)
        return load

    def close(self) -> None:
        self.recorder.stop()
        for load in self.loads:
            load.stop()
        self.runner.stop()


@pytest.fixture
def world(
    cluster: Cluster,
    real_namespace: str,
    api: Any,
    prometheus: Prometheus,
    s3_server: Any,
    address_map: Path,
    real_operator: OperatorProcess,
    versions: dict[str, str],
) -> Iterator[RealWorld]:
    offset = real_operator.log_offset()
    w = RealWorld(cluster, real_namespace, api, s3_server, address_map, real_operator)
    try:
        yield w
    finally:
        w.close()
    refused = real_operator.forbidden_since(offset)
    assert not refused, "the operator's ServiceAccount was refused API calls:\n" + "\n".join(refused[:5])


def first_version_serves(world: RealWorld, versions: dict[str, str]) -> tuple[str, Load]:
    """(a, first half) Version 1 becomes stable on the real tritonserver and answers the load."""
    world.deploy("1", versions["1"])
    stable = world.stable()
    pods = world.runner.wait_running(world.ns, NAME, count=2, timeout=60)
    assert {p.revision for p in pods} == {stable}
    load = world.load()
    window = load.wait_for_requests(20, timeout=60)
    assert window.by_revision[stable].ok == window.total, window.summary()
    return stable, load


def test_a_good_version_is_canaried_and_promoted_on_real_metrics(
    world: RealWorld, versions: dict[str, str], prometheus: Prometheus
) -> None:
    stable, load = first_version_serves(world, versions)
    before = load.traffic()
    world.deploy("2", versions["2"])
    canary = world.canary()
    assert canary != stable
    smoke = poll(
        "the canary's smoke test answer",
        lambda: (
            ((world.status().get("rollout") or {}).get("smokeTest") or {}).get("revision") == canary
            and world.status()["rollout"]["smokeTest"]
        ),
        timeout=120,
    )
    assert smoke["passed"] is True and '"OUTPUT"' in smoke["response"], smoke
    assert world.stable(timeout=240) == canary
    window = load.traffic() - before
    assert window.by_revision[canary].ok > 0, window.summary()
    assert window.by_revision[canary].error == 0, window.summary()
    # the verdicts came from Triton's own counters, scraped from the canary's real metrics port
    served = prometheus.query(
        f'sum(nv_inference_request_success{{namespace="{world.ns}",revision="{canary}",model="{NAME}"}})'
    )
    assert served and float(served[0]["value"][1]) > 0
    measured = [
        m for m in world.recorder.measurements if m["revision"] == canary and m["guardrail"] == "error-rate"
    ]
    assert any(
        m["verdict"] == "Successful" and m["value"] == 0 and (m.get("samples") or 0) > 0 for m in measured
    )
    assert all(m["verdict"] != "Failed" for m in measured), measured
    world.recorder.wait_for_reasons("RolloutPromoted")


def test_a_bad_version_is_rolled_back_by_itself(world: RealWorld, versions: dict[str, str]) -> None:
    stable, load = first_version_serves(world, versions)
    before = load.traffic()
    # No smoke test here: with the replicas router a Ready canary pod is behind the Service at once,
    # so the load's requests may reach it first and the smoke request could be the failing third
    # call. The rollback must come from the error-rate guardrail on Triton's metrics.
    world.deploy("3", versions["3"], smoke_test=False)
    canary = world.canary()

    def rolled_back() -> bool:
        st = world.status()
        return st.get("phase") == "RolledBack" and st.get("canaryWeight") == 0

    poll("rolled back", rolled_back, timeout=180, interval=0.5)
    st = world.status()
    assert st["stableRevision"] == stable
    window = load.traffic() - before
    # the canary's failures are the model's own exceptions, answered by the real server
    assert window.by_revision[canary].error > 0, window.summary()
    failed = [m for m in world.recorder.measurements if m["verdict"] == "Failed"]
    assert failed and failed[-1]["guardrail"] == "error-rate" and failed[-1]["revision"] == canary
    assert failed[-1]["value"] > ANALYSIS["guardrails"][0]["max"]  # type: ignore[index]
    world.recorder.wait_for_reasons("RolledBack")
    poll("back on two stable pods", lambda: len(world.runner.running(world.ns, NAME)) == 2, timeout=60)


def test_a_missing_object_is_aborted_by_the_progress_deadline_with_the_initializers_message(
    world: RealWorld, versions: dict[str, str]
) -> None:
    stable, load = first_version_serves(world, versions)
    world.deploy("4", versions["4"])
    canary = world.canary()

    def aborted() -> dict[str, Any] | None:
        st = world.status()
        return st if st.get("phase") == "RolledBack" and (st.get("rollout") or {}).get("aborted") else None

    st = poll("aborted by the progress deadline", aborted, timeout=DEADLINE_S + 120, interval=0.5)
    assert st["stableRevision"] == stable
    # the initializer's termination message (naming the missing object) reached the condition
    missing = versions["4"]  # named only by the initializer's message ("not found: <uri> does not exist")
    messages = [c.get("message") or "" for c in st.get("conditions") or []]
    assert any(missing in m and "progressDeadlineSeconds" in m for m in messages), json.dumps(
        st.get("conditions"), indent=1
    )
    world.recorder.wait_for_reasons("ProgressDeadlineExceeded")
    # no canary pod ever became Ready; the stable ones kept serving
    assert all(p.revision == stable for p in world.runner.running(world.ns, NAME))
    window = load.wait_for_requests(10, since=load.traffic(), timeout=60)
    assert set(window.by_revision) == {stable} and window.by_revision[stable].ok == window.total
    assert canary not in {m["revision"] for m in world.recorder.measurements if m["verdict"] == "Successful"}


def test_a_missing_credentials_secret_is_reported_from_the_pod_and_stable_keeps_serving(
    world: RealWorld, versions: dict[str, str]
) -> None:
    """The operator has no access to Secrets: it learns of a missing one from the pod's status
    (the kubelet's CreateContainerConfigError), reports it, and carries on once it exists."""
    stable, load = first_version_serves(world, versions)
    world.deploy("2", versions["2"], secret="model-store-v2")
    canary = world.canary()

    def reported() -> dict[str, Any] | None:
        for c in world.status().get("conditions") or []:
            if c.get("type") == "Degraded" and c.get("reason") == "CredentialsSecretMissing":
                return dict(c)
        return None

    before = load.traffic()
    condition = poll("CredentialsSecretMissing", reported, timeout=DEADLINE_S)
    assert "model-store-v2" in condition["message"] and "credentialsSecret" in condition["message"]
    st = world.status()
    assert st["stableRevision"] == stable and st["canaryWeight"] == 0
    window = load.wait_for_requests(10, since=before, timeout=60)
    assert window.by_revision[stable].ok == window.total, window.summary()
    # the Secret appears: the waiting pod starts and the rollout goes on to promotion by itself
    world.create_secret("model-store-v2")
    assert world.stable(timeout=240) == canary
    world.recorder.wait_for_reasons("RolloutPromoted")
