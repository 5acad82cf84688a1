"""Replica and GPU arithmetic shared by both strategies (pure, table-tested).

The GPU budget (``rollout.maxSurgeGPUs``) is turned into a replica ceiling: every pod of every
revision counts, and a revision only grows into room that the observations show is free. Scale
downs are emitted before scale ups, so the scheduler never sees more than the budget.

Worked example: 4 replicas of 2 GPUs, ``maxSurgeGPUs: 2`` -> ceiling 4 + 2 // 2 = 5 replicas.
A canary of 2 makes the stable target ``min(4, 5 - 2) = 3``; the canary may grow only to
``5 - in_use(stable)``: 1 while the stable still has 4 pods, 2 once it is down to 3.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from modeldeploy.api.spec import ModelDeploymentSpec
from modeldeploy.rollout.types import DeleteRevision, RevisionObservation, ScaleRevision

ScaleAction = ScaleRevision | DeleteRevision


def gpus_per_replica(spec: ModelDeploymentSpec) -> int:
    """GPUs one replica holds (a MIG slice counts as one); 0 for CPU-only serving."""
    gpu = spec.resources.gpu
    return gpu.whole_gpus if gpu is not None else 0


def surge_limit(spec: ModelDeploymentSpec) -> int | None:
    """Most replicas all revisions together may hold; ``None`` when there is no GPU constraint."""
    budget = spec.rollout.max_surge_gpus
    per_replica = gpus_per_replica(spec)
    if budget is None or per_replica == 0:
        return None
    return spec.replicas + budget // per_replica


def replicas_for_weight(replicas: int, weight: int) -> int:
    """``ceil(replicas * weight / 100)`` in integers: 10 replicas at 25% -> 3."""
    return -(-replicas * weight // 100)


def extra_gpus(replicas_in_use: int, replicas: int, per_replica: int) -> int:
    """GPUs used above steady state (never negative)."""
    return max(0, replicas_in_use - replicas) * per_replica


def capped_stable(soft_target: int, canary_target: int, limit: int | None) -> int:
    """Stable replicas that leave room for ``canary_target`` under the ceiling."""
    if limit is None:
        return soft_target
    return max(0, min(soft_target, limit - canary_target))


def plan_scaling(
    targets: Sequence[tuple[str, int]],
    revisions: Mapping[str, RevisionObservation],
    limit: int | None,
    hold_others: bool = False,
) -> list[ScaleAction]:
    """Scale actions moving ``revisions`` towards ``targets`` without breaking ``limit``.

    Revisions without a target are scaled to 0 and deleted once no pod is left (unless
    ``hold_others``, used while blue-green keeps the old colour). Order: deletes and scale-downs
    first, then scale-ups in ``targets`` order, each growing only into room observed free.
    """
    wanted = dict(targets)
    in_use = {rev: obs.in_use for rev, obs in revisions.items()}
    down: list[ScaleAction] = []
    up: list[ScaleAction] = []
    if not hold_others:
        for rev in sorted(revisions):
            retire = None if rev in wanted else _retire(rev, revisions[rev])
            if retire is not None:
                down.append(retire)
    for rev, target in targets:
        current = revisions.get(rev)
        if current is not None and target <= current.replicas:
            if target < current.replicas:
                down.append(ScaleRevision(rev, target))
            continue
        others = sum(n for r, n in in_use.items() if r != rev)
        have = current.replicas if current is not None else 0
        allowed = target if limit is None else min(target, max(have, limit - others))
        if current is None or allowed != current.replicas:
            up.append(ScaleRevision(rev, allowed))
            in_use[rev] = max(allowed, in_use.get(rev, 0))
    return down + up


def _retire(revision: str, obs: RevisionObservation) -> ScaleAction | None:
    if obs.replicas > 0:
        return ScaleRevision(revision, 0)
    if obs.pods == 0 and obs.ready_replicas == 0:
        return DeleteRevision(revision)
    return None
