"""Fault matrix row 9 (docs/faults.md): the size of every object the operator reads is bounded by its
schema alone. Every list has ``maxItems``, every free string ``maxLength`` and no field takes
arbitrary content, in the spec of every CRD and in the ModelDeployment status the operator writes;
a new field without a bound fails here, before a 1 MiB object can reach etcd or the operator.
"""

from __future__ import annotations

from typing import Any

import pytest

from modeldeploy.api.crd import all_crds


def unbounded(node: dict[str, Any], path: str) -> list[str]:
    found: list[str] = []
    kind = node.get("type")
    if kind == "array" and "maxItems" not in node:
        found.append(f"{path}: array without maxItems")
    if kind == "string" and "maxLength" not in node and "enum" not in node:
        found.append(f"{path}: string without maxLength")
    if node.get("x-kubernetes-preserve-unknown-fields"):
        found.append(f"{path}: preserves unknown fields")
    if isinstance(node.get("additionalProperties"), dict) and "maxProperties" not in node:
        found.append(f"{path}: map without maxProperties")
    for key, child in (node.get("properties") or {}).items():
        found += unbounded(child, f"{path}.{key}")
    if isinstance(node.get("items"), dict):
        found += unbounded(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        found += unbounded(node["additionalProperties"], f"{path}{{}}")
    return found


@pytest.mark.parametrize("crd", sorted(all_crds()))
def test_every_list_and_string_of_the_schema_is_bounded(crd: str) -> None:
    for version in all_crds()[crd]["spec"]["versions"]:
        root = version["schema"]["openAPIV3Schema"]["properties"]
        problems = [p for part in ("spec", "status") if part in root for p in unbounded(root[part], part)]
        assert problems == [], f"{crd} {version['name']}:\n" + "\n".join(problems)
