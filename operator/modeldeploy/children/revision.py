"""Revision hash: what identifies one pod template of a ModelDeployment.

Covers everything that changes the serving pods: runtime, the effective images (spec override or
operator default), the model (name, version, storageUri, credentialsSecret, runtimeConfig), the
rendered runtime config files (so a template change is a new revision too), resources,
serviceAccountName, disableAuth. Replicas, autoscaling and rollout settings are left out: scaling
or re-tuning a rollout never starts a new one.

The model and resources enter the hash as the user wrote them: fields equal to their defaults are
left out, so neither the API server's schema defaults nor a field with a default that a later
operator version adds changes the hash of an existing object (an operator upgrade must not start a
rollout of every model: flagger#1673). What such a field does to the pods shows in the rendered
config files, which are hashed as rendered.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from typing import Any

from modeldeploy.api.common import ApiModel
from modeldeploy.api.spec import ModelDeploymentSpec
from modeldeploy.children.settings import BuildSettings
from modeldeploy.children.storage import pvc_source
from modeldeploy.runtimes import get_runtime

REVISION_LENGTH = 10


def _as_written(model: ApiModel) -> dict[str, Any]:
    """The fields that differ from their defaults (recursively, camelCase); an object left with no
    such field is left out too."""
    return _drop_empty(model.model_dump(by_alias=True, exclude_none=True, exclude_defaults=True, mode="json"))


def _drop_empty(doc: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in doc.items():
        if isinstance(value, dict):
            value = _drop_empty(value)
            if not value:
                continue
        out[key] = value
    return out


def revision_inputs(
    spec: ModelDeploymentSpec, settings: BuildSettings | None = None, *, as_written: bool = True
) -> dict[str, Any]:
    """The canonical document the hash is taken over (exposed for debugging and tests).

    ``as_written=False``: model and resources as stored, defaults included (how earlier operator
    versions hashed them, see :func:`revision_for`).
    """
    settings = settings or BuildSettings()
    fields = _as_written if as_written else ApiModel.wire
    runtime = get_runtime(spec.runtime)
    remote = pvc_source(spec.model.storage_uri) is None
    return {
        "runtime": spec.runtime,
        "image": runtime.image(spec, settings.images),
        "storageInitializerImage": settings.initializer_image() if remote else None,
        "model": fields(spec.model),
        "config": runtime.render_config(spec),
        "resources": fields(spec.resources),
        "serviceAccountName": spec.service_account_name,
        "disableAuth": spec.disable_auth,
    }


def revision_hash(
    spec: ModelDeploymentSpec, settings: BuildSettings | None = None, *, as_written: bool = True
) -> str:
    """10 hex chars of sha256 over canonical JSON of :func:`revision_inputs`."""
    canonical = json.dumps(
        revision_inputs(spec, settings, as_written=as_written),
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=True,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()[:REVISION_LENGTH]


def revision_for(
    spec: ModelDeploymentSpec, settings: BuildSettings | None, known: Iterable[str | None]
) -> str:
    """The revision of ``spec``: its hash, unless one of the ``known`` revisions (the stable one,
    the one rolling out) is this same pod template under the name earlier operator versions gave it
    (model and resources hashed with their defaults). Then that name is kept, so the upgrade that
    changed how revisions are hashed starts no rollout either; the next change of the spec gets a
    name of the current kind."""
    current = revision_hash(spec, settings)
    earlier = revision_hash(spec, settings, as_written=False)
    return earlier if earlier != current and earlier in set(known) else current
