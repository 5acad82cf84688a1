"""Reading why a revision's pods are not Ready from the kubelet's pod status."""

from __future__ import annotations

from typing import Any

import pytest

from modeldeploy.rollout.pod_health import pod_problem, revision_problem, unschedulable_message

pytestmark = pytest.mark.unit


def pod(name: str = "md-abc-1", **status: Any) -> dict[str, Any]:
    return {"metadata": {"name": name}, "status": status}


def terminated(message: str = "", code: int = 1) -> dict[str, Any]:
    return {"terminated": {"exitCode": code, "reason": "Error", "message": message}}


def test_a_failed_init_container_reports_its_termination_message() -> None:
    p = pod(
        initContainerStatuses=[
            {
                "name": "storage-initializer",
                "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 10s"}},
                "lastState": terminated("not found: s3://models/fraud/9 does not exist"),
            }
        ]
    )
    found = pod_problem(p)
    assert found is not None and found.reason == "InitContainerFailed"
    assert found.message == (
        "pod md-abc-1: init container storage-initializer failed (CrashLoopBackOff): "
        "not found: s3://models/fraud/9 does not exist"
    )


def test_without_a_message_the_exit_code_is_named() -> None:
    p = pod(initContainerStatuses=[{"name": "storage-initializer", "state": terminated(code=3)}])
    found = pod_problem(p)
    assert found is not None and found.message.endswith("Error (exit code 3)")


def test_a_successful_init_container_is_not_a_problem() -> None:
    ok = pod(initContainerStatuses=[{"name": "storage-initializer", "state": terminated(code=0)}])
    assert pod_problem(ok) is None
    assert pod_problem(pod()) is None


@pytest.mark.parametrize("reason", ["ImagePullBackOff", "ErrImagePull", "CrashLoopBackOff"])
def test_a_container_that_cannot_start_names_its_reason(reason: str) -> None:
    waiting = {"reason": reason, "message": 'Back-off pulling image "nvcr/x:1"'}
    found = pod_problem(pod(containerStatuses=[{"name": "model-server", "state": {"waiting": waiting}}]))
    assert found is not None and found.reason == reason
    assert f"container model-server: {reason}: Back-off" in found.message


def test_a_crash_loop_carries_the_last_exit() -> None:
    status = {
        "name": "model-server",
        "state": {"waiting": {"reason": "CrashLoopBackOff"}},
        "lastState": terminated("error: creating server: model repository is empty"),
    }
    found = pod_problem(pod(containerStatuses=[status]))
    assert found is not None and "last exit: error: creating server" in found.message


def test_a_missing_secret_is_named_as_such() -> None:
    waiting = {"reason": "CreateContainerConfigError", "message": 'secret "s3-creds" not found'}
    p = pod(initContainerStatuses=[{"name": "storage-initializer", "state": {"waiting": waiting}}])
    found = pod_problem(p)
    assert found is not None and found.reason == "CredentialsSecretMissing"
    assert "Secret s3-creds does not exist" in found.message and "credentialsSecret" in found.message


def test_waiting_on_a_normal_start_is_not_a_problem() -> None:
    waiting = {"reason": "PodInitializing"}
    assert (
        pod_problem(pod(containerStatuses=[{"name": "model-server", "state": {"waiting": waiting}}])) is None
    )


def test_the_most_telling_problem_wins() -> None:
    unschedulable = pod(
        "a",
        conditions=[
            {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": "0/3 nodes"}
        ],
    )
    init = pod("b", initContainerStatuses=[{"name": "storage-initializer", "state": terminated("denied")}])
    found = revision_problem([unschedulable, init])
    assert found is not None and found.reason == "InitContainerFailed"
    only = revision_problem([unschedulable])
    assert only is not None and only.reason == "Unschedulable" and "0/3 nodes" in only.message
    assert revision_problem([]) is None


def test_the_scheduler_message_of_the_first_unplaceable_pod() -> None:
    placed = pod("a", conditions=[{"type": "PodScheduled", "status": "True"}])
    unplaced = {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": "0/3 nodes"}
    waiting = pod("b", conditions=[unplaced])
    assert unschedulable_message([placed, waiting]) == "0/3 nodes"
    assert unschedulable_message([placed]) is None
