"""Cost of the pure parts of one reconcile pass, as JSON.

    .venv/bin/python bench/decide.py [--passes N]

Walks a 4-step canary (setWeight/analysis) with successful measurements, calling the rollout decision
once per simulated pass the way the operator does, and times it; also times the child-object diff
(`needs_apply`) of a full Deployment and the PromQL rendering of the built-in guardrails. These are
the operator's CPU cost per ModelDeployment per pass (API round trips excluded).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from modeldeploy.analysis.render import Variables, render
from modeldeploy.analysis.templates import builtin_template
from modeldeploy.api.spec import ModelDeploymentSpec
from modeldeploy.api.status import Measurement, ModelDeploymentStatus
from modeldeploy.children import BuildSettings, OwnerInfo, build_deployment, revision_hash
from modeldeploy.kube.diff import needs_apply
from modeldeploy.rollout import Observations, RevisionObservation, ScaleRevision, decide, measurement_due
from modeldeploy.runtimes import get_runtime

SPEC = {
    "runtime": "triton",
    "model": {"name": "fraud", "version": "2", "storageUri": "s3://models/fraud/2"},
    "replicas": 8,
    "resources": {"gpu": {"count": 1}},
    "rollout": {
        "maxSurgeGPUs": 2,
        "canary": {
            "steps": [
                {"setWeight": 25},
                {"analysis": {"duration": "1m"}},
                {"setWeight": 50},
                {"analysis": {"duration": "1m"}},
            ]
        },
        "analysis": {
            "interval": "10s",
            "guardrails": [{"name": "error-rate", "template": "error-rate", "max": 0.01}],
        },
    },
}


def walk(passes: int) -> tuple[list[float], int]:
    """Decision cost per pass, and how many complete rollouts (start -> promoted) the passes covered."""
    spec = ModelDeploymentSpec.model_validate(SPEC)
    desired = revision_hash(spec)
    status = ModelDeploymentStatus(stable_revision="aaaaaaaaaa")
    world = {"aaaaaaaaaa": RevisionObservation(replicas=8, ready_replicas=8, pods=8)}
    now = datetime(2026, 1, 1, tzinfo=UTC)
    costs: list[float] = []
    rollouts = 0
    for _ in range(passes):
        measurements: list[Measurement] = []
        if measurement_due(spec, status, now) and status.rollout is not None:
            measurements = [
                Measurement(
                    guardrail="error-rate",
                    revision=status.rollout.revision,
                    value=0.001,
                    samples=500,
                    threshold="<= 0.01",
                    verdict="Successful",
                    at=now.strftime("%Y-%m-%dT%H:%M:%SZ"),
                )
            ]
        obs = Observations(desired_revision=desired, revisions=dict(world), measurements=measurements)
        start = time.perf_counter()
        plan = decide(spec, status, obs, now)
        costs.append(time.perf_counter() - start)
        for action in plan.actions:
            if isinstance(action, ScaleRevision):
                world[action.revision] = RevisionObservation(
                    replicas=action.replicas, ready_replicas=action.replicas, pods=action.replicas
                )
        status = ModelDeploymentStatus.model_validate(plan.status.wire())  # through the API, as stored
        if status.stable_revision == desired:  # promoted: start the same rollout again
            rollouts += 1
            status = ModelDeploymentStatus(stable_revision="aaaaaaaaaa")
            world = {"aaaaaaaaaa": RevisionObservation(replicas=8, ready_replicas=8, pods=8)}
        now += timedelta(seconds=5)
    return costs, rollouts


def timed(fn: Callable[[], object], n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) / n


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--passes", type=int, default=2000)
    args = parser.parse_args()
    costs, rollouts = walk(args.passes)
    spec = ModelDeploymentSpec.model_validate(SPEC)
    owner = OwnerInfo(
        api_version="modeldeploy.dev/v1alpha1", kind="ModelDeployment", name="fraud", namespace="ml", uid="u"
    )
    dep = build_deployment(owner, spec, "bbbbbbbbbb", 8, get_runtime("triton"), BuildSettings())
    live = json.loads(json.dumps(dep))
    live["metadata"]["resourceVersion"] = "1"
    source = builtin_template("triton", "error-rate")
    variables = Variables(namespace="ml", name="fraud", revision="bbbbbbbbbb", window="1m")
    print(
        json.dumps(
            {
                "machine": platform.processor() or platform.machine(),
                "python": platform.python_version(),
                "decide_passes": len(costs),
                "rollouts_completed": rollouts,
                "decide_us_median": round(statistics.median(costs) * 1e6, 1),
                "decide_us_p99": round(sorted(costs)[int(len(costs) * 0.99) - 1] * 1e6, 1),
                "needs_apply_deployment_us": round(timed(lambda: needs_apply(dep, live), 2000) * 1e6, 1),
                "render_builtin_guardrail_us": round(
                    timed(lambda: render(source, variables, guardrail="e"), 2000) * 1e6, 1
                ),
                "revision_hash_us": round(timed(lambda: revision_hash(spec), 500) * 1e6, 1),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
