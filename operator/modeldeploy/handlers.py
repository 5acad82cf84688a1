"""Thin wiring: what the operator watches, and which ModelDeployments a watch event concerns.

The cache's informers (modeldeploy.kube.cache) watch every kind a pass reads; each change they accept
becomes work for the ModelDeployments it concerns: the object itself, a child's owner (by label), the
users of an HTTPRoute, or - through ``PolicyWatch`` - the users of a policy or a namespace's labels.
kopf only runs the process (login, startup, liveness, cleanup); it watches nothing itself, so the API
server sees one watch per kind and no read or write in steady state.
"""

from __future__ import annotations

import asyncio
import fnmatch
import logging
from collections.abc import Callable, Sequence
from typing import Any

import kopf

from modeldeploy.children.labels import MANAGED_BY, MANAGER
from modeldeploy.children.labels import OWNER as OWNER_LABEL
from modeldeploy.controller import Controller
from modeldeploy.kube.cache import ClusterCache, Watched
from modeldeploy.kube.rest import (
    CLUSTER_POLICY,
    CONFIGMAP,
    DEPLOYMENT,
    HPA,
    HTTPROUTE,
    MODELDEPLOYMENT,
    NS_POLICY,
    POD,
    SERVICE,
    Kind,
)
from modeldeploy.kube.store import Change, EventType
from modeldeploy.policy.lookup import NAMESPACE
from modeldeploy.policy.watch import PolicyWatch

log = logging.getLogger(__name__)

MANAGED_SELECTOR = f"{MANAGED_BY}={MANAGER}"
CHILDREN = (DEPLOYMENT, POD, SERVICE, CONFIGMAP, HPA)
UNREAD = {POD: ("spec",)}  # fields of a child that no pass reads (a Pod's: metadata and status only)
WATCHED = (
    Watched(MODELDEPLOYMENT),
    *(Watched(kind, MANAGED_SELECTOR, OWNER_LABEL, UNREAD.get(kind, ())) for kind in CHILDREN),
    Watched(HTTPROUTE),  # the user's (not labelled by us): all of them, few per namespace
    Watched(CLUSTER_POLICY),
    Watched(NS_POLICY),
    Watched(NAMESPACE),
)
SYNC_TIMEOUT = 300.0


def in_scope(patterns: Sequence[str]) -> Callable[[str], bool] | None:
    """The namespaces the operator serves (kopf-style globs); None: all."""
    if not patterns:
        return None
    return lambda namespace: any(fnmatch.fnmatchcase(namespace, p) for p in patterns)


def route_name(md: dict[str, Any]) -> str | None:
    routing = ((md.get("spec") or {}).get("rollout") or {}).get("trafficRouting") or {}
    name = (routing.get("gatewayAPI") or {}).get("httpRoute")
    return str(name) if name else None


def mid_rollout(cache: ClusterCache) -> Callable[[str, str], bool]:
    """Whether a ModelDeployment is rolling out (its passes take the urgent lane)."""
    store = cache.store(MODELDEPLOYMENT)

    def urgent(namespace: str, name: str) -> bool:
        md = store.get(namespace, name)
        rollout = ((md or {}).get("status") or {}).get("rollout") or {}
        return bool(rollout) and not rollout.get("aborted")

    return urgent


class EventRouter:
    """A cache change -> work for the ModelDeployments it concerns."""

    def __init__(self, controller: Controller, cache: ClusterCache, policies: PolicyWatch | None) -> None:
        self.controller = controller
        self.cache = cache
        self.policies = policies

    def __call__(self, kind: Kind, type_: EventType | None, change: Change) -> None:
        body = change.object
        meta = body.get("metadata") or {}
        namespace, name = meta.get("namespace") or "", meta["name"]
        event = {"type": type_, "object": body}
        if kind == MODELDEPLOYMENT:
            if change.new is None:
                self.controller.forget(namespace, name)
            else:
                self.controller.enqueue(namespace, name)
        elif kind in CHILDREN:
            owner = (meta.get("labels") or {}).get(OWNER_LABEL)
            if owner and type_ is not None:
                self.controller.enqueue(namespace, owner, coalesce=True)
        elif kind == HTTPROUTE:
            if type_ is not None:
                for md in self.cache.store(MODELDEPLOYMENT).list(namespace):
                    if route_name(md) == name:
                        self.controller.enqueue(namespace, md["metadata"]["name"])
        elif self.policies is not None:
            if kind == CLUSTER_POLICY:
                keys = self.policies.cluster_policy_event(name, event)
            elif kind == NS_POLICY:
                keys = self.policies.policy_event(namespace, name, event)
            else:
                keys = self.policies.namespace_event(name, event)
            for key in keys:
                self.controller.enqueue(*key)


def build_registry(
    controller: Controller, api: Any, cache: ClusterCache, policies: PolicyWatch | None = None
) -> kopf.OperatorRegistry:
    """kopf runs the process; ``api`` is the kubernetes ApiClient whose credentials kopf also uses.

    At start-up the cache lists every kind (each ModelDeployment becomes work), then the workers
    start: no pass ever reads a half-filled cache.
    """
    registry = kopf.OperatorRegistry()

    @kopf.on.login(registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo:
        return connection_info(api.configuration)

    @kopf.on.startup(registry=registry)
    async def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
        settings.posting.enabled = False  # our own Events only, with greppable reasons
        settings.peering.standalone = True
        cache.start(EventRouter(controller, cache, policies))
        if not await asyncio.to_thread(cache.wait_synced, SYNC_TIMEOUT):
            raise kopf.PermanentError("the watch cache did not fill in time")
        controller.start()
        log.info("cache synced; workers started")

    @kopf.on.cleanup(registry=registry)
    async def shutdown(**_: Any) -> None:
        await asyncio.to_thread(controller.stop)
        cache.stop()

    return registry


def connection_info(cfg: Any) -> kopf.ConnectionInfo:
    """kopf's credentials from the same configuration our own client uses (kubeconfig or in-cluster)."""
    token = (cfg.api_key or {}).get("authorization") or (cfg.api_key or {}).get("BearerToken")
    scheme = None
    if token:
        scheme, _, token = token.partition(" ") if " " in token else ("Bearer", "", token)
    return kopf.ConnectionInfo(
        server=cfg.host,
        ca_path=cfg.ssl_ca_cert,
        insecure=not cfg.verify_ssl,
        scheme=scheme,
        token=token or None,
        certificate_path=cfg.cert_file,
        private_key_path=cfg.key_file,
    )
