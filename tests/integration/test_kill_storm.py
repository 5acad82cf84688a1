"""Fault matrix row 1: the operator SIGKILLed and restarted over and over during a canary.

Two operator processes, each watching its own namespace (no operator of the test session watches
``ks-*``): one is left alone (the baseline), the other is SIGKILLed at a varied moment 0.3-2 s after
each start, at least ``KILLS`` times, while the same 8-step canary runs under both (setWeight and
timed pauses, a last pause that waits for ``promote``). When three kills in a row found no stored
status (a loaded machine starts the operator slower than the kills), the next kill waits for one
stored pass first, so the rollout progresses. Then, for the killed one:

* the rollout completes (the new revision is stable and Healthy);
* the Events record every decision exactly once: one ``StepAdvanced`` per step, one
  ``RolloutPromoted``, the same count per reason as the baseline run;
* no status field is lost: the final status has the baseline's shape (the same field paths).
"""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from modeldeploy_testing.cluster import Cluster, poll
from modeldeploy_testing.operator import OperatorProcess, install_manifests
from modeldeploy_testing.plugin import _test_namespace

pytestmark = pytest.mark.integration

KILLS = 20
STALL_LIMIT = 3  # kills in a row without a stored status before one pass is let through
STEPS: list[dict[str, Any]] = [
    {"setWeight": 20},
    {"pause": {"duration": "6s"}},
    {"setWeight": 40},
    {"pause": {"duration": "6s"}},
    {"setWeight": 60},
    {"pause": {"duration": "6s"}},
    {"setWeight": 80},
    {"pause": {}},  # waits for `promote`: sent once the storm has killed enough times
]
DECISIONS = ("RolloutStarted", "WeightChanged", "StepAdvanced", "StepPromoted", "RolloutPromoted")


def manifest(version: str) -> dict[str, Any]:
    return {
        "apiVersion": "modeldeploy.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": "storm"},
        "spec": {
            "runtime": "triton",
            "model": {"name": "fraud", "version": version, "storageUri": f"s3://models/fraud/{version}"},
            "replicas": 4,
            "resources": {"cpu": "100m", "memory": "256Mi"},
            "rollout": {"canary": {"steps": STEPS}},
        },
    }


class Run:
    """One namespace, one operator of its own, one ModelDeployment ``storm``."""

    def __init__(self, cluster: Cluster, ns: str, workdir: Path) -> None:
        self.cluster, self.ns = cluster, ns
        self.operator = OperatorProcess(cluster, workdir, extra_args=("--namespace", ns))

    def md(self) -> dict[str, Any]:
        result: dict[str, Any] = json.loads(
            self.cluster.kubectl("get", "md", "storm", "-n", self.ns, "-o", "json").stdout
        )
        return result

    def status(self) -> dict[str, Any]:
        result: dict[str, Any] = self.md().get("status") or {}
        return result

    def version(self) -> str:
        """The object's resourceVersion: it changes with every stored status (and annotation)."""
        return str(self.md()["metadata"]["resourceVersion"])

    def healthy(self) -> str | None:
        st = self.status()
        done = st.get("phase") == "Healthy" and not st.get("canaryRevision") and st.get("stableRevision")
        return st["stableRevision"] if done else None

    def wait_for_a_write_after(self, version: str) -> None:
        poll(f"a stored pass in {self.ns}", lambda: self.version() != version, timeout=120, interval=0.2)

    def at_last_step(self) -> bool:
        return self.status().get("currentStep") == len(STEPS) - 1

    def promote(self) -> None:
        self.cluster.kubectl(
            "annotate", "md", "storm", "-n", self.ns, "--overwrite", "modeldeploy.dev/command=promote/storm-1"
        )

    def decisions(self) -> Counter[str]:
        """Events on the ModelDeployment by reason (each Event object counted with its ``count``)."""
        out = self.cluster.kubectl("get", "events", "-n", self.ns, "-o", "json").stdout
        found: Counter[str] = Counter()
        for event in json.loads(out)["items"]:
            if event["involvedObject"].get("kind") == "ModelDeployment":
                found[event["reason"]] += int(event.get("count") or 1)
        return found


def shape(value: Any, path: str = "") -> set[str]:
    """Every field path of a JSON value (list items share one path)."""
    if isinstance(value, dict):
        out = {path} if path else set()
        for key, item in value.items():
            out |= shape(item, f"{path}.{key}")
        return out
    if isinstance(value, list):
        return set().union({path}, *(shape(item, f"{path}[]") for item in value))
    return {path}


@pytest.fixture
def runs(
    request: pytest.FixtureRequest, cluster: Cluster, api: Any, tmp_path: Path
) -> Iterator[tuple[Run, Run]]:
    install_manifests(cluster)
    storm_ns = _test_namespace(request, cluster, api, "ks-")
    calm_ns = _test_namespace(request, cluster, api, "kc-")
    for part in ("storm", "calm"):
        (tmp_path / part).mkdir()
    storm = Run(cluster, next(storm_ns), tmp_path / "storm")
    calm = Run(cluster, next(calm_ns), tmp_path / "calm")
    try:
        yield storm, calm
    finally:
        for run in (storm, calm):
            run.operator.stop()
        for gen in (storm_ns, calm_ns):
            next(gen, None)  # deletes the namespace


@pytest.mark.timeout(1500)  # minutes on a loaded machine: each of the >= 20 restarts starts kopf anew
def test_a_canary_under_a_kill_storm_is_recorded_exactly_once(runs: tuple[Run, Run]) -> None:
    storm, calm = runs
    for run in (storm, calm):
        run.operator.start()
        run.cluster.apply(manifest("1"), namespace=run.ns)
    old = {run.ns: poll("v1 Healthy", run.healthy, timeout=120) for run in (storm, calm)}
    for run in (storm, calm):
        run.cluster.apply(manifest("2"), namespace=run.ns)

    rng = random.Random(1)
    kills, promoted, new, stalled = 0, False, None, 0
    deadline = time.monotonic() + 1200
    while new is None:
        assert time.monotonic() < deadline, f"no promotion after {kills} kills; status {storm.status()}"
        before = storm.version()
        waiting_for_promote = storm.at_last_step() and not promoted  # nothing to store until then
        if stalled >= STALL_LIMIT and not waiting_for_promote:
            # a loaded machine can be slower than the kills: let one pass store its status, then
            # kill at a varied moment again (progress is guaranteed, kills stay anywhere in a pass)
            storm.wait_for_a_write_after(before)
        time.sleep(rng.uniform(0.3, 2.0))  # the operator runs: a pass may be anywhere
        storm.operator.kill()
        kills += 1
        stalled = 0 if storm.version() != before else stalled + 1
        if not promoted and kills >= KILLS and storm.at_last_step():
            storm.promote()
            promoted = True
        storm.operator.start()
        new = storm.healthy() if promoted else None
    assert kills >= KILLS

    poll("calm run at its last step", calm.at_last_step, timeout=180)
    calm.promote()
    calm_new = poll("calm run promoted", calm.healthy, timeout=120)

    assert new != old[storm.ns] and new == calm_new  # same spec: the same revision
    found, baseline = storm.decisions(), calm.decisions()
    print(f"\nkill storm: {kills} kills; Events by reason: {dict(found)}; unkilled run: {dict(baseline)}")
    assert found["StepAdvanced"] == len(STEPS) and found["RolloutPromoted"] == 1, found
    assert {r: found[r] for r in DECISIONS} == {r: baseline[r] for r in DECISIONS}
    final, reference = storm.status(), calm.status()
    assert shape(final) == shape(reference), shape(final) ^ shape(reference)
    assert final["phase"] == reference["phase"] == "Healthy"
    assert final["lastDecision"]["action"] == reference["lastDecision"]["action"] == "RolloutPromoted"
