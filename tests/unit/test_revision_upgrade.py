"""Upgrading from an operator that hashed revisions with every defaulted field included: an object
whose stable revision carries the earlier name keeps it (no rollout of every model on upgrade), and
its next real change gets a name of the current kind."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from modeldeploy.api.spec import ModelDeploymentSpec
from modeldeploy.children import BuildSettings, revision_for, revision_hash

pytestmark = pytest.mark.unit

SAMPLE = Path(__file__).resolve().parents[2] / "e2e" / "samples" / "fraud-detector.yaml"
# What the previous release of the operator named the sample's revision (default images).
PREVIOUS_RELEASE_REVISION = "b2396f3a54"


def sample_spec() -> ModelDeploymentSpec:
    docs = [d for d in yaml.safe_load_all(SAMPLE.read_text()) if d and d.get("kind") == "ModelDeployment"]
    return ModelDeploymentSpec.model_validate(docs[0]["spec"])


def test_the_earlier_hash_is_the_one_the_previous_release_computed() -> None:
    assert revision_hash(sample_spec(), BuildSettings(), as_written=False) == PREVIOUS_RELEASE_REVISION


def test_a_stable_revision_named_by_the_earlier_hash_is_kept() -> None:
    spec = sample_spec()
    current = revision_hash(spec, BuildSettings())
    assert current != PREVIOUS_RELEASE_REVISION
    assert revision_for(spec, BuildSettings(), [PREVIOUS_RELEASE_REVISION, None]) == PREVIOUS_RELEASE_REVISION
    assert revision_for(spec, BuildSettings(), [None, PREVIOUS_RELEASE_REVISION]) == PREVIOUS_RELEASE_REVISION
    assert revision_for(spec, BuildSettings(), [None, None]) == current  # a new object
    assert revision_for(spec, BuildSettings(), [current]) == current


def test_the_next_change_gets_a_name_of_the_current_kind() -> None:
    spec = sample_spec()
    changed = spec.model_copy(update={"model": spec.model.model_copy(update={"version": "2"})})
    got = revision_for(changed, BuildSettings(), [PREVIOUS_RELEASE_REVISION])
    assert got == revision_hash(changed, BuildSettings())
    assert got != revision_hash(changed, BuildSettings(), as_written=False)
