"""Where the cluster's data plane would send a request to a ModelDeployment, read from the API
server (Services' EndpointSlices, the HTTPRoute): the routing view :class:`harness.load.Load`
refreshes; the rule and backend choice per request is :mod:`harness.gateway`'s."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

from harness.api_json import read_json
from harness.gateway import services

Router = Literal["replicas", "gatewayAPI"]
MD_GROUP: Final = "modeldeploy.dev"
MD_VERSION: Final = "v1alpha1"
MD_PLURAL: Final = "modeldeployments"
GATEWAY_GROUP: Final = "gateway.networking.k8s.io"
GATEWAY_VERSION: Final = "v1"
SERVICE_NAME_LABEL: Final = "kubernetes.io/service-name"


# --- routing (pure) --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Backend:
    service: str
    weight: int
    addresses: tuple[str, ...]


@dataclass(frozen=True)
class RoutingView:
    """Where requests go right now; ``problem`` says why nothing can be reached, if so.

    ``gatewayAPI``: ``route`` is the live HTTPRoute, ``backends`` every Service it names (backends
    and mirrors, with their ready addresses), ``path`` the inference path requests are matched on.
    """

    router: Router
    backends: tuple[Backend, ...] = ()
    problem: str | None = None
    route: Mapping[str, Any] | None = None
    path: str = "/"


def ready_addresses(slices: Sequence[Mapping[str, Any]]) -> tuple[str, ...]:
    """Addresses of the endpoints that are ready (a missing ``ready`` counts as ready), sorted, unique."""
    out: set[str] = set()
    for s in slices:
        if s.get("addressType", "IPv4") not in ("IPv4", "IPv6"):
            continue
        for ep in s.get("endpoints") or []:
            if (ep.get("conditions") or {}).get("ready") is False:
                continue
            out.update(ep.get("addresses") or [])
    return tuple(sorted(out))


def read_view(
    api: Any, namespace: str, md_name: str, router: Router | None, http_route: str | None
) -> RoutingView:
    """Where requests to ModelDeployment ``md_name`` go now, read from the API server (see the
    module doc of :mod:`harness.load`)."""
    route_name = http_route
    md = None
    if router != "replicas":
        md = _custom(api, namespace, MD_GROUP, MD_VERSION, MD_PLURAL, md_name)
    if router is None or (router == "gatewayAPI" and route_name is None):
        routing = (((md or {}).get("spec") or {}).get("rollout") or {}).get("trafficRouting") or {}
        if "gatewayAPI" in routing:
            router = router or "gatewayAPI"
            route_name = route_name or routing["gatewayAPI"].get("httpRoute")
        router = router or "replicas"
    if router == "replicas":
        backend = _backend(api, namespace, md_name, 1)
        problem = None if backend.addresses else f"Service {md_name} has no ready endpoints"
        return RoutingView("replicas", (backend,), problem)
    if not route_name:
        return RoutingView("gatewayAPI", problem=f"no httpRoute for {md_name}")
    route = _custom(api, namespace, GATEWAY_GROUP, GATEWAY_VERSION, "httproutes", route_name)
    if route is None:
        return RoutingView("gatewayAPI", problem=f"HTTPRoute {route_name} not found (or no Gateway API CRDs)")
    names = services(route)
    if not names:
        return RoutingView("gatewayAPI", problem=f"HTTPRoute {route_name} has no Service backendRefs")
    backends = tuple(_backend(api, namespace, name, 0) for name in sorted(names))
    return RoutingView("gatewayAPI", backends, route=route, path=inference_path(md))


def _custom(
    api: Any, namespace: str, group: str, version: str, plural: str, name: str
) -> dict[str, Any] | None:
    """A namespaced custom object as JSON; None when it (or its CRD) does not exist."""
    from kubernetes import client

    custom: Any = client.CustomObjectsApi(api)
    return read_json(custom.get_namespaced_custom_object, group, version, namespace, plural, name)


def _backend(api: Any, namespace: str, service: str, weight: int) -> Backend:
    """A Service's ready endpoint addresses, from its EndpointSlices."""
    from kubernetes import client

    discovery: Any = client.DiscoveryV1Api(api)  # raw JSON: _preload_content=False
    response = discovery.list_namespaced_endpoint_slice(
        namespace,
        label_selector=f"{SERVICE_NAME_LABEL}={service}",
        _preload_content=False,
        _request_timeout=10,
    )
    body: dict[str, Any] = json.loads(response.data)
    return Backend(service, weight, ready_addresses(body.get("items") or []))


def inference_path(md: Mapping[str, Any] | None) -> str:
    """The path of the runtime's inference request for the ModelDeployment (``/`` when unknown)."""
    spec = (md or {}).get("spec") or {}
    model = (spec.get("model") or {}).get("name")
    if not model:
        return "/"
    return (
        f"/v2/models/{model}/infer" if spec.get("runtime", "triton") == "triton" else f"/predictions/{model}"
    )
