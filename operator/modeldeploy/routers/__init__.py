"""Traffic routers: one module per way of realising a canary weight, behind routers.base.Router."""

from __future__ import annotations

from modeldeploy.api.spec import TrafficRouting
from modeldeploy.routers.base import (
    ObservedTraffic,
    Owner,
    OwnerLike,
    Router,
    canary_service_name,
    stable_service_name,
)
from modeldeploy.routers.gateway_api import GatewayApiRouter
from modeldeploy.routers.replicas import ReplicasRouter


def get_router(traffic_routing: TrafficRouting) -> Router:
    """The router for ``spec.rollout.trafficRouting``."""
    if traffic_routing.gateway_api is not None:
        return GatewayApiRouter(traffic_routing.gateway_api)
    return ReplicasRouter()


__all__ = [
    "GatewayApiRouter",
    "ObservedTraffic",
    "Owner",
    "OwnerLike",
    "ReplicasRouter",
    "Router",
    "canary_service_name",
    "get_router",
    "stable_service_name",
]
