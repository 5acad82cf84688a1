"""The plugin's connection to the cluster: the user's own kubeconfig and credentials, like kubectl.

``--kubeconfig`` (else ``$KUBECONFIG``, else ``~/.kube/config``), ``--context`` (else the current one) and
the context's namespace as the default for ``-n``. Every failure becomes a :class:`CliError` with one
line: unreachable, unauthorized, forbidden (naming the RBAC verb and resource), not found.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import urllib3
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from modeldeploy.cli.errors import CliError, api_error, unreachable_message
from modeldeploy.kube.rest import Kind

Body = dict[str, Any]
Query = list[tuple[str, str]]


@dataclass
class Client:
    api: k8s.ApiClient
    namespace: str  # the context's namespace: the default for -n
    timeout: float = 30

    @property
    def server(self) -> str:
        return str(self.api.configuration.host)

    def _call(self, method: str, path: str, query: Query, body: Any, content_type: str, timeout: Any) -> Any:
        headers = {"Accept": "application/json", "Content-Type": content_type}
        serialized = self.api.param_serialize(
            method, path, query_params=query, header_params=headers, body=body, auth_settings=["BearerToken"]
        )
        try:
            return self.api.call_api(*serialized, _request_timeout=timeout)
        except ApiException as exc:
            if exc.status:
                raise api_error(exc.status, _status_body(exc.body), method, path, query) from exc
            raise CliError(unreachable_message(self.server, Exception(exc.reason or ""))) from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise CliError(unreachable_message(self.server, exc)) from exc

    def request(
        self,
        method: str,
        path: str,
        query: Query | None = None,
        body: Any = None,
        content_type: str = "application/json",
        namespace: str | None = None,
    ) -> Body:
        query = query or []
        response = self._call(method, path, query, body, content_type, self.timeout)
        try:
            data = response.read()
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise CliError(unreachable_message(self.server, exc)) from exc
        if not 200 <= response.status <= 299:
            raise api_error(response.status, _status_body(data), method, path, query, namespace)
        result: Body = json.loads(data) if data else {}
        return result

    def get(self, kind: Kind, namespace: str, name: str) -> Body:
        return self.request("GET", kind.path(namespace, name), namespace=namespace)

    def list(
        self, kind: Kind, namespace: str | None, label_selector: str = "", field_selector: str = ""
    ) -> tuple[list[Body], str]:
        """Items and the list's resourceVersion (where a watch starts)."""
        query = _selectors(label_selector, field_selector)
        answer = self.request("GET", kind.path(namespace), query=query, namespace=namespace)
        items: list[Body] = answer.get("items") or []
        return items, str((answer.get("metadata") or {}).get("resourceVersion") or "")

    def watch(
        self,
        kind: Kind,
        namespace: str | None,
        resource_version: str,
        label_selector: str = "",
        field_selector: str = "",
        timeout_seconds: int = 300,
    ) -> Iterator[Body]:
        """Watch events (``{"type": ..., "object": ...}``) from ``resource_version`` until the server
        ends the watch after ``timeout_seconds``. A watch the server expired yields an ERROR event."""
        query = [
            *_selectors(label_selector, field_selector),
            ("watch", "true"),
            ("allowWatchBookmarks", "true"),
            ("resourceVersion", resource_version),
            ("timeoutSeconds", str(timeout_seconds)),
        ]
        path = kind.path(namespace)
        response = self._call("GET", path, query, None, "application/json", (10, timeout_seconds + 30))
        if not 200 <= response.status <= 299:
            raise api_error(response.status, _status_body(response.read()), "GET", path, query, namespace)
        try:
            for line in response.response:
                if line.strip():
                    yield json.loads(line)
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise CliError(unreachable_message(self.server, exc)) from exc
        finally:
            response.response.release_conn()


def _selectors(label_selector: str, field_selector: str) -> Query:
    query: Query = []
    if label_selector:
        query.append(("labelSelector", label_selector))
    if field_selector:
        query.append(("fieldSelector", field_selector))
    return query


def _status_body(raw: Any) -> dict[str, Any] | None:
    if not raw:
        return None
    try:
        body = json.loads(raw.decode() if isinstance(raw, bytes) else str(raw))
    except ValueError:
        return {"message": (raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw))[:300]}
    return body if isinstance(body, dict) else None


def connect(kubeconfig: str | None, context: str | None) -> Client:
    """A client for the kubeconfig's context, with that context's namespace as the default."""
    if kubeconfig and not os.path.isfile(kubeconfig):
        raise CliError(f"kubeconfig {kubeconfig} does not exist")
    try:
        contexts, active = k8s_config.list_kube_config_contexts(config_file=kubeconfig)  # type: ignore[no-untyped-call]
        chosen = active if context is None else next((c for c in contexts if c["name"] == context), None)
        if chosen is None:
            raise CliError(f'context "{context}" not found in the kubeconfig')
        api = k8s_config.new_client_from_config(config_file=kubeconfig, context=context)  # type: ignore[no-untyped-call]
    except (ConfigException, OSError) as exc:
        raise CliError(f"no usable kubeconfig: {str(exc).splitlines()[0] if str(exc) else exc!r}") from exc
    namespace = (chosen.get("context") or {}).get("namespace") or "default"
    return Client(api, namespace)
