"""N ModelDeployments in one burst on the local control plane: how close to the floor, how cheap at idle.

    .venv/bin/python bench/scale.py N [--resync 300] [--changes 20] [--idle-seconds 60]
                                      [--operator-src DIR] [--skip-floor] [--remove-nodes]

The cluster grows kwok nodes (``bench-scale-<i>``, 250 pods each) so N pods fit; they are left in
place for the next run unless ``--remove-nodes``. Measured in one run:

- floor: the same children the operator would create for N models (ConfigMap, Deployment, Service,
  built by modeldeploy.children) applied by kubectl with no operator, until every Deployment is Ready;
- burst: N ModelDeployments applied the same way, until every one says Ready=True; ratio to the floor;
  both are counted by a watch (``ReadyWatch``), not by listing all N objects each round;
- operator peak RSS (VmHWM of the process, at the end of the run);
- idle: once no write has been seen for 10 s, the operator's CPU-seconds per minute and its API
  requests by verb over ``--idle-seconds`` (counted by the API server itself: an APF FlowSchema per
  verb for the operator's own ServiceAccount, see tests/modeldeploy_testing/apicount.py);
- spec change -> new revision Deployment: ``--changes`` models get a new model version, one after
  the other; the latency is from the patch's answer to the new Deployment's ADDED event on a watch.
- where each phase's control-plane work came from: CPU-seconds by process, the API writes of each
  user (controller, scheduler, kwok, kubectl, operator) from the audit log (bench/audit_window.py),
  and the operator's re-lists during the burst (a watch the API server ended).

``--operator-src DIR``: run the operator package found in DIR/operator (e.g. a git worktree of an
older commit) instead of this tree's, for before/after figures. JSON on stdout and in
bench/results/scale-N.json (``--out`` to change).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import secrets
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
for sub in ("operator", "tests", "e2e"):
    sys.path.insert(0, str(REPO / sub))

from audit_window import writes_in_window  # noqa: E402
from kubernetes import client as k8s  # noqa: E402
from kubernetes import watch as k8s_watch  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from localcluster.nodes import kwok_node  # noqa: E402
from modeldeploy.api.spec import ModelDeploymentSpec  # noqa: E402
from modeldeploy.children import (  # noqa: E402
    BuildSettings,
    OwnerInfo,
    build_configmap,
    build_deployment,
    build_service,
    revision_hash,
)
from modeldeploy.children.labels import MANAGED_BY, MANAGER  # noqa: E402
from modeldeploy.children.labels import OWNER as OWNER_LABEL  # noqa: E402
from modeldeploy.runtimes import get_runtime  # noqa: E402
from modeldeploy_testing.apicount import ApiRequestCounter, delta  # noqa: E402
from modeldeploy_testing.cluster import Cluster, connect, poll  # noqa: E402
from modeldeploy_testing.operator import (  # noqa: E402
    SERVICE_ACCOUNT,
    OperatorProcess,
    install_manifests,
    metric_sum,
)

RESULTS = REPO / "bench" / "results"
MODELDEPLOYMENTS = ("modeldeploy.dev", "v1alpha1", "modeldeployments")
PODS_PER_NODE = 250
APPLY_CHUNK = 250
WRITES = ("create", "update", "patch", "delete")


def model_spec(version: str = "7") -> dict[str, Any]:
    return {
        "runtime": "triton",
        "model": {"name": "fraud", "version": version, "storageUri": "s3://models/fraud/7"},
        "replicas": 1,
        "resources": {"cpu": "50m", "memory": "64Mi"},
    }


def md_manifest(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "modeldeploy.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": name},
        "spec": model_spec(),
    }


def names(n: int) -> list[str]:
    return [f"m{i:05d}" for i in range(n)]


# --- cluster ------------------------------------------------------------------------------------------


def ensure_nodes(cluster: Cluster, models: int) -> int:
    """kwok nodes for ``models`` one-replica models (the cluster's own nodes stay for the tests)."""
    count = max(1, math.ceil(models * 1.1 / PODS_PER_NODE))
    res = {"cpu": "256", "memory": "1Ti", "pods": str(PODS_PER_NODE), "ephemeral-storage": "1Ti"}
    nodes = [kwok_node(f"bench-scale-{i}", res, {"modeldeploy.dev/bench": "scale"}) for i in range(count)]
    cluster.apply(nodes)

    def ready() -> bool:
        out = json.loads(
            cluster.kubectl("get", "nodes", "-l", "modeldeploy.dev/bench=scale", "-o", "json").stdout
        )
        ok = [
            n
            for n in out["items"]
            if any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"].get("conditions", []))
        ]
        return len(ok) >= count

    poll("bench nodes Ready", ready, timeout=120, interval=1)
    return count


def remove_nodes(cluster: Cluster) -> None:
    cluster.kubectl("delete", "nodes", "-l", "modeldeploy.dev/bench=scale", "--wait=false", check=False)


def new_namespace(cluster: Cluster, prefix: str) -> str:
    name = f"{prefix}{secrets.token_hex(3)}"
    cluster.kubectl("create", "namespace", name)
    poll(
        f"ServiceAccount default in {name}",
        lambda: cluster.kubectl("get", "sa", "default", "-n", name, check=False).returncode == 0,
        timeout=60,
        interval=0.3,
    )
    return name


def apply_burst(cluster: Cluster, objects: list[dict[str, Any]], namespace: str) -> None:
    for start in range(0, len(objects), APPLY_CHUNK):
        chunk = {"apiVersion": "v1", "kind": "List", "items": objects[start : start + APPLY_CHUNK]}
        cluster.kubectl(
            "apply", "--server-side", "-n", namespace, "-f", "-", input=json.dumps(chunk), timeout=600
        )


class ReadyWatch:
    """How many objects of one kind in a namespace are Ready: one list, then a watch (a thread).

    The observer must not load what it measures: a list of N objects every round costs the API
    server O(N) per round, and the rounds grow with N too (at 5,000 a kubectl list each round kept a
    quarter of a core busy on its own). A watch costs one event per change, the same for the floor
    and the burst."""

    def __init__(self, api: Any, namespace: str, resource: tuple[str, str, str], ready: Any) -> None:
        self._custom = k8s.CustomObjectsApi(api)
        self._where = (*resource[:2], namespace, resource[2])  # group, version, namespace, plural
        self._is_ready = ready
        self._ready: dict[str, bool] = {}
        self._failed: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def count(self) -> int:
        if self._failed is not None:
            raise RuntimeError(f"the Ready watch on {self._where[3]} ended: {self._failed!r}")
        return sum(self._ready.values())

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        try:
            version: str | None = None
            while not self._stop.is_set():
                if version is None:  # first, or the watch's version expired (410): list again
                    listed: dict[str, Any] = self._custom.list_namespaced_custom_object(*self._where)
                    self._ready = {o["metadata"]["name"]: self._is_ready(o) for o in listed["items"]}
                    version = listed["metadata"]["resourceVersion"]
                version = self._watch(version)
        except BaseException as exc:  # handed to count(), which the waiting loop calls
            self._failed = exc

    def _watch(self, version: str) -> str | None:
        stream = k8s_watch.Watch().stream(
            self._custom.list_namespaced_custom_object,
            *self._where,
            resource_version=version,
            allow_watch_bookmarks=True,
            timeout_seconds=60,
        )
        try:
            for event in stream:
                obj = event["object"]
                version = obj["metadata"]["resourceVersion"]
                if event["type"] == "DELETED":
                    self._ready.pop(obj["metadata"]["name"], None)
                elif event["type"] in ("ADDED", "MODIFIED"):
                    self._ready[obj["metadata"]["name"]] = self._is_ready(obj)
        except k8s.ApiException as exc:
            if exc.status != 410:
                raise
            return None
        return version


def deployment_ready(deployment: dict[str, Any]) -> bool:
    return bool((deployment.get("status") or {}).get("readyReplicas"))


def wait_count(what: str, count: int, fn: Any, timeout: float) -> None:
    last = {"n": -1}

    def done() -> bool:
        n = fn()
        if n != last["n"]:
            print(f"  {what}: {n}/{count}", file=sys.stderr)
            last["n"] = n
        return bool(n >= count)

    poll(what, done, timeout=timeout, interval=2)


# --- floor ---------------------------------------------------------------------------------------------


def floor_children(namespace: str, models: list[str]) -> list[dict[str, Any]]:
    """What the operator creates for each model's first revision, without the owner reference."""
    spec = ModelDeploymentSpec.model_validate(model_spec())
    build = BuildSettings()
    runtime = get_runtime(spec.runtime)
    revision = revision_hash(spec, build)
    out = []
    for name in models:
        owner = OwnerInfo("modeldeploy.dev/v1alpha1", "ModelDeployment", name, namespace, "")
        for obj in (
            build_configmap(owner, spec, revision, runtime),
            build_deployment(owner, spec, revision, spec.replicas, runtime, build),
            build_service(owner, None, runtime, revision),
        ):
            obj["metadata"].pop("ownerReferences", None)
            out.append(obj)
    return out


def measure_floor(
    cluster: Cluster, models: list[str], timeout: float
) -> tuple[float, dict[str, float], tuple[float, float]]:
    """Seconds until every Deployment is Ready, the CPU-seconds each process spent meanwhile, and the
    window (epoch seconds) for the audit log."""
    ns = new_namespace(cluster, "bench-floor-")
    try:
        watch = ReadyWatch(cluster.api_client(), ns, ("apps", "v1", "deployments"), deployment_ready)
        started, began, cpu = time.monotonic(), time.time(), control_plane_cpu(cluster)
        apply_burst(cluster, floor_children(ns, models), ns)
        wait_count("floor Deployments ready", len(models), watch.count, timeout)
        watch.stop()
        return time.monotonic() - started, cpu_spent(cpu, control_plane_cpu(cluster)), (began, time.time())
    finally:
        cluster.kubectl("delete", "namespace", ns, "--wait=false", check=False)
        wait_namespaces_gone(cluster, timeout, (f"namespace/{ns}",))  # not competing with the burst


BENCH_NAMESPACES = ("namespace/bench-floor-", "namespace/bench-scale-")


def wait_namespaces_gone(
    cluster: Cluster, timeout: float, prefixes: tuple[str, ...] = BENCH_NAMESPACES
) -> None:
    """Until no such namespace (default: of an earlier floor or burst) is left: deleting N models'
    objects loads the API server and the controllers as much as creating them."""

    def gone() -> bool:
        out = cluster.kubectl("get", "namespaces", "-o", "name", timeout=60).stdout.split()
        return not [n for n in out if n.startswith(prefixes)]

    poll("earlier bench namespaces deleted", gone, timeout=timeout, interval=2)


# --- operator ------------------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


CONTROL_PLANE = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")


def control_plane_cpu(cluster: Cluster, operator_pid: int | None = None) -> dict[str, float]:
    """CPU-seconds so far of each control-plane process (the project's own cluster; none on kind), of
    this bench with its kubectl children ("bench") and of the operator when it runs."""
    out: dict[str, float] = {} if operator_pid is None else {"operator": cpu_seconds(operator_pid)}
    for name in CONTROL_PLANE if cluster.cluster_dir is not None else ():
        try:
            out[name] = cpu_seconds(int((cluster.cluster_dir / "pids" / f"{name}.pid").read_text().strip()))
        except (OSError, ValueError):
            continue
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    out["bench"] = me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime
    return out


def cpu_spent(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    spent = {k: round(after[k] - before[k], 1) for k in after if k in before}
    return {**spent, "total": round(sum(spent.values()), 1)}


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def passes(scraped: str) -> dict[str, float]:
    """The operator's reconcile passes by result (``unchanged``: a resync that found nothing new)."""
    results = ("ok", "error", "gone", "unchanged")
    return {r: metric_sum(scraped, f'modeldeploy_reconciles_total{{result="{r}"}}') for r in results}


def gc_seconds(scraped: str) -> dict[str, float]:
    """Seconds the operator spent in Python's cyclic garbage collector, by generation."""
    series = 'modeldeploy_gc_seconds_total{{generation="{}"}}'
    return {g: metric_sum(scraped, series.format(g)) for g in ("0", "1", "2")}


def writes(scraped: str) -> dict[str, float]:
    """The operator's API writes by verb and kind (``modeldeploy_api_writes_total``), e.g.
    ``{"patch Deployment": 2.0}``."""
    return {
        f"{s.labels['verb']} {s.labels['kind']}": s.value
        for family in text_string_to_metric_families(scraped)
        for s in family.samples
        if s.name == "modeldeploy_api_writes_total"
    }


def relists(proc: OperatorProcess, since: int) -> int:
    """How often the operator's informers re-listed since log offset ``since``."""
    return sum(1 for r in proc.log_records(since) if "re-listing" in str(r.get("msg", "")))


def md_ready(md: dict[str, Any]) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in (md.get("status") or {}).get("conditions", [])
    )


def api_counts(counter: ApiRequestCounter) -> dict[str, float]:
    """The counter's figures, waiting out an API server that restarts (others share the cluster)."""

    def attempt() -> dict[str, float] | None:
        try:
            return counter.counts()
        except AssertionError as exc:
            print(f"  API server metrics unreadable ({exc}); retrying", file=sys.stderr)
            return None

    found: dict[str, float] = poll("API server metrics", attempt, timeout=300, interval=3)
    return found


def wait_quiet(counter: ApiRequestCounter, quiet_for: float, timeout: float) -> float:
    """Until the operator has written nothing for ``quiet_for`` seconds; returns how long it took."""
    started = time.monotonic()
    last = api_counts(counter)
    since = time.monotonic()
    while time.monotonic() - started < timeout:
        time.sleep(2)
        now = api_counts(counter)
        if any(delta(now, last)[v] for v in WRITES):
            since = time.monotonic()
        last = now
        if time.monotonic() - since >= quiet_for:
            break
    return time.monotonic() - started


class DeploymentWatch:
    """When each Deployment of the namespace was first seen (a watch in a thread)."""

    def __init__(self, api: Any, namespace: str) -> None:
        self.seen: dict[str, tuple[float, str]] = {}  # name -> (monotonic, owner)
        self._cond = threading.Condition()
        self._stop = False
        self._thread = threading.Thread(target=self._run, args=(api, namespace), daemon=True)
        self._thread.start()

    def _run(self, api: Any, namespace: str) -> None:
        apps = k8s.AppsV1Api(api)
        while not self._stop:
            stream = k8s_watch.Watch().stream(
                apps.list_namespaced_deployment,
                namespace,
                label_selector=f"{MANAGED_BY}={MANAGER}",
                timeout_seconds=60,
            )
            for event in stream:
                obj = event["object"]
                with self._cond:
                    if obj.metadata.name not in self.seen:
                        owner = (obj.metadata.labels or {}).get(OWNER_LABEL, "")
                        self.seen[obj.metadata.name] = (time.monotonic(), owner)
                        self._cond.notify_all()

    def new_for(self, owner: str, known: set[str], timeout: float) -> float | None:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for name, (at, who) in self.seen.items():
                    if who == owner and name not in known:
                        return at
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(left)

    def stop(self) -> None:
        self._stop = True


def spec_changes(cluster: Cluster, namespace: str, models: list[str], changes: int) -> list[float]:
    api = cluster.api_client()
    custom = k8s.CustomObjectsApi(api)
    watcher = DeploymentWatch(api, namespace)
    poll("deployment watch listed", lambda: len(watcher.seen) >= len(models), timeout=120, interval=0.5)
    latencies = []
    step = max(1, len(models) // changes)
    for i in range(changes):
        name = models[(i * step) % len(models)]
        known = {n for n, (_, who) in watcher.seen.items() if who == name}
        body = {"spec": {"model": {"version": str(100 + i)}}}
        custom.patch_namespaced_custom_object(
            "modeldeploy.dev", "v1alpha1", namespace, "modeldeployments", name, body
        )
        sent = time.monotonic()
        at = watcher.new_for(name, known, timeout=120)
        if at is None:
            print(f"  change {i}: no new Deployment for {name} within 120 s", file=sys.stderr)
            continue
        latencies.append(at - sent)
        print(f"  change {i}: {name} new revision after {at - sent:.3f}s", file=sys.stderr)
    watcher.stop()
    return latencies


def percentile(values: list[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    rank = max(0, math.ceil(p / 100 * len(ordered)) - 1)
    return round(ordered[rank], 3)


def run(args: argparse.Namespace) -> dict[str, Any]:
    cluster = connect(start=False)
    models = names(args.n)
    result: dict[str, Any] = {"models": args.n, "resync_seconds": args.resync}
    windows: dict[str, tuple[float, float]] = {}  # phase -> (start, end) epoch, for the audit log
    result["bench_nodes"] = ensure_nodes(cluster, args.n)
    if not args.existing:
        wait_namespaces_gone(cluster, max(600.0, args.n * 1.5))
    install_manifests(cluster)
    timeout = max(600.0, args.n * 1.5)
    if not args.skip_floor:
        floor_seconds, result["floor_cpu_seconds"], windows["floor"] = measure_floor(cluster, models, timeout)
        result["floor_seconds"] = round(floor_seconds, 1)
        print(f"floor: {result['floor_seconds']} s", file=sys.stderr)
    counter = ApiRequestCounter(cluster, cluster_role=SERVICE_ACCOUNT, prefix="bench-scale")
    counter.install()
    ns = args.existing or new_namespace(cluster, "bench-scale-")
    workdir = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    proc = OperatorProcess(cluster, workdir, resync_seconds=args.resync, extra_args=("--namespace", ns))
    proc.kubeconfig = counter.kubeconfig(workdir / "counted.kubeconfig")
    if args.operator_src:
        os.environ["PYTHONPATH"] = str(Path(args.operator_src).resolve() / "operator")
        result["operator_src"] = "older tree (--operator-src)"
    try:
        proc.start()
        assert proc.proc is not None
        pid = proc.proc.pid
        watch = ReadyWatch(cluster.api_client(), ns, MODELDEPLOYMENTS, md_ready)
        started, began, cpu = time.monotonic(), time.time(), control_plane_cpu(cluster, pid)
        burst_log = proc.log_offset()
        if not args.existing:
            apply_burst(cluster, [md_manifest(n) for n in models], ns)
        wait_count("ModelDeployments Ready", len(models), watch.count, timeout)
        watch.stop()
        # where the CPU went until all were Ready (the floor's: "floor_cpu_seconds"): on a machine the
        # burst saturates, the ratio to the floor follows the extra work
        result["burst_cpu_seconds"] = cpu_spent(cpu, control_plane_cpu(cluster, pid))
        windows["burst"] = (began, time.time())
        # a watch the API server ended (e.g. a consumer too slow for its buffer) costs a re-list
        result["burst_relists"] = relists(proc, burst_log)
        key = "restart_to_all_ready_seconds" if args.existing else "burst_seconds"
        result[key] = round(time.monotonic() - started, 1)
        if "floor_seconds" in result and "burst_seconds" in result:
            result["burst_vs_floor"] = round(result["burst_seconds"] / result["floor_seconds"], 3)
        print(f"{key}: {result[key]} s", file=sys.stderr)
        result["settle_seconds"] = round(wait_quiet(counter, quiet_for=10, timeout=300), 1)

        # the operator renders /metrics for each scrape (0.3 CPU-s at 1,000 models): scraped once,
        # outside the CPU window
        scraped0 = proc.scrape()
        cpu0, calls0, t0 = cpu_seconds(pid), api_counts(counter), time.monotonic()
        log_offset = proc.log_offset()
        time.sleep(args.idle_seconds)
        cpu1, calls1, t1 = cpu_seconds(pid), api_counts(counter), time.monotonic()
        scraped1 = proc.scrape()
        # what each Prometheus scrape of the operator costs it
        result["metrics_scrape_cpu_seconds"] = round(cpu_seconds(pid) - cpu1, 3)
        result["metrics_series"] = sum(1 for ln in scraped1.splitlines() if ln and not ln.startswith("#"))
        passes0, passes1 = passes(scraped0), passes(scraped1)
        result["passes_before_idle"] = passes0  # the burst's (and its settling's) passes
        result["writes_before_idle"] = writes(scraped0)
        gc0, gc1 = gc_seconds(scraped0), gc_seconds(scraped1)
        result["idle_passes_by_result"] = {k: passes1[k] - passes0[k] for k in passes1}
        result["idle_gc_seconds_by_generation"] = {g: round(gc1[g] - gc0[g], 3) for g in gc1}
        # re-lists after a watch ended with 410 Gone (e.g. a CRD re-applied by someone else: its
        # storage restarts and every watch on it ends): the only reads an idle operator makes
        result["idle_relists"] = relists(proc, log_offset)
        result["idle_seconds"] = round(t1 - t0, 1)
        result["idle_cpu_seconds_per_minute"] = round((cpu1 - cpu0) / (t1 - t0) * 60, 3)
        result["idle_api_requests_by_verb"] = {k: v for k, v in delta(calls1, calls0).items()}
        if any(v < 0 for v in result["idle_api_requests_by_verb"].values()):
            result["idle_api_requests_by_verb"] = "API server restarted during the idle window"
        print(f"idle: {result['idle_cpu_seconds_per_minute']} CPU-s/min", file=sys.stderr)

        latencies = spec_changes(cluster, ns, models, args.changes)
        result["spec_change_to_new_deployment_seconds"] = {
            "changes": args.changes,
            "observed": len(latencies),
            "p50": percentile(latencies, 50),
            "p90": percentile(latencies, 90),
            "p99": percentile(latencies, 99),
            "max": round(max(latencies), 3) if latencies else None,
            "mean": round(statistics.fmean(latencies), 3) if latencies else None,
        }
        result["operator_peak_rss_mib"] = round(peak_rss_mib(pid), 1)
        result["operator_cpu_seconds_total"] = round(cpu_seconds(pid), 1)
        if cluster.audit_log is not None:  # who wrote what in each phase (the local control plane)
            for phase, (start, end) in windows.items():
                result[f"{phase}_writes_by_user"] = writes_in_window(cluster.audit_log, start, end)
    finally:
        proc.stop()
        counter.remove()
        cluster.kubectl("delete", "namespace", ns, "--wait=false", check=False)
        if args.remove_nodes:
            remove_nodes(cluster)
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("n", type=int, help="how many ModelDeployments")
    p.add_argument(
        "--resync", type=float, default=300.0, help="the operator's --resync-seconds (default 300)"
    )
    p.add_argument("--changes", type=int, default=20)
    p.add_argument("--idle-seconds", type=float, default=60.0)
    p.add_argument("--operator-src", help="a tree whose operator/ package runs instead of this one's")
    p.add_argument("--skip-floor", action="store_true")
    p.add_argument(
        "--existing",
        help="a namespace already holding the N models (a previous run's): the operator restarts on them",
    )
    p.add_argument("--remove-nodes", action="store_true")
    p.add_argument("--out", type=Path, help="default bench/results/scale-N.json")
    args = p.parse_args(argv)
    result = run(args)
    text = json.dumps(result, indent=2)
    print(text)
    out = args.out or RESULTS / f"scale-{args.n}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
