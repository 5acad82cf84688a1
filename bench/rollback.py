"""Automatic rollback latency: 20 bad canaries, breach visible in Prometheus -> 100% on stable.

The world and the measurement are bench/vs_peers.py's (imported, not copied): the local control plane,
the real Prometheus scraping the harness's Triton servers, 20 requests/s routed by the HTTPRoute's
weights, the operator on the host under its own ServiceAccount. Each run applies a new model version
(10% then 50% canary, ``interval: 10s``, ``failureLimit: 1``, error-rate guardrail, 30 s window); once
the canary has served 10 requests its pods fail 20% of them. *Visible* is the first moment Prometheus
shows a failure of that revision, *100% on stable* the first moment the HTTPRoute gives the canary
weight 0. *Breach* is the first moment Prometheus shows the guardrail itself breached: the
error-rate query over its threshold with at least ``minSampleSize`` requests in the window (with
fewer, a measurement is Inconclusive, not Failed). Target: breach -> stable p95 <= interval + 1 s
(a measurement every interval, and the action within a second of it); visible -> stable is reported
beside it.

``--others N`` first creates N other ModelDeployments (1 CPU-only replica each, in their own
namespace, watched by the same operator) and waits until they are Healthy, so the rollback competes
with N idle models for the operator's attention. N = 1,000 needs room for 1,000 pods: add kwok nodes
first (the cluster's cpu-0 node holds 110).

    .venv/bin/python bench/rollback.py [--runs 20] [--others 0]

JSON on stdout, merged (per value of --others) into bench/results/rollback.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
for sub in ("operator", "tests", "e2e", "bench"):
    sys.path.insert(0, str(REPO / sub))

import vs_peers  # noqa: E402
from peers.controllers import ensure_namespace  # noqa: E402
from peers.subjects import FASTEST, ModelDeploymentSubject  # noqa: E402

from modeldeploy_testing.cluster import Cluster, Prometheus, connect, poll  # noqa: E402
from modeldeploy_testing.operator import OperatorProcess, install_manifests  # noqa: E402

RESULTS = REPO / "bench" / "results" / "rollback.json"
NAMESPACE = "bench-rollback-md"
OTHERS_NAMESPACE = "bench-rollback-others"
# vs_peers waits 35 s after each rollback to count a peer's late writes; here only the time to stable
# matters and the next run waits for the outcome anyway.
vs_peers.SETTLE_S = 3


def other_model(i: int) -> dict[str, Any]:
    return {
        "apiVersion": "modeldeploy.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": f"idle-{i:04d}"},
        "spec": {
            "runtime": "triton",
            "model": {"name": "idle", "version": "1", "storageUri": "s3://models/idle/1"},
            "replicas": 1,
            "resources": {"cpu": "10m", "memory": "16Mi"},
        },
    }


def create_others(cluster: Cluster, n: int) -> float:
    """Apply ``n`` idle ModelDeployments in batches; seconds until all are Healthy."""
    ensure_namespace(cluster, OTHERS_NAMESPACE)
    started = time.monotonic()
    batch = 100
    for first in range(0, n, batch):
        cluster.apply(
            [other_model(i) for i in range(first, min(n, first + batch))], namespace=OTHERS_NAMESPACE
        )

    def healthy() -> bool:
        out = cluster.kubectl(
            "get", "md", "-n", OTHERS_NAMESPACE, "-o", "jsonpath={.items[*].status.phase}", timeout=120
        ).stdout.split()
        return out.count("Healthy") >= n

    poll(f"{n} other ModelDeployments Healthy", healthy, timeout=max(300, n * 2), interval=5)
    return time.monotonic() - started


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=20)
    p.add_argument("--others", type=int, default=0, help="idle ModelDeployments present during the runs")
    p.add_argument("--no-write", action="store_true", help="do not merge into bench/results/rollback.json")
    args = p.parse_args()
    cluster = connect(start=False)
    assert cluster.prometheus_url and cluster.prometheus_targets_dir and cluster.audit_log
    prometheus = Prometheus(cluster.prometheus_url, cluster.prometheus_targets_dir)
    vs_peers.delete_namespaces(cluster, [NAMESPACE, OTHERS_NAMESPACE])
    install_manifests(cluster)
    op = OperatorProcess(
        cluster,
        Path(tempfile.mkdtemp(prefix="bench-rollback-")),
        resync_seconds=30,
        extra_args=("--namespace", "bench-rollback-*"),
    )
    op.start()

    def op_pid() -> int:
        assert op.proc is not None
        return op.proc.pid

    load_start = os.getloadavg()
    runs: list[vs_peers.Run] = []
    others_ready_s: float | None = None
    bench = vs_peers.Bench(
        cluster, prometheus, ModelDeploymentSubject(cluster, FASTEST, NAMESPACE, False), op.user, op_pid
    )
    try:
        if args.others:
            others_ready_s = create_others(cluster, args.others)
        bench.start()
        api = cluster.api_client()
        for n in range(2, args.runs + 2):
            run = bench.run(n, api, deadline_s=180)
            runs.append(run)
            print(json.dumps(asdict(run)), file=sys.stderr)
    finally:
        bench.stop()
        op.stop()
        vs_peers.delete_namespaces(cluster, [NAMESPACE, OTHERS_NAMESPACE])
    summary = vs_peers.summarize(runs)
    p95 = summary.get("breach_to_stable_s_p95")
    report = {
        "interval_s": FASTEST.interval_s,
        "others": args.others,
        "others_ready_s": None if others_ready_s is None else round(others_ready_s, 1),
        "summary": summary,
        "target": {
            "measured": "breach_to_stable_s_p95",
            "p95_max_s": FASTEST.interval_s + 1,
            "met": p95 is not None and p95 <= FASTEST.interval_s + 1,
        },
        "cpus": os.cpu_count(),
        "loadavg_start": [round(x, 2) for x in load_start],
        "loadavg_end": [round(x, 2) for x in os.getloadavg()],
        "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "runs": [asdict(r) for r in runs],
    }
    merged = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    merged[f"others_{args.others}"] = report
    print(json.dumps(report, indent=2))
    if not args.no_write:
        RESULTS.write_text(json.dumps(merged, indent=2) + "\n")


if __name__ == "__main__":
    main()
