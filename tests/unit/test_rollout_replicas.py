"""Replica and GPU-budget arithmetic of the rollout (rollout/replicas.py), table-tested."""

from __future__ import annotations

import pytest

from modeldeploy.api.spec import GpuSpec, ModelDeploymentSpec, Rollout
from modeldeploy.rollout.replicas import (
    capped_stable,
    extra_gpus,
    gpus_per_replica,
    plan_scaling,
    replicas_for_weight,
    surge_limit,
)
from modeldeploy.rollout.types import DeleteRevision, RevisionObservation, ScaleRevision

from rollout_builders import build_spec

pytestmark = pytest.mark.unit


def spec(replicas: int = 4, gpu: GpuSpec | None = None, budget: int | None = None) -> ModelDeploymentSpec:
    return build_spec(Rollout(max_surge_gpus=budget), replicas=replicas, gpu=gpu)


@pytest.mark.parametrize(
    ("replicas", "weight", "expected"),
    [
        (10, 0, 0),
        (10, 1, 1),
        (10, 20, 2),
        (10, 25, 3),
        (4, 25, 1),
        (4, 26, 2),
        (3, 50, 2),
        (1, 1, 1),
        (0, 50, 0),
        (7, 100, 7),
    ],
)
def test_replicas_for_weight_rounds_up(replicas: int, weight: int, expected: int) -> None:
    assert replicas_for_weight(replicas, weight) == expected


@pytest.mark.parametrize(
    ("gpu", "budget", "replicas", "per_replica", "limit"),
    [
        (None, 0, 4, 0, None),  # CPU only: no constraint
        (GpuSpec(count=2), None, 4, 2, None),  # no budget: unlimited surge
        (GpuSpec(count=2), 0, 4, 2, 4),
        (GpuSpec(count=2), 3, 4, 2, 5),  # 3 GPUs fit one extra 2-GPU replica
        (GpuSpec(count=1), 3, 4, 1, 7),
        (GpuSpec(mig_profile="1g.10gb"), 2, 4, 1, 6),  # a MIG slice counts as one
    ],
)
def test_surge_limit(
    gpu: GpuSpec | None, budget: int | None, replicas: int, per_replica: int, limit: int | None
) -> None:
    s = spec(replicas, gpu, budget)
    assert gpus_per_replica(s) == per_replica
    assert surge_limit(s) == limit


@pytest.mark.parametrize(
    ("soft", "canary", "limit", "expected"),
    [(4, 2, None, 4), (4, 2, 5, 3), (4, 2, 4, 2), (4, 4, 4, 0), (4, 6, 4, 0), (2, 1, 5, 2)],
)
def test_capped_stable_leaves_room_for_the_canary(
    soft: int, canary: int, limit: int | None, expected: int
) -> None:
    assert capped_stable(soft, canary, limit) == expected


def test_extra_gpus() -> None:
    assert extra_gpus(6, 4, 2) == 4
    assert extra_gpus(3, 4, 2) == 0


def obs(replicas: int, ready: int | None = None, pods: int | None = None) -> RevisionObservation:
    ready = replicas if ready is None else ready
    return RevisionObservation(
        replicas=replicas, ready_replicas=ready, pods=max(replicas, ready) if pods is None else pods
    )


def test_budget_zero_shrinks_stable_before_the_canary_grows() -> None:
    """4 replicas, ceiling 4: the canary of 1 waits until a stable pod is really gone."""
    targets = [("stable", 3), ("canary", 1)]
    first = plan_scaling(targets, {"stable": obs(4)}, limit=4)
    assert first == [ScaleRevision("stable", 3), ScaleRevision("canary", 0)]  # canary created empty
    terminating = plan_scaling(targets, {"stable": obs(3, ready=3, pods=4), "canary": obs(0)}, limit=4)
    assert terminating == []
    gone = plan_scaling(targets, {"stable": obs(3), "canary": obs(0)}, limit=4)
    assert gone == [ScaleRevision("canary", 1)]


def test_unlimited_surge_scales_both_at_once() -> None:
    assert plan_scaling([("stable", 4), ("canary", 2)], {"stable": obs(4)}, limit=None) == [
        ScaleRevision("canary", 2)
    ]


def test_rollback_scales_the_canary_down_before_the_stable_up() -> None:
    """Budget tight: the stable only grows into room the canary's pods have left."""
    world = {"stable": obs(2), "canary": obs(2)}
    assert plan_scaling([("stable", 4)], world, limit=4) == [ScaleRevision("canary", 0)]
    world = {"stable": obs(2), "canary": obs(0, ready=0, pods=1)}
    assert plan_scaling([("stable", 4)], world, limit=4) == [ScaleRevision("stable", 3)]
    world = {"stable": obs(3), "canary": obs(0, ready=0, pods=0)}
    assert plan_scaling([("stable", 4)], world, limit=4) == [
        DeleteRevision("canary"),
        ScaleRevision("stable", 4),
    ]


def test_partial_growth_and_missing_workloads() -> None:
    assert plan_scaling([("stable", 4), ("canary", 3)], {"stable": obs(4)}, limit=5) == [
        ScaleRevision("canary", 1)
    ]
    assert plan_scaling([("stable", 2)], {}, limit=None) == [ScaleRevision("stable", 2)]


def test_held_revisions_are_left_alone() -> None:
    world = {"new": obs(4), "old": obs(4)}
    assert plan_scaling([("new", 4)], world, limit=None, hold_others=True) == []
    assert plan_scaling([("new", 4)], world, limit=None) == [ScaleRevision("old", 0)]
