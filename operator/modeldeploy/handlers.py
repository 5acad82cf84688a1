"""Thin kopf wiring: watch events enqueue work; the controller runs the reconcile in a thread.

Only ``on.event`` handlers are used: they keep no progress annotations, add no finalizers and post
no events of their own, so a ModelDeployment in steady state costs zero API writes.
"""

from __future__ import annotations

import logging
from typing import Any

import kopf

from modeldeploy.children.labels import DEPLOYMENT as OWNER_LABEL
from modeldeploy.children.labels import MANAGED_BY, MANAGER
from modeldeploy.controller import Controller
from modeldeploy.kube.rest import MODELDEPLOYMENT
from modeldeploy.policy.watch import PolicyWatch

log = logging.getLogger(__name__)

MANAGED = {MANAGED_BY: MANAGER}
GROUP, VERSION = MODELDEPLOYMENT.api_version.split("/")


def build_registry(
    controller: Controller, api: Any, policies: PolicyWatch | None = None
) -> kopf.OperatorRegistry:
    """Handlers for kopf; ``api`` is the kubernetes ApiClient whose credentials kopf also uses.

    ``policies`` (built on the reconciler's PolicyUsage) turns policy and namespace-label changes into
    work for exactly the ModelDeployments they concern; without it policies are not watched.
    """
    registry = kopf.OperatorRegistry()

    @kopf.on.login(registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo:
        return connection_info(api.configuration)

    @kopf.on.startup(registry=registry)
    def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
        settings.posting.enabled = False  # our own Events only, with greppable reasons
        settings.peering.standalone = True
        settings.watching.server_timeout = 300
        selector = f"{MANAGED_BY}={MANAGER}"
        for plural in ("apps/deployments", "pods"):
            settings.watching.label_selectors[plural] = selector

    @kopf.on.event(GROUP, VERSION, "modeldeployments", registry=registry)
    async def modeldeployment_event(**kwargs: Any) -> None:
        namespace, name = kwargs["namespace"], kwargs["name"]
        if kwargs["event"].get("type") == "DELETED":
            controller.forget(namespace, name)
        else:
            controller.enqueue(namespace, name)

    async def child_event(**kwargs: Any) -> None:
        owner = kwargs["labels"].get(OWNER_LABEL)
        if owner and kwargs["namespace"]:
            controller.enqueue(kwargs["namespace"], owner)

    for group_version, plural in (("apps/v1", "deployments"), ("v1", "pods"), ("v1", "services")):
        kopf.on.event(
            *_split(group_version), plural, labels=MANAGED, registry=registry, id=f"child-{plural}"
        )(child_event)

    if policies is not None:

        @kopf.on.event(GROUP, VERSION, "clusterrolloutpolicies", registry=registry)
        async def cluster_policy_event(**kwargs: Any) -> None:
            for key in policies.cluster_policy_event(kwargs["name"], kwargs["event"]):
                controller.enqueue(*key)

        @kopf.on.event(GROUP, VERSION, "rolloutpolicies", registry=registry)
        async def policy_event(**kwargs: Any) -> None:
            for key in policies.policy_event(kwargs["namespace"], kwargs["name"], kwargs["event"]):
                controller.enqueue(*key)

        @kopf.on.event("", "v1", "namespaces", registry=registry)
        async def namespace_event(**kwargs: Any) -> None:
            for key in policies.namespace_event(kwargs["name"], kwargs["event"]):
                controller.enqueue(*key)

    @kopf.on.cleanup(registry=registry)
    async def shutdown(**_: Any) -> None:
        await controller.stop()

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


def _split(group_version: str) -> tuple[str, str]:
    group, _, version = group_version.rpartition("/")
    return group, version
