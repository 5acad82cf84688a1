"""The modeldeploy.dev/v1alpha1 API: pydantic models are the source of truth for crds/."""

from modeldeploy.api.common import API_VERSION, GROUP, VERSION, parse_duration
from modeldeploy.api.policy import RolloutPolicySpec
from modeldeploy.api.spec import ModelDeploymentSpec
from modeldeploy.api.status import ModelDeploymentStatus

__all__ = [
    "API_VERSION",
    "GROUP",
    "VERSION",
    "ModelDeploymentSpec",
    "ModelDeploymentStatus",
    "RolloutPolicySpec",
    "parse_duration",
]
