"""Fault matrix row 3 (status): a status write races a concurrent writer and never overwrites it.

The reconciler runs in this process against the real API server. Between its read of the
ModelDeployment and its status write, another writer (a newer leader) stores a status of its own.
The pass's write carries the resourceVersion it read, so the API server answers 409 Conflict; the
pass is then decided again from a fresh read and converges on top of the other writer's status.
A blind write would have replaced ``lastDecision`` with its own.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from modeldeploy.kube.rest import Body, Kind, Kube, KubeError
from modeldeploy.reconcile import Reconciler
from modeldeploy.settings import Settings
from modeldeploy_testing.cluster import Cluster
from modeldeploy_testing.operator import install_manifests
from modeldeploy_testing.plugin import _test_namespace

pytestmark = pytest.mark.integration

OTHER = {"action": "RevisionDeployed", "reason": "decided by the newer leader", "at": "2026-01-01T00:00:00Z"}


class RacedKube(Kube):
    """The real client; its first status write is preceded by another writer's status write."""

    conflicts = 0
    raced = False

    def patch_status(
        self, kind: Kind, namespace: str, name: str, status: Body, resource_version: str | None = None
    ) -> Body:
        if not self.raced:
            self.raced = True
            # the newer leader deployed the same revision, with a decision of its own
            theirs = {
                "stableRevision": status["stableRevision"],
                "lastDecision": OTHER,
                "phase": "Progressing",
            }
            super().patch_status(kind, namespace, name, theirs)
        try:
            return super().patch_status(kind, namespace, name, status, resource_version)
        except KubeError as exc:
            self.conflicts += exc.status == 409
            raise


@pytest.fixture
def own_namespace(request: pytest.FixtureRequest, cluster: Cluster, api: Any) -> Iterator[str]:
    """A namespace no operator of the test session watches (they watch ``t-*``)."""
    install_manifests(cluster)
    yield from _test_namespace(request, cluster, api, "sc-")


def test_a_status_write_that_lost_a_race_decides_again_on_the_newer_status(
    cluster: Cluster, api: Any, own_namespace: str
) -> None:
    ns = own_namespace
    cluster.apply(
        {
            "apiVersion": "modeldeploy.dev/v1alpha1",
            "kind": "ModelDeployment",
            "metadata": {"name": "raced"},
            "spec": {
                "runtime": "triton",
                "model": {"name": "fraud", "version": "1", "storageUri": "s3://models/fraud/1"},
                "replicas": 1,
            },
        },
        namespace=ns,
    )
    kube = RacedKube(api)
    reconciler = Reconciler(kube, Settings(prometheus_url="http://127.0.0.1:9"))
    reconciler.reconcile(ns, "raced")

    assert kube.raced and kube.conflicts == 1
    md = json.loads(cluster.kubectl("get", "md", "raced", "-n", ns, "-o", "json").stdout)
    status = md["status"]
    # decided again from the other writer's status: its decision stands, and the re-decided pass
    # added what it knows (the revision it deployed, the replica counts, the selector)
    assert status["lastDecision"] == OTHER
    assert status["stableRevision"] and status["observedGeneration"] == md["metadata"]["generation"]
    assert status["selector"]
    # a further pass meets no race and keeps what it converged on
    reconciler.reconcile(ns, "raced")
    again = json.loads(cluster.kubectl("get", "md", "raced", "-n", ns, "-o", "json").stdout)
    assert kube.conflicts == 1
    assert again["status"]["lastDecision"] == OTHER
    assert again["status"]["stableRevision"] == status["stableRevision"]
