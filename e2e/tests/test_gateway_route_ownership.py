"""The user owns the HTTPRoute; the operator owns only two weights in it.

A route kept in Git (two rules, header matches, a RequestHeaderModifier filter, a timeout, parentRefs)
is applied the way Argo CD syncs it (server-side apply, Argo CD's field manager). A whole canary
rollout then runs through it. Every state of the route seen during the rollout differs from Git only
in the weights of the managed rule's two backendRefs; at rest and after promotion the route is Git's
again, byte for byte (metadata bookkeeping aside), and Argo CD's server-side diff of the Git
manifest against the live object is empty.

Git values of the managed rule: ``<md>-stable`` weight 100 and ``<md>-canary`` weight 0.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from modeldeploy_testing.cluster import Cluster, poll
from modeldeploy_testing.operator import OperatorProcess

pytestmark = pytest.mark.e2e

ARGOCD_MANAGER = "argocd-controller"
STEPS = [{"setWeight": 20}, {"pause": {"duration": "4s"}}, {"setWeight": 60}, {"pause": {"duration": "4s"}}]
BOOKKEEPING = ("resourceVersion", "generation", "managedFields", "uid", "creationTimestamp")


def git_route(ns: str) -> dict[str, Any]:
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": "bert-route", "namespace": ns, "labels": {"app": "bert"}},
        "spec": {
            "parentRefs": [{"name": "public", "namespace": "gateways", "sectionName": "https"}],
            "hostnames": ["bert.example.test"],
            "rules": [
                {
                    "name": "serving",
                    "matches": [
                        {
                            "path": {"type": "PathPrefix", "value": "/v2"},
                            "headers": [{"name": "x-tenant", "value": "blue"}],
                        }
                    ],
                    "filters": [
                        {
                            "type": "RequestHeaderModifier",
                            "requestHeaderModifier": {"add": [{"name": "x-served-by", "value": "bert"}]},
                        }
                    ],
                    "timeouts": {"request": "30s"},
                    "backendRefs": [
                        {"name": "bert-stable", "port": 8000, "weight": 100},
                        {"name": "bert-canary", "port": 8000, "weight": 0},
                    ],
                },
                {
                    "name": "legacy",
                    "matches": [{"headers": [{"name": "x-legacy", "value": "1"}]}],
                    "backendRefs": [{"name": "bert-legacy", "port": 8000, "weight": 1}],
                },
            ],
        },
    }


def model(ns: str, version: str, steps: list[dict[str, Any]] = STEPS) -> dict[str, Any]:
    return {
        "apiVersion": "modeldeploy.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": "bert", "namespace": ns},
        "spec": {
            "runtime": "triton",
            "model": {"name": "bert", "version": version, "storageUri": f"s3://models/bert/{version}"},
            "replicas": 2,
            "rollout": {
                "trafficRouting": {"gatewayAPI": {"httpRoute": "bert-route", "ruleName": "serving"}},
                "canary": {"steps": steps},
            },
        },
    }


def live_route(cluster: Cluster, ns: str) -> dict[str, Any]:
    route: dict[str, Any] = json.loads(
        cluster.kubectl("get", "httproute", "bert-route", "-n", ns, "-o", "json").stdout
    )
    return route


def content(route: dict[str, Any]) -> dict[str, Any]:
    """The route without managedFields and the API server's bookkeeping (what Argo CD compares)."""
    meta = {k: v for k, v in route["metadata"].items() if k not in BOOKKEEPING}
    return {"apiVersion": route["apiVersion"], "kind": route["kind"], "metadata": meta, "spec": route["spec"]}


def differences(a: Any, b: Any, path: str = "") -> list[str]:
    """JSON-pointer paths where ``a`` and ``b`` differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [p for k in sorted(set(a) | set(b)) for p in differences(a.get(k), b.get(k), f"{path}/{k}")]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [
            p for i, (x, y) in enumerate(zip(a, b, strict=True)) for p in differences(x, y, f"{path}/{i}")
        ]
    return [] if a == b else [path]


WEIGHT_PATHS = {"/spec/rules/0/backendRefs/0/weight", "/spec/rules/0/backendRefs/1/weight"}


class RouteWatcher:
    """Reads the live route as fast as kubectl allows, keeping every distinct content seen."""

    def __init__(self, cluster: Cluster, ns: str) -> None:
        self.cluster, self.ns = cluster, ns
        self.seen: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            now = content(live_route(self.cluster, self.ns))
            if not self.seen or self.seen[-1] != now:
                self.seen.append(now)
            self._stop.wait(0.2)

    def __enter__(self) -> RouteWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


def stable_revision(cluster: Cluster, ns: str, replacing: str | None = None) -> str:
    """The stable revision once bert is Healthy (and no longer on ``replacing``)."""

    def healthy() -> str | None:
        md = json.loads(cluster.kubectl("get", "md", "bert", "-n", ns, "-o", "json").stdout)
        st = md.get("status") or {}
        ok = st.get("phase") == "Healthy" and st.get("stableRevision") and not st.get("canaryRevision")
        return str(st["stableRevision"]) if ok and st["stableRevision"] != replacing else None

    rev: str = poll("bert Healthy", healthy, timeout=180)
    return rev


def argocd_sync(cluster: Cluster, route: dict[str, Any]) -> None:
    """Argo CD's server-side apply sync (it forces conflicts: Git wins)."""
    cluster.kubectl(
        "apply",
        "--server-side",
        "--force-conflicts",
        f"--field-manager={ARGOCD_MANAGER}",
        "-f",
        "-",
        input=json.dumps(route),
    )


def argocd_diff(cluster: Cluster, route: dict[str, Any]) -> str:
    """Argo CD's server-side diff: Git's manifest dry-run applied by Argo CD's manager vs live."""
    out = cluster.kubectl(
        "diff",
        "--server-side",
        "--force-conflicts",
        f"--field-manager={ARGOCD_MANAGER}",
        "-f",
        "-",
        input=json.dumps(route),
        check=False,
    )
    assert out.returncode in (0, 1), out.stderr
    return out.stdout


@pytest.fixture
def crds(cluster: Cluster) -> Iterator[None]:
    if cluster.kubectl("get", "crd", "httproutes.gateway.networking.k8s.io", check=False).returncode != 0:
        pytest.fail(
            "the Gateway API CRDs are not installed in this cluster (e2e/cluster.sh up installs them)"
        )
    yield


def test_a_whole_rollout_changes_only_the_weights_of_a_users_route(
    cluster: Cluster, namespace: str, operator_log: OperatorProcess, crds: None
) -> None:
    ns = namespace
    git = git_route(ns)
    argocd_sync(cluster, git)
    synced = live_route(cluster, ns)

    cluster.apply(model(ns, "1"), namespace=ns)
    first = stable_revision(cluster, ns)
    at_rest = live_route(cluster, ns)
    # At rest the operator has not written to the route at all: same object, same version.
    assert at_rest["metadata"]["resourceVersion"] == synced["metadata"]["resourceVersion"]

    with RouteWatcher(cluster, ns) as watcher:
        cluster.apply(model(ns, "2"), namespace=ns)
        stable_revision(cluster, ns, replacing=first)

    before = content(synced)
    changed = {path for seen in watcher.seen for path in differences(before, seen)}
    assert changed == WEIGHT_PATHS, changed  # the weights moved, and nothing else ever did
    weights = [tuple(r["weight"] for r in s["spec"]["rules"][0]["backendRefs"]) for s in watcher.seen]
    assert (80, 20) in weights and (40, 60) in weights, weights
    assert all(a + b == 100 for a, b in weights), weights

    after = live_route(cluster, ns)
    assert content(after) == before  # the Git values again, byte for byte
    assert argocd_diff(cluster, git) == ""  # Argo CD sees the route in sync
    md = json.loads(cluster.kubectl("get", "md", "bert", "-n", ns, "-o", "json").stdout)
    assert md["status"]["canaryWeight"] == 0
    assert not [c for c in md["status"].get("conditions", []) if c["reason"] == "HTTPRouteNotManageable"]


def test_a_route_missing_the_canary_backend_is_a_clear_condition(
    cluster: Cluster, namespace: str, operator_log: OperatorProcess, crds: None
) -> None:
    ns = namespace
    git = git_route(ns)
    del git["spec"]["rules"][0]["backendRefs"][1]
    argocd_sync(cluster, git)
    synced = live_route(cluster, ns)
    cluster.apply(model(ns, "1"), namespace=ns)
    stable_revision(cluster, ns)  # at rest a stable-only rule is fine: the canary gets nothing
    cluster.apply(model(ns, "2", steps=[{"setWeight": 20}, {"pause": {}}]), namespace=ns)

    def reported() -> dict[str, Any] | None:
        md = json.loads(cluster.kubectl("get", "md", "bert", "-n", ns, "-o", "json").stdout)
        found = [
            c
            for c in (md.get("status") or {}).get("conditions", [])
            if c["reason"] == "HTTPRouteNotManageable"
        ]
        return found[0] if found else None

    c = poll("HTTPRouteNotManageable", reported, timeout=120)
    assert "HTTPRoute bert-route rule 0 has no backendRef to bert-canary" in c["message"]
    assert content(live_route(cluster, ns)) == content(synced)  # untouched


AB_AND_SHADOW_STEPS = [
    {"setMirror": {"percent": 50}},
    {"pause": {"duration": "4s"}},
    {
        "setMatch": {
            "matches": [
                {"headers": [{"name": "x-canary", "value": "1"}]},
                {"cookie": {"name": "c", "value": "b"}},
            ]
        }
    },
    {"pause": {"duration": "4s"}},
    {"setWeight": 20},
    {"pause": {"duration": "4s"}},
]
# what a shadow and an A/B step add: a filter on the managed rule, a rule at the end
TRAFFIC_PATHS = {"/spec/rules/0/filters", "/spec/rules"}


def test_ab_and_shadow_add_only_their_filter_and_rule_and_leave_gits_route(
    cluster: Cluster, namespace: str, operator_log: OperatorProcess, crds: None
) -> None:
    ns = namespace
    git = git_route(ns)
    argocd_sync(cluster, git)
    synced = live_route(cluster, ns)
    cluster.apply(model(ns, "1", AB_AND_SHADOW_STEPS), namespace=ns)
    first = stable_revision(cluster, ns)

    with RouteWatcher(cluster, ns) as watcher:
        cluster.apply(model(ns, "2", AB_AND_SHADOW_STEPS), namespace=ns)
        stable_revision(cluster, ns, replacing=first)

    before = content(synced)
    changed = {path for seen in watcher.seen for path in differences(before, seen)}
    assert changed == WEIGHT_PATHS | TRAFFIC_PATHS, changed
    git_rules = before["spec"]["rules"]
    mirrored = [s for s in watcher.seen if len(s["spec"]["rules"][0]["filters"]) == 2]
    assert mirrored, "the shadow step never showed"
    for seen in mirrored:
        rule = seen["spec"]["rules"][0]
        assert rule["filters"][0] == git_rules[0]["filters"][0]
        assert rule["filters"][1]["type"] == "RequestMirror"
        assert rule["filters"][1]["requestMirror"]["percent"] == 50
        assert rule["filters"][1]["requestMirror"]["backendRef"]["name"] == "bert-canary"
        assert [r["weight"] for r in rule["backendRefs"]] == [100, 0]  # no live weight while shadowing
    ab = [s for s in watcher.seen if len(s["spec"]["rules"]) == 3]
    assert ab, "the A/B step never showed"
    for seen in ab:
        assert seen["spec"]["rules"][:2] == git_rules  # the user's rules as in Git
        rule = seen["spec"]["rules"][2]
        assert rule["name"] == "bert-canary-ab" and rule["backendRefs"][0]["name"] == "bert-canary"
        assert len(rule["matches"]) == 2  # the user's one match x our two
        assert all(m["path"] == git_rules[0]["matches"][0]["path"] for m in rule["matches"])
        assert [len(m["headers"]) for m in rule["matches"]] == [2, 2]  # x-tenant plus ours
    after = live_route(cluster, ns)
    assert content(after) == before  # Git's route again, byte for byte
    assert argocd_diff(cluster, git) == ""
