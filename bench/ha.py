"""Leader SIGKILLed mid-rollout, N times: how fast the standby takes over, and whether any canary step
is repeated or skipped.

Two operator replicas run on the host under the operator's ServiceAccount with ``--leader-elect``
(a Lease of the bench's own name in modeldeploy-system) and default election timing, both watching
one namespace of their own. Per run: a new model version starts an 8-step canary (setWeight and
3 s pauses, no analysis: it needs no Prometheus); when the rollout reaches step 1 + (run mod 7) the
leader is SIGKILLed; the standby's takeover is measured as

- lease acquired: the Lease's acquireTime written by the new holder, minus the kill's wall time;
- first write: the new holder's first write in the namespace (audit log, its own user agent),
  minus the kill (includes waiting out a pause the kill fell into: the rollout has nothing to
  write before it ends);

then the rollout is followed to the end and its Events counted: each StepAdvanced message must
appear once (more: repeated; none: skipped) and RolloutPromoted once. A fresh replica replaces the
killed one (the next standby) before the next run.

    .venv/bin/python bench/ha.py [--kills 10]

JSON on stdout and in bench/results/ha.json. Needs the local control plane (e2e/cluster.sh up).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
for sub in ("operator", "tests"):
    sys.path.insert(0, str(REPO / sub))

from modeldeploy.leader import Timing  # noqa: E402
from modeldeploy_testing.cluster import Cluster, connect, poll  # noqa: E402
from modeldeploy_testing.ha import (  # noqa: E402
    CANARY_WEIGHTS,
    canary_manifest,
    delete_lease,
    events,
    holder,
    measure_takeover,
    start_replica,
    status,
    step_counts,
    wait_stable,
)
from modeldeploy_testing.operator import OperatorProcess, install_manifests  # noqa: E402

RESULTS = REPO / "bench" / "results" / "ha.json"
STEPS = len(CANARY_WEIGHTS) * 2


@dataclass
class Run:
    run: int
    killed_at_step: int
    lease_acquired_s: float
    first_write_s: float | None
    steps_repeated: int
    steps_skipped: int
    promotions: int


def summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    if not ordered:
        return {}
    return {
        "n": len(ordered),
        "min": round(ordered[0], 2),
        "p50": round(statistics.median(ordered), 2),
        "p90": round(ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))], 2),
        "max": round(ordered[-1], 2),
        "mean": round(statistics.fmean(ordered), 2),
    }


class Bench:
    def __init__(self, cluster: Cluster, root: Path) -> None:
        self.cluster, self.root = cluster, root
        token = secrets.token_hex(3)
        self.namespace, self.lease = f"ha-bench-{token}", f"ha-bench-{token}"
        self.replicas: list[OperatorProcess] = []

    def start_replica(self) -> OperatorProcess:
        replica = start_replica(
            self.cluster, self.root / f"r{len(self.replicas)}", self.namespace, self.lease
        )
        self.replicas.append(replica)
        return replica

    def leader(self) -> OperatorProcess:
        def find() -> OperatorProcess | None:
            current = holder(self.cluster, self.lease)
            return next((r for r in self.replicas if r.proc and r.identity() == current), None)

        found: OperatorProcess = poll("a leader", find, timeout=60, interval=0.2)
        return found

    def one(self, run: int, version: int) -> Run:
        ns, name = self.namespace, "ha"
        leader = self.leader()
        standby = next(r for r in self.replicas if r.proc and r is not leader)
        before_steps = step_counts(self.cluster, ns, name)
        before_promotions = len(events(self.cluster, ns, name, "RolloutPromoted"))
        self.cluster.apply(canary_manifest(name, str(version)), namespace=ns)
        kill_step = 1 + run % (STEPS - 1)
        poll(
            f"step {kill_step}",
            lambda: (status(self.cluster, ns, name).get("currentStep") or 0) >= kill_step,
            timeout=120,
            interval=0.2,
        )
        step = int(status(self.cluster, ns, name).get("currentStep") or 0)
        audit_from = leader.audit_offset()
        leader.kill(signal.SIGKILL)
        killed_at = time.time()
        takeover = measure_takeover(self.cluster, standby, self.lease, ns, killed_at, audit_from, 60)
        wait_stable(self.cluster, ns, name, timeout=240)
        after = step_counts(self.cluster, ns, name)
        delta = {m: after.get(m, 0) - before_steps.get(m, 0) for m in set(after) | set(before_steps)}
        # one message per step; the last one names the revision, so it is new in every run
        repeated = sum(max(0, d - 1) for d in delta.values())
        skipped = max(0, STEPS - sum(1 for d in delta.values() if d > 0))
        promotions = len(events(self.cluster, ns, name, "RolloutPromoted")) - before_promotions
        self.start_replica()  # the next standby
        result = Run(
            run, step, takeover.lease_acquired_s, takeover.first_write_s, repeated, skipped, promotions
        )
        print(json.dumps(asdict(result)), file=sys.stderr)
        return result

    def close(self) -> None:
        for replica in self.replicas:
            replica.stop()
        self.cluster.kubectl("delete", "namespace", self.namespace, "--ignore-not-found", "--wait=false")
        delete_lease(self.cluster, self.lease)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=10)
    args = parser.parse_args()
    cluster = connect()
    install_manifests(cluster)
    with tempfile.TemporaryDirectory(prefix="bench-ha-") as tmp:
        bench = Bench(cluster, Path(tmp))
        cluster.kubectl("create", "namespace", bench.namespace)
        poll(
            "default ServiceAccount",
            lambda: (
                cluster.kubectl("get", "sa", "default", "-n", bench.namespace, check=False).returncode == 0
            ),
            timeout=60,
        )
        runs: list[Run] = []
        try:
            bench.start_replica()
            bench.start_replica()
            bench.cluster.apply(canary_manifest("ha", "1"), namespace=bench.namespace)
            wait_stable(cluster, bench.namespace, "ha")
            for run in range(args.kills):
                runs.append(bench.one(run, version=run + 2))
        finally:
            bench.close()
    timing = Timing()
    acquired = [r.lease_acquired_s for r in runs]
    first = [r.first_write_s for r in runs if r.first_write_s is not None]
    result: dict[str, Any] = {
        "kills": len(runs),
        "canary_steps": STEPS,
        "timing_s": {**asdict(timing), "worst_case_lease_takeover": timing.worst_case_takeover},
        "lease_acquired_after_kill_s": summary(acquired),
        "first_write_after_kill_s": summary(first),
        "takeovers_within_15s": sum(1 for a in acquired if a <= 15),
        "steps_repeated": sum(r.steps_repeated for r in runs),
        "steps_skipped": sum(r.steps_skipped for r in runs),
        "promotions": [r.promotions for r in runs],
        "machine": {"cpus": os.cpu_count()},
        "runs": [asdict(r) for r in runs],
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
