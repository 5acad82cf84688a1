"""``spec.rollout.analysis``: the guardrails every measurement runs and the limits that judge them."""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field, model_validator

from modeldeploy.api.common import (
    DNS_LABEL,
    ApiModel,
    Duration,
    cel,
    exactly_one,
    policy_governed,
    require_one_of,
)

BUILTIN_TEMPLATES = ("error-rate", "latency-p99-ms", "latency-p50-ms", "queue-time-p99-ms")


class CompareToStable(ApiModel):
    max_ratio: float = Field(
        ..., gt=0, le=1000, description="Fail when canary value > maxRatio x stable value (e.g. 1.2)."
    )


class SequentialTest(ApiModel):
    """An anytime-valid test of the canary's error rate against the stable revision's."""

    tolerance: float = Field(
        0.2,
        ge=0,
        le=10,
        description=(
            "Regression means: canary error rate > stable error rate x (1 + tolerance). The guardrail "
            "fails on evidence of a regression and passes only on evidence of none."
        ),
    )
    alpha: float = Field(
        0.01,
        gt=0,
        le=0.2,
        description=(
            "False-alarm level of each of the two tests (a false rollback, a false pass), valid however "
            "often the evidence is looked at."
        ),
    )


class Guardrail(ApiModel):
    """One SLO check: a built-in template or a PromQL query (jinja2), with thresholds."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(exactly_one(["template", "query"]), "a guardrail sets exactly one of template, query"),
                cel(
                    "has(self.min) || has(self.max) || has(self.compareToStable) || has(self.sequential)",
                    "a guardrail needs min, max, compareToStable or sequential",
                ),
                cel(
                    "!has(self.sequential) || (has(self.template) && self.template == 'error-rate' && "
                    "!has(self.min) && !has(self.max) && !has(self.compareToStable))",
                    "sequential needs template error-rate and no min, max or compareToStable",
                ),
                cel(
                    "!has(self.samplesQuery) || has(self.query)",
                    "samplesQuery goes with a custom query",
                ),
            ]
        }
    )

    name: str = Field(
        ..., max_length=63, pattern=DNS_LABEL, description="Guardrail name, unique in the list."
    )
    template: Literal["error-rate", "latency-p99-ms", "latency-p50-ms", "queue-time-p99-ms"] | None = Field(
        None, description="Built-in per-runtime PromQL template."
    )
    query: str | None = Field(
        None,
        max_length=4096,
        description=(
            "PromQL (jinja2) with variables namespace, name, revision, stable_revision, window; "
            "values are escaped for label matchers. Must return one number."
        ),
    )
    min: float | None = Field(None, description="Fail when the value is below this.")
    max: float | None = Field(None, description="Fail when the value is above this.")
    compare_to_stable: CompareToStable | None = Field(
        None, description="Also run the query for the stable revision and compare."
    )
    sequential: SequentialTest | None = Field(
        None,
        description=(
            "Judge canary against stable with an anytime-valid sequential test on the error and request "
            "counts of both revisions over the same intervals (template error-rate only): fails as soon "
            "as a regression is evident, passes once its absence is, otherwise inconclusive. "
            "minSampleSize does not apply."
        ),
    )
    samples_query: str | None = Field(
        None,
        max_length=4096,
        description=(
            "PromQL (jinja2, same variables as query) counting the canary's requests in the window, for "
            "minSampleSize. Default: the runtime's own request counter for the canary revision."
        ),
    )

    @model_validator(mode="after")
    def _shape(self) -> Guardrail:
        require_one_of(self, ["template", "query"], f"guardrail {self.name}")
        checks = (self.min, self.max, self.compare_to_stable, self.sequential)
        if all(c is None for c in checks):
            raise ValueError(f"guardrail {self.name}: needs min, max, compareToStable or sequential")
        if self.sequential is not None and (
            self.template != "error-rate" or any(c is not None for c in checks[:3])
        ):
            raise ValueError(
                f"guardrail {self.name}: sequential needs template error-rate "
                "and no min, max or compareToStable"
            )
        if self.samples_query is not None and self.query is None:
            raise ValueError(f"guardrail {self.name}: samplesQuery goes with a custom query")
        return self


class Analysis(ApiModel):
    """How guardrails are measured and judged."""

    interval: Duration = Field(
        "15s", json_schema_extra=policy_governed, description="Time between measurements (default 15s)."
    )
    window: Duration | None = Field(None, description="PromQL range window (default: 2 x interval, >= 30s).")
    failure_limit: int = Field(
        2,
        ge=1,
        le=100,
        json_schema_extra=policy_governed,
        description="Failed measurements that trigger automatic rollback (default 2).",
    )
    inconclusive_limit: int = Field(
        3,
        ge=1,
        le=100,
        json_schema_extra=policy_governed,
        description="Inconclusive measurements (no data, too few samples) before pausing (default 3).",
    )
    consecutive_error_limit: int = Field(
        4,
        ge=1,
        le=100,
        json_schema_extra=policy_governed,
        description="Consecutive query errors (Prometheus down) before pausing (default 4).",
    )
    no_data_policy: Literal["pause", "fail", "pass"] = Field(
        "pause",
        json_schema_extra=policy_governed,
        description="An empty result: pause (inconclusive, default), fail (counts as failed), or pass.",
    )
    min_sample_size: int = Field(
        20,
        json_schema_extra=policy_governed,
        ge=0,
        le=10_000_000,
        description="Requests the canary must have served in the window; fewer = inconclusive (default 20).",
    )
    sequential_interval: Duration = Field(
        "5s",
        description=(
            "Time between checks of the sequential guardrails' evidence between measurements (default "
            "5s; no effect at or above interval). Anytime-valid tests may be checked whenever new counts "
            "arrive without more false alarms: a check that finds evidence of a regression rolls back "
            "at once; one that finds none records the evidence and waits for the next measurement."
        ),
    )
    history: int = Field(20, ge=1, le=100, description="Measurements kept in status.")
    guardrails: list[Guardrail] = Field(
        default_factory=list,
        max_length=16,
        description="Checks every measurement runs; empty = the runtime's error-rate guardrail at 5%.",
    )

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "self.guardrails.all(g, self.guardrails.exists_one(h, h.name == g.name))",
                    "guardrail names must be unique",
                    ".guardrails",
                )
            ]
        }
    )

    @model_validator(mode="after")
    def _unique(self) -> Analysis:
        names = [g.name for g in self.guardrails]
        if len(names) != len(set(names)):
            raise ValueError("guardrail names must be unique")
        return self
