"""Property-based tests of the rollout decision against a tiny simulated world
(tests/unit/rollout_simulation.py: random specs and scripts, the world, the per-pass checker).

Checked on every pass (the ``Checker``) or over a whole run:

1. an analysis only passes with failures < failureLimit, inconclusives < inconclusiveLimit and
   a Successful latest measurement (so never right after an Error; counted independently here); a
   promotion needs every analysis of its attempt passed (or an explicit promote-full);
2. an abort or rollback moves all traffic to stable in the same pass, and once the world
   settles the stable revision is back at full capacity;
3. weight > 0 (and a blue-green switch) only goes to a revision with ready pods;
4. a new revision mid-rollout starts at the beginning against the current stable, and only the
   desired revision is ever promoted;
5. ``decide`` is deterministic;
6. storing the status through the API shape (``wire`` / ``model_validate``) after every pass
   gives exactly the same run as keeping it in memory;
7. pods of all revisions never exceed the GPU budget.
"""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from modeldeploy.api.spec import ModelDeploymentSpec
from modeldeploy.rollout import EmitEvent
from modeldeploy.rollout.replicas import surge_limit

from rollout_builders import build_spec
from rollout_builders import reasons as events
from rollout_simulation import Tick, scripts, simulate, specs

pytestmark = pytest.mark.unit


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=specs(), script=scripts())
def test_random_runs_keep_every_invariant(spec: ModelDeploymentSpec, script: list[Tick]) -> None:
    run = simulate(spec, script, roundtrip=False)
    final, world = run.status, run.world
    stable = final.stable_revision
    assert stable is not None
    if final.rollout is not None and final.rollout.aborted:  # property 2, once pods are ready
        assert final.canary_weight == 0 and final.phase == "RolledBack"
        assert world.workloads[stable].ready == spec.replicas
        assert set(world.workloads) == {stable}
    if final.rollout is None:
        assert world.workloads[stable].ready == spec.replicas
        assert final.phase == "Healthy"
    # every Event of a run without crashes has a name of its own: none is swallowed as a repeat
    identities = [a.identity for plan in run.plans for a in plan.actions if isinstance(a, EmitEvent)]
    assert len(set(identities)) == len(identities)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=specs(), script=scripts(), lost=st.frozensets(st.integers(0, 84), max_size=30))
def test_a_pass_killed_before_its_status_write_is_recorded_once(
    spec: ModelDeploymentSpec, script: list[Tick], lost: frozenset[int]
) -> None:
    """Passes that act and lose their status write are decided again: the API server keeps the
    first Event of each name, and that record tells each step and each promotion once per attempt."""
    run = simulate(spec, script, roundtrip=True, lost_writes=lost)
    record: dict[str, EmitEvent] = {}
    for plan in run.plans:
        for action in plan.actions:
            if isinstance(action, EmitEvent):
                record.setdefault(action.identity, action)
    told: Counter[str] = Counter()
    for event in record.values():
        if event.reason in ("RolloutStarted", "RolloutRetried"):
            told.clear()
        if event.reason in ("StepAdvanced", "RolloutPromoted"):
            said = event.message if event.reason == "StepAdvanced" else event.reason
            told[said] += 1
            assert told[said] == 1, f"{said!r} recorded twice in one rollout"


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=specs(), script=scripts())
def test_a_restarted_operator_resumes_exactly(spec: ModelDeploymentSpec, script: list[Tick]) -> None:
    """Property 6: continuing from the stored (deserialised) status changes nothing."""
    in_memory = simulate(spec, script, roundtrip=False)
    restarted = simulate(spec, script, roundtrip=True)
    assert restarted.plans == in_memory.plans


@settings(max_examples=50, deadline=None)
@given(spec=specs(), seed=st.integers(0, 2**16))
def test_good_measurements_and_patience_always_promote(spec: ModelDeploymentSpec, seed: int) -> None:
    """Liveness: with only successful measurements, promote commands and time, a new revision
    ends up stable (with every analysis passed) and the old one is gone."""
    first = Tick(
        advance=10, seed=seed, verdicts=("Successful",), command=None, repeat_command=False, revision="same"
    )
    new = Tick(
        advance=10, seed=seed, verdicts=("Successful",), command=None, repeat_command=False, revision="new"
    )
    nudge = Tick(
        advance=30,
        seed=seed,
        verdicts=("Successful",),
        command="promote",
        repeat_command=False,
        revision="same",
    )
    limit = surge_limit(spec)
    assume(spec.rollout.strategy == "canary" or limit is None or limit >= 2 * spec.replicas)
    script = [first] * 3 + [new] + [nudge] * 60
    run = simulate(spec, script, roundtrip=False)
    assert run.status.stable_revision == "r1"
    assert run.checker.promotions == 1
    assert set(run.world.workloads) == {"r1"}
    assert run.status.phase == "Healthy"


def test_event_reasons_are_camel_case() -> None:
    reasons: Counter[str] = Counter()
    fixed = build_spec(replicas=2)
    script = [Tick(20, 1, ("Successful",), None, False, "new" if i == 2 else "same") for i in range(40)]
    for plan in simulate(fixed, script, roundtrip=False).plans:
        reasons.update(events(plan))
    assert {"RevisionDeployed", "RolloutStarted", "StepAdvanced", "AnalysisPassed", "RolloutPromoted"} <= set(
        reasons
    )
    assert all(r[0].isupper() and r.isalnum() for r in reasons)
