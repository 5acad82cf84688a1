"""The exactly-once record (modeldeploy.rollout.record): a pass repeated after a crash names its
Events as the lost pass did, so the API server keeps one of each."""

from __future__ import annotations

from datetime import timedelta

import pytest

from modeldeploy.api.spec import CanaryStep, CanaryStrategy, PauseStep, Rollout
from modeldeploy.api.status import ModelDeploymentStatus, RolloutState
from modeldeploy.rollout import EmitEvent, Observations, Plan, decide
from modeldeploy.rollout.record import creation_is_news, event_name

from rollout_builders import Shell, build_spec

pytestmark = pytest.mark.unit


def canary() -> Shell:
    steps = [CanaryStep(set_weight=50), CanaryStep(pause=PauseStep(duration="10s"))]
    shell = Shell(build_spec(Rollout(canary=CanaryStrategy(steps=steps)), replicas=2))
    shell.settle()
    shell.deploy("r1")
    shell.settle()
    return shell


def named(plan: Plan) -> list[tuple[str, str]]:
    return [(a.reason, a.identity) for a in plan.actions if isinstance(a, EmitEvent)]


def test_a_pass_repeated_from_the_same_stored_status_names_its_events_alike() -> None:
    shell = canary()
    stored = shell.status
    lost = shell.run(advance=11)  # the pause is over: StepAdvanced, but the status write is lost
    advanced = [e for e in named(lost) if e[0] == "StepAdvanced"]
    assert advanced
    # the restarted operator reads the old status and decides again, a little later
    obs = Observations(shell.desired, dict(shell.pods))
    again = decide(shell.spec, stored, obs, shell.now + timedelta(seconds=3))
    assert [e for e in named(again) if e[0] == "StepAdvanced"] == advanced
    # what a stored pass decides next is named anew
    after = decide(shell.spec, lost.status, obs, shell.now + timedelta(seconds=3))
    assert not {identity for _, identity in named(after)} & {identity for _, identity in named(lost)}


def test_every_event_of_a_run_has_its_own_name() -> None:
    shell = canary()
    shell.settle(passes=6, advance=11)
    identities = [identity for plan in shell.plans for _, identity in named(plan)]
    assert identities and all(identities)
    assert len(set(identities)) == len(identities)
    reasons = [reason for plan in shell.plans for reason, _ in named(plan)]
    assert reasons.count("StepAdvanced") == 2 and reasons.count("RolloutPromoted") == 1


def test_a_repeat_after_another_stored_pass_keeps_its_name() -> None:
    """A lost pass, then a pass that stores something else (a pod became unready), then the
    transition again: the repeat is named as the lost one (the falsified case of the property)."""
    shell = canary()
    stored = shell.status
    lost = shell.run(advance=11)
    advanced = [e for e in named(lost) if e[0] == "StepAdvanced"]
    assert advanced
    obs = Observations(shell.desired, dict(shell.pods))
    assert stored.rollout is not None
    meanwhile = stored.rollout.model_copy(update={"unready_since": "2026-01-01T00:00:00Z", "weight": 0})
    other = stored.model_copy(update={"rollout": meanwhile, "phase": "Degraded", "last_decision": None})
    again = decide(shell.spec, other, obs, shell.now + timedelta(seconds=4))
    assert [e for e in named(again) if e[0] == "StepAdvanced"] == advanced


def test_the_same_revision_rolled_out_again_is_a_new_attempt() -> None:
    """r1 rolled out, reverted, rolled out again: the second rollout's Events are new ones."""
    shell = canary()
    first = [e for plan in shell.plans for e in named(plan)]
    assert shell.status.rollout is not None and shell.status.rollout.attempt == 1
    shell.deploy("r0")
    shell.settle()
    shell.deploy("r1")
    shell.settle()
    assert shell.status.rollout is not None and shell.status.rollout.attempt == 2
    second = [e for plan in shell.plans for e in named(plan)][len(first) :]
    assert any(reason == "RolloutStarted" for reason, _ in second)
    assert not {identity for _, identity in second} & {identity for _, identity in first}


def test_event_names_are_valid_and_differ_per_object_uid() -> None:
    a = event_name("fraud-detector", "uid-1", "abc")
    assert a.startswith("fraud-detector.") and len(a) <= 253 and a == a.lower()
    assert a == event_name("fraud-detector", "uid-1", "abc")
    assert a != event_name("fraud-detector", "uid-2", "abc")


def test_a_child_created_is_news_only_when_no_decision_tells_it() -> None:
    first = ModelDeploymentStatus()
    assert not creation_is_news(first, "r0") and not creation_is_news(first, None)  # RevisionDeployed
    steady = ModelDeploymentStatus(stable_revision="r0")
    assert creation_is_news(steady, "r0")  # its Deployment was deleted: re-created
    assert creation_is_news(steady, None)  # a shared object added later (an HPA, a canary Service)
    assert not creation_is_news(steady, "r1")  # a new revision: RolloutStarted tells it
    rolling = steady.model_copy(update={"rollout": RolloutState(revision="r1", strategy="canary")})
    assert creation_is_news(rolling, "r1")  # the canary's Deployment deleted mid-rollout
