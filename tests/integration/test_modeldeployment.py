"""ModelDeployment reconciliation against the real control plane, with the operator running under its
own ServiceAccount (least-privilege RBAC judged by the real authorizer).

Given a namespace enforcing the `restricted` Pod Security Standard, when a ModelDeployment is applied,
then the operator's children pass real admission, the real scheduler places the pods, and the
ModelDeployment reports what happened.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from modeldeploy_testing.cluster import Cluster, poll
from modeldeploy_testing.operator import OperatorProcess

pytestmark = pytest.mark.integration


def md_manifest(name: str, runtime: str = "triton", **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "runtime": runtime,
        "model": {
            "name": "fraud",
            "version": "7",
            "storageUri": "s3://models/fraud/7" if runtime == "triton" else "s3://models/fraud-7.mar",
            "runtimeConfig": {"maxBatchSize": 16, "dynamicBatching": {"maxQueueDelayMicroseconds": 200}},
        },
        "replicas": 2,
    }
    body.update(spec)
    return {
        "apiVersion": "modeldeploy.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": name},
        "spec": body,
    }


def get(cluster: Cluster, ns: str, kind: str, name: str) -> dict[str, Any]:
    return json.loads(cluster.kubectl("get", kind, name, "-n", ns, "-o", "json").stdout)


def exists(cluster: Cluster, ns: str, kind: str, name: str) -> bool:
    return cluster.kubectl("get", kind, name, "-n", ns, check=False).returncode == 0


def condition(md: dict[str, Any], type_: str) -> dict[str, Any] | None:
    for c in md.get("status", {}).get("conditions", []):
        if c["type"] == type_:
            return c
    return None


def wait_ready(cluster: Cluster, ns: str, name: str, timeout: float = 90) -> dict[str, Any]:
    def ready() -> dict[str, Any] | None:
        md = get(cluster, ns, "md", name)
        c = condition(md, "Ready")
        return md if c and c["status"] == "True" else None

    result: dict[str, Any] = poll(f"md/{name} Ready=True", ready, timeout=timeout)
    return result


def restricted(cluster: Cluster, ns: str) -> None:
    cluster.kubectl("label", "ns", ns, "pod-security.kubernetes.io/enforce=restricted", "--overwrite")


def stable_deployment(cluster: Cluster, ns: str, name: str) -> dict[str, Any]:
    md = get(cluster, ns, "md", name)
    return get(cluster, ns, "deployment", f"{name}-{md['status']['stableRevision']}")


def test_triton_gpu_and_torchserve_children_become_ready(
    cluster: Cluster, namespace: str, operator_log: OperatorProcess
) -> None:
    restricted(cluster, namespace)
    cluster.apply(
        [
            md_manifest(
                "triton-gpu",
                resources={
                    "gpu": {"count": 1, "product": "NVIDIA-H100-80GB-HBM3"},
                    "cpu": "2",
                    "memory": "8Gi",
                },
            ),
            md_manifest("ts-cpu", runtime="torchserve", replicas=1),
        ],
        namespace=namespace,
    )
    triton = wait_ready(cluster, namespace, "triton-gpu")
    torchserve = wait_ready(cluster, namespace, "ts-cpu")

    dep = stable_deployment(cluster, namespace, "triton-gpu")
    pod = dep["spec"]["template"]["spec"]
    server = next(c for c in pod["containers"] if c["name"] == "model-server")
    assert server["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert server["resources"]["requests"]["nvidia.com/gpu"] == "1"
    assert {"port": 8000, "path": "/v2/health/ready"}.items() <= server["readinessProbe"]["httpGet"].items()
    assert any(t.get("key") == "nvidia.com/gpu" for t in pod["tolerations"])
    terms = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
        "nodeSelectorTerms"
    ]
    assert terms[0]["matchExpressions"][0]["values"] == ["NVIDIA-H100-80GB-HBM3"]
    assert any(v.get("emptyDir", {}).get("medium") == "Memory" for v in pod["volumes"])  # /dev/shm
    owner = dep["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["controller"]) == ("ModelDeployment", "triton-gpu", True)
    rev = triton["status"]["stableRevision"]
    assert dep["metadata"]["labels"]["modeldeploy.dev/revision"] == rev

    config = get(cluster, namespace, "configmap", f"triton-gpu-{rev}-config")
    pbtxt = config["data"]["config.pbtxt"]
    assert "max_batch_size: 16" in pbtxt and "max_queue_delay_microseconds: 200" in pbtxt
    assert "KIND_GPU" in pbtxt
    ts_rev = torchserve["status"]["stableRevision"]
    props = get(cluster, namespace, "configmap", f"ts-cpu-{ts_rev}-config")["data"]["config.properties"]
    assert "metrics_mode=prometheus" in props
    assert exists(cluster, namespace, "service", "triton-gpu") and exists(
        cluster, namespace, "service", "ts-cpu"
    )

    # The real scheduler put every GPU pod on a node of the requested product.
    pods = json.loads(
        cluster.kubectl(
            "get", "pods", "-n", namespace, "-l", "modeldeploy.dev/deployment=triton-gpu", "-o", "json"
        ).stdout
    )["items"]
    assert len(pods) == 2
    assert {p["spec"]["nodeName"] for p in pods} == {"gpu-h100-0"}
    assert all(p["status"]["phase"] == "Running" for p in pods)

    table = cluster.kubectl("get", "md", "-n", namespace).stdout
    header = table.splitlines()[0].split()
    assert header == ["NAME", "RUNTIME", "VERSION", "READY", "PHASE", "STABLE", "WEIGHT", "AGE"]
    row = next(line.split() for line in table.splitlines() if line.startswith("triton-gpu"))
    assert row[1:6] == ["triton", "7", "2/2", "Healthy", rev]


def test_impossible_gpu_request_is_degraded_with_the_schedulers_reason(
    cluster: Cluster, namespace: str, operator_log: OperatorProcess
) -> None:
    cluster.apply(md_manifest("too-big", replicas=1, resources={"gpu": {"count": 8}}), namespace=namespace)

    def degraded() -> dict[str, Any] | None:
        c = condition(get(cluster, namespace, "md", "too-big"), "Degraded")
        return c if c and c["status"] == "True" else None

    c = poll("Degraded=True", degraded, timeout=90)
    assert c["reason"] == "Unschedulable"
    assert "Insufficient nvidia.com/gpu" in c["message"]
    assert get(cluster, namespace, "md", "too-big")["status"]["phase"] == "Degraded"


def test_kubectl_scale_and_hpa_use_the_scale_subresource(
    cluster: Cluster, namespace: str, operator_log: OperatorProcess
) -> None:
    cluster.apply(md_manifest("scaled", replicas=1), namespace=namespace)
    wait_ready(cluster, namespace, "scaled")
    cluster.kubectl("scale", "md/scaled", "--replicas=5", "-n", namespace)
    poll(
        "5 ready",
        lambda: get(cluster, namespace, "md", "scaled")["status"].get("readyReplicas") == 5,
        timeout=90,
    )
    assert stable_deployment(cluster, namespace, "scaled")["spec"]["replicas"] == 5
    # kubectl reads the scale subresource back
    scale = json.loads(
        cluster.kubectl(
            "get",
            "--raw",
            f"/apis/modeldeploy.dev/v1alpha1/namespaces/{namespace}/modeldeployments/scaled/scale",
        ).stdout
    )
    assert scale["spec"]["replicas"] == 5 and scale["status"]["replicas"] == 5
    assert "modeldeploy.dev/deployment=scaled" in scale["status"]["selector"]

    # An HPA (created by the operator from spec.autoscaling) owns spec.replicas from here on: below
    # its minReplicas, the HPA controller raises the ModelDeployment through the scale subresource.
    cluster.kubectl(
        "patch",
        "md/scaled",
        "-n",
        namespace,
        "--type=merge",
        "-p",
        json.dumps({"spec": {"autoscaling": {"minReplicas": 7, "maxReplicas": 8}}}),
    )
    poll("HPA exists", lambda: exists(cluster, namespace, "hpa", "scaled"), timeout=60)
    ref = get(cluster, namespace, "hpa", "scaled")["spec"]["scaleTargetRef"]
    assert ref == {"apiVersion": "modeldeploy.dev/v1alpha1", "kind": "ModelDeployment", "name": "scaled"}
    poll(
        "HPA scaled the ModelDeployment to 7",
        lambda: get(cluster, namespace, "md", "scaled")["spec"]["replicas"] == 7,
        timeout=120,
    )
    poll(
        "7 ready",
        lambda: get(cluster, namespace, "md", "scaled")["status"].get("readyReplicas") == 7,
        timeout=90,
    )
    assert stable_deployment(cluster, namespace, "scaled")["spec"]["replicas"] == 7


def test_drift_is_repaired(cluster: Cluster, namespace: str, operator_log: OperatorProcess) -> None:
    cluster.apply(md_manifest("drift", replicas=1), namespace=namespace)
    wait_ready(cluster, namespace, "drift")
    dep = stable_deployment(cluster, namespace, "drift")
    name = dep["metadata"]["name"]
    image = dep["spec"]["template"]["spec"]["containers"][0]["image"]

    cluster.kubectl("set", "image", f"deployment/{name}", "model-server=evil/image:1", "-n", namespace)
    poll(
        "image restored",
        lambda: (
            get(cluster, namespace, "deployment", name)["spec"]["template"]["spec"]["containers"][0]["image"]
            == image
        ),
        timeout=60,
    )
    uid = get(cluster, namespace, "service", "drift")["metadata"]["uid"]
    cluster.kubectl("delete", "service", "drift", "-n", namespace)
    poll(
        "service recreated",
        lambda: (
            exists(cluster, namespace, "service", "drift")
            and get(cluster, namespace, "service", "drift")["metadata"]["uid"] != uid
        ),
        timeout=60,
    )


def test_steady_state_makes_zero_writes(
    cluster: Cluster, namespace: str, operator_log: OperatorProcess
) -> None:
    if cluster.audit_log is None:
        pytest.skip("needs the local control plane's audit log")
    cluster.apply(
        md_manifest("idle", replicas=2, autoscaling={"minReplicas": 2, "maxReplicas": 4}), namespace=namespace
    )
    wait_ready(cluster, namespace, "idle")
    time.sleep(3)  # let the last status write land
    start = cluster.audit_log.stat().st_size
    before = operator_log.metric("modeldeploy_reconciles_total")
    time.sleep(60)
    writes = operator_log.writes(namespace, start)
    assert writes == [], [w["requestURI"] for w in writes]
    # ... while it kept reconciling (resync every 5 s): the zero is not from an idle operator.
    assert operator_log.metric("modeldeploy_reconciles_total") - before >= 10


def test_delete_removes_every_child_and_leaves_no_finalizer(
    cluster: Cluster, namespace: str, operator_log: OperatorProcess
) -> None:
    cluster.apply(
        md_manifest("gone", replicas=1, autoscaling={"minReplicas": 1, "maxReplicas": 2}), namespace=namespace
    )
    md = wait_ready(cluster, namespace, "gone")
    assert not md["metadata"].get("finalizers")
    assert exists(cluster, namespace, "hpa", "gone")
    cluster.kubectl("delete", "md", "gone", "-n", namespace, "--wait=true", "--timeout=30s")

    def children() -> list[str]:
        out = cluster.kubectl(
            "get",
            "deploy,svc,cm,hpa,pods",
            "-n",
            namespace,
            "-l",
            "modeldeploy.dev/deployment=gone",
            "-o",
            "name",
        ).stdout
        return out.split()

    poll("children garbage-collected", lambda: children() == [], timeout=90)


def test_operator_service_account_cannot_touch_secrets(
    cluster: Cluster, operator_log: OperatorProcess
) -> None:
    """A missing credentials Secret is read from the pod's status (see e2e/tests/test_real_serving.py),
    so the operator needs no verb on Secrets: the real authorizer says no to every one."""
    who = "system:serviceaccount:modeldeploy-system:modeldeploy-operator"
    for verb in ("get", "list", "watch"):
        out = cluster.kubectl("auth", "can-i", verb, "secrets", "-A", f"--as={who}", check=False)
        assert out.stdout.strip() == "no", (verb, out.stdout, out.stderr)
    # the same question for something it does use, so the check itself can say yes
    assert cluster.kubectl("auth", "can-i", "list", "pods", "-A", f"--as={who}").stdout.strip() == "yes"


def test_policy_violation_blocks_the_new_revision_but_keeps_serving(
    cluster: Cluster, namespace: str, operator_log: OperatorProcess
) -> None:
    policy = f"gpu-limit-{namespace}"
    cluster.apply(
        {
            "apiVersion": "modeldeploy.dev/v1alpha1",
            "kind": "ClusterRolloutPolicy",
            "metadata": {"name": policy},
            "spec": {"limits": {"maxGPUsPerReplica": 1, "allowedRuntimes": ["triton"]}},
        }
    )
    try:
        ref = {"policyRef": {"kind": "ClusterRolloutPolicy", "name": policy}}
        cluster.apply(
            md_manifest("governed", replicas=1, resources={"gpu": {"count": 1}}, rollout=ref),
            namespace=namespace,
        )
        stable = wait_ready(cluster, namespace, "governed")["status"]["stableRevision"]
        cluster.kubectl(
            "patch",
            "md/governed",
            "-n",
            namespace,
            "--type=merge",
            "-p",
            json.dumps({"spec": {"resources": {"gpu": {"count": 2}}}}),
        )

        def violated() -> dict[str, Any] | None:
            c = condition(get(cluster, namespace, "md", "governed"), "Degraded")
            return c if c and c["reason"] == "PolicyViolation" else None

        c = poll("PolicyViolation", violated, timeout=60)
        assert f"ClusterRolloutPolicy/{policy}" in c["message"]
        assert "spec.resources.gpu.count 2 exceeds maxGPUsPerReplica 1" in c["message"]
        md = get(cluster, namespace, "md", "governed")
        assert md["status"]["stableRevision"] == stable and md["status"].get("canaryRevision") is None
        assert md["spec"]["resources"]["gpu"]["count"] == 2  # the user's spec is never edited
        assert stable_deployment(cluster, namespace, "governed")["status"]["readyReplicas"] == 1
    finally:
        cluster.kubectl("delete", "clusterrolloutpolicy", policy, "--ignore-not-found")
