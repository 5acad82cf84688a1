"""Standard labels on every child and the selectors built from them."""

from __future__ import annotations

from collections.abc import Mapping

NAME = "app.kubernetes.io/name"
MANAGED_BY = "app.kubernetes.io/managed-by"
COMPONENT = "app.kubernetes.io/component"
OWNER = "modeldeploy.dev/deployment"  # the name of the ModelDeployment that owns the object
REVISION = "modeldeploy.dev/revision"
RUNTIME = "modeldeploy.dev/runtime"
ROLE = "modeldeploy.dev/role"

MANAGER = "modeldeploy"
SERVER_COMPONENT = "model-server"


def common_labels(name: str, runtime: str) -> dict[str, str]:
    """Labels shared by all children of one ModelDeployment (no revision)."""
    return {
        NAME: name,
        MANAGED_BY: MANAGER,
        COMPONENT: SERVER_COMPONENT,
        OWNER: name,
        RUNTIME: runtime,
    }


def revision_labels(name: str, runtime: str, revision: str) -> dict[str, str]:
    """Labels of one revision's children and pods."""
    return {**common_labels(name, runtime), REVISION: revision}


def selector_all(name: str) -> dict[str, str]:
    """matchLabels for the serving pods of every revision of a ModelDeployment."""
    return {OWNER: name, COMPONENT: SERVER_COMPONENT}


def selector_revision(name: str, revision: str) -> dict[str, str]:
    """matchLabels for the serving pods of one revision."""
    return {**selector_all(name), REVISION: revision}


def selector_owned(name: str) -> dict[str, str]:
    """matchLabels for every object the operator made for one ModelDeployment (what a pass lists)."""
    return {OWNER: name, MANAGED_BY: MANAGER}


def managed(labels: Mapping[str, str] | None) -> bool:
    """Whether an object with these labels is the operator's (it may delete it)."""
    return (labels or {}).get(MANAGED_BY) == MANAGER


def selector_string(selector: Mapping[str, str]) -> str:
    """``k=v,k=v`` (sorted) as used in ``status.selector`` for the scale subresource and list calls."""
    return ",".join(f"{k}={v}" for k, v in sorted(selector.items()))
