"""kubectl-modeldeploy's one-line errors, from the Status bodies the API server really sends."""

from __future__ import annotations

import pytest

from modeldeploy.cli.errors import api_error, forbidden_message, request_verb, unreachable_message

pytestmark = pytest.mark.unit

# the body kube-apiserver answers an RBAC denial with (a list of a custom resource in a namespace)
FORBIDDEN_LIST = {
    "kind": "Status",
    "apiVersion": "v1",
    "status": "Failure",
    "message": 'modeldeployments.modeldeploy.dev is forbidden: User "system:serviceaccount:t-a:nobody" '
    'cannot list resource "modeldeployments" in API group "modeldeploy.dev" in the namespace "t-a"',
    "reason": "Forbidden",
    "details": {"group": "modeldeploy.dev", "kind": "modeldeployments"},
    "code": 403,
}


def test_forbidden_names_user_verb_resource_group_and_namespace() -> None:
    path = "/apis/modeldeploy.dev/v1alpha1/namespaces/t-a/modeldeployments"
    error = api_error(403, FORBIDDEN_LIST, "GET", path, namespace="t-a")
    assert error.status == 403
    assert error.message == (
        'forbidden: User "system:serviceaccount:t-a:nobody" cannot list modeldeployments.modeldeploy.dev '
        'in namespace "t-a" (RBAC: needs verb "list" on resource "modeldeployments" in API group '
        '"modeldeploy.dev")'
    )
    assert "\n" not in error.message


def test_forbidden_core_resource_at_cluster_scope() -> None:
    message = (
        'pods is forbidden: User "alice" cannot watch resource "pods" in API group "" at the cluster scope'
    )
    text = forbidden_message(message, {"kind": "pods"}, "list")
    assert text == (
        'forbidden: User "alice" cannot watch pods at the cluster scope '
        '(RBAC: needs verb "watch" on resource "pods" in the core API group "")'
    )


def test_forbidden_without_the_servers_words_uses_details_and_the_request() -> None:
    text = forbidden_message("", {"kind": "events", "group": ""}, "list", "ns1")
    assert text == (
        'forbidden: you cannot list events in namespace "ns1" '
        '(RBAC: needs verb "list" on resource "events" in the core API group "")'
    )


@pytest.mark.parametrize(
    ("method", "path", "query", "verb"),
    [
        ("GET", "/apis/modeldeploy.dev/v1alpha1/namespaces/a/modeldeployments/x", [], "get"),
        ("GET", "/apis/modeldeploy.dev/v1alpha1/namespaces/a/modeldeployments", [], "list"),
        ("GET", "/apis/modeldeploy.dev/v1alpha1/modeldeployments", [], "list"),
        ("GET", "/api/v1/namespaces/a/pods", [("watch", "true")], "watch"),
        ("PATCH", "/apis/modeldeploy.dev/v1alpha1/namespaces/a/modeldeployments/x", [], "patch"),
    ],
)
def test_request_verb(method: str, path: str, query: list[tuple[str, str]], verb: str) -> None:
    assert request_verb(method, path, query) == verb


def test_not_found_names_the_object_and_namespace() -> None:
    body = {
        "message": 'modeldeployments.modeldeploy.dev "ghost" not found',
        "reason": "NotFound",
        "details": {"name": "ghost", "group": "modeldeploy.dev", "kind": "modeldeployments"},
    }
    path = "/apis/modeldeploy.dev/v1alpha1/namespaces/a/modeldeployments/ghost"
    assert api_error(404, body, "GET", path, namespace="a").message == (
        'modeldeployment "ghost" not found in namespace "a"'
    )


def test_missing_api_says_so() -> None:
    body = {"message": "the server could not find the requested resource", "reason": "NotFound"}
    error = api_error(404, body, "GET", "/apis/modeldeploy.dev/v1alpha1/modeldeployments")
    assert "are the CRDs installed?" in error.message


def test_other_errors_keep_status_reason_and_message() -> None:
    body = {"message": "the object has been modified", "reason": "Conflict"}
    error = api_error(409, body, "PATCH", "/apis/modeldeploy.dev/v1alpha1/namespaces/a/modeldeployments/x")
    assert (error.status, error.message) == (409, "409 Conflict: the object has been modified")


def test_unreachable_keeps_only_the_reason() -> None:
    raw = Exception(
        "HTTPSConnectionPool(host='127.0.0.1', port=9): Max retries exceeded with url: /apis "
        "(Caused by NewConnectionError('<urllib3.connection.HTTPSConnection object at 0x7f>: "
        "Failed to establish a new connection: [Errno 111] Connection refused'))"
    )
    assert unreachable_message("https://127.0.0.1:9", raw) == (
        "cannot reach the cluster at https://127.0.0.1:9: Connection refused"
    )
