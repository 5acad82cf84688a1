"""CachedKube's reads: from the cache only, loud for what is not cached, fingerprints for resyncs."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client as k8s

from modeldeploy.kube.cache import CachedKube, ClusterCache, UncachedRead, Watched
from modeldeploy.kube.rest import CONFIGMAP, MODELDEPLOYMENT, SECRET, Kube

pytestmark = pytest.mark.unit

MANAGED = "app.kubernetes.io/managed-by=modeldeploy"


def body(kind: str, name: str, rv: int, **labels: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1" if kind == "ConfigMap" else "modeldeploy.dev/v1alpha1",
        "kind": kind,
        "metadata": {"name": name, "namespace": "a", "resourceVersion": str(rv), "labels": labels},
    }


@pytest.fixture
def kube() -> Iterator[CachedKube]:
    api = k8s.ApiClient()  # never called: every read below is answered by the cache
    cache = ClusterCache(Kube(api), [Watched(MODELDEPLOYMENT), Watched(CONFIGMAP, MANAGED)])
    yield CachedKube(api, cache)
    api.close()


def test_reads_come_from_the_cache(kube: CachedKube) -> None:
    kube.cache.store(MODELDEPLOYMENT).apply_event("ADDED", body("ModelDeployment", "m", 3))
    kube.cache.store(CONFIGMAP).apply_event(
        "ADDED", body("ConfigMap", "c", 4, **{"app.kubernetes.io/managed-by": "modeldeploy"})
    )
    md = kube.get(MODELDEPLOYMENT, "a", "m")
    assert md is not None and md["metadata"]["resourceVersion"] == "3"
    assert kube.get(MODELDEPLOYMENT, "a", "other") is None
    assert [c["metadata"]["name"] for c in kube.list(CONFIGMAP, "a", MANAGED)] == ["c"]


def test_reads_the_cache_cannot_answer_fail_loudly(kube: CachedKube) -> None:
    with pytest.raises(UncachedRead, match="secrets are not watched"):
        kube.get(SECRET, "a", "s")
    with pytest.raises(UncachedRead, match="wider than the watch"):
        kube.list(CONFIGMAP, "a")  # the watch holds only our own ConfigMaps
    with pytest.raises(UncachedRead, match="reads come from the cache"):
        kube.request("GET", "/api/v1/namespaces/a/configmaps/c")


def test_a_resync_sees_whether_anything_a_pass_read_changed(kube: CachedKube) -> None:
    mds = kube.cache.store(MODELDEPLOYMENT)
    cms = kube.cache.store(CONFIGMAP)
    mds.apply_event("ADDED", body("ModelDeployment", "m", 3))
    mine = {"app.kubernetes.io/managed-by": "modeldeploy", "modeldeploy.dev/deployment": "m"}

    def reconcile(namespace: str, name: str) -> float | None:
        kube.get(MODELDEPLOYMENT, namespace, name)
        kube.list(CONFIGMAP, namespace, f"modeldeploy.dev/deployment={name},{MANAGED}")
        return None

    recorded = kube.recording(reconcile)
    assert not kube.unchanged("a", "m")  # never passed: a resync must run
    recorded("a", "m")
    assert kube.unchanged("a", "m")
    cms.apply_event("ADDED", body("ConfigMap", "c", 5, **mine))  # a child appears
    assert not kube.unchanged("a", "m")
    recorded("a", "m")
    assert kube.unchanged("a", "m")
    cms.apply_event("ADDED", body("ConfigMap", "elsewhere", 6, **{**mine, "modeldeploy.dev/deployment": "x"}))
    assert kube.unchanged("a", "m")  # another model's child is not an input of this one
    mds.apply_event("MODIFIED", body("ModelDeployment", "m", 7))
    assert not kube.unchanged("a", "m")
