"""The committed CRDs in crds/ are exactly what the pydantic models generate."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from modeldeploy.api.crd import all_crds, render

pytestmark = pytest.mark.unit

CRDS = Path(__file__).resolve().parents[2] / "crds"


@pytest.mark.parametrize("name", sorted(all_crds()))
def test_committed_crd_matches_models(name: str) -> None:
    committed = CRDS / name
    assert committed.exists(), f"{committed} missing: run python -m modeldeploy.api.crd write crds/"
    expected = render(all_crds()[name])
    assert committed.read_text() == expected, (
        f"{name} drifted from the pydantic models: run python -m modeldeploy.api.crd write crds/"
    )


def test_no_stray_crd_files() -> None:
    generated = sorted(p.name for p in CRDS.glob("*.yaml") if p.name != "kustomization.yaml")
    assert generated == sorted(all_crds())


def _walk(node: dict, path: str, problems: list[str]) -> None:
    t = node.get("type")
    if t is None and not node.get("x-kubernetes-preserve-unknown-fields"):
        problems.append(f"{path}: no type (not structural)")
    if t == "string" and "enum" not in node and "maxLength" not in node and "format" not in node:
        problems.append(f"{path}: string without maxLength")
    if t == "array" and "maxItems" not in node:
        problems.append(f"{path}: array without maxItems")
    if "additionalProperties" in node and "properties" in node:
        problems.append(f"{path}: properties and additionalProperties together")
    for key, sub in node.get("properties", {}).items():
        _walk(sub, f"{path}.{key}", problems)
    if "items" in node:
        _walk(node["items"], f"{path}[]", problems)


def test_schema_is_structural_and_bounded() -> None:
    crd = all_crds()["modeldeploy.dev_modeldeployments.yaml"]
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    problems: list[str] = []
    for part in ("spec", "status"):
        _walk(schema["properties"][part], part, problems)
    assert problems == []


def test_every_spec_field_is_described() -> None:
    crd = all_crds()["modeldeploy.dev_modeldeployments.yaml"]
    spec = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    missing: list[str] = []

    def walk(node: dict, path: str) -> None:
        for key, sub in node.get("properties", {}).items():
            if not sub.get("description"):
                missing.append(f"{path}.{key}")
            walk(sub, f"{path}.{key}")
            if "items" in sub:
                walk(sub["items"], f"{path}.{key}[]")

    walk(spec, "spec")
    assert missing == [], f"fields without description (kubectl explain would be empty): {missing}"


def test_scale_subresource_and_columns() -> None:
    version = all_crds()["modeldeploy.dev_modeldeployments.yaml"]["spec"]["versions"][0]
    assert version["subresources"]["scale"] == {
        "specReplicasPath": ".spec.replicas",
        "statusReplicasPath": ".status.replicas",
        "labelSelectorPath": ".status.selector",
    }
    names = [c["name"] for c in version["additionalPrinterColumns"]]
    assert names == ["Runtime", "Version", "Ready", "Phase", "Stable", "Canary", "Weight", "Age"]
    assert yaml.safe_load(render(all_crds()["modeldeploy.dev_modeldeployments.yaml"]))["kind"] == (
        "CustomResourceDefinition"
    )
