"""State from watches: an idle operator makes no API read, and a hand edit is repaired by the watch.

The operator here runs under a ServiceAccount of its own (bound to the operator's ClusterRole) whose
requests the API server counts by verb (modeldeploy_testing.apicount), in a namespace of its own that
the session's operator (``t-*``) does not serve. Its resync is 300 s, so anything repaired within the
test's deadlines was repaired by a watch event, not by a resync.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from modeldeploy.handlers import MANAGED_SELECTOR
from modeldeploy.kube.cache import CachedKube, ClusterCache, Watched
from modeldeploy.kube.informer import Informer, WatchExpired
from modeldeploy.kube.rest import CONFIGMAP, Kube
from modeldeploy.kube.store import Store
from modeldeploy_testing.apicount import READS, ApiRequestCounter, as_json, delta
from modeldeploy_testing.cluster import Cluster, poll
from modeldeploy_testing.operator import SERVICE_ACCOUNT, OperatorProcess, install_manifests
from modeldeploy_testing.plugin import _test_namespace

pytestmark = pytest.mark.integration

MODELS = 4
RESYNC = 300


def md_manifest(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "modeldeploy.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": name},
        "spec": {
            "runtime": "triton",
            "model": {"name": "fraud", "version": "7", "storageUri": "s3://models/fraud/7"},
            "replicas": 1,
            "autoscaling": {"minReplicas": 1, "maxReplicas": 3},
        },
    }


def get(cluster: Cluster, ns: str, kind: str, name: str) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(cluster.kubectl("get", kind, name, "-n", ns, "-o", "json").stdout)
    return out


def ready(cluster: Cluster, ns: str, name: str) -> bool:
    md = get(cluster, ns, "md", name)
    return any(
        c["type"] == "Ready" and c["status"] == "True" for c in (md.get("status") or {}).get("conditions", [])
    )


@pytest.fixture
def cache_namespace(request: pytest.FixtureRequest, cluster: Cluster, api: Any) -> Iterator[str]:
    yield from _test_namespace(request, cluster, api, "cache-")


@pytest.fixture
def counted_operator(
    cluster: Cluster, cache_namespace: str, tmp_path: Path
) -> Iterator[tuple[OperatorProcess, ApiRequestCounter]]:
    install_manifests(cluster)
    counter = ApiRequestCounter(cluster, cluster_role=SERVICE_ACCOUNT)
    counter.install()
    proc = OperatorProcess(
        cluster, tmp_path, resync_seconds=RESYNC, extra_args=("--namespace", cache_namespace)
    )
    proc.kubeconfig = counter.kubeconfig(tmp_path / "counted.kubeconfig")
    try:
        proc.start()
        yield proc, counter
    finally:
        proc.stop()
        counter.remove()


def test_idle_operator_reads_nothing_and_repairs_hand_edits_from_watch_events(
    cluster: Cluster, cache_namespace: str, counted_operator: tuple[OperatorProcess, ApiRequestCounter]
) -> None:
    proc, counter = counted_operator
    ns = cache_namespace
    names = [f"m{n}" for n in range(MODELS)]
    cluster.apply([md_manifest(n) for n in names], namespace=ns)
    for name in names:
        poll(f"md/{name} Ready", lambda name=name: ready(cluster, ns, name), timeout=120)  # type: ignore[misc]
    started = counter.counts()
    # the counter works: start-up listed every watched kind and watches them
    assert started["list"] >= 8 and started["watch"] >= 8, as_json(started)

    # idle: a quiet minute costs no read at all, and no write
    def quiet() -> bool:
        before = counter.counts()
        time.sleep(5)
        moved = delta(counter.counts(), before)
        return not any(moved[v] for v in ("create", "patch", "update", "delete", *READS))

    poll("no API calls for 5 s", quiet, timeout=60, interval=0)
    before = counter.counts()
    audit = proc.audit_offset()
    time.sleep(30)
    idle = delta(counter.counts(), before)
    assert all(idle[v] == 0 for v in READS), f"reads at idle: {as_json(idle)}"
    assert proc.writes(ns, audit) == []

    # a hand edit of a ConfigMap and of an HPA is put back by the watch, long before any resync
    cms = json.loads(
        cluster.kubectl(
            "get", "cm", "-n", ns, "-l", f"modeldeploy.dev/deployment={names[0]}", "-o", "json"
        ).stdout
    )["items"]
    assert cms, "the model has a ConfigMap"
    cm = cms[0]["metadata"]
    # revision ConfigMaps are immutable: the hand edit that can happen is a delete
    cluster.kubectl("delete", "cm", cm["name"], "-n", ns)
    cluster.kubectl("patch", "hpa", names[1], "-n", ns, "--type=merge", "-p", '{"spec":{"maxReplicas":9}}')
    poll(
        "ConfigMap re-created",
        lambda: (
            get(cluster, ns, "cm", cm["name"])["metadata"]["uid"] != cm["uid"]
            if cluster.kubectl("get", "cm", cm["name"], "-n", ns, check=False).returncode == 0
            else False
        ),
        timeout=30,
    )
    poll("HPA repaired", lambda: get(cluster, ns, "hpa", names[1])["spec"]["maxReplicas"] == 3, timeout=30)
    assert proc.metric("modeldeploy_reconciles_total") > 0


def test_the_cache_holds_its_own_writes_at_once_and_their_watch_echo_is_no_change(
    cluster: Cluster, cache_namespace: str, api: Any
) -> None:
    ns = cache_namespace
    managed = {"app.kubernetes.io/managed-by": "modeldeploy"}
    changes: list[tuple[str | None, str]] = []
    cache = ClusterCache(Kube(api), [Watched(CONFIGMAP, MANAGED_SELECTOR)], in_scope=lambda n: n == ns)
    cache.start(lambda _kind, type_, change: changes.append((type_, change.object["metadata"]["name"])))
    try:
        assert cache.wait_synced(30)
        kube = CachedKube(api, cache)
        written = kube.apply(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "written", "namespace": ns, "labels": managed},
                "data": {"k": "v"},
            }
        )
        # the watch echo may beat the write's answer (then the store had it first and the answer
        # changed nothing); once the answer is in, the echo must be no change
        answered = len(changes)
        held = kube.get(CONFIGMAP, ns, "written")  # no wait: the write's answer is in the cache
        assert held is not None
        assert held["metadata"]["resourceVersion"] == written["metadata"]["resourceVersion"]
        cluster.kubectl("create", "configmap", "by-hand", "-n", ns)
        cluster.kubectl("label", "configmap", "by-hand", "-n", ns, "app.kubernetes.io/managed-by=modeldeploy")
        # watch events come in resourceVersion order: once the later one is seen, the echo was handled
        poll("the hand-made ConfigMap seen", lambda: ("ADDED", "by-hand") in changes, timeout=30)
        assert ("ADDED", "written") not in changes[answered:], changes
        assert kube.delete(CONFIGMAP, ns, "written")
        assert kube.get(CONFIGMAP, ns, "written") is None
    finally:
        cache.stop()


def test_a_watch_from_a_compacted_version_expires_and_the_relist_repairs_the_store(
    cluster: Cluster, cache_namespace: str, api: Any
) -> None:
    ns = cache_namespace
    changes: list[tuple[str | None, str]] = []
    store = Store(MANAGED_SELECTOR)
    informer = Informer(
        Kube(api),
        CONFIGMAP,
        store,
        lambda _kind, type_, change: changes.append((type_, change.object["metadata"]["name"])),
        in_scope=lambda n: n == ns,
    )
    cluster.kubectl("create", "configmap", "real", "-n", ns)
    cluster.kubectl("label", "configmap", "real", "-n", ns, MANAGED_SELECTOR)
    informer._list()  # the first listing: its objects are reported as listed (no event type)
    assert [o["metadata"]["name"] for o in store.list(ns)] == ["real"]
    assert changes == [(None, "real")]
    changes.clear()
    # one deleted while the watch was down, that the store still holds
    store.apply_event(
        "ADDED",
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": "ghost",
                "namespace": ns,
                "resourceVersion": "2",
                "labels": {"app.kubernetes.io/managed-by": "modeldeploy"},
            },
        },
    )
    with pytest.raises(WatchExpired):
        informer._watch("2")  # long compacted away: 410 Gone
    informer._list()
    assert [o["metadata"]["name"] for o in store.list(ns)] == ["real"]
    assert changes == [("DELETED", "ghost")]
