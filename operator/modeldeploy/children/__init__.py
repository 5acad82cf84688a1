"""Pure builders of the Kubernetes objects a ModelDeployment owns (plain dicts for server-side apply)."""

from modeldeploy.children.configmap import build_configmap, configmap_name
from modeldeploy.children.deployment import build_deployment, deployment_name
from modeldeploy.children.hpa import build_hpa
from modeldeploy.children.labels import selector_all, selector_revision, selector_string
from modeldeploy.children.owner import OwnerInfo
from modeldeploy.children.revision import revision_for, revision_hash
from modeldeploy.children.service import build_service, service_name
from modeldeploy.children.settings import BuildSettings

__all__ = [
    "BuildSettings",
    "OwnerInfo",
    "build_configmap",
    "build_deployment",
    "build_hpa",
    "build_service",
    "configmap_name",
    "deployment_name",
    "revision_for",
    "revision_hash",
    "selector_all",
    "selector_revision",
    "selector_string",
    "service_name",
]
