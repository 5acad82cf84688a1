"""A thin, typed REST layer over the kubernetes client: get, list, server-side apply, delete, status.

Bodies are plain dicts (the API's JSON), so builders stay pure and any kind - built-in, Gateway API
or our own - goes through the same four calls.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

FIELD_MANAGER = "modeldeploy"
log = logging.getLogger(__name__)

Body = dict[str, Any]


@dataclass(frozen=True)
class Kind:
    api_version: str
    kind: str
    plural: str
    namespaced: bool = True

    def path(self, namespace: str | None = None, name: str | None = None, sub: str | None = None) -> str:
        base = f"/api/{self.api_version}" if "/" not in self.api_version else f"/apis/{self.api_version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{namespace}"
        base += f"/{self.plural}"
        if name:
            base += f"/{name}"
        if sub:
            base += f"/{sub}"
        return base


DEPLOYMENT = Kind("apps/v1", "Deployment", "deployments")
SERVICE = Kind("v1", "Service", "services")
CONFIGMAP = Kind("v1", "ConfigMap", "configmaps")
SECRET = Kind("v1", "Secret", "secrets")
POD = Kind("v1", "Pod", "pods")
EVENT = Kind("v1", "Event", "events")
HPA = Kind("autoscaling/v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers")
HTTPROUTE = Kind("gateway.networking.k8s.io/v1", "HTTPRoute", "httproutes")
MODELDEPLOYMENT = Kind("modeldeploy.dev/v1alpha1", "ModelDeployment", "modeldeployments")
CLUSTER_POLICY = Kind("modeldeploy.dev/v1alpha1", "ClusterRolloutPolicy", "clusterrolloutpolicies", False)
NS_POLICY = Kind("modeldeploy.dev/v1alpha1", "RolloutPolicy", "rolloutpolicies")
NODE = Kind("v1", "Node", "nodes", False)

KINDS = {
    (k.api_version, k.kind): k for k in (DEPLOYMENT, SERVICE, CONFIGMAP, HPA, HTTPROUTE, MODELDEPLOYMENT)
}


def kind_of(body: Body) -> Kind:
    try:
        return KINDS[(body["apiVersion"], body["kind"])]
    except KeyError as exc:
        raise ValueError(f"no REST mapping for {body.get('apiVersion')}/{body.get('kind')}") from exc


class KubeError(Exception):
    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message


class Kube:
    """Every API call the operator makes goes through here (and is counted in its metrics)."""

    def __init__(
        self, api_client: k8s.ApiClient, field_manager: str = FIELD_MANAGER, timeout: float = 30
    ) -> None:
        self._api = api_client
        self.field_manager = field_manager
        self._timeout = timeout

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        query: list[tuple[str, str]] | None = None,
        content_type: str = "application/json",
    ) -> Body:
        headers = {"Accept": "application/json", "Content-Type": content_type}
        serialized = self._api.param_serialize(
            method,
            path,
            query_params=query or [],
            header_params=headers,
            body=body,
            auth_settings=["BearerToken"],
        )
        try:
            response = self._api.call_api(*serialized, _request_timeout=self._timeout)
            data = response.read()  # type: ignore[no-untyped-call]
        except ApiException as exc:
            raise _error(exc.status or 0, exc.reason or "", exc.body) from exc
        if not 200 <= response.status <= 299:
            raise _error(response.status, response.reason or "", data)
        return json.loads(data) if data else {}

    # --- reads ---------------------------------------------------------------------------------

    def get(self, kind: Kind, namespace: str | None, name: str) -> Body | None:
        try:
            return self.request("GET", kind.path(namespace, name))
        except KubeError as exc:
            if exc.status == 404:
                return None
            raise

    def list(self, kind: Kind, namespace: str | None, label_selector: str = "") -> list[Body]:
        query = [("labelSelector", label_selector)] if label_selector else []
        items: list[Body] = self.request("GET", kind.path(namespace), query=query).get("items", [])
        return items

    # --- writes --------------------------------------------------------------------------------

    def apply(self, body: Body) -> Body:
        """Server-side apply with our field manager (force: we own the fields we set)."""
        kind = kind_of(body)
        meta = body["metadata"]
        query = [("fieldManager", self.field_manager), ("force", "true")]
        return self.request(
            "PATCH",
            kind.path(meta.get("namespace"), meta["name"]),
            body=json.dumps(body),
            query=query,
            content_type="application/apply-patch+yaml",
        )

    def delete(self, kind: Kind, namespace: str | None, name: str) -> bool:
        try:
            self.request("DELETE", kind.path(namespace, name), body={"propagationPolicy": "Background"})
        except KubeError as exc:
            if exc.status == 404:
                return False
            raise
        return True

    def patch_status(
        self, kind: Kind, namespace: str, name: str, status: Body, resource_version: str | None = None
    ) -> Body:
        """JSON merge patch of the status subresource (keys set to None are removed).

        With ``resource_version`` the API server applies it only to that version of the object and
        answers 409 Conflict otherwise (someone wrote since it was read)."""
        body: Body = {"status": status}
        if resource_version is not None:
            body["metadata"] = {"resourceVersion": resource_version}
        return self.request(
            "PATCH",
            kind.path(namespace, name, "status"),
            body=body,
            content_type="application/merge-patch+json",
        )

    def event(
        self,
        regarding: Body,
        type_: str,
        reason: str,
        message: str,
        action: str = "Reconcile",
        name: str | None = None,
    ) -> None:
        """A core/v1 Event on ``regarding`` (shown by kubectl describe).

        ``name``: the Event's own name, which makes it exactly-once (a second create of the same
        name is a 409 AlreadyExists, taken as done); without it the API server picks a fresh one."""
        meta = regarding["metadata"]
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        named = {"name": name} if name else {"generateName": f"{meta['name']}."}
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {**named, "namespace": meta["namespace"]},
            "involvedObject": {
                "apiVersion": regarding["apiVersion"],
                "kind": regarding["kind"],
                "name": meta["name"],
                "namespace": meta["namespace"],
                "uid": meta.get("uid", ""),
            },
            "type": type_,
            "reason": reason,
            "message": message[:1024],
            "action": action,
            "source": {"component": "modeldeploy-operator"},
            "reportingComponent": "modeldeploy.dev/operator",
            "reportingInstance": "modeldeploy-operator",
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        try:
            self.request("POST", EVENT.path(meta["namespace"]), body=body)
        except KubeError as exc:  # an event that cannot be written must not stop a reconcile
            if exc.status == 409 and name:
                return  # recorded already, by the pass this one repeats
            log.warning("event %s on %s/%s not written: %s", reason, meta["namespace"], meta["name"], exc)


def _error(status: int, reason: str, raw: Any) -> KubeError:
    message = ""
    if raw:
        try:
            text = raw.decode() if isinstance(raw, bytes) else str(raw)
            message = json.loads(text).get("message", text)
        except (ValueError, AttributeError):
            message = str(raw)
    return KubeError(status, reason, message)


def connect(kubeconfig: str | None = None) -> k8s.ApiClient:
    """An API client from a kubeconfig file, the in-cluster ServiceAccount, or $KUBECONFIG."""
    from kubernetes import config as k8s_config

    if kubeconfig:
        api: k8s.ApiClient = k8s_config.new_client_from_config(config_file=kubeconfig)  # type: ignore[no-untyped-call]
        return api
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        k8s_config.load_incluster_config()  # type: ignore[no-untyped-call]
        return k8s.ApiClient()
    default: k8s.ApiClient = k8s_config.new_client_from_config()  # type: ignore[no-untyped-call]
    return default
