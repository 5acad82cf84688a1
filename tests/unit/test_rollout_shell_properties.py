"""The pure modules around ``decide`` (modeldeploy.rollout.gate, desired, summary, observed), run
through the same hypothesis simulation as the rollout (rollout_simulation.simulate).

After every stored pass, with the world its actions left, as the operator's shell would see it:

1. the level (``releveled``) only keeps revisions in use at their live size, never a revision
   the plan scales or deletes itself;
2. the level Services agree with the rollout's edges: the blue-green active Service selects the
   revision the last ``SwitchActive`` pointed at; the canary's main Service selects the stable
   revision alone while the canary has no weight; the route request carries the rollout's weight;
3. the summary is Ready exactly when the serving revisions have ``spec.replicas`` ready pods, and
   summarising its own result again writes nothing (zero writes in steady state);
4. the gate targets the stable revision while something blocks, and holds only with no stable.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modeldeploy.api.spec import ModelDeploymentSpec
from modeldeploy.children import OwnerInfo
from modeldeploy.children.labels import REVISION
from modeldeploy.rollout import Plan, ScaleRevision
from modeldeploy.rollout.desired import (
    level_replicas,
    releveled,
    revision_templates,
    revisions_in_use,
    revisions_serving,
    shared_objects,
)
from modeldeploy.rollout.gate import Blocker, gate
from modeldeploy.rollout.observed import ObservedChildren
from modeldeploy.rollout.summary import status_patch, summarize
from modeldeploy.runtimes import get_runtime

from rollout_simulation import Tick, World, scripts, simulate, specs

pytestmark = pytest.mark.unit

OWNER = OwnerInfo("modeldeploy.dev/v1alpha1", "ModelDeployment", "m", "ns", "uid-1")


def observed_children(world: World) -> ObservedChildren:
    """The simulated workloads as the API shows them: Deployments and pods with revision labels."""
    deployments: list[dict[str, Any]] = []
    pods: list[dict[str, Any]] = []
    for rev, w in world.workloads.items():
        labels = {REVISION: rev}
        deployments.append(
            {
                "metadata": {"labels": labels},
                "spec": {"replicas": w.spec},
                "status": {"readyReplicas": w.ready},
            }
        )
        for i in range(w.pods):
            ready = "True" if i < w.ready else "False"
            pods.append(
                {
                    "metadata": {"name": f"{rev}-{i}", "labels": labels},
                    "status": {"conditions": [{"type": "Ready", "status": ready}]},
                }
            )
    return ObservedChildren.of(deployments, pods)


def selected_revision(service: dict[str, Any]) -> str | None:
    return service["spec"]["selector"].get(REVISION)


def check_pass(spec: ModelDeploymentSpec, plan: Plan, world: World, now: datetime) -> None:
    status = plan.status
    observed = observed_children(world)
    templates = revision_templates(spec, "desired", status)
    # 1. the level
    touched = {a.revision for a in plan.actions if isinstance(a, ScaleRevision)}
    for action in releveled(spec, status, templates, plan.actions, observed):
        assert action.revision in revisions_in_use(status) and action.revision not in touched
        live = observed.live_replicas(action.revision)
        assert action.replicas == (
            live if live is not None else level_replicas(spec, status, action.revision)
        )
    # 2. the level Services agree with the edges
    shared = shared_objects(OWNER, spec, get_runtime(spec.runtime), status)
    assert shared is not None and status.stable_revision is not None
    by_name = {s["metadata"]["name"]: s for s in shared.services}
    r = status.rollout
    live = r if r is not None and not r.aborted else None
    if spec.rollout.strategy == "blueGreen":
        assert world.active is None or selected_revision(by_name["m-active"]) == world.active
        assert selected_revision(by_name["m"]) == selected_revision(by_name["m-active"])
    elif live is None or live.weight == 0:
        assert selected_revision(by_name["m"]) == status.stable_revision
    if shared.route is not None:
        assert shared.route.weight == (live.weight if live is not None else 0)
        assert shared.route.stable == status.stable_revision
    # 3. the summary
    final = summarize(spec, status, observed, [], templates, OWNER, 1, None, now)
    ready = sum(observed.ready_replicas(rev) for rev in revisions_serving(spec, status))
    ready_condition = next(c for c in final.conditions if c.type == "Ready")
    assert (ready_condition.status == "True") == (ready >= spec.replicas)
    assert final.ready_replicas == ready and final.replicas == sum(w.spec for w in world.workloads.values())
    again = summarize(spec, final, observed, [], templates, OWNER, 1, None, now)
    assert status_patch(final.wire(), again) == {}


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=specs(), script=scripts())
def test_the_shell_modules_agree_with_every_decision(spec: ModelDeploymentSpec, script: list[Tick]) -> None:
    simulate(
        spec, script, roundtrip=True, after_pass=lambda plan, world, now: check_pass(spec, plan, world, now)
    )


@given(
    desired=st.sampled_from(["r1", "r2"]),
    stable=st.none() | st.sampled_from(["r0", "r1"]),
    blocked=st.booleans(),
)
def test_a_blocked_revision_is_never_the_target(desired: str, stable: str | None, blocked: bool) -> None:
    blockers = [Blocker("PolicyViolation", "replicas above the limit")] if blocked else []
    g = gate(desired, stable, blockers)
    assert g.target == (stable if blocked and stable is not None else desired)
    assert g.hold == (blocked and stable is None)
