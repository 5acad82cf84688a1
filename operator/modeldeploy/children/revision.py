"""Revision hash: what identifies one pod template of a ModelDeployment.

Covers everything that changes the serving pods: runtime, the effective images (spec override or
operator default), the model (name, version, storageUri, credentialsSecret, runtimeConfig), the
rendered runtime config files (so a template change is a new revision too), resources,
serviceAccountName, disableAuth. Replicas, autoscaling and rollout settings are left out: scaling
or re-tuning a rollout never starts a new one.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from modeldeploy.api.spec import ModelDeploymentSpec
from modeldeploy.children.settings import BuildSettings
from modeldeploy.children.storage import pvc_source
from modeldeploy.runtimes import get_runtime

REVISION_LENGTH = 10


def revision_inputs(spec: ModelDeploymentSpec, settings: BuildSettings | None = None) -> dict[str, Any]:
    """The canonical document the hash is taken over (exposed for debugging and tests)."""
    settings = settings or BuildSettings()
    runtime = get_runtime(spec.runtime)
    remote = pvc_source(spec.model.storage_uri) is None
    return {
        "runtime": spec.runtime,
        "image": runtime.image(spec, settings.images),
        "storageInitializerImage": settings.initializer_image() if remote else None,
        "model": spec.model.wire(),
        "config": runtime.render_config(spec),
        "resources": spec.resources.wire(),
        "serviceAccountName": spec.service_account_name,
        "disableAuth": spec.disable_auth,
    }


def revision_hash(spec: ModelDeploymentSpec, settings: BuildSettings | None = None) -> str:
    """10 hex chars of sha256 over canonical JSON of :func:`revision_inputs`."""
    canonical = json.dumps(
        revision_inputs(spec, settings), sort_keys=True, separators=(",", ":"), ensure_ascii=True
    )
    return hashlib.sha256(canonical.encode()).hexdigest()[:REVISION_LENGTH]
