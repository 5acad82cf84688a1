"""The per-revision ConfigMap holding the runtime's rendered config files."""

from __future__ import annotations

from typing import Any

from modeldeploy.api.spec import ModelDeploymentSpec
from modeldeploy.children.labels import revision_labels
from modeldeploy.children.owner import OwnerInfo, metadata
from modeldeploy.runtimes.base import Runtime


def configmap_name(md_name: str, revision: str) -> str:
    return f"{md_name}-{revision}-config"


def build_configmap(
    owner: OwnerInfo, spec: ModelDeploymentSpec, revision: str, runtime: Runtime
) -> dict[str, Any]:
    """Immutable: the rendered files are part of the revision hash, so a revision's data never changes."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata(
            owner, configmap_name(owner.name, revision), revision_labels(owner.name, runtime.name, revision)
        ),
        "immutable": True,
        "data": runtime.render_config(spec),
    }
