"""No mesh: the weight is realised by the share of replicas behind the single main Service.

Once the canary has been given a weight, the main Service selects the pods of every revision, so
kube-proxy spreads connections roughly evenly over ready pods: the canary's traffic share is its
share of ready pods. While its weight is 0 (before the first ``setWeight``, while its smoke test is
pending, after an abort) the main Service selects the stable revision only
(:func:`main_service_revision`), so a Ready canary pod gets no traffic before it is asked to. That is coarse:
with ``n`` pods in all only multiples of ``100/n`` are reachable (4 replicas: 0, 25, 50, 75, 100),
and it is per connection, not per request (long-lived HTTP/2 or keep-alive clients stick to a pod).
This router builds no objects; ``reached_weight`` reads the share of ready pods back. The pod
counts per revision come from rollout/replicas.py.
"""

from __future__ import annotations

from typing import Final

from modeldeploy.routers.base import Manifest, ObservedTraffic, OwnerLike, check_weight, share

KIND: Final = "replicas"


def main_service_revision(stable: str, canary: str | None, weight: int) -> str | None:
    """The revision the main Service selects: the stable one alone while the canary has no weight,
    ``None`` (every revision) once it has some."""
    return stable if canary is None or canary == stable or weight == 0 else None


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
        return []  # the main Service (children/service.py) selects per main_service_revision

    def reached_weight(self, owner: OwnerLike, observed: ObservedTraffic) -> int | None:
        if observed.asked_weight == 0:
            return 0  # the main Service does not select the canary (see main_service_revision)
        return reached_weight(observed.stable_ready, observed.canary_ready)
