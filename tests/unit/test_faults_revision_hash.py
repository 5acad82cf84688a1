"""Fault matrix row 13 (docs/faults.md): the revision hash is a function of what the user wrote.

An operator upgrade (a new image, new defaults, new optional fields) over the same objects must not
make a new revision of every model (flagger#1673: a dependency bump changed the spec hash and
restarted every canary). The end-to-end half is tests/integration/test_faults_children.py.
"""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import Field

from modeldeploy.api.runtime_config import RuntimeConfig
from modeldeploy.api.spec import ModelDeploymentSpec, Resources
from modeldeploy.children.revision import revision_hash, revision_inputs
from modeldeploy.children.settings import BuildSettings

USER_SPEC: dict[str, Any] = {
    "runtime": "triton",
    "model": {"name": "fraud", "version": "7", "storageUri": "s3://models/fraud/7"},
    "replicas": 2,
}


def spec(**overrides: Any) -> ModelDeploymentSpec:
    return ModelDeploymentSpec.model_validate({**USER_SPEC, **overrides})


class FutureRuntimeConfig(RuntimeConfig):
    """RuntimeConfig as a later operator version might have it: one more optional knob."""

    response_cache: bool = Field(False, alias="responseCache")


class FutureResources(Resources):
    ephemeral_storage: str = Field("1Gi", alias="ephemeralStorage")


def test_defaults_written_out_are_the_same_revision_as_defaults_left_out() -> None:
    explicit = spec(
        model={**USER_SPEC["model"], "runtimeConfig": RuntimeConfig().wire()},
        resources=Resources().wire(),
    )
    assert revision_hash(explicit) == revision_hash(spec())


def test_a_new_optional_field_of_a_later_version_keeps_every_revision() -> None:
    today = spec()
    future_model = today.model.model_copy(update={"runtime_config": FutureRuntimeConfig()})
    future = today.model_copy(update={"model": future_model, "resources": FutureResources()})
    assert revision_inputs(future) == revision_inputs(today)
    assert revision_hash(future) == revision_hash(today)


def test_operator_settings_that_do_not_reach_the_pods_keep_the_revision() -> None:
    # a --image override for another runtime, and the revision history kept, change no triton pod
    upgraded = BuildSettings(images={"torchserve": "pytorch/torchserve:0.13.0"}, revision_history_limit=5)
    assert revision_hash(spec(), upgraded) == revision_hash(spec(), BuildSettings())


@pytest.mark.parametrize(
    "changed",
    [
        {"model": {**USER_SPEC["model"], "version": "8"}},
        {"model": {**USER_SPEC["model"], "runtimeConfig": {"maxBatchSize": 8}}},
        {"resources": {"memory": "4Gi"}},
        {"image": "team/triton:custom"},
    ],
    ids=["version", "runtime-config", "resources", "image"],
)
def test_what_the_user_changes_in_the_pods_is_a_new_revision(changed: dict[str, Any]) -> None:
    assert revision_hash(spec(**changed)) != revision_hash(spec())
