"""The demo (run by ``bash e2e/demo.sh``, after the shared setup in e2e/setup.sh).

On the local control plane + Prometheus it installs the operator's manifests, starts the operator
(under its ServiceAccount's token, watching only the demo namespace), starts the model-server
harness and client load for that namespace, applies ``e2e/samples/fraud-detector.yaml`` and then:

1. rolls a good revision (model version 2) through its canary steps to stable;
2. rolls a bad one (version 3, whose servers fail 20% of requests) and lets the operator roll it
   back by itself.

Every change is printed as it happens, one line each, prefixed with the UTC time: the rollout step
and weight, each measurement's guardrail values against their thresholds, and the operator's
decisions (its Events). Exit 0 only when the good revision was promoted and the bad one rolled back.

The cluster keeps running afterwards: ``source .cluster/env; kubectl get md -n modeldeploy-demo``.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import os
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # modeldeploy_testing: cluster + operator process
sys.path.insert(0, str(REPO / "e2e"))  # harness: model servers, load, recorder

from harness import Behavior, Load, World  # noqa: E402
from harness.recorder import Recorder, Snapshot  # noqa: E402
from modeldeploy_testing.cluster import Cluster, ClusterUnavailable, connect, poll  # noqa: E402
from modeldeploy_testing.operator import OperatorProcess, install_manifests  # noqa: E402

NAMESPACE = "modeldeploy-demo"
SAMPLE = REPO / "e2e" / "samples" / "fraud-detector.yaml"
RPS = 40.0  # client load on the ModelDeployment's Service
BAD_ERROR_RATE = 0.2
GOOD = Behavior(latency_ms=20)  # how every revision's model servers answer unless told otherwise
BAD = GOOD.with_changes(error_rate=BAD_ERROR_RATE)
DECISIONS = {
    "RolloutPromoted",
    "RolledBack",
    "RolloutAborted",
    "AnalysisPassed",
    "RolloutPaused",
    "InconclusiveAnalysis",
    "AnalysisError",
}


class DemoFailed(Exception):
    """The demo did not show what it should; the message says what and why."""


# --- output --------------------------------------------------------------------------------------


class Out:
    """Timestamped lines (UTC ``HH:MM:SS``), safe to call from the recorder's thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def __call__(self, text: str, label: str = "") -> None:
        stamp = datetime.now(UTC).strftime("%H:%M:%S")
        line = f"{stamp}  {label:<9}{text}" if label else f"{stamp}  {text}"
        with self._lock:
            print(line, flush=True)


out = Out()


def describe_step(step: dict[str, Any]) -> str:
    if "setWeight" in step:
        return f"setWeight {step['setWeight']}"
    if "analysis" in step:
        return f"analysis {(step['analysis'] or {}).get('duration', '')}".rstrip()
    if "pause" in step:
        duration = (step["pause"] or {}).get("duration")
        return f"pause {duration}" if duration else "pause (until promoted)"
    return next(iter(step), "?")


class Printer:
    """The Recorder's callbacks: one line per status change, measurement pass and Event."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.steps: list[dict[str, Any]] = spec["rollout"]["canary"]["steps"]
        guardrails = spec["rollout"]["analysis"]["guardrails"]
        self.templates = {g["name"]: g.get("template") or "" for g in guardrails}
        self.pending: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self.lock = threading.Lock()

    def on_change(self, snap: Snapshot, status: dict[str, Any]) -> None:
        parts: list[str] = []
        if snap.canary:
            n = len(self.steps)
            step = snap.step or 0
            if step < n:
                parts += [f"step {step + 1}/{n}", describe_step(self.steps[step])]
            else:
                parts += [f"step {n}/{n} done", "promoting"]
        parts += [f"weight {snap.weight}%", f"stable {snap.stable or '-'}"]
        if snap.canary:
            parts.append(f"canary {snap.canary}")
        ready = status.get("readyReplicas")
        parts.append(f"[{snap.phase or 'Pending'}{', paused' if snap.paused else ''}, {ready or 0} ready]")
        out("  ".join(parts), "status")

    def on_measurement(self, m: dict[str, Any]) -> None:
        """Guardrail results of one pass share ``at``: print them together once all have arrived."""
        key = (m.get("at", ""), m.get("revision", ""))
        with self.lock:
            for other in [k for k in self.pending if k != key]:
                self._flush(other)  # an incomplete older pass (should not happen)
            self.pending.setdefault(key, []).append(m)
            if len(self.pending[key]) >= len(self.templates):
                self._flush(key)

    def flush(self) -> None:
        with self.lock:
            for key in list(self.pending):
                self._flush(key)

    def _flush(self, key: tuple[str, str]) -> None:
        results = self.pending.pop(key, [])
        if results:
            text = " | ".join(self.format(m) for m in results)
            out(f"canary {key[1]}  {text}", "measure")

    def format(self, m: dict[str, Any]) -> str:
        name = m.get("guardrail", "?")
        value = m.get("value")
        if value is None:
            shown = "no data"
        elif "ms" in self.templates.get(name, "") or "latency" in name:
            shown = f"{value:.1f} ms"
        else:
            shown = f"{value:.3f}"
        samples = m.get("samples")
        n = f", {samples:.0f} req" if isinstance(samples, int | float) else ""
        return f"{name} = {shown} ({m.get('threshold') or '?'}{n}) {m.get('verdict', '?')}"

    def on_event(self, ev: dict[str, Any]) -> None:
        self.flush()  # a decision follows the measurement that caused it
        label = "decision" if ev["reason"] in DECISIONS else "event"
        out(f"{ev['reason']}: {ev['message']}", label)


# --- the demo ------------------------------------------------------------------------------------


def status_of(custom: Any, name: str) -> dict[str, Any]:
    md = custom.get_namespaced_custom_object(
        "modeldeploy.dev", "v1alpha1", NAMESPACE, "modeldeployments", name
    )
    st: dict[str, Any] = md.get("status") or {}
    return st


def with_version(body: dict[str, Any], version: str) -> dict[str, Any]:
    new = copy.deepcopy(body)
    model = new["spec"]["model"]
    model["version"] = version
    model["storageUri"] = model["storageUri"].rsplit("/", 1)[0] + f"/{version}"
    return new


def fresh_namespace(cluster: Cluster) -> None:
    if cluster.kubectl("get", "namespace", NAMESPACE, check=False).returncode == 0:
        out(f"deleting the previous run's namespace {NAMESPACE}")
        cluster.kubectl("delete", "namespace", NAMESPACE, "--wait=true", "--timeout=180s", timeout=200)
    cluster.kubectl("create", "namespace", NAMESPACE)
    cluster.kubectl("label", "namespace", NAMESPACE, "app.kubernetes.io/part-of=modeldeploy-demo")
    # Pods are rejected until the controller-manager has created the default ServiceAccount.
    poll(
        f"ServiceAccount default in {NAMESPACE}",
        lambda: cluster.kubectl("get", "sa", "default", "-n", NAMESPACE, check=False).returncode == 0,
        timeout=60,
        interval=0.3,
    )
    # target files a killed earlier run left behind (the World removes its own on stop)
    assert cluster.prometheus_targets_dir is not None
    for stale in cluster.prometheus_targets_dir.glob(f"harness-{NAMESPACE}-*.json"):
        stale.unlink(missing_ok=True)


def wait_until(
    what: str,
    custom: Any,
    name: str,
    done: Callable[[dict[str, Any]], bool],
    bad: Callable[[dict[str, Any]], str | None],
    timeout: float,
) -> dict[str, Any]:
    """Poll the status until ``done``; DemoFailed when ``bad`` names a problem or on timeout."""
    deadline = time.monotonic() + timeout
    st: dict[str, Any] = {}
    while time.monotonic() < deadline:
        st = status_of(custom, name)
        if done(st):
            return st
        problem = bad(st)
        if problem:
            raise DemoFailed(f"{what}: {problem}")
        time.sleep(0.2)
    rollout = st.get("rollout") or {}
    raise DemoFailed(
        f"{what}: not reached within {timeout:.0f}s (phase {st.get('phase')}, step {st.get('currentStep')}, "
        f"weight {st.get('canaryWeight')}%, pause reason: {rollout.get('pauseReason') or '-'})"
    )


def paused_problem(st: dict[str, Any]) -> str | None:
    rollout = st.get("rollout") or {}
    if rollout.get("paused"):
        return f"the rollout paused: {rollout.get('pauseReason')}"
    return None


@contextlib.contextmanager
def no_interrupts() -> Iterator[None]:
    """Cleanup must finish: a second Ctrl-C while it runs is ignored."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def run(args: argparse.Namespace) -> dict[str, float]:
    """The demo itself; returns the measured durations. Everything it starts is stopped by ``cleanup``."""
    figures: dict[str, float] = {}
    body: dict[str, Any] = yaml.safe_load(SAMPLE.read_text())
    name: str = body["metadata"]["name"]
    printer = Printer(body["spec"])

    # The local cluster (e2e/setup.sh brought it up), not whatever $KUBECONFIG points at.
    os.environ.pop("KUBECONFIG", None)
    try:
        cluster = connect(start=False)
    except ClusterUnavailable as e:
        raise DemoFailed(f"no local cluster: {e}") from e
    cleanup.cluster = cluster
    if cluster.cluster_dir is None or cluster.prometheus_targets_dir is None or not cluster.prometheus_url:
        raise DemoFailed("the local cluster has no Prometheus (run: bash e2e/cluster.sh up)")
    out(f"cluster: {cluster.kubeconfig}  prometheus: {cluster.prometheus_url}")

    out("installing the manifests (CRDs, namespace, ServiceAccount, RBAC) from manifests/overlays/local")
    install_manifests(cluster)
    fresh_namespace(cluster)

    workdir_root = cluster.cluster_dir / "demo"
    workdir_root.mkdir(parents=True, exist_ok=True)
    workdir = Path(
        tempfile.mkdtemp(prefix=datetime.now(UTC).strftime("run-%Y%m%d-%H%M%S-"), dir=workdir_root)
    )
    op = OperatorProcess(cluster, workdir, resync_seconds=5, extra_args=("--namespace", NAMESPACE))
    cleanup.operator = op
    op.start()
    out(
        f"operator started (pid {op.proc.pid if op.proc else '?'}, watching namespace {NAMESPACE}); "
        f"log: {op.log_path}"
    )

    world = World(
        cluster.kubeconfig, cluster.prometheus_targets_dir, namespace=NAMESPACE, default_behavior=GOOD
    )
    cleanup.world = world
    world.start()
    out("harness started: a fake Triton server for every Ready serving pod, scraped by Prometheus")

    api = cluster.api_client()
    cleanup.api = api
    from kubernetes import client

    custom: Any = client.CustomObjectsApi(api)

    # --- 1. the sample, version 1 -------------------------------------------------------------
    out(
        f"applying {SAMPLE.relative_to(REPO)} (model {body['spec']['model']['name']} "
        f"version {body['spec']['model']['version']}) to namespace {NAMESPACE}"
    )
    recorder = Recorder(
        api,
        NAMESPACE,
        name,
        on_change=printer.on_change,
        on_event=printer.on_event,
        on_measurement=printer.on_measurement,
    )
    cluster.apply(body, namespace=NAMESPACE)
    cleanup.recorder = recorder.start()
    st = wait_until(
        "first revision Healthy",
        custom,
        name,
        lambda s: (
            s.get("phase") == "Healthy" and bool(s.get("stableRevision")) and not s.get("canaryRevision")
        ),
        lambda s: None,
        timeout=args.step_timeout,
    )
    first = st["stableRevision"]
    load = Load(world, NAMESPACE, name, rps=RPS)
    cleanup.load = load
    load.start()
    out(f"load started: {RPS:.0f} requests/s to Service {name}, routed by its EndpointSlices")
    time.sleep(3)  # some traffic on the stable revision before the canary's comparison begins

    # --- 2. a good revision ----------------------------------------------------------------------
    good_body = with_version(body, "2")
    out(
        f"GOOD revision: model version 2 ({good_body['spec']['model']['storageUri']}); "
        "its servers answer like the stable's",
        "==>",
    )
    started = time.monotonic()
    cluster.apply(good_body, namespace=NAMESPACE)
    good = wait_until(
        "good revision starts",
        custom,
        name,
        lambda s: bool(s.get("canaryRevision")),
        lambda s: None,
        timeout=60,
    )["canaryRevision"]

    def good_problem(s: dict[str, Any]) -> str | None:
        if s.get("phase") == "RolledBack" or (s.get("rollout") or {}).get("aborted"):
            return f"the good revision was rolled back: {(s.get('rollout') or {}).get('abortReason')}"
        return paused_problem(s)

    wait_until(
        f"good revision {good} promoted",
        custom,
        name,
        lambda s: (
            s.get("stableRevision") == good and not s.get("canaryRevision") and s.get("phase") == "Healthy"
        ),
        good_problem,
        timeout=args.step_timeout,
    )
    figures["good_promoted_s"] = time.monotonic() - started
    out(f"good revision {good} promoted in {figures['good_promoted_s']:.1f}s (replaced {first})", "==>")

    # --- 3. a bad revision -------------------------------------------------------------------------
    bad_body = with_version(body, "3")
    out(
        f"BAD revision: model version 3 ({bad_body['spec']['model']['storageUri']}); "
        f"its servers fail {BAD_ERROR_RATE:.0%} of requests",
        "==>",
    )
    # Race-free: the stable keeps answering well; any new revision's servers start bad, so the
    # canary is bad from its first request. Once its id is known it gets its own behaviour.
    world.set_behavior(NAMESPACE, name, good, GOOD)
    world.default_behavior = BAD
    started = time.monotonic()
    cluster.apply(bad_body, namespace=NAMESPACE)
    bad = wait_until(
        "bad revision starts",
        custom,
        name,
        lambda s: s.get("canaryRevision") not in (None, good),
        lambda s: None,
        timeout=60,
    )["canaryRevision"]
    world.set_behavior(NAMESPACE, name, bad, BAD)
    world.default_behavior = GOOD
    out(f"harness: canary {bad} fails {BAD_ERROR_RATE:.0%} of its requests", "harness")

    def bad_problem(s: dict[str, Any]) -> str | None:
        if s.get("stableRevision") == bad:
            return "the bad revision was promoted"
        return paused_problem(s)

    wait_until(
        f"bad revision {bad} rolled back",
        custom,
        name,
        lambda s: (
            s.get("phase") == "RolledBack" and not s.get("canaryWeight") and s.get("stableRevision") == good
        ),
        bad_problem,
        timeout=args.step_timeout,
    )
    rolled_back = time.time()
    figures["bad_rolled_back_s"] = time.monotonic() - started
    time.sleep(0.5)  # let the recorder print the decision and the last measurement
    printer.flush()
    failed = [m for m in recorder.measurements if m.get("revision") == bad and m.get("verdict") == "Failed"]
    if failed:
        first_failed = parse_time(failed[0].get("at"))
        if first_failed is not None:
            figures["rollback_after_first_failure_s"] = max(0.0, rolled_back - first_failed)
        shown = printer.format(failed[-1])
        out(f"the failing measurement: canary {bad}  {shown}", "==>")
    rollback = [e for e in recorder.events if e["reason"] == "RolledBack"]
    if rollback:
        out(f"the decision: RolledBack: {rollback[-1]['message']}", "==>")
    out(
        f"bad revision {bad} rolled back {figures['bad_rolled_back_s']:.1f}s after it was applied; "
        f"traffic is on {good} again",
        "==>",
    )
    figures["total_s"] = time.monotonic() - cleanup.t0
    return figures


def parse_time(value: Any) -> float | None:
    """``status.measurements[].at`` (RFC 3339) as epoch seconds."""
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


class Cleanup:
    """What ``run`` started, stopped in reverse order (never raises)."""

    def __init__(self) -> None:
        self.t0 = time.monotonic()
        self.recorder: Recorder | None = None
        self.load: Load | None = None
        self.world: World | None = None
        self.operator: OperatorProcess | None = None
        self.api: Any = None
        self.cluster: Cluster | None = None
        self.delete_namespace = False

    def __call__(self) -> None:
        steps: list[tuple[str, Callable[[], object] | None]] = [
            ("recorder", self.recorder.stop if self.recorder else None),
            ("load", self.load.stop if self.load else None),
            ("harness", self.world.stop if self.world else None),
            ("operator", self.operator.stop if self.operator else None),
            ("api client", self.api.close if self.api is not None else None),
            ("namespace", self._delete_namespace),
        ]
        for what, stop in steps:
            try:
                if stop is not None:
                    stop()
            except Exception as e:  # keep stopping the rest
                print(f"demo: stopping the {what} failed: {e}", file=sys.stderr, flush=True)

    def _delete_namespace(self) -> None:
        if self.delete_namespace and self.cluster is not None:
            out(f"deleting namespace {NAMESPACE} (frees its GPUs)")
            self.cluster.kubectl(
                "delete",
                "namespace",
                NAMESPACE,
                "--ignore-not-found",
                "--wait=true",
                "--timeout=120s",
                timeout=150,
            )


cleanup = Cleanup()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bash e2e/demo.sh", description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--step-timeout",
        type=float,
        default=180,
        help="seconds each phase (first deploy, good rollout, bad rollout) may take (default 180)",
    )
    p.add_argument(
        "--delete-namespace",
        action="store_true",
        help=f"delete namespace {NAMESPACE} on exit instead of leaving it to look around "
        "(frees its GPUs for the test suite; the e2e test of the demo uses it)",
    )
    args = p.parse_args(argv)
    cleanup.delete_namespace = args.delete_namespace
    signal.signal(signal.SIGTERM, on_sigterm)
    print(
        f"modeldeploy demo: canary rollouts judged by Prometheus guardrails (times are UTC; "
        f"namespace {NAMESPACE})",
        flush=True,
    )
    code = 1
    figures: dict[str, float] = {}
    try:
        figures = run(args)
        code = 0
    except KeyboardInterrupt:
        print("\ndemo: interrupted; cleaning up", file=sys.stderr, flush=True)
        code = 130
    except DemoFailed as e:
        out(f"FAILED: {e}", "==>")
    except Exception as e:  # an unexpected error: say what, still clean up
        out(f"FAILED: {type(e).__name__}: {e}", "==>")
    finally:
        with no_interrupts():
            cleanup()
    print()
    if code == 0:
        print("== summary")
        print(
            f"  good revision: promoted in {figures['good_promoted_s']:.1f}s "
            "(4 steps: setWeight 25, analysis 15s, setWeight 50, analysis 15s)"
        )
        after = figures.get("rollback_after_first_failure_s")
        after_text = f"{after:.1f}s after the first failed measurement, " if after is not None else ""
        print(
            f"  bad revision:  rolled back by the operator {after_text}"
            f"{figures['bad_rolled_back_s']:.1f}s after it was applied"
        )
        print(f"  whole demo:    {figures['total_s']:.0f}s")
    elif code == 1:
        print("demo: FAILED (see the line above); the operator's log says more", file=sys.stderr)
    if cleanup.operator is not None:
        print(f"operator log: {cleanup.operator.log_path}")
    print("stopped the load, the harness and the operator; the cluster keeps running.")
    if not args.delete_namespace:
        print(
            f"Look around:\n"
            f"  source .cluster/env; kubectl get md -n {NAMESPACE}\n"
            f"  kubectl describe md -n {NAMESPACE}; kubectl get events -n {NAMESPACE} "
            "--sort-by=.metadata.creationTimestamp\n"
            f"Nothing reconciles {NAMESPACE} now; its pods hold 4 of the cluster's 8 (simulated) GPUs until\n"
            f"`bash e2e/test.sh` (or kubectl delete namespace {NAMESPACE}) clears it.\n"
            "Stop the cluster with: bash e2e/cluster.sh down"
        )
    return code


if __name__ == "__main__":
    raise SystemExit(main())
