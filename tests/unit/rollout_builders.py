"""Builders shared by the rollout unit tests (tests/unit/test_rollout_*.py).

``build_spec`` and ``measurements`` build the inputs of ``decide``; ``Shell`` plays the operator shell
for the worked examples: it keeps the status, a world where every workload becomes ready one pass
after it is scaled (unless its revision is ``frozen``), and the clock.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from modeldeploy.api.spec import GpuSpec, ModelDeploymentSpec, ModelSpec, Resources, Rollout, RuntimeName
from modeldeploy.api.status import Measurement, ModelDeploymentStatus, SmokeTestResult, Verdict
from modeldeploy.rollout import (
    Command,
    DeleteRevision,
    EmitEvent,
    Observations,
    Plan,
    RevisionObservation,
    ScaleRevision,
    decide,
    measurement_due,
)
from modeldeploy.rollout.types import Action, CommandKind

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def build_spec(
    rollout: Rollout | None = None,
    *,
    replicas: int,
    runtime: RuntimeName = "triton",
    gpu: GpuSpec | None = None,
) -> ModelDeploymentSpec:
    """A ModelDeployment spec for model ``m`` version 1 with the given rollout settings."""
    return ModelDeploymentSpec(
        runtime=runtime,
        model=ModelSpec(
            name="m",
            version="1",
            storage_uri="s3://bucket/m.mar" if runtime == "torchserve" else "s3://bucket/m",
        ),
        replicas=replicas,
        resources=Resources(gpu=gpu),
        rollout=rollout if rollout is not None else Rollout(),
    )


def measurements(revision: str, verdicts: Iterable[Verdict], at: str = "t") -> list[Measurement]:
    """One measurement per verdict, of guardrails ``g0``, ``g1``, ... (error rate 0.083, rule <= 0.01)."""
    return [
        Measurement(
            guardrail=f"g{i}",
            revision=revision,
            value=0.083,
            threshold="<= 0.01",
            verdict=v,
            samples=1200,
            at=at,
        )
        for i, v in enumerate(verdicts)
    ]


def reasons(plan: Plan) -> list[str]:
    """The reasons of the events a plan emits, in order."""
    return [a.reason for a in plan.actions if isinstance(a, EmitEvent)]


@dataclass
class Shell:
    """Runs ``decide`` pass by pass against a world that converges one pass after each scale."""

    spec: ModelDeploymentSpec
    desired: str = "r0"
    now: datetime = T0
    status: ModelDeploymentStatus = field(default_factory=ModelDeploymentStatus)
    pods: dict[str, RevisionObservation] = field(default_factory=dict)
    frozen: set[str] = field(default_factory=set)  # revisions whose pods do not become ready
    plans: list[Plan] = field(default_factory=list)

    def run(
        self,
        advance: float = 0,
        verdicts: list[Verdict] | None = None,
        command: tuple[CommandKind, str] | None = None,
        smoke_test: SmokeTestResult | None = None,
    ) -> Plan:
        self.now += timedelta(seconds=advance)
        self.pods = {
            rev: o
            if rev in self.frozen
            else RevisionObservation(o.replicas, o.replicas, True, None, o.replicas)
            for rev, o in self.pods.items()
        }
        rollout = self.status.rollout
        measured = measurements(rollout.revision, verdicts or []) if rollout else []
        obs = Observations(
            desired_revision=self.desired,
            revisions=dict(self.pods),
            measurements=measured,
            command=Command(*command) if command else None,
            smoke_test=smoke_test,
        )
        plan = decide(self.spec, self.status, obs, self.now)
        for action in plan.actions:
            self.apply(action)
        self.status = plan.status
        self.plans.append(plan)
        return plan

    def apply(self, action: Action) -> None:
        """Carry out one action in the world (new pods start unready; removed ones go at once)."""
        if isinstance(action, ScaleRevision):
            old = self.pods.get(action.revision, RevisionObservation(0))
            ready = min(old.ready_replicas, action.replicas)
            self.pods[action.revision] = RevisionObservation(
                action.replicas, ready, ready > 0, None, max(ready, action.replicas)
            )
        elif isinstance(action, DeleteRevision):
            del self.pods[action.revision]

    def settle(self, passes: int = 3, advance: float = 0) -> None:
        for _ in range(passes):
            self.run(advance)

    def deploy(self, revision: str) -> Plan:
        self.desired = revision
        return self.run()

    def measure(self, verdict: Verdict, passes: int, interval: float = 15) -> list[Plan]:
        """``passes`` passes ``interval`` seconds apart, each with a due measurement of ``verdict``."""
        plans = []
        for _ in range(passes):
            self.now += timedelta(seconds=interval)
            assert measurement_due(self.spec, self.status, self.now)
            plans.append(self.run(verdicts=[verdict]))
        return plans
