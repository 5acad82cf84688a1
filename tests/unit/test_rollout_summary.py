"""The status a pass stores (modeldeploy.rollout.summary): the patch is the difference, or nothing."""

from __future__ import annotations

import pytest

from modeldeploy.api.status import ModelDeploymentStatus
from modeldeploy.rollout.summary import parse_status, status_patch, status_write

pytestmark = pytest.mark.unit


def test_an_unchanged_status_is_no_write() -> None:
    stored = ModelDeploymentStatus(phase="Healthy", stable_revision="r0", replicas=2).wire()
    assert status_patch(stored, ModelDeploymentStatus.model_validate(stored)) == {}


def test_the_patch_holds_only_what_changed_and_removes_what_went() -> None:
    stored = ModelDeploymentStatus(phase="Progressing", stable_revision="r0", canary_revision="r1").wire()
    new = ModelDeploymentStatus(phase="Healthy", stable_revision="r0")
    patch = status_patch(stored, new)
    assert patch["phase"] == "Healthy" and patch["canaryRevision"] is None
    assert "stableRevision" not in patch


def test_an_unreadable_stored_status_is_replaced_whole() -> None:
    stored = {"phase": "NoSuchPhase", "stableRevision": "r0"}
    assert parse_status(stored) is None
    patch = status_patch(stored, ModelDeploymentStatus(phase="Healthy", stable_revision="r0"))
    assert patch["phase"] == "Healthy"


def test_a_write_carries_the_version_the_pass_read() -> None:
    stored = ModelDeploymentStatus(phase="Progressing", stable_revision="r0")
    md = {"metadata": {"name": "m", "resourceVersion": "4711"}, "status": stored.wire()}
    write = status_write(md, stored.model_copy(update={"phase": "Healthy"}))
    assert write is not None and write.resource_version == "4711" and write.patch == {"phase": "Healthy"}
    assert status_write(md, stored) is None  # nothing changed: no write at all
