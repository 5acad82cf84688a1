"""pytest plugin shared by tests/ and e2e/tests/ (loaded by the repo's top-level conftest.py).

Markers: tests under tests/unit are `unit`, tests/integration `integration`, e2e/tests `e2e`
(unless a test already carries one of them), so `pytest -m unit` needs no cluster.

Fixtures (only integration/e2e tests should request them):
  cluster     session: the live test cluster (see modeldeploy_testing.cluster.connect); started with
              `e2e/cluster.sh up` if none answers, and deliberately NOT stopped at the end so reruns
              are warm (`bash e2e/cluster.sh down` stops it).
  api         session: kubernetes.client.ApiClient for cluster.kubeconfig.
  namespace   function: a fresh namespace `t-<test-slug>-<rand>` (TEST_NAMESPACE_PREFIX) labelled
              modeldeploy.dev/test=<slug>, deleted afterwards; when the test fails, its objects and
              events are added to the report.
  real_namespace  function: like namespace, named modeldeploy-real-<test-slug>-<rand>: kwok leaves its
              pods alone, the e2e pod runner (harness.pod_runner) runs them with real programs.
  prometheus  function: modeldeploy_testing.cluster.Prometheus; targets it added are removed afterwards.
  s3_server   session: a MinIO server on loopback (modeldeploy_testing.objectstore.S3Server; the
              binary is built once by e2e/minio.sh), stopped at the end.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

from modeldeploy_testing.cluster import REPO, Cluster, ClusterUnavailable, Prometheus, connect, poll

DIR_MARKERS = (
    (REPO / "tests" / "unit", "unit"),
    (REPO / "tests" / "integration", "integration"),
    (REPO / "e2e" / "tests", "e2e"),
)
LEVELS = {"unit", "integration", "e2e"}
TEST_LABEL = "modeldeploy.dev/test"
# Every test namespace starts with this; the session's operator watches only `t-*` namespaces.
TEST_NAMESPACE_PREFIX = "t-"

reports_key = pytest.StashKey[dict[str, pytest.TestReport]]()
namespace_key = pytest.StashKey[tuple[Cluster, str]]()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if any(m.name in LEVELS for m in item.iter_markers()):
            continue
        path = Path(str(item.path)).resolve()
        for directory, marker in DIR_MARKERS:
            if path.is_relative_to(directory):
                item.add_marker(getattr(pytest.mark, marker))
                break


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    report: pytest.TestReport = yield
    item.stash.setdefault(reports_key, {})[report.when] = report
    if report.when == "call" and report.failed and namespace_key in item.stash:
        cluster, ns = item.stash[namespace_key]
        report.sections.append((f"namespace {ns}: objects and events", dump_namespace(cluster, ns)))
    return report


def dump_namespace(cluster: Cluster, ns: str) -> str:
    """Everything in a namespace worth seeing when a test failed (never raises)."""
    out: list[str] = []

    def run(title: str, *args: str) -> None:
        try:
            r = cluster.kubectl(*args, check=False, timeout=30)
            text = (r.stdout + r.stderr).strip() or "(none)"
        except Exception as e:  # diagnostics must not mask the test failure
            text = f"(kubectl failed: {e})"
        out.append(f"--- {title}\n{text}")

    run("kubectl get all -o wide", "get", "all", "-n", ns, "-o", "wide")
    run(
        "other namespaced objects",
        "get",
        "configmaps,serviceaccounts,roles,rolebindings,poddisruptionbudgets,horizontalpodautoscalers",
        "-n",
        ns,
        "-o",
        "wide",
    )
    try:
        crds = cluster.kubectl(
            "get",
            "crd",
            "-o",
            "jsonpath={range .items[?(@.spec.scope=='Namespaced')]}{.metadata.name}{','}{end}",
            check=False,
            timeout=30,
        ).stdout.strip(",")
    except Exception:
        crds = ""
    if crds:
        run("custom resources", "get", crds, "-n", ns, "-o", "wide", "--ignore-not-found")
    run(
        "events (oldest first)",
        "get",
        "events",
        "-n",
        ns,
        "-o",
        "wide",
        "--sort-by=.metadata.creationTimestamp",
    )
    return "\n".join(out)


def slugify(name: str, limit: int = 40) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return slug[:limit].strip("-") or "test"


@pytest.fixture(scope="session")
def cluster() -> Cluster:
    try:
        return connect()
    except ClusterUnavailable as e:
        pytest.fail(f"no test cluster: {e}", pytrace=False)


@pytest.fixture(scope="session")
def api(cluster: Cluster) -> Iterator[Any]:
    client = cluster.api_client()
    try:
        yield client
    finally:
        client.close()


def _test_namespace(request: pytest.FixtureRequest, cluster: Cluster, api: Any, prefix: str) -> Iterator[str]:
    """A fresh namespace ``<prefix><test-slug>-<rand>`` for one test (see the module doc)."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    core: Any = client.CoreV1Api(api)
    slug = slugify(request.node.name, limit=min(40, 63 - len(prefix) - 7))  # a DNS label: <= 63
    name = f"{prefix}{slug}-{secrets.token_hex(3)}"
    core.create_namespace(
        client.V1Namespace(metadata=client.V1ObjectMeta(name=name, labels={TEST_LABEL: slug}))
    )
    request.node.stash[namespace_key] = (cluster, name)

    def default_sa() -> bool:
        try:
            core.read_namespaced_service_account("default", name)
        except ApiException as e:
            if e.status == 404:
                return False
            raise
        return True

    # Pods are rejected until the controller-manager has created the default ServiceAccount.
    poll(f"ServiceAccount default in {name}", default_sa, timeout=60, interval=0.2)
    try:
        yield name
    finally:
        try:
            core.delete_namespace(name, propagation_policy="Background")
        except ApiException as e:
            if e.status != 404:
                raise


@pytest.fixture
def namespace(request: pytest.FixtureRequest, cluster: Cluster, api: Any) -> Iterator[str]:
    yield from _test_namespace(request, cluster, api, TEST_NAMESPACE_PREFIX)


@pytest.fixture
def real_namespace(request: pytest.FixtureRequest, cluster: Cluster, api: Any) -> Iterator[str]:
    """Like ``namespace``, but kwok leaves its pods alone: the e2e pod runner runs them for real."""
    from harness.pod_runner import REAL_NAMESPACE_PREFIX

    yield from _test_namespace(request, cluster, api, REAL_NAMESPACE_PREFIX)


@pytest.fixture
def prometheus(cluster: Cluster) -> Iterator[Prometheus]:
    if not cluster.prometheus_url or not cluster.prometheus_targets_dir:
        pytest.fail(
            "no Prometheus for this cluster: use `bash e2e/cluster.sh up`, or set PROMETHEUS_URL and "
            "MODELDEPLOY_PROMETHEUS_TARGETS",
            pytrace=False,
        )
    prom = Prometheus(cluster.prometheus_url, cluster.prometheus_targets_dir)
    try:
        yield prom
    finally:
        prom.remove_all()


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A MinIO server on 127.0.0.1 for the session: ``.endpoint_url``, ``.env()``, ``.put_tree()``..."""
    from modeldeploy_testing.objectstore import start_s3_server

    server = start_s3_server(tmp_path_factory.mktemp("s3"))
    try:
        yield server
    finally:
        server.stop()
