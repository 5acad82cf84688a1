"""Shared pieces of the API models: base class, durations, Kubernetes-name patterns."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, JsonValue
from pydantic.alias_generators import to_camel

JsonDict = dict[str, JsonValue]

GROUP = "modeldeploy.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

# A DNS-1123 subdomain (most object names) and label (Services, ports, guardrail names).
DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$"
DNS_LABEL = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"
# One safe path segment (model names, versions): no '/', no leading '.'.
SAFE_SEGMENT = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,62}$"
# Kubernetes resource quantity ("500m", "2", "8Gi", "1.5").
QUANTITY = r"^([+]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$"
# Go-style duration restricted to what rollouts need: "90s", "2m", "1h30m", "500ms".
DURATION = r"^([0-9]{1,6}(ms|s|m|h))+$"

_DURATION_PART = re.compile(r"([0-9]+)(ms|s|m|h)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float:
    """Seconds in a duration string such as ``"1m30s"``; raises ValueError on anything else."""
    if not re.fullmatch(DURATION, text):
        raise ValueError(f"invalid duration {text!r}: use digits with ms, s, m or h, e.g. 30s, 2m, 1h30m")
    return sum(int(n) * _UNIT_SECONDS[u] for n, u in _DURATION_PART.findall(text))


def format_duration(seconds: float) -> str:
    """The shortest duration string for a whole number of seconds (used for PromQL windows)."""
    whole = max(1, round(seconds))
    if whole % 3600 == 0:
        return f"{whole // 3600}h"
    if whole % 60 == 0:
        return f"{whole // 60}m"
    return f"{whole}s"


Duration = Annotated[
    str,
    Field(pattern=DURATION, max_length=32, description="A duration such as 30s, 2m or 1h30m."),
]


def cel(rule: str, message: str, field_path: str | None = None) -> JsonDict:
    """One ``x-kubernetes-validations`` entry."""
    entry: JsonDict = {"rule": rule, "message": message}
    if field_path:
        entry["fieldPath"] = field_path
    return entry


def exactly_one(fields: list[str]) -> str:
    """A CEL rule: exactly one of the optional fields is set."""
    return "[" + ", ".join(f"has(self.{f})" for f in fields) + "].filter(x, x).size() == 1"


class ApiModel(BaseModel):
    """Base of every API model: camelCase on the wire, unknown fields refused."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
        use_enum_values=True,
    )

    def wire(self) -> dict[str, Any]:
        """The object as the API server stores it: camelCase, unset optionals left out."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


def require_one_of(model: ApiModel, fields: list[str], what: str) -> None:
    """pydantic's side of an ``exactly_one`` CEL rule: exactly one of ``fields`` is set."""
    chosen = [f for f in fields if getattr(model, f) is not None]
    if len(chosen) != 1:
        names = ", ".join(type(model).model_fields[f].alias or f for f in fields)
        raise ValueError(f"{what}: set exactly one of {names}")


def policy_governed(schema: dict[str, Any]) -> None:
    """No ``default`` in the CRD schema: the API server must not fill a field a rollout policy may
    supply, or "the user set it" and "the schema defaulted it" look the same (modeldeploy.policy).
    The pydantic default stays: the operator applies it last (user > policy > built-in)."""
    schema.pop("default", None)
