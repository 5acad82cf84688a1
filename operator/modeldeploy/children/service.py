"""Services: the main one over every revision, and per-role ones over a single revision.

* ``<name>``: all revisions (the ``replicas`` router: weight ~ replica share);
* ``<name>-stable`` / ``<name>-canary``: Gateway API canary backends;
* ``<name>-active`` / ``<name>-preview``: blue-green.
"""

from __future__ import annotations

from typing import Any

from modeldeploy.children import labels as lbl
from modeldeploy.children.owner import OwnerInfo, metadata
from modeldeploy.runtimes.base import Runtime

ROLES = ("stable", "canary", "active", "preview")


def service_name(md_name: str, name_suffix: str | None = None) -> str:
    return f"{md_name}-{name_suffix}" if name_suffix else md_name


def service_ports(runtime: Runtime) -> list[dict[str, Any]]:
    return [
        {"name": name, "port": port, "targetPort": port, "protocol": "TCP"}
        for name, port in runtime.ports.items()
    ]


def build_service(
    owner: OwnerInfo, name_suffix: str | None, runtime: Runtime, selector_revision: str | None
) -> dict[str, Any]:
    """``name_suffix`` None/"" = the main Service; ``selector_revision`` None = select every revision."""
    if name_suffix and name_suffix not in ROLES:
        raise ValueError(f"unknown service role {name_suffix!r}: expected one of {', '.join(ROLES)}")
    labels = {**lbl.common_labels(owner.name, runtime.name), lbl.ROLE: name_suffix or "main"}
    selector = (
        lbl.selector_all(owner.name)
        if selector_revision is None
        else lbl.selector_revision(owner.name, selector_revision)
    )
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(owner, service_name(owner.name, name_suffix), labels),
        "spec": {"selector": selector, "ports": service_ports(runtime)},
    }
