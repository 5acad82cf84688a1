"""No mesh: the weight is realised by the share of replicas behind the single main Service.

The main Service selects the pods of every revision, so kube-proxy spreads connections roughly
evenly over ready pods: the canary's traffic share is its share of ready pods. That is coarse:
with ``n`` pods in all only multiples of ``100/n`` are reachable (4 replicas: 0, 25, 50, 75, 100),
and it is per connection, not per request (long-lived HTTP/2 or keep-alive clients stick to a pod).
This router builds no objects; ``reached_weight`` reads the share of ready pods back. The pod
counts per revision come from rollout/replicas.py.
"""

from __future__ import annotations

from typing import Final

from modeldeploy.routers.base import Manifest, ObservedTraffic, OwnerLike, check_weight, share

KIND: Final = "replicas"


def reached_weight(stable_ready: int, canary_ready: int) -> int:
    """The weight actually reached: ready canary pods as a percentage of all ready pods (rounded)."""
    return share(max(canary_ready, 0), max(stable_ready, 0) + max(canary_ready, 0))


class ReplicasRouter:
    kind: str = KIND

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
