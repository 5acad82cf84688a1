"""No mesh: the weight is realised by the share of replicas behind the single main Service.

The main Service selects the pods of every revision, so kube-proxy spreads connections roughly
evenly over ready pods: the canary's traffic share is its share of ready pods. That is coarse:
with ``n`` pods in all only multiples of ``100/n`` are reachable (4 replicas: 0, 25, 50, 75, 100),
and it is per connection, not per request (long-lived HTTP/2 or keep-alive clients stick to a pod).
The requested weight is rounded to the nearest reachable share, keeping at least one canary pod
for any weight above 0 and at least one stable pod for any weight below 100 (with a single
replica that means one extra pod: 1 stable + 1 canary = 50%). Zero replicas stay zero.
"""

from __future__ import annotations

from typing import Final

from modeldeploy.routers.base import Manifest, ObservedTraffic, OwnerLike, check_weight, share

KIND: Final = "replicas"


def desired_replicas(total: int, weight: int) -> tuple[int, int]:
    """(stable, canary) so that canary / (stable + canary) is as close to ``weight`` as possible."""
    check_weight(weight)
    total = max(total, 0)
    if total == 0 or weight == 0:
        return total, 0
    if weight == 100:
        return 0, total
    if total == 1:
        return 1, 1
    canary = (2 * total * weight + 100) // 200  # round half up
    canary = min(max(canary, 1), total - 1)
    return total - canary, canary


def reached_weight(stable_ready: int, canary_ready: int) -> int:
    """The weight actually reached: ready canary pods as a percentage of all ready pods (rounded)."""
    return share(max(canary_ready, 0), max(stable_ready, 0) + max(canary_ready, 0))


class ReplicasRouter:
    kind: str = KIND

    def desired_replicas(self, total: int, weight: int) -> tuple[int, int]:
        return desired_replicas(total, weight)

    def objects(
        self,
        owner: OwnerLike,
        *,
        stable_revision: str | None,
        canary_revision: str | None,
        weight: int,
        port: int,
    ) -> list[Manifest]:
        check_weight(weight)
        return []  # the main Service (children/service.py) already selects every revision

    def reached_weight(self, owner: OwnerLike, observed: ObservedTraffic) -> int | None:
        return reached_weight(observed.stable_ready, observed.canary_ready)
