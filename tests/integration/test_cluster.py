"""The local control plane behaves like a real cluster (issue 3).

Everything here runs against the real kube-apiserver/controller-manager/scheduler started by
e2e/cluster.sh, with kwok simulating the nodes; nothing touches pod status by hand.
"""

from __future__ import annotations

import http.server
import json
import secrets
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from modeldeploy_testing.cluster import Cluster, Prometheus, poll

DATA = Path(__file__).parent / "data"
IMAGE = "modeldeploy-test/fake:1"  # never pulled: kwok runs no containers
GPU_TOLERATION = client.V1Toleration(key="nvidia.com/gpu", operator="Exists", effect="NoSchedule")


def pod(name: str, gpus: int = 0, **spec: Any) -> client.V1Pod:
    resources = (
        client.V1ResourceRequirements(
            limits={"nvidia.com/gpu": str(gpus)}, requests={"nvidia.com/gpu": str(gpus)}
        )
        if gpus
        else None
    )
    return client.V1Pod(
        metadata=client.V1ObjectMeta(name=name),
        spec=client.V1PodSpec(
            containers=[client.V1Container(name="main", image=IMAGE, resources=resources)],
            tolerations=[GPU_TOLERATION] if gpus else None,
            **spec,
        ),
    )


def error_message(e: ApiException) -> str:
    try:
        return str(json.loads(e.body or "{}").get("message", e.body))
    except (TypeError, ValueError):
        return str(e.body)


def condition(obj: Any, ctype: str) -> Any:
    return next((c for c in (obj.status.conditions or []) if c.type == ctype), None)


def test_deployment_pods_become_running_and_ready(api: Any, namespace: str) -> None:
    apps: Any = client.AppsV1Api(api)
    core: Any = client.CoreV1Api(api)
    labels = {"app": "web"}
    apps.create_namespaced_deployment(
        namespace,
        client.V1Deployment(
            metadata=client.V1ObjectMeta(name="web"),
            spec=client.V1DeploymentSpec(
                replicas=3,
                selector=client.V1LabelSelector(match_labels=labels),
                template=client.V1PodTemplateSpec(
                    metadata=client.V1ObjectMeta(labels=labels),
                    spec=client.V1PodSpec(containers=[client.V1Container(name="main", image=IMAGE)]),
                ),
            ),
        ),
    )

    def ready_pods() -> list[Any]:
        pods = core.list_namespaced_pod(namespace, label_selector="app=web").items
        ok = [
            p
            for p in pods
            if p.status.phase == "Running"
            and condition(p, "Ready") is not None
            and condition(p, "Ready").status == "True"
            and p.status.pod_ip
            and p.spec.node_name
        ]
        return ok if len(ok) == 3 else []

    pods = poll("3 Running+Ready pods", ready_pods, timeout=90)
    rs = apps.list_namespaced_replica_set(namespace).items
    assert len(rs) == 1 and rs[0].metadata.owner_references[0].name == "web"
    for p in pods:
        assert p.metadata.owner_references[0].kind == "ReplicaSet"
        assert p.metadata.owner_references[0].name == rs[0].metadata.name
        assert p.spec.node_name == "cpu-0"  # the GPU nodes are tainted
    assert len({p.status.pod_ip for p in pods}) == 3
    # The deployment controller saw the readiness kwok reported.
    poll(
        "deployment readyReplicas == 3",
        lambda: apps.read_namespaced_deployment("web", namespace).status.ready_replicas == 3,
        timeout=60,
    )

    # Deleting the deployment removes its pods (garbage collector + kwok's pod-delete stage).
    apps.delete_namespaced_deployment("web", namespace, propagation_policy="Foreground")
    poll(
        "pods of the deleted deployment to disappear",
        lambda: not core.list_namespaced_pod(namespace, label_selector="app=web").items,
        timeout=90,
    )


def test_gpu_pods_are_scheduled_by_extended_resource(api: Any, namespace: str) -> None:
    core: Any = client.CoreV1Api(api)
    core.create_namespaced_pod(namespace, pod("one-gpu", gpus=1))
    core.create_namespaced_pod(namespace, pod("eight-gpus", gpus=8))

    placed = poll(
        "one-gpu pod to run",
        lambda: (p := core.read_namespaced_pod("one-gpu", namespace)).status.phase == "Running" and p,
        timeout=60,
    )
    assert placed.spec.node_name in ("gpu-a100-0", "gpu-h100-0")
    node = core.read_node(placed.spec.node_name)
    assert node.metadata.labels["nvidia.com/gpu.present"] == "true"

    def unschedulable() -> Any:
        p = core.read_namespaced_pod("eight-gpus", namespace)
        c = condition(p, "PodScheduled")
        return c is not None and c.status == "False" and c

    cond = poll("eight-gpus to be marked unschedulable", unschedulable, timeout=60)
    assert cond.reason == "Unschedulable"
    assert "Insufficient nvidia.com/gpu" in cond.message
    pending = core.read_namespaced_pod("eight-gpus", namespace)
    assert pending.status.phase == "Pending" and not pending.spec.node_name


def test_crd_schema_and_cel_validation(cluster: Cluster, api: Any, namespace: str) -> None:
    cluster.apply(DATA / "widgets-crd.yaml")
    ext: Any = client.ApiextensionsV1Api(api)

    def established() -> bool:
        crd = ext.read_custom_resource_definition("widgets.testing.modeldeploy.dev")
        return any(c.type == "Established" and c.status == "True" for c in crd.status.conditions or [])

    poll("CRD Established", established, timeout=60)
    co: Any = client.CustomObjectsApi(api)

    def widget(name: str, **spec: Any) -> dict[str, Any]:
        return {
            "apiVersion": "testing.modeldeploy.dev/v1alpha1",
            "kind": "Widget",
            "metadata": {"name": name},
            "spec": spec,
        }

    def create(body: dict[str, Any]) -> Any:
        return co.create_namespaced_custom_object(
            "testing.modeldeploy.dev", "v1alpha1", namespace, "widgets", body
        )

    created = create(widget("good", size=3, minReplicas=1, maxReplicas=2))
    assert created["spec"]["size"] == 3

    with pytest.raises(ApiException) as schema_err:
        create(widget("too-big", size=20))
    assert schema_err.value.status == 422
    msg = error_message(schema_err.value)
    assert "spec.size" in msg and "less than or equal to 10" in msg, msg

    with pytest.raises(ApiException) as cel_err:
        create(widget("inverted", size=1, minReplicas=5, maxReplicas=2))
    assert cel_err.value.status == 422
    assert "minReplicas must not exceed maxReplicas" in error_message(cel_err.value)


def test_validating_admission_policy_denies(cluster: Cluster, api: Any, namespace: str) -> None:
    name = f"deny-{namespace}"[:63]
    policy = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": name},
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": {
                "resourceRules": [
                    {
                        "apiGroups": [""],
                        "apiVersions": ["v1"],
                        "operations": ["CREATE", "UPDATE"],
                        "resources": ["configmaps"],
                    }
                ]
            },
            "validations": [
                {
                    "expression": "object.metadata.name == 'kube-root-ca.crt'"
                    " || object.metadata.name.startsWith('allowed-')",
                    "message": "configmap names must start with allowed-",
                }
            ],
        },
    }
    binding = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": name},
        "spec": {
            "policyName": name,
            "validationActions": ["Deny"],
            "matchResources": {
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}}
            },
        },
    }
    core: Any = client.CoreV1Api(api)
    cluster.apply([policy, binding])
    try:

        def denied() -> str:
            cm = client.V1ConfigMap(metadata=client.V1ObjectMeta(name=f"bad-{secrets.token_hex(3)}"))
            try:
                core.create_namespaced_config_map(namespace, cm)
            except ApiException as e:
                return error_message(e) if e.status in (403, 422) else ""
            return ""  # the policy is not active yet (it is compiled asynchronously)

        msg = poll("the ValidatingAdmissionPolicy to deny", denied, timeout=60)
        assert "configmap names must start with allowed-" in msg
        assert name in msg  # "ValidatingAdmissionPolicy '<name>' with binding '<name>' denied request"
        core.create_namespaced_config_map(
            namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="allowed-1"))
        )
    finally:
        cluster.kubectl(
            "delete", "validatingadmissionpolicybinding,validatingadmissionpolicy", name, "--ignore-not-found"
        )


def test_service_account_token_rbac(api: Any, namespace: str) -> None:
    core: Any = client.CoreV1Api(api)
    rbac: Any = client.RbacAuthorizationV1Api(api)
    core.create_namespaced_service_account(
        namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="ro"))
    )
    rbac.create_namespaced_role(
        namespace,
        client.V1Role(
            metadata=client.V1ObjectMeta(name="pod-reader"),
            rules=[client.V1PolicyRule(api_groups=[""], resources=["pods"], verbs=["get", "list"])],
        ),
    )
    rbac.create_namespaced_role_binding(
        namespace,
        client.V1RoleBinding(
            metadata=client.V1ObjectMeta(name="ro-pod-reader"),
            role_ref=client.V1RoleRef(api_group="rbac.authorization.k8s.io", kind="Role", name="pod-reader"),
            subjects=[client.RbacV1Subject(kind="ServiceAccount", name="ro", namespace=namespace)],
        ),
    )
    core.create_namespaced_pod(namespace, pod("visible"))
    token = core.create_namespaced_service_account_token(
        "ro",
        namespace,
        client.AuthenticationV1TokenRequest(
            spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=600)
        ),
    ).status.token
    assert token.count(".") == 2  # a JWT

    cfg = client.Configuration()
    cfg.host = api.configuration.host
    cfg.ssl_ca_cert = api.configuration.ssl_ca_cert
    cfg.api_key = {"authorization": f"Bearer {token}"}
    with client.ApiClient(cfg) as as_sa:
        sa_core: Any = client.CoreV1Api(as_sa)
        names = [p.metadata.name for p in sa_core.list_namespaced_pod(namespace).items]
        assert names == ["visible"]
        with pytest.raises(ApiException) as denied:
            sa_core.create_namespaced_config_map(
                namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="x"))
            )
        assert denied.value.status == 403
        msg = error_message(denied.value)
        assert (
            f"system:serviceaccount:{namespace}:ro" in msg and 'cannot create resource "configmaps"' in msg
        ), msg
        with pytest.raises(ApiException) as other_ns:
            sa_core.list_namespaced_pod("default")
        assert other_ns.value.status == 403


def test_pod_security_admission_restricted(api: Any, namespace: str) -> None:
    core: Any = client.CoreV1Api(api)
    core.patch_namespace(
        namespace, {"metadata": {"labels": {"pod-security.kubernetes.io/enforce": "restricted"}}}
    )
    privileged: Any = pod("privileged")
    privileged.spec.containers[0].security_context = client.V1SecurityContext(privileged=True)
    with pytest.raises(ApiException) as err:
        core.create_namespaced_pod(namespace, privileged)
    assert err.value.status == 403
    msg = error_message(err.value)
    assert 'violates PodSecurity "restricted:latest"' in msg and "privileged" in msg, msg

    compliant: Any = pod("compliant")
    compliant.spec.security_context = client.V1PodSecurityContext(
        run_as_non_root=True, run_as_user=1000, seccomp_profile=client.V1SeccompProfile(type="RuntimeDefault")
    )
    compliant.spec.containers[0].security_context = client.V1SecurityContext(
        allow_privilege_escalation=False, capabilities=client.V1Capabilities(drop=["ALL"])
    )
    core.create_namespaced_pod(namespace, compliant)  # admitted: the namespace is not simply closed


class _Metrics(http.server.BaseHTTPRequestHandler):
    body = b""

    def do_GET(self) -> None:
        if self.path != "/metrics":
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def metrics_server() -> Iterator[tuple[str, str]]:
    """A stdlib HTTP server on 127.0.0.1 serving a made-up metric; yields (address, run id)."""
    run_id = secrets.token_hex(4)
    handler = type(
        "Handler",
        (_Metrics,),
        {"body": f'modeldeploy_test_requests_total{{code="200",run="{run_id}"}} 42\n'.encode()},
    )
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}", run_id
    finally:
        server.shutdown()
        server.server_close()


def test_prometheus_scrapes_registered_target(
    prometheus: Prometheus, metrics_server: tuple[str, str]
) -> None:
    assert prometheus.ready()
    address, run_id = metrics_server
    job = f"md-test-{run_id}"
    prometheus.add_target(job, address, {"job": job, "team": "modeldeploy-tests"})

    up = prometheus.wait_for(f'up{{job="{job}"}} == 1', timeout=60)
    assert up[0]["metric"]["instance"] == address
    series = prometheus.wait_for(f'modeldeploy_test_requests_total{{job="{job}"}}', timeout=30)
    assert len(series) == 1
    labels = series[0]["metric"]
    assert labels["run"] == run_id and labels["team"] == "modeldeploy-tests" and labels["code"] == "200"
    assert float(series[0]["value"][1]) == 42.0

    prometheus.remove_target(job)
    poll(
        "the removed target to leave Prometheus",
        lambda: not [t for t in prometheus.active_targets() if t["labels"].get("job") == job],
        timeout=30,
    )
    time.sleep(0)  # keep the server alive until here
