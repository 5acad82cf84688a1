"""Every permission the operator's RBAC grants is used, none is missing, and Secrets are out of reach.

The real operator runs under its ServiceAccount's own token (``OperatorProcess``) through a workload
that exercises every kind of call it makes: two ModelDeployments, one with an HPA and a canary on the
gatewayAPI router (an HTTPRoute the operator creates and re-weights) under a namespaced RolloutPolicy,
one under the ClusterRolloutPolicy its namespace label names; a canary promoted (the old revision
deleted) and autoscaling removed (the HPA deleted). The API server's audit log then says which
(apiGroup, resource, verb) that token used: every one granted by a rule of a ClusterRole or Role bound
to the ServiceAccount in manifests/ (manifests/base/rbac.yaml, leader-election-rbac.yaml, as the local
overlay renders them) must be among them (an unused grant is excess privilege: drop it from the rule),
and none may have been refused (403: a grant is missing). The operator runs with the flags of its
Deployment (e.g. --leader-elect, then on a Lease of its own), so the Lease permissions are exercised as
in a fresh cluster.

Needs the local control plane's audit policy that logs every request of the operator's ServiceAccounts,
reads included (e2e/localcluster/audit_policy.py); a cluster started before it is skipped with a message.
"""

from __future__ import annotations

import base64
import json
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from localcluster.audit_policy import OPERATOR_NAMESPACE
from modeldeploy_testing.cluster import REPO, Cluster, poll
from modeldeploy_testing.operator import (
    NAMESPACE,
    SERVICE_ACCOUNT,
    OperatorProcess,
    install_manifests,
    service_account_kubeconfig,
)
from modeldeploy_testing.plugin import _test_namespace

OVERLAY = REPO / "manifests" / "overlays" / "local"
OPERATOR_DEPLOYMENT = "modeldeploy-operator"
# Set by OperatorProcess for a process on the host; the Deployment's other flags are passed on.
OPERATOR_PROCESS_FLAGS = frozenset(
    {"--kubeconfig", "--prometheus-url", "--metrics-port", "--health-port", "--bind-address"}
    | {"--resync-seconds", "--log-format", "--namespace"}
)
API = "modeldeploy.dev/v1alpha1"
STEPS = [{"setWeight": 50}, {"pause": {"duration": "2s"}}]


@dataclass(frozen=True)
class Grant:
    """One (apiGroup, resource, verb) a rule allows; ``resource`` may be ``plural/subresource``."""

    group: str
    resource: str
    verb: str

    def __str__(self) -> str:
        return f"{self.verb} {self.resource}" + (f".{self.group}" if self.group else "")


def installed_manifests(cluster: Cluster) -> list[dict[str, Any]]:
    """The objects ``install_manifests`` applies: the local overlay, rendered."""
    out = cluster.kubectl("kustomize", str(OVERLAY)).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def operator_rules(docs: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """(where, rule) for every rule of every ClusterRole and Role bound to the operator's ServiceAccount."""

    def binds_operator(doc: dict[str, Any]) -> bool:
        return doc["kind"] in ("ClusterRoleBinding", "RoleBinding") and any(
            s.get("kind") == "ServiceAccount"
            and s.get("name") == SERVICE_ACCOUNT
            and s.get("namespace", doc["metadata"].get("namespace")) == NAMESPACE
            for s in doc.get("subjects") or []
        )

    bound = {(doc["roleRef"]["kind"], doc["roleRef"]["name"]) for doc in docs if binds_operator(doc)}
    found = []
    for doc in docs:
        if (doc["kind"], doc["metadata"].get("name")) in bound:
            for i, rule in enumerate(doc.get("rules") or []):
                found.append((f"{doc['kind']} {doc['metadata']['name']} rule {i}", rule))
    return found


def deployment_flags(docs: list[dict[str, Any]]) -> list[str]:
    """The operator Deployment's flags that OperatorProcess does not set itself (e.g. --leader-elect)."""
    deployment = next(
        d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == OPERATOR_DEPLOYMENT
    )
    args: list[str] = deployment["spec"]["template"]["spec"]["containers"][0].get("args") or []
    assert all(a.startswith("--") for a in args), f"flags must be written --name=value: {args}"
    return [a for a in args if a.split("=", 1)[0] not in OPERATOR_PROCESS_FLAGS]


def grants_of(rule: dict[str, Any]) -> list[Grant]:
    wildcards = [f for f in ("apiGroups", "resources", "verbs") if "*" in rule.get(f, [])]
    assert not wildcards, f"a wildcard in {wildcards} cannot be proved used: list what is needed ({rule})"
    assert not rule.get("nonResourceURLs"), f"nonResourceURLs are not checked here yet: {rule}"
    return [
        Grant(group, resource, verb)
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    ]


def used_grants(event: dict[str, Any]) -> set[Grant]:
    """What the authorizer checked for one audited request.

    A server-side apply that creates its object (201) is authorized as ``patch`` and ``create``."""
    ref = event.get("objectRef")
    if not ref or "resource" not in ref:
        return set()  # discovery and other non-resource URLs
    resource = ref["resource"] + (f"/{ref['subresource']}" if ref.get("subresource") else "")
    group = ref.get("apiGroup", "")
    verbs = {event["verb"]}
    if event["verb"] == "patch" and event.get("responseStatus", {}).get("code") == 201:
        verbs.add("create")
    return {Grant(group, resource, verb) for verb in verbs}


def token_id(kubeconfig: Path) -> str:
    """The credential id the API server logs for the kubeconfig's ServiceAccount token (its JWT ``jti``)."""
    token = yaml.safe_load(kubeconfig.read_text())["users"][0]["user"]["token"]
    payload = token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return f"JTI={claims['jti']}"


class AuditTrail:
    """Audit events of one ServiceAccount token from one offset of the local API server's audit log."""

    def __init__(self, audit_log: Path, user: str, credential: str) -> None:
        self.path = audit_log
        self.user = user
        self.credential = credential
        self.offset = audit_log.stat().st_size

    def events(self) -> list[dict[str, Any]]:
        assert self.path.stat().st_size >= self.offset, f"{self.path} was rotated during the test"
        found = []
        with self.path.open("rb") as f:
            f.seek(self.offset)
            for line in f:
                if not line.endswith(b"\n"):
                    break  # the API server is still writing it
                event = json.loads(line)
                user = event.get("user") or {}
                credential = (user.get("extra") or {}).get("authentication.kubernetes.io/credential-id", [])
                if user.get("username") == self.user and self.credential in credential:
                    found.append(event)
        return found


def model(name: str, version: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": "ModelDeployment",
        "metadata": {"name": name},
        "spec": {
            "runtime": "triton",
            "model": {"name": name, "version": version, "storageUri": f"s3://models/{name}/{version}"},
            "replicas": 1,
            **spec,
        },
    }


def md_status(cluster: Cluster, ns: str, name: str) -> dict[str, Any]:
    status: dict[str, Any] = (
        json.loads(cluster.kubectl("get", "md", name, "-n", ns, "-o", "json").stdout).get("status") or {}
    )
    return status


def exists(cluster: Cluster, ns: str, *what: str) -> bool:
    return cluster.kubectl("get", *what, "-n", ns, check=False).returncode == 0


def missing_grants(rules: Iterable[tuple[str, dict[str, Any]]], used: set[Grant]) -> list[str]:
    return [
        f"{where}: {grant} is granted but the operator never used it"
        for where, rule in rules
        for grant in grants_of(rule)
        if grant not in used
    ]


@pytest.fixture
def own_namespace(request: pytest.FixtureRequest, cluster: Cluster, api: Any) -> Iterator[str]:
    """A namespace outside the session operator's ``t-*``: only this test's operator reconciles it."""
    yield from _test_namespace(request, cluster, api, "rbac-")


@pytest.mark.unit
def test_a_request_uses_the_grants_the_authorizer_checks() -> None:
    def event(verb: str, code: int, **ref: str) -> dict[str, Any]:
        return {"verb": verb, "responseStatus": {"code": code}, "objectRef": ref}

    applied = event("patch", 201, apiGroup="apps", resource="deployments")
    assert used_grants(applied) == {
        Grant("apps", "deployments", "patch"),
        Grant("apps", "deployments", "create"),
    }
    assert used_grants(event("patch", 200, resource="services")) == {Grant("", "services", "patch")}
    status = event(
        "patch", 200, apiGroup="modeldeploy.dev", resource="modeldeployments", subresource="status"
    )
    assert used_grants(status) == {Grant("modeldeploy.dev", "modeldeployments/status", "patch")}
    assert used_grants({"verb": "get", "responseStatus": {"code": 200}}) == set()  # discovery


@pytest.mark.unit
def test_rules_of_roles_bound_to_the_operator_and_the_unused_grants_named() -> None:
    subject = {"kind": "ServiceAccount", "name": SERVICE_ACCOUNT, "namespace": NAMESPACE}

    def role(kind: str, name: str, resource: str) -> dict[str, Any]:
        rule = {"apiGroups": [""], "resources": [resource], "verbs": ["get", "list"]}
        return {"kind": kind, "metadata": {"name": name}, "rules": [rule]}

    def binding(kind: str, role_kind: str, name: str, subjects: list[dict[str, str]]) -> dict[str, Any]:
        meta = {"name": name, "namespace": NAMESPACE}
        return {
            "kind": kind,
            "metadata": meta,
            "roleRef": {"kind": role_kind, "name": name},
            "subjects": subjects,
        }

    other = {**subject, "name": "someone-else"}
    docs = [
        role("ClusterRole", "ours", "pods"),
        binding("ClusterRoleBinding", "ClusterRole", "ours", [subject]),
        role("Role", "lease", "configmaps"),
        binding("RoleBinding", "Role", "lease", [{"kind": "ServiceAccount", "name": SERVICE_ACCOUNT}]),
        role("ClusterRole", "theirs", "secrets"),
        binding("ClusterRoleBinding", "ClusterRole", "theirs", [other]),
    ]
    rules = operator_rules(docs)
    assert [where for where, _ in rules] == ["ClusterRole ours rule 0", "Role lease rule 0"]
    used = {Grant("", "pods", "get"), Grant("", "pods", "list"), Grant("", "configmaps", "list")}
    assert missing_grants(rules, used) == [
        "Role lease rule 0: get configmaps is granted but the operator never used it"
    ]


@pytest.mark.integration
def test_every_granted_permission_is_used_and_none_is_refused(
    cluster: Cluster, own_namespace: str, tmp_path: Path
) -> None:
    if cluster.audit_log is None:
        pytest.skip("needs the local control plane's audit log (bash e2e/cluster.sh up)")
    assert OPERATOR_NAMESPACE == NAMESPACE  # the audit policy logs the namespace the operator runs in
    ns = own_namespace
    manifests = installed_manifests(cluster)
    rules = operator_rules(manifests)
    assert rules, f"no ClusterRole or Role in {OVERLAY.relative_to(REPO)} is bound to the operator"
    install_manifests(cluster)
    flags = deployment_flags(manifests)
    lease = f"{ns}-leader"  # its own Lease: created on first start, as in a fresh cluster
    if "--leader-elect" in flags:
        flags.append(f"--leader-election-id={lease}")
    operator = OperatorProcess(cluster, tmp_path, extra_args=("--namespace", ns, *flags))
    trail = AuditTrail(cluster.audit_log, operator.user, token_id(operator.kubeconfig))

    # Does the running API server log this ServiceAccount's reads? (It reads its policy when it starts.)
    # Asked with a second token, so that the operator's own record holds only what the operator did.
    as_probe = replace(cluster, kubeconfig=service_account_kubeconfig(cluster, tmp_path / "probe.kubeconfig"))
    probe_trail = AuditTrail(cluster.audit_log, operator.user, token_id(as_probe.kubeconfig))
    assert json.loads(as_probe.kubectl("get", "--raw", "/version").stdout)["gitVersion"]
    deadline = time.monotonic() + 5
    while not any(e["requestURI"] == "/version" for e in probe_trail.events()):
        if time.monotonic() > deadline:
            pytest.skip(
                "the running API server's audit policy does not log the operator ServiceAccount's reads "
                "(the cluster was started before e2e/localcluster/audit_policy.py logged them): restart "
                "it with `bash e2e/cluster.sh down && bash e2e/cluster.sh up`"
            )
        time.sleep(0.2)

    cluster_policy = f"rbac-{ns}"
    cluster.apply(
        {"apiVersion": API, "kind": "ClusterRolloutPolicy", "metadata": {"name": cluster_policy}, "spec": {}}
    )
    try:
        operator.start()
        cluster.kubectl("label", "namespace", ns, f"modeldeploy.dev/rollout-policy={cluster_policy}")
        cluster.apply(
            {"apiVersion": API, "kind": "RolloutPolicy", "metadata": {"name": "lenient"}, "spec": {}},
            namespace=ns,
        )
        rollout = {
            "policyRef": {"kind": "RolloutPolicy", "name": "lenient"},
            "trafficRouting": {"gatewayAPI": {"httpRoute": "routed"}},
            "canary": {"steps": STEPS},
        }
        autoscaling = {"minReplicas": 1, "maxReplicas": 2}
        cluster.apply(
            [
                model("routed", "1", rollout=rollout, autoscaling=autoscaling),
                model("labelled", "1", replicas=0),
            ],
            namespace=ns,
        )
        first = poll(
            "routed: a stable revision",
            lambda: md_status(cluster, ns, "routed").get("stableRevision"),
            timeout=90,
        )
        poll(
            "labelled: evaluated under its namespace's ClusterRolloutPolicy",
            lambda: (md_status(cluster, ns, "labelled").get("policy") or {}).get("name") == cluster_policy,
            timeout=60,
        )
        poll(
            "the operator's HPA and HTTPRoute",
            lambda: exists(cluster, ns, "hpa", "routed") and exists(cluster, ns, "httproute", "routed"),
            timeout=60,
        )

        # A canary through the route to promotion: the route is re-weighted, the old revision deleted.
        cluster.apply(model("routed", "2", rollout=rollout, autoscaling=autoscaling), namespace=ns)
        second = poll(
            "routed: version 2 promoted",
            lambda: (s := md_status(cluster, ns, "routed").get("stableRevision")) != first and s,
            timeout=180,
        )
        poll(
            f"revision {first} deleted",
            lambda: not exists(cluster, ns, "deployment", f"routed-{first}"),
            timeout=120,
        )
        # Autoscaling removed: the operator deletes its HPA.
        cluster.apply(model("routed", "2", rollout=rollout), namespace=ns)
        poll("HPA deleted", lambda: not exists(cluster, ns, "hpa", "routed"), timeout=60)
        assert md_status(cluster, ns, "routed")["stableRevision"] == second
    finally:
        operator.stop()  # closes its watches, so their end is logged too
        cluster.kubectl("delete", "clusterrolloutpolicy", cluster_policy, "--ignore-not-found")
        cluster.kubectl("delete", "lease", lease, "-n", NAMESPACE, "--ignore-not-found")

    events = trail.events()
    refused = Counter(
        f"{e['verb']} {e['requestURI'].split('?')[0]}" for e in events if e["responseStatus"]["code"] == 403
    )
    assert not refused, "RBAC refused the operator (a grant is missing):\n  " + "\n  ".join(
        f"{call} ({n}x)" for call, n in sorted(refused.items())
    )
    # Secrets: no rule names them, and the real authorizer refuses the ServiceAccount every way of
    # reading them (asked with the probe's token: the operator's own record is judged above).
    assert not [where for where, rule in rules if "secrets" in rule.get("resources", [])]
    for verb, path in (
        ("get", f"/api/v1/namespaces/{ns}/secrets/any"),
        ("list", f"/api/v1/namespaces/{ns}/secrets"),
        ("list", "/api/v1/secrets"),
        ("watch", f"/api/v1/namespaces/{ns}/secrets?watch=1&timeoutSeconds=1"),
    ):
        r = as_probe.kubectl("get", "--raw", path, check=False)
        assert r.returncode != 0 and f'cannot {verb} resource "secrets"' in r.stderr, (
            path,
            r.stdout,
            r.stderr,
        )

    used = set().union(*(used_grants(e) for e in events))
    unused = missing_grants(rules, used)
    assert not unused, (
        "manifests/ grant the operator more than it uses; drop these from the roles (or make the "
        "workload of this test reach the code that needs them):\n  " + "\n  ".join(unused)
    )
