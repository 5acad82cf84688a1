"""What status shows of the policy: which one applies (``status.policy``) and the settings in force
(``status.effectiveRollout``, a bounded summary of the effective spec); pure."""

from __future__ import annotations

from modeldeploy.api.spec import CanaryStep, Guardrail, ModelDeploymentSpec
from modeldeploy.api.status import EffectiveRollout, PolicySummary
from modeldeploy.policy.resolve import Choice


def step_text(step: CanaryStep) -> str:
    if step.set_weight is not None:
        return f"setWeight={step.set_weight}"
    if step.analysis is not None:
        return f"analysis={step.analysis.duration}"
    if step.pause is not None:
        return f"pause={step.pause.duration}" if step.pause.duration else "pause"
    scale = step.set_canary_scale
    if scale is not None and scale.replicas is not None:
        return f"setCanaryScale.replicas={scale.replicas}"
    if scale is not None and scale.weight is not None:
        return f"setCanaryScale.weight={scale.weight}"
    return "setCanaryScale.matchTrafficWeight"


def guardrail_text(g: Guardrail) -> str:
    signal = g.template if g.template is not None else "query"
    rules = [f"<= {g.max:g}" if g.max is not None else "", f">= {g.min:g}" if g.min is not None else ""]
    if g.compare_to_stable is not None:
        rules.append(f"<= {g.compare_to_stable.max_ratio:g} x stable")
    return f"{g.name}: {signal} " + ", ".join(r for r in rules if r)


def effective_rollout(spec: ModelDeploymentSpec, promote_full: bool) -> EffectiveRollout:
    rollout, analysis = spec.rollout, spec.rollout.analysis
    return EffectiveRollout(
        strategy=rollout.strategy,
        steps=[step_text(s) for s in rollout.canary.steps] if rollout.strategy == "canary" else [],
        interval=analysis.interval,
        window=analysis.window,
        failure_limit=analysis.failure_limit,
        inconclusive_limit=analysis.inconclusive_limit,
        consecutive_error_limit=analysis.consecutive_error_limit,
        no_data_policy=analysis.no_data_policy,
        min_sample_size=analysis.min_sample_size,
        guardrails=[guardrail_text(g) for g in analysis.guardrails],
        max_surge_gpus=rollout.max_surge_gpus,
        progress_deadline_seconds=rollout.progress_deadline_seconds,
        promote_full=promote_full,
    )


def policy_summary(choice: Choice, defaulted: tuple[str, ...]) -> PolicySummary:
    policy = choice.policy
    return PolicySummary(
        kind=policy.kind if policy else None,
        name=policy.name if policy else None,
        source=choice.source,
        mandatory=choice.mandatory,
        ignored_policy_ref=str(choice.ignored_ref) if choice.ignored_ref else None,
        defaulted=list(defaulted[:16]),
    )
