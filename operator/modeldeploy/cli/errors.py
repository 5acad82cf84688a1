"""What can go wrong, as one line for stderr, and the exit codes (pure: no I/O).

Exit codes of ``kubectl modeldeploy`` (``get --watch`` reports the rollout's outcome through them):

====  ==================================================================================
0     success; for ``get --watch``: the latest revision is promoted and Healthy
1     an error: no such ModelDeployment, cluster unreachable, forbidden, a refused command
2     bad command line (argparse)
3     ``get --watch``: the rollout was rolled back (phase RolledBack)
4     ``get --watch``: the ModelDeployment is Degraded
5     ``get --watch --timeout``: still rolling out when the timeout ran out
130   interrupted (Ctrl-C)
====  ==================================================================================
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_ROLLED_BACK = 3
EXIT_DEGRADED = 4
EXIT_TIMEOUT = 5
EXIT_INTERRUPTED = 130

_DENIED = re.compile(
    r'User "(?P<user>[^"]+)" cannot (?P<verb>[\w-]+) resource "(?P<resource>[^"]+)"'
    r'(?: in API group "(?P<group>[^"]*)")?'
    r'(?: in the namespace "(?P<namespace>[^"]+)"| at the cluster scope)?'
)
_ERRNO = re.compile(r"\[Errno -?\d+\] ([^'\"()]+)")


class CliError(Exception):
    """Printed as ``kubectl-modeldeploy: <message>`` on stderr; the process exits with ``exit_code``."""

    def __init__(self, message: str, exit_code: int = EXIT_ERROR, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code
        self.status = status  # the HTTP status when the API server answered


def request_verb(method: str, path: str, query: Sequence[tuple[str, str]] = ()) -> str:
    """The RBAC verb a request needs: GET on a collection is ``list`` (``watch`` with watch=true)."""
    method = method.upper()
    if method == "GET":
        if ("watch", "true") in query or ("watch", "1") in query:
            return "watch"
        return "get" if _names_object(path) else "list"
    return {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}.get(
        method, method.lower()
    )


def _names_object(path: str) -> bool:
    """``/apis/g/v/namespaces/ns/plural/name`` names one object; ``.../plural`` a collection."""
    parts = [p for p in path.split("?")[0].split("/") if p]
    parts = parts[2:] if parts[0] == "api" else parts[3:]  # drop api/v1 or apis/group/version
    if len(parts) >= 2 and parts[0] == "namespaces":
        parts = parts[2:]
    return len(parts) >= 2


def _resource(details: Mapping[str, Any]) -> str:
    kind, group = details.get("kind") or "", details.get("group") or ""
    return f"{kind}.{group}" if kind and group else kind


def api_error(
    status: int,
    body: Mapping[str, Any] | None,
    method: str,
    path: str,
    query: Sequence[tuple[str, str]] = (),
    namespace: str | None = None,
) -> CliError:
    """One line for an API error, from the Status object the API server answered with."""
    error = _api_error(status, body or {}, method, path, query, namespace)
    error.status = status
    return error


def _api_error(
    status: int,
    body: Mapping[str, Any],
    method: str,
    path: str,
    query: Sequence[tuple[str, str]],
    namespace: str | None,
) -> CliError:
    details: Mapping[str, Any] = body.get("details") or {}
    message = str(body.get("message") or "").strip()
    if status == 403:
        return CliError(forbidden_message(message, details, request_verb(method, path, query), namespace))
    if status == 404:
        resource, name = _resource(details), details.get("name")
        where = f' in namespace "{namespace}"' if namespace else ""
        if name:
            singular = resource.split(".")[0].removesuffix("s") or "object"
            return CliError(f'{singular} "{name}" not found{where}')
        return CliError(
            f"the server has no {resource or path}: {message or 'not found'} (are the CRDs installed?)"
        )
    if status == 401:
        return CliError("unauthorized: the API server refused the kubeconfig's credentials (expired token?)")
    reason = str(body.get("reason") or "")
    return CliError(f"{status} {reason}: {message}".replace(" :", ":") if message else f"{status} {reason}")


def forbidden_message(
    message: str, details: Mapping[str, Any], request_verb_: str, namespace: str | None = None
) -> str:
    """``forbidden: User "u" cannot list modeldeployments.modeldeploy.dev in namespace "ns" (RBAC: ...)``.

    The verb, resource and API group come from the API server's own words when it gave them (an RBAC
    denial names them), else from the Status details and the request."""
    denied = _DENIED.search(message)
    user = denied.group("user") if denied else None
    verb = denied.group("verb") if denied else request_verb_
    resource = denied.group("resource") if denied else str(details.get("kind") or "?")
    group = denied.group("group") if denied and denied.group("group") is not None else details.get("group")
    ns = denied.group("namespace") if denied else namespace
    full = f"{resource}.{group}" if group else resource
    who = f'User "{user}"' if user else "you"
    where = f' in namespace "{ns}"' if ns else " at the cluster scope"
    api_group = f'API group "{group}"' if group else 'the core API group ""'
    return (
        f"forbidden: {who} cannot {verb} {full}{where} "
        f'(RBAC: needs verb "{verb}" on resource "{resource}" in {api_group})'
    )


def unreachable_message(server: str, error: BaseException) -> str:
    """``cannot reach the cluster at https://127.0.0.1:16443: Connection refused``."""
    text = str(error)
    found = _ERRNO.search(text)
    reason = found.group(1).strip() if found else (text.splitlines()[0] if text else type(error).__name__)
    return f"cannot reach the cluster at {server}: {reason}"
