"""Generate the CustomResourceDefinitions in crds/ from the pydantic models.

``python -m modeldeploy.api.crd write crds/`` regenerates the files; a unit test fails when the
committed YAML and the models disagree. The pydantic JSON schema is turned into a Kubernetes
structural schema: references inlined, optional fields un-nulled, Literal -> enum, bounds kept,
CEL rules carried through ``x-kubernetes-validations``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from modeldeploy.api.common import GROUP, VERSION, cel
from modeldeploy.api.policy import RolloutPolicySpec
from modeldeploy.api.spec import ModelDeploymentSpec
from modeldeploy.api.status import ModelDeploymentStatus

JsonSchema = dict[str, Any]

# Children are named "<name>-<revision>" (10-char revision) and must stay DNS labels (<= 63).
MAX_NAME_LENGTH = 40

_KEEP = {
    "type",
    "description",
    "properties",
    "required",
    "items",
    "enum",
    "default",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "pattern",
    "format",
    "x-kubernetes-validations",
}


def _structural(node: JsonSchema, defs: dict[str, JsonSchema]) -> JsonSchema:
    """Rewrite one pydantic schema node into a Kubernetes structural schema node."""
    if "$ref" in node:
        target = defs[node["$ref"].rsplit("/", 1)[1]]
        merged = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
        return _structural(merged, defs)
    if "anyOf" in node:
        options = [o for o in node["anyOf"] if o.get("type") != "null"]
        if len(options) != 1:
            raise ValueError(f"cannot express union {node['anyOf']} structurally")
        outer = {k: v for k, v in node.items() if k != "anyOf" and not (k == "default" and v is None)}
        return _structural({**options[0], **outer}, defs)
    if "const" in node:
        node = {**node, "enum": [node["const"]]}
    out: JsonSchema = {}
    for key, value in node.items():
        if key not in _KEEP:
            continue
        if key == "properties":
            out[key] = {name: _structural(sub, defs) for name, sub in value.items()}
        elif key == "items":
            out[key] = _structural(value, defs)
        elif key == "exclusiveMinimum":
            out["minimum"], out["exclusiveMinimum"] = value, True
        elif key == "exclusiveMaximum":
            out["maximum"], out["exclusiveMaximum"] = value, True
        else:
            out[key] = value
    if "enum" in out and "type" not in out:
        out["type"] = "string"
    if out.get("type") == "object" and "properties" not in out:
        out["properties"] = {}
    if isinstance(out.get("default"), (dict, list)):
        del out["default"]
    return out


def schema_of(model: type[BaseModel]) -> JsonSchema:
    """The structural OpenAPI v3 schema of a model, as used inside a CRD."""
    raw = model.model_json_schema(by_alias=True, mode="validation")
    defs = raw.pop("$defs", {})
    return _structural(raw, defs)


def _printer(name: str, type_: str, path: str, description: str, priority: int = 0) -> dict[str, Any]:
    col: dict[str, Any] = {"name": name, "type": type_, "jsonPath": path, "description": description}
    if priority:
        col["priority"] = priority
    return col


def _crd(
    kind: str,
    plural: str,
    scope: str,
    spec: JsonSchema,
    status: JsonSchema | None,
    short_names: list[str],
    columns: list[dict[str, Any]],
    root_rules: list[Any],
    scale: bool = False,
    description: str = "",
) -> dict[str, Any]:
    root: JsonSchema = {
        "type": "object",
        "description": description,
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": spec,
        },
    }
    subresources: dict[str, Any] = {}
    if status is not None:
        root["properties"]["status"] = status
        subresources["status"] = {}
    if scale:
        subresources["scale"] = {
            "specReplicasPath": ".spec.replicas",
            "statusReplicasPath": ".status.replicas",
            "labelSelectorPath": ".status.selector",
        }
    if root_rules:
        root["x-kubernetes-validations"] = root_rules
    version: dict[str, Any] = {
        "name": VERSION,
        "served": True,
        "storage": True,
        "schema": {"openAPIV3Schema": root},
        "additionalPrinterColumns": columns,
    }
    if subresources:
        version["subresources"] = subresources
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": kind.lower(),
                "shortNames": short_names,
                "categories": ["modeldeploy"],
            },
            "scope": scope,
            "versions": [version],
        },
    }


def model_deployment_crd() -> dict[str, Any]:
    age = _printer("Age", "date", ".metadata.creationTimestamp", "Time since creation.")
    return _crd(
        kind="ModelDeployment",
        plural="modeldeployments",
        scope="Namespaced",
        spec=schema_of(ModelDeploymentSpec),
        status=schema_of(ModelDeploymentStatus),
        short_names=["md", "mdep"],
        scale=True,
        description=(
            "A served ML model (Triton or TorchServe) rolled out progressively on every new revision."
        ),
        columns=[
            _printer("Runtime", "string", ".spec.runtime", "Serving runtime."),
            _printer("Version", "string", ".spec.model.version", "Desired model version."),
            _printer("Ready", "string", ".status.ready", "Ready/desired replicas."),
            _printer("Phase", "string", ".status.phase", "Lifecycle phase."),
            _printer("Stable", "string", ".status.stableRevision", "Revision serving as stable."),
            _printer("Canary", "string", ".status.canaryRevision", "Revision being rolled out.", 1),
            _printer("Weight", "integer", ".status.canaryWeight", "Traffic % on the canary."),
            age,
        ],
        root_rules=[
            cel(
                f"self.metadata.name.size() <= {MAX_NAME_LENGTH}",
                f"metadata.name must be at most {MAX_NAME_LENGTH} characters (children append a revision)",
            ),
            cel(
                "self.metadata.name.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')",
                "metadata.name must be a DNS label: lowercase letters, digits and '-'",
            ),
        ],
    )


def policy_crds() -> list[dict[str, Any]]:
    spec = schema_of(RolloutPolicySpec)
    columns = [
        _printer("Default", "boolean", ".spec.default", "The cluster default (ClusterRolloutPolicy only)."),
        _printer("Age", "date", ".metadata.creationTimestamp", "Time since creation."),
    ]
    return [
        _crd(
            "ClusterRolloutPolicy",
            "clusterrolloutpolicies",
            "Cluster",
            spec,
            None,
            ["crp"],
            columns,
            [],
            description="Cluster-wide rollout defaults and limits set by a platform team.",
        ),
        _crd(
            "RolloutPolicy",
            "rolloutpolicies",
            "Namespaced",
            spec,
            None,
            ["rp"],
            columns,
            [],
            description="Namespace rollout defaults and limits.",
        ),
    ]


def all_crds() -> dict[str, dict[str, Any]]:
    """File name -> CRD object, exactly as committed in crds/."""
    crds = [model_deployment_crd(), *policy_crds()]
    return {f"{c['spec']['group']}_{c['spec']['names']['plural']}.yaml": c for c in crds}


def render(crd: dict[str, Any]) -> str:
    header = (
        "# Generated by `python -m modeldeploy.api.crd write crds/` from operator/modeldeploy/api."
        " Do not edit.\n"
    )
    return header + yaml.safe_dump(crd, sort_keys=False, width=120)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2 or args[0] != "write":
        print("usage: python -m modeldeploy.api.crd write DIR", file=sys.stderr)
        return 2
    out = Path(args[1])
    out.mkdir(parents=True, exist_ok=True)
    for name, crd in all_crds().items():
        (out / name).write_text(render(crd))
        print(f"wrote {out / name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
