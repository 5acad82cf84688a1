"""modeldeploy side by side with Flagger and Argo Rollouts: one bad canary, who gets traffic off it first.

The same world for all: the local control plane (e2e/cluster.sh), the real Prometheus scraping the
harness's Triton model servers, the harness's load generator routing by each controller's HTTPRoute
weights (20 requests/s per deployment), and the same deployment (bench/peers/subjects.py: 2 replicas,
10% then 50% canary, the same error-rate PromQL, 30 s window, 5% threshold). All controllers run at
once as host processes under their own ServiceAccounts (bench/peers/controllers.py), so they share
the machine's load; each run starts a new version for every controller at the same moment.

Per run and controller: the new version's canary gets traffic; once it has served 10 requests its
pods fail 20% of requests (World.set_behavior); the breach is *visible* when Prometheus first shows a
failure of that revision; *100% on stable* is the first moment the HTTPRoute gives the canary backend
weight 0. Reported: that interval, the requests the bad revision served from the injection until
then (the Load's counters), the controller's API writes in the namespace from the new version until
the rollback settled (audit log, by user; Events counted apart), its resident memory (process tree).

    bash bench/peers/build.sh flagger; bash bench/peers/build.sh argo-rollouts
    bash bench/peers/build.sh gatewayapi-plugin SRC_DIR   # see build.sh for SRC_DIR
    .venv/bin/python bench/vs_peers.py --config fastest defaults --runs 10 [--minutes M] [--only ...]

JSON on stdout, merged (per configuration) into bench/results/vs_peers.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
for sub in ("operator", "tests", "e2e", "bench"):
    sys.path.insert(0, str(REPO / sub))

from peers import controllers  # noqa: E402
from peers.subjects import (  # noqa: E402
    DEFAULTS,
    FASTEST,
    ArgoSubject,
    FlaggerSubject,
    ModelDeploymentSubject,
    Subject,
    Timing,
)

from harness import Load, World  # noqa: E402
from modeldeploy_testing.cluster import Cluster, Prometheus, connect, poll  # noqa: E402
from modeldeploy_testing.operator import OperatorProcess, install_manifests  # noqa: E402

RESULTS = REPO / "bench" / "results" / "vs_peers.json"
NAMESPACE_PREFIX = "bench-vs-"
RPS = 20
ERROR_RATE = 0.2
CANARY_REQUESTS_BEFORE_BREACH = 10
SETTLE_S = 35  # after the rollback: Argo scales the canary down after abortScaleDownDelaySeconds (30 s)


@dataclass
class Run:
    run: int
    revision: str
    outcome: str
    visible_to_stable_s: float | None
    injected_to_stable_s: float | None
    injected_to_visible_s: float | None
    breach_to_stable_s: float | None  # from the guardrail's breach (Subject.breach_query), if defined
    bad_requests: int
    bad_requests_after_visible: int
    api_writes: int
    api_writes_events: int
    rss_mib: float
    loadavg_1m: float


def audit_writes(audit_log: Path, since: int, user: str, namespace: str) -> tuple[int, int]:
    """(writes other than Events, Event writes) by ``user`` in ``namespace`` after byte ``since``."""
    other = events = 0
    with audit_log.open("rb") as f:
        f.seek(since)
        for line in f:
            try:
                e = json.loads(line)
            except ValueError:
                continue
            if e["user"]["username"] != user or f"/namespaces/{namespace}/" not in e["requestURI"]:
                continue
            if e["verb"] not in ("create", "update", "patch", "delete", "deletecollection"):
                continue
            if (e.get("objectRef") or {}).get("resource") == "events":
                events += 1
            else:
                other += 1
    return other, events


def canary_weight(api: Any, namespace: str, route: str, service: str) -> int | None:
    """The canary backend's weight on the route (0 when absent); None when the route is missing."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    try:
        custom: Any = client.CustomObjectsApi(api)
        body: dict[str, Any] = custom.get_namespaced_custom_object(
            "gateway.networking.k8s.io", "v1", namespace, "httproutes", route, _request_timeout=10
        )
    except ApiException as e:
        if e.status == 404:
            return None
        raise
    for rule in body.get("spec", {}).get("rules") or []:
        for ref in rule.get("backendRefs") or []:
            if ref.get("name") == service:
                return int(ref.get("weight", 1))
    return 0


@dataclass
class Bench:
    cluster: Cluster
    prometheus: Prometheus
    subject: Subject
    user: str
    pid: Callable[[], int]
    world: World | None = None
    load: Load | None = None

    def start(self) -> None:
        assert self.cluster.prometheus_targets_dir is not None
        self.subject.setup()
        ns = self.subject.namespace
        self.world = World(self.cluster.kubeconfig, self.cluster.prometheus_targets_dir, namespace=ns).start(
            sync_timeout=180
        )
        self.load = Load(
            self.world, ns, self.subject.md, rps=RPS, router="gatewayAPI", http_route=self.subject.route
        ).start()
        self.load.wait_for_requests(20, timeout=120)

    def stop(self) -> None:
        if self.load:
            self.load.stop()
        if self.world:
            self.world.stop()

    def run(self, n: int, api: Any, deadline_s: float) -> Run:
        assert self.load is not None and self.world is not None and self.cluster.audit_log is not None
        s, ns, load = self.subject, self.subject.namespace, self.load
        poll(f"{s.controller} settled", s.ready_for_next, timeout=300, interval=1)
        offset = self.cluster.audit_log.stat().st_size
        s.bump(n)
        revision = s.canary_revision(n)
        before = self.load.traffic()
        poll(
            f"{s.controller}: canary {revision} serving",
            lambda: (
                (load.traffic() - before).by_revision.get(revision, _NONE).total
                >= CANARY_REQUESTS_BEFORE_BREACH
            ),
            timeout=deadline_s,
            interval=0.2,
        )
        self.world.set_behavior(ns, s.md, revision, error_rate=ERROR_RATE)
        injected, at_injection = time.monotonic(), self.load.traffic()
        selector = f'namespace="{ns}", md="{s.md}", revision="{revision}"'
        failures = f"sum(increase(nv_inference_request_failure{{{selector}}}[30s])) > 0"
        breach_query = s.breach_query(selector)
        breach: float | None = None
        rss = controllers.process_tree_rss_kib(self.pid())
        visible: float | None = None
        at_visible = at_injection
        stable: float | None = None
        end = time.monotonic() + deadline_s
        while time.monotonic() < end:
            if visible is None and self.prometheus.query(failures):
                visible, at_visible = time.monotonic(), self.load.traffic()
            if breach is None and breach_query is not None and self.prometheus.query(breach_query):
                breach = time.monotonic()
            if canary_weight(api, ns, s.route, s.canary_service) == 0:
                stable = time.monotonic()
                break
            rss = max(rss, controllers.process_tree_rss_kib(self.pid()))
            time.sleep(0.25)
        at_stable = self.load.traffic()
        outcome = poll(f"{s.controller} outcome", lambda: _decided(s), timeout=120, interval=0.5)
        if stable is None:
            outcome = "timeout"
        time.sleep(SETTLE_S)
        writes, events = audit_writes(self.cluster.audit_log, offset, self.user, ns)
        bad = (at_stable - at_injection).by_revision.get(revision, _NONE).total
        bad_late = (at_stable - at_visible).by_revision.get(revision, _NONE).total
        return Run(
            run=n,
            revision=revision,
            outcome=outcome,
            visible_to_stable_s=_round(stable - visible if stable and visible else None),
            injected_to_stable_s=_round(stable - injected if stable else None),
            injected_to_visible_s=_round(visible - injected if visible else None),
            breach_to_stable_s=_round(stable - breach if stable and breach else None),
            bad_requests=bad,
            bad_requests_after_visible=bad_late if visible else bad,
            api_writes=writes,
            api_writes_events=events,
            rss_mib=round(rss / 1024, 1),
            loadavg_1m=round(os.getloadavg()[0], 2),
        )


def _decided(s: Subject) -> str | None:
    o = s.outcome()
    return None if o == "progressing" else o


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 2)


class _NoCounts:
    total = 0


_NONE: Any = _NoCounts()


def quantile(values: list[float], q: float) -> float:
    """Linear-interpolated quantile (numpy's default) of a non-empty list."""
    xs = sorted(values)
    pos = (len(xs) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(xs) - 1)
    return round(xs[lo] + (xs[hi] - xs[lo]) * (pos - lo), 2)


def summarize(runs: list[Run]) -> dict[str, Any]:
    ok = [r for r in runs if r.outcome == "rolledBack" and r.visible_to_stable_s is not None]
    out: dict[str, Any] = {"runs": len(runs), "rolled_back": len(ok)}
    if not ok:
        return out
    times = [r.visible_to_stable_s for r in ok if r.visible_to_stable_s is not None]
    out.update(
        visible_to_stable_s_median=quantile(times, 0.5),
        visible_to_stable_s_p95=quantile(times, 0.95),
        bad_requests_median=statistics.median(r.bad_requests for r in ok),
        bad_requests_after_visible_median=statistics.median(r.bad_requests_after_visible for r in ok),
        api_writes_median=statistics.median(r.api_writes for r in ok),
        api_writes_events_median=statistics.median(r.api_writes_events for r in ok),
        rss_mib_max=max(r.rss_mib for r in runs),
    )
    breaches = [r.breach_to_stable_s for r in ok if r.breach_to_stable_s is not None]
    if breaches:
        out.update(
            breach_to_stable_s_median=quantile(breaches, 0.5),
            breach_to_stable_s_p95=quantile(breaches, 0.95),
            breach_to_stable_s_max=max(breaches),
            rolled_back_before_breach_seen=len(ok) - len(breaches),
        )
    return out


@dataclass
class Group:
    """One configuration's controllers, run in parallel threads that start each new version together."""

    timing: Timing
    benches: list[Bench]
    runs: int
    until: float  # time.time() after which no new run starts

    def __post_init__(self) -> None:
        self.go = True
        self.barrier = threading.Barrier(len(self.benches), action=self._decide)
        self.results: dict[str, list[Run]] = {b.subject.controller: [] for b in self.benches}
        self.started = 0

    def _decide(self) -> None:
        self.go = self.started < self.runs and time.time() < self.until
        self.started += 1

    def worker(self, b: Bench, api: Any, errors: list[BaseException]) -> None:
        deadline_s = max(180, self.timing.interval_s * 8)
        try:
            n = 2
            while True:
                self.barrier.wait(timeout=900)
                if not self.go:
                    return
                r = b.run(n, api, deadline_s)
                self.results[b.subject.controller].append(r)
                print(f"{self.timing.name} {b.subject.controller} {json.dumps(asdict(r))}", file=sys.stderr)
                n += 1
        except BaseException as e:
            errors.append(e)
            self.barrier.abort()


def run_groups(groups: list[Group], api: Any) -> None:
    errors: list[BaseException] = []
    threads = [
        threading.Thread(target=g.worker, args=(b, api, errors), daemon=True)
        for g in groups
        for b in g.benches
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


def delete_namespaces(cluster: Cluster, names: list[str]) -> None:
    for ns in names:
        cluster.kubectl("delete", "namespace", ns, "--ignore-not-found", "--wait=true", timeout=300)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", nargs="+", choices=["fastest", "defaults"], default=["fastest", "defaults"])
    p.add_argument("--runs", type=int, default=10, help="runs per controller and configuration")
    p.add_argument("--minutes", type=float, default=600, help="start no run after this many minutes")
    p.add_argument("--only", nargs="*", help="controllers to run (flagger argo-rollouts modeldeploy ...)")
    p.add_argument("--no-write", action="store_true", help="do not merge into bench/results/vs_peers.json")
    args = p.parse_args()
    timings = [FASTEST if c == "fastest" else DEFAULTS for c in args.config]
    cluster = connect(start=False)
    assert cluster.prometheus_url and cluster.prometheus_targets_dir and cluster.audit_log
    prometheus = Prometheus(cluster.prometheus_url, cluster.prometheus_targets_dir)
    workdir = Path(tempfile.mkdtemp(prefix="vs-peers-"))
    wanted = set(args.only or ["flagger", "argo-rollouts", "modeldeploy", "modeldeploy-sequential"])
    short = {
        "flagger": "flagger",
        "argo-rollouts": "argo",
        "modeldeploy": "md",
        "modeldeploy-sequential": "mdseq",
    }

    def ns(controller: str, timing: Timing) -> str:
        return f"{NAMESPACE_PREFIX}{short[controller]}-{timing.name}"

    delete_namespaces(cluster, [ns(c, t) for c in short if c in wanted for t in timings])
    procs: list[Any] = []
    users: dict[str, tuple[str, Callable[[], int]]] = {}
    load_start = os.getloadavg()
    groups: list[Group] = []
    until = time.time() + args.minutes * 60
    try:
        if "flagger" in wanted:
            fl = controllers.start_flagger(cluster, workdir)
            procs.append(fl)
            users["flagger"] = (fl.user, lambda: fl.pid)
        if "argo-rollouts" in wanted:
            ar = controllers.start_argo_rollouts(cluster, workdir)
            procs.append(ar)
            users["argo-rollouts"] = (ar.user, lambda: ar.pid)
        if wanted & {"modeldeploy", "modeldeploy-sequential"}:
            install_manifests(cluster)
            op = OperatorProcess(cluster, workdir, extra_args=("--namespace", f"{NAMESPACE_PREFIX}md*"))
            op.start()
            procs.append(op)

            def op_pid() -> int:
                assert op.proc is not None
                return op.proc.pid

            users["modeldeploy"] = users["modeldeploy-sequential"] = (op.user, op_pid)
        for timing in timings:
            subjects: list[Subject] = []
            if "flagger" in wanted:
                subjects.append(FlaggerSubject(cluster, timing, ns("flagger", timing)))
            if "argo-rollouts" in wanted:
                subjects.append(ArgoSubject(cluster, timing, ns("argo-rollouts", timing)))
            for name, sequential in (("modeldeploy", False), ("modeldeploy-sequential", True)):
                if name in wanted:
                    subjects.append(ModelDeploymentSubject(cluster, timing, ns(name, timing), sequential))
            benches = [Bench(cluster, prometheus, s, *users[s.controller]) for s in subjects]
            groups.append(Group(timing, benches, args.runs, until))
        with ThreadPoolExecutor(max_workers=8) as pool:  # setups wait on controllers' ticks: in parallel
            for started in [pool.submit(b.start) for g in groups for b in g.benches]:
                started.result()
        run_groups(groups, cluster.api_client())
    finally:
        for g in groups:
            for b in g.benches:
                b.stop()
        for proc in procs:
            proc.stop()
    load_end = os.getloadavg()
    merged = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    for g in groups:
        report: dict[str, Any] = {
            "config": g.timing.name,
            "interval_s": g.timing.interval_s,
            "configurations_run_together": [t.name for t in timings],
            "versions": {
                "flagger": controllers.FLAGGER_VERSION,
                "argo-rollouts": controllers.ARGO_ROLLOUTS_VERSION,
                "rollouts-plugin-trafficrouter-gatewayapi": controllers.GATEWAYAPI_PLUGIN_VERSION,
            },
            "rps": RPS,
            "error_rate_injected": ERROR_RATE,
            "cpus": os.cpu_count(),
            "loadavg_start": [round(x, 2) for x in load_start],
            "loadavg_end": [round(x, 2) for x in load_end],
            "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "controllers": {
                name: {
                    "summary": summarize(rs),
                    "measured_with": sorted(g.results),
                    "loadavg_start": [round(x, 2) for x in load_start],
                    "loadavg_end": [round(x, 2) for x in load_end],
                    "runs": [asdict(r) for r in rs],
                }
                for name, rs in g.results.items()
            },
        }
        # a later invocation with --only adds its controllers to those already recorded
        kept = (merged.get(g.timing.name) or {}).get("controllers") or {}
        report["controllers"] = {**kept, **report["controllers"]}
        report["target"] = target_check(report["controllers"])
        merged[g.timing.name] = report
    print(json.dumps(merged, indent=2))
    if not args.no_write:
        RESULTS.write_text(json.dumps(merged, indent=2) + "\n")


def target_check(by_controller: dict[str, Any]) -> dict[str, Any]:
    """modeldeploy's median time to stable over the best peer's (target: <= 0.5)."""
    medians = {
        name: c["summary"].get("visible_to_stable_s_median")
        for name, c in by_controller.items()
        if c["summary"].get("visible_to_stable_s_median") is not None
    }
    peers = [v for k, v in medians.items() if not k.startswith("modeldeploy")]
    ours = {k: v for k, v in medians.items() if k.startswith("modeldeploy")}
    if not peers or not ours:
        return {"ratio": None}
    best = min(peers)
    return {
        name: {"ratio_to_best_peer": round(v / best, 2), "met": v <= 0.5 * best} for name, v in ours.items()
    }


if __name__ == "__main__":
    main()
