"""ModelDeployment status: written only by the operator, read by kubectl, HPAs and other tools.

``status.rollout`` is the rollout state machine's whole memory: an operator restarted at any
moment resumes from it exactly where it was.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from modeldeploy.api.canary import CanaryTraffic
from modeldeploy.api.common import ApiModel
from modeldeploy.api.spec import RevisionTemplate

Phase = Literal["Pending", "Progressing", "Paused", "Healthy", "Degraded", "RolledBack"]
Verdict = Literal["Successful", "Failed", "Inconclusive", "Error"]


class Condition(ApiModel):
    type: str = Field(..., max_length=64)
    status: Literal["True", "False", "Unknown"]
    reason: str = Field(..., max_length=128)
    message: str = Field("", max_length=2048)
    last_transition_time: str = Field(..., max_length=64)
    observed_generation: int | None = None


class SequentialEvidence(ApiModel):
    """A sequential guardrail's running evidence (modeldeploy.analysis.sequential): an operator
    restarted at any moment resumes the test exactly from it."""

    guardrail: str = Field(..., max_length=63)
    through: str = Field(..., max_length=64, description="End of the last interval counted (RFC 3339).")
    canary_requests: float = Field(0, ge=0)
    canary_errors: float = Field(0, ge=0)
    stable_requests: float = Field(0, ge=0)
    stable_errors: float = Field(0, ge=0)
    regression: list[float] = Field(
        default_factory=list, max_length=32, description="Log-likelihood ratio per regression alternative."
    )
    no_regression: list[float] = Field(
        default_factory=list, max_length=32, description="Log-likelihood ratio per no-regression alternative."
    )
    decision: Literal["Undecided", "Regression", "NoRegression"] = "Undecided"


class Measurement(ApiModel):
    """One guardrail evaluation, kept so `kubectl describe` answers why a rollout moved."""

    guardrail: str = Field(..., max_length=63)
    revision: str = Field(..., max_length=16)
    query: str = Field("", max_length=8192)
    value: float | None = Field(None, description="The measured value; absent when there was no data.")
    stable_value: float | None = None
    samples: float | None = Field(None, description="Requests seen in the window.")
    threshold: str = Field("", max_length=256, description="The rule applied, e.g. '<= 0.01'.")
    verdict: Verdict
    message: str = Field("", max_length=1024)
    at: str = Field(..., max_length=64)
    evidence: SequentialEvidence | None = Field(
        None, description="Sequential guardrails: the evidence after this measurement."
    )


class AnalysisCounters(ApiModel):
    """Counts for the analysis of the current step (reset when a new analysis starts)."""

    started_at: str | None = Field(None, max_length=64)
    last_measured_at: str | None = Field(None, max_length=64)
    measurements: int = 0
    successes: int = 0
    failures: int = 0
    inconclusives: int = 0
    errors: int = 0
    consecutive_errors: int = 0
    last_verdict: Verdict | None = Field(
        None, description="Verdict of the latest measurement; an analysis passes only after a Successful one."
    )
    sequential: list[SequentialEvidence] = Field(
        default_factory=list, max_length=16, description="Evidence of each sequential guardrail so far."
    )


class SmokeTestResult(ApiModel):
    """The answer of one revision's pod to ``spec.smokeTest``."""

    revision: str = Field(..., max_length=16)
    passed: bool
    pod: str = Field("", max_length=253, description="The pod that answered.")
    status_code: int | None = Field(None, description="HTTP status of the inference request.")
    message: str = Field("", max_length=1024, description="Why it passed or failed.")
    response: str = Field("", max_length=1024, description="The response body (clipped).")
    at: str = Field(..., max_length=64)


class RolloutState(ApiModel):
    """Where the rollout of ``canaryRevision`` stands."""

    revision: str = Field(..., max_length=16, description="Revision being rolled out.")
    strategy: Literal["canary", "blueGreen"]
    attempt: int | None = Field(
        None, ge=1, description="Which rollout attempt this is (status.rolloutAttempts when it started)."
    )
    step_index: int = Field(0, ge=0, description="Index of the current canary step.")
    step_started_at: str | None = Field(None, max_length=64)
    stage: str = Field(
        "Steps",
        max_length=32,
        description=(
            "Canary: Steps | Promoting. BlueGreen: Preview | PrePromotion | AwaitingPromotion | Promoting | "
            "PostPromotion | ScaleDown. An aborted rollout keeps its stage and sets aborted."
        ),
    )
    paused: bool = False
    pause_reason: str | None = Field(None, max_length=512)
    aborted: bool = False
    abort_reason: str | None = Field(None, max_length=1024)
    analysis: AnalysisCounters | None = None
    weight: int = Field(0, ge=0, le=100, description="Weight the router was last asked for.")
    canary_replicas: int = Field(0, ge=0)
    stable_replicas: int = Field(0, ge=0)
    switched_at: str | None = Field(None, max_length=64, description="BlueGreen: when active switched.")
    last_command: str | None = Field(None, max_length=128, description="Last manual command consumed.")
    unready_since: str | None = Field(
        None,
        max_length=64,
        description="Since when the revision has had fewer Ready pods than asked for (progress deadline).",
    )
    smoke_test: SmokeTestResult | None = Field(None, description="The revision's smoke test answer.")
    traffic: CanaryTraffic | None = Field(
        None, description="gatewayAPI: the A/B match or shadow mirror in effect (none: weights alone)."
    )
    shadow: Literal["Running", "Passed", "Failed"] | None = Field(
        None, description="The shadow (setMirror) stage: Running, Passed (its analysis held) or Failed."
    )


class Decision(ApiModel):
    """The last decision the rollout made, in words."""

    action: str = Field(..., max_length=64)
    reason: str = Field(..., max_length=1024)
    at: str = Field(..., max_length=64)


ShortText = Annotated[str, Field(max_length=128)]
LongText = Annotated[str, Field(max_length=512)]
PolicySource = Literal["policyRef", "namespaceLabel", "clusterDefault", "builtIn"]


class PolicySummary(ApiModel):
    """Which rollout policy applies and where it came from (see modeldeploy.policy)."""

    kind: Literal["ClusterRolloutPolicy", "RolloutPolicy"] | None = Field(
        None, description="Kind of the policy; absent for builtIn."
    )
    name: str | None = Field(None, max_length=253, description="Name of the policy; absent for builtIn.")
    source: PolicySource = Field(
        ..., description="policyRef | namespaceLabel | clusterDefault | builtIn (no policy applies)."
    )
    mandatory: bool = Field(False, description="The namespace makes this policy mandatory.")
    ignored_policy_ref: str | None = Field(
        None, max_length=300, description="spec.rollout.policyRef set aside by a mandatory namespace policy."
    )
    defaulted: list[ShortText] = Field(
        default_factory=list, max_length=16, description="Spec fields the policy filled in."
    )


class EffectiveRollout(ApiModel):
    """The rollout settings in force: the user's fields, then the policy's defaults, then built-ins."""

    strategy: str = Field(..., max_length=16)
    steps: list[ShortText] = Field(
        default_factory=list, max_length=32, description="Canary steps, e.g. setWeight=10, analysis=1m."
    )
    interval: str = Field(..., max_length=32)
    window: str | None = Field(None, max_length=32)
    failure_limit: int
    inconclusive_limit: int
    consecutive_error_limit: int
    no_data_policy: str = Field(..., max_length=8)
    min_sample_size: int
    guardrails: list[LongText] = Field(
        default_factory=list, max_length=16, description="Guardrails, e.g. error-rate: error-rate <= 0.01."
    )
    max_surge_gpus: int | None = Field(None, alias="maxSurgeGPUs")
    progress_deadline_seconds: int
    promote_full: bool = Field(True, description="Whether the promote-full command is allowed.")


class ModelDeploymentStatus(ApiModel):
    observed_generation: int | None = None
    phase: Phase = "Pending"
    replicas: int = Field(0, ge=0, description="Pods of all revisions (scale subresource).")
    ready_replicas: int = Field(0, ge=0)
    ready: str = Field("0/0", max_length=32, description="ready/desired, for kubectl get.")
    selector: str = Field("", max_length=1024, description="Label selector for the scale subresource.")
    stable_revision: str | None = Field(None, max_length=16)
    canary_revision: str | None = Field(None, max_length=16)
    canary_weight: int = Field(0, ge=0, le=100, description="Traffic share the canary actually has.")
    current_step: int | None = None
    model_version: str | None = Field(
        None, max_length=63, description="Model version of the stable revision."
    )
    stable_template: RevisionTemplate | None = Field(
        None,
        description="Pod-defining spec of the stable revision, to rebuild it while a newer one rolls out.",
    )
    rollout: RolloutState | None = None
    rollout_attempts: int | None = Field(
        None, ge=0, description="Rollouts started so far (each new revision and each retry)."
    )
    stable_unready_since: str | None = Field(
        None,
        max_length=64,
        description="Since when the stable revision has had fewer Ready pods than asked for.",
    )
    last_decision: Decision | None = None
    measurements: list[Measurement] = Field(default_factory=list, max_length=100)
    conditions: list[Condition] = Field(default_factory=list, max_length=16)
    policy: PolicySummary | None = Field(None, description="The rollout policy in force and its source.")
    effective_rollout: EffectiveRollout | None = Field(
        None, description="Rollout settings in force after the policy's defaults (a summary)."
    )
