"""Policy limits and required guardrails, checked against the effective spec; pure.

Every finding is a sentence naming the spec field and both values (the spec's and the policy's).
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from modeldeploy.api.common import format_duration, parse_duration
from modeldeploy.api.policy import PolicyLimits, RolloutPolicySpec
from modeldeploy.api.spec import AnalysisStep, Guardrail, ModelDeploymentSpec


def violations(spec: ModelDeploymentSpec, policy: RolloutPolicySpec) -> list[str]:
    out = _limit_violations(spec, policy.limits) if policy.limits is not None else []
    out.extend(guardrail_violations(spec.rollout.analysis.guardrails, policy.required_guardrails))
    return out


def promote_full_allowed(policy: RolloutPolicySpec | None) -> bool:
    limits = policy.limits if policy is not None else None
    return limits is None or limits.allow_promote_full is not False


# --- limits --------------------------------------------------------------------------------------


def _limit_violations(spec: ModelDeploymentSpec, limits: PolicyLimits) -> list[str]:
    out: list[str] = []
    if limits.allowed_runtimes is not None and spec.runtime not in limits.allowed_runtimes:
        allowed = ", ".join(limits.allowed_runtimes)
        out.append(f"spec.runtime {spec.runtime!r} is not allowed (allowed: {allowed})")
    scheme = spec.model.storage_scheme
    if limits.allowed_storage_schemes is not None and scheme not in limits.allowed_storage_schemes:
        allowed = ", ".join(limits.allowed_storage_schemes)
        out.append(f"spec.model.storageUri scheme {scheme}:// is not allowed (allowed: {allowed})")
    if limits.allowed_buckets is not None:
        bucket = storage_bucket(spec.model.storage_uri)
        if bucket is None or not any(_matches(bucket, pattern) for pattern in limits.allowed_buckets):
            allowed = ", ".join(limits.allowed_buckets)
            named = f"bucket {bucket!r}" if bucket else "no bucket"
            out.append(f"spec.model.storageUri names {named}, not an allowed one ({allowed})")
    out.extend(_gpu_violations(spec, limits))
    out.extend(_step_violations(spec, limits))
    return out


def storage_bucket(uri: str) -> str | None:
    """The bucket (s3, gs) or claim (pvc) a storage URI names; None for https."""
    parts = urlsplit(uri)
    return parts.netloc if parts.scheme in ("s3", "gs", "pvc") and parts.netloc else None


def _matches(value: str, pattern: str) -> bool:
    return value.startswith(pattern[:-1]) if pattern.endswith("*") else value == pattern


def _gpu_violations(spec: ModelDeploymentSpec, limits: PolicyLimits) -> list[str]:
    out: list[str] = []
    gpu = spec.resources.gpu
    per_replica = gpu.whole_gpus if gpu is not None else 0
    if limits.max_gpus_per_replica is not None and per_replica > limits.max_gpus_per_replica:
        out.append(
            f"spec.resources.gpu.count {per_replica} exceeds maxGPUsPerReplica {limits.max_gpus_per_replica}"
        )
    most = limits.max_gpus_per_model_deployment
    if most is not None and per_replica:
        replicas, field = spec.replicas, "spec.replicas"
        if spec.autoscaling is not None:
            replicas, field = max(replicas, spec.autoscaling.max_replicas), "spec.autoscaling.maxReplicas"
        if per_replica * replicas > most:
            out.append(
                f"{field} {replicas} x {per_replica} GPU(s) per replica = {per_replica * replicas} GPUs "
                f"exceeds maxGPUsPerModelDeployment {most}"
            )
    surge = spec.rollout.max_surge_gpus
    if limits.max_surge_gpus is not None and surge is not None and surge > limits.max_surge_gpus:
        out.append(f"spec.rollout.maxSurgeGPUs {surge} exceeds the limit {limits.max_surge_gpus}")
    return out


def _step_violations(spec: ModelDeploymentSpec, limits: PolicyLimits) -> list[str]:
    out: list[str] = []
    rollout = spec.rollout
    canary = rollout.strategy == "canary"
    if limits.max_canary_step_weight is not None and canary:
        for i, step in enumerate(rollout.canary.steps):
            if step.set_weight is not None and step.set_weight > limits.max_canary_step_weight:
                out.append(
                    f"spec.rollout.canary.steps[{i}].setWeight {step.set_weight} exceeds "
                    f"maxCanaryStepWeight {limits.max_canary_step_weight}"
                )
    analyses: list[tuple[str, AnalysisStep]] = []
    if canary:
        analyses = [
            (f"spec.rollout.canary.steps[{i}].analysis.duration", s.analysis)
            for i, s in enumerate(rollout.canary.steps)
            if s.analysis is not None
        ]
    else:
        bg = rollout.blue_green
        for name, bg_step in (("pre", bg.pre_promotion_analysis), ("post", bg.post_promotion_analysis)):
            if bg_step is not None:
                analyses.append((f"spec.rollout.blueGreen.{name}PromotionAnalysis.duration", bg_step))
    if limits.min_analysis_duration is not None:
        least = parse_duration(limits.min_analysis_duration)
        for field, analysis in analyses:
            if parse_duration(analysis.duration) < least:
                out.append(
                    f"{field} {analysis.duration} is shorter than minAnalysisDuration "
                    f"{limits.min_analysis_duration}"
                )
    if limits.min_bake_time is not None:
        baked = sum(parse_duration(a.duration) for _, a in analyses)
        if canary:
            baked += sum(
                parse_duration(s.pause.duration) for s in rollout.canary.steps if s.pause and s.pause.duration
            )
        if baked < parse_duration(limits.min_bake_time):
            where = "spec.rollout.canary.steps" if canary else "spec.rollout.blueGreen"
            out.append(
                f"{where} bake for {format_duration(baked) if baked else '0s'} (analysis and timed pauses), "
                f"less than minBakeTime {limits.min_bake_time}"
            )
    return out


# --- required guardrails -------------------------------------------------------------------------


def _signal(g: Guardrail) -> str:
    return f"template {g.template}" if g.template is not None else f"query {_query(g.query or '')!r}"


def _query(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def _same_signal(required: Guardrail, have: Guardrail) -> bool:
    if required.template is not None:
        return have.template == required.template
    return have.query is not None and _query(have.query) == _query(required.query or "")


def _looser(required: Guardrail, have: Guardrail) -> list[str]:
    """How ``have`` is looser than ``required`` (empty: at least as strict)."""
    out: list[str] = []
    if required.max is not None and (have.max is None or have.max > required.max):
        out.append(f"max {'unset' if have.max is None else have.max} (policy: max {required.max})")
    if required.min is not None and (have.min is None or have.min < required.min):
        out.append(f"min {'unset' if have.min is None else have.min} (policy: min {required.min})")
    need = required.compare_to_stable
    if need is not None:
        got = have.compare_to_stable
        if got is None or got.max_ratio > need.max_ratio:
            value = "unset" if got is None else got.max_ratio
            out.append(f"compareToStable.maxRatio {value} (policy: {need.max_ratio})")
    return out


def guardrail_violations(have: list[Guardrail], required: list[Guardrail]) -> list[str]:
    """Each required guardrail needs one of ``have`` with the same signal and thresholds no looser."""
    out: list[str] = []
    for req in required:
        candidates = [g for g in have if _same_signal(req, g)]
        if not candidates:
            out.append(f"spec.rollout.analysis.guardrails has no guardrail on {_signal(req)} (required)")
            continue
        if any(not _looser(req, g) for g in candidates):
            continue
        g = candidates[0]
        out.append(
            f"spec.rollout.analysis.guardrails {g.name!r} on {_signal(req)} is looser than the policy: "
            + "; ".join(_looser(req, g))
        )
    return out
