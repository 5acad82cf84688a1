"""kubectl-modeldeploy's views: list rows, get's detail, history, the watch's outcome, command checks,
and what rich draws of them (pure functions over the API's JSON)."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from typing import Any

import pytest
from rich.console import Console

from modeldeploy.cli import render
from modeldeploy.cli.errors import EXIT_DEGRADED, EXIT_OK, EXIT_ROLLED_BACK
from modeldeploy.cli.verbs.control import refusal
from modeldeploy.cli.verbs.history import history
from modeldeploy.cli.view import age, detail, outcome, steps, summary

pytestmark = pytest.mark.unit

NOW = datetime(2026, 11, 29, 12, 0, 0, tzinfo=UTC)
STABLE, CANARY = "aaaaaaaaaa", "bbbbbbbbbb"
STEPS = [{"setWeight": 25}, {"analysis": {"duration": "9s"}}, {"setWeight": 50}, {"pause": {}}]
GUARDRAILS = [
    {"name": "error-rate", "template": "error-rate", "max": 0.05},
    {"name": "p99", "template": "latency-p99-ms", "max": 500, "compareToStable": {"maxRatio": 1.2}},
]


def md(generation: int = 2, **status: Any) -> dict[str, Any]:
    return {
        "apiVersion": "modeldeploy.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": "fraud", "namespace": "ml", "uid": "u1", "generation": generation},
        "spec": {"rollout": {"canary": {"steps": STEPS}, "analysis": {"guardrails": GUARDRAILS}}},
        "status": {"observedGeneration": 2, **status},
    }


def rolling(step: int = 1, weight: int = 25, **rollout: Any) -> dict[str, Any]:
    return md(
        phase="Progressing",
        stableRevision=STABLE,
        canaryRevision=CANARY,
        canaryWeight=weight,
        currentStep=step,
        rollout={"revision": CANARY, "strategy": "canary", "stepIndex": step, **rollout},
        lastDecision={
            "action": "WeightChanged",
            "reason": f"canary {CANARY} at 25% (1/1 ready)",
            "at": "2026-11-29T11:59:15Z",
        },
    )


def healthy() -> dict[str, Any]:
    return md(phase="Healthy", stableRevision=STABLE, canaryWeight=0)


def draw(renderable: Any, color: bool = False) -> str:
    out = io.StringIO()
    Console(file=out, width=140, force_terminal=color, no_color=not color).print(renderable)
    return out.getvalue()


def pod(name: str, revision: str, ready: bool = True, **meta: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": {"modeldeploy.dev/revision": revision}, **meta},
        "spec": {"containers": [{"name": "server"}]},
        "status": {"phase": "Running", "containerStatuses": [{"ready": ready, "restartCount": 1}]},
    }


def deployment(revision: str, ready: int, desired: int) -> dict[str, Any]:
    return {
        "metadata": {"name": f"fraud-{revision}", "labels": {"modeldeploy.dev/revision": revision}},
        "spec": {"replicas": desired},
        "status": {"readyReplicas": ready},
    }


def event(reason: str, message: str, at: str, rv: int, type_: str = "Normal") -> dict[str, Any]:
    return {
        "metadata": {"name": f"fraud.{rv}", "resourceVersion": str(rv)},
        "involvedObject": {"kind": "ModelDeployment", "name": "fraud", "uid": "u1"},
        "reason": reason,
        "message": message,
        "type": type_,
        "lastTimestamp": at,
    }


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (59, "59s"), (119, "119s"), (192, "3m12s"), (900, "15m"), (7500, "2h5m"), (3 * 86400, "3d")],
)
def test_age_reads_like_kubectl(seconds: int, text: str) -> None:
    assert age(datetime.fromtimestamp(NOW.timestamp() - seconds, UTC), NOW) == text


def test_summary_of_a_rollout_and_of_a_steady_object() -> None:
    row = summary(rolling(step=2, weight=50))
    assert (row.phase, row.step, row.weight, row.canary, row.last_decision) == (
        "Progressing",
        "3/4",
        50,
        CANARY,
        "WeightChanged",
    )
    quiet = summary(healthy())
    assert (quiet.step, quiet.weight, quiet.canary) == ("-", 0, None)
    assert summary(rolling(step=4)).step == "Promoting"


def test_list_table_shows_step_weight_and_decision_age() -> None:
    text = draw(render.list_table([summary(rolling()), summary(healthy())], NOW, all_namespaces=True))
    lines = text.splitlines()
    assert lines[0].split() == [
        "NAMESPACE",
        "NAME",
        "PHASE",
        "STEP",
        "WEIGHT",
        "STABLE",
        "CANARY",
        "LAST",
        "DECISION",
        "AGE",
    ]
    assert lines[1].split() == [
        "ml",
        "fraud",
        "◌",
        "Progressing",
        "2/4",
        "25%",
        STABLE,
        CANARY,
        "WeightChanged",
        "45s",
    ]
    assert lines[2].split()[2:7] == ["✔", "Healthy", "-", "0%", STABLE]


def test_steps_mark_done_current_pending() -> None:
    assert [(s.text, s.state) for s in steps(rolling(step=2))] == [
        ("setWeight 25", "done"),
        ("analysis 9s", "done"),
        ("setWeight 50", "current"),
        ("pause (until promoted)", "pending"),
    ]
    assert {s.state for s in steps(healthy())} == {"done"}


def test_detail_groups_pods_by_revision_with_weights() -> None:
    pods = [pod("fraud-b-1", CANARY, ready=False), pod("fraud-a-2", STABLE), pod("fraud-a-1", STABLE)]
    d = detail(rolling(weight=25), [deployment(STABLE, 3, 3), deployment(CANARY, 0, 1)], pods, [])
    assert [(r.revision, r.role, r.weight, r.replicas) for r in d.revisions] == [
        (STABLE, "stable", 75, "3/3"),
        (CANARY, "canary", 25, "0/1"),
    ]
    assert [p.name for p in d.revisions[0].pods] == ["fraud-a-1", "fraud-a-2"]
    assert (d.revisions[1].pods[0].ready, d.revisions[1].pods[0].restarts) == ("0/1", 1)


def test_guardrails_show_the_last_value_of_the_canary_against_the_threshold() -> None:
    measurements = [
        {
            "guardrail": "error-rate",
            "revision": CANARY,
            "value": 0.2,
            "threshold": "<= 0.05",
            "verdict": "Failed",
            "at": "2026-11-29T11:59:50Z",
        },
        {
            "guardrail": "error-rate",
            "revision": CANARY,
            "value": 0.01,
            "threshold": "<= 0.05",
            "verdict": "Successful",
            "at": "2026-11-29T11:59:40Z",
        },
        {
            "guardrail": "error-rate",
            "revision": STABLE,
            "value": 0.0,
            "threshold": "<= 0.05",
            "verdict": "Successful",
            "at": "2026-11-29T11:00:00Z",
        },
    ]
    status = rolling()
    status["status"]["measurements"] = measurements[1::-1] + measurements[2:]
    d = detail(status, [], [], [])
    rate, p99 = d.guardrails
    assert (rate.value, rate.threshold, rate.verdict) == (0.2, "<= 0.05", "Failed")
    assert p99.verdict is None and p99.value is None and "500" in p99.threshold
    promoted = md(phase="Healthy", stableRevision=CANARY, measurements=measurements[2:] + measurements[1::-1])
    assert [(g.name, g.value) for g in detail(promoted, [], [], []).guardrails] == [
        ("error-rate", 0.2),
        ("p99", None),
    ]
    table = draw(render.guardrail_table(d.guardrails, NOW))
    assert table.splitlines()[1].split() == ["error-rate", "0.2", "<=", "0.05", "-", "Failed", "10s"]
    assert "not measured" in table.splitlines()[2]


def test_detail_view_draws_header_steps_tree_guardrails_and_decisions() -> None:
    events = [
        event(
            "RolloutStarted",
            f"rolling out {CANARY} (canary) against stable {STABLE}",
            "2026-11-29T11:59:00Z",
            10,
        ),
        event("WeightChanged", f"canary {CANARY} at 25% (1/1 ready)", "2026-11-29T11:59:14Z", 11),
        {
            **event("ChildCreated", "Deployment fraud-b created", "2026-11-29T11:59:01Z", 13),
            "action": "Apply",
        },
        event("WeightChanged", f"canary {CANARY} at 25% (1/1 ready)", "2026-11-29T11:59:15Z", 12),
    ]
    d = detail(rolling(), [deployment(STABLE, 3, 3)], [pod("fraud-a-1", STABLE)], events)
    text = draw(render.detail_view(d, NOW))
    lines = [line.rstrip() for line in text.splitlines()]
    assert lines[2:6] == [
        "Status:     ◌ Progressing",
        "Strategy:   Canary",
        "  Step:     2/4",
        "  Weight:   25%",
    ]
    assert "▶ 2. analysis 9s" in text and "○ 4. pause (until promoted)" in text
    assert f"# revision {STABLE}  stable  weight 75%  pods 3/3" in text
    assert "□ fraud-a-1  Running  ready 1/1" in text
    decisions = [line.split()[:2] for line in lines[lines.index("AGE  DECISION        MESSAGE") + 1 :]]
    assert decisions == [["45s", "WeightChanged"], ["60s", "RolloutStarted"]]  # newest first, once each


def test_colour_only_when_the_console_has_it_and_markup_in_messages_is_text() -> None:
    d = detail(
        md(
            phase="RolledBack",
            stableRevision=STABLE,
            rollout={"revision": CANARY, "aborted": True, "abortReason": "[bold]x[/] failed"},
        ),
        [],
        [],
        [],
    )
    plain = draw(render.detail_view(d, NOW))
    assert "\x1b[" not in plain and "[bold]x[/] failed" in plain
    coloured = draw(render.detail_view(d, NOW), color=True)
    assert "\x1b[31m" in coloured  # red for RolledBack


@pytest.mark.parametrize(
    ("obj", "code"),
    [
        (healthy(), EXIT_OK),
        (
            md(phase="RolledBack", stableRevision=STABLE, rollout={"revision": CANARY, "aborted": True}),
            EXIT_ROLLED_BACK,
        ),
        (md(phase="Degraded", stableRevision=STABLE), EXIT_DEGRADED),
        (rolling(), None),
        (md(phase="Paused", stableRevision=STABLE, canaryRevision=CANARY, rollout={"paused": True}), None),
        (md(generation=3, phase="Healthy", stableRevision=STABLE), None),  # new spec not yet observed
    ],
)
def test_watch_outcome(obj: dict[str, Any], code: int | None) -> None:
    assert outcome(obj) == code


@pytest.mark.parametrize(
    ("verb", "obj", "refused"),
    [
        ("promote", healthy(), f"nothing is rolling out: fraud is Healthy, stable revision {STABLE}"),
        ("promote-full", healthy(), "nothing is rolling out"),
        ("promote", rolling(), None),
        ("resume", rolling(step=1), "fraud is not paused (Progressing at step 2, stable revision"),
        ("resume", rolling(paused=True, pauseReason="no data"), None),
        (
            "resume",
            md(phase="Paused", canaryRevision=CANARY, rollout={"stepIndex": 3}),
            "waits for `promote`",
        ),
        ("pause", rolling(paused=True, pauseReason="no data"), "already paused: no data"),
        ("abort", md(phase="RolledBack", rollout={"revision": CANARY, "aborted": True}), "use `retry`"),
        ("retry", md(phase="RolledBack", rollout={"revision": CANARY, "aborted": True}), None),
        ("retry", healthy(), "nothing to retry"),
        ("promote", md(generation=3, phase="Healthy"), None),  # not yet observed: the operator decides
    ],
)
def test_command_refusals(verb: str, obj: dict[str, Any], refused: str | None) -> None:
    why = refusal(verb, obj)
    if refused is None:
        assert why is None
    else:
        assert why is not None and refused in why


def test_history_from_events_and_status() -> None:
    third = "cccccccccc"
    events = [
        event(
            "RevisionDeployed",
            f"first revision {STABLE}: 3 replicas, serving directly",
            "2026-11-29T10:00:00Z",
            1,
        ),
        event(
            "RolloutStarted",
            f"rolling out {CANARY} (canary) against stable {STABLE}",
            "2026-11-29T10:10:00Z",
            5,
        ),
        event(
            "ProgressDeadlineExceeded",
            f"revision {STABLE}: 2/3 pods Ready after 600s",
            "2026-11-29T10:10:30Z",
            6,
            "Warning",
        ),
        event(
            "RolledBack",
            f"guardrail error-rate failed 2/2 — rolling back to {STABLE}",
            "2026-11-29T10:11:00Z",
            7,
            "Warning",
        ),
        event(
            "RolloutStarted",
            f"rolling out {third} (canary) against stable {STABLE}",
            "2026-11-29T10:20:00Z",
            9,
        ),
        event("RolloutPromoted", f"revision {third} promoted: 100% traffic", "2026-11-29T10:22:00Z", 12),
        event(
            "RolloutStarted",
            f"rolling out {CANARY} (canary) against stable {third}",
            "2026-11-29T10:30:00Z",
            20,
        ),
        event(
            "RolloutStarted",
            f"rolling out {CANARY} (canary) against stable {third}",
            "2026-11-29T10:30:01Z",
            21,
        ),
        event("RolloutPromoted", f"revision {third} promoted: 100% traffic", "2026-11-29T10:22:01Z", 13),
        # same second as the start, written before it: the resourceVersion orders them
        event("RevisionSuperseded", f"revision {STABLE} superseded by {CANARY}", "2026-11-29T10:30:00Z", 19),
    ]
    obj = md(phase="Progressing", stableRevision=third, canaryRevision=CANARY, rollout={"revision": CANARY})
    entries = history(obj, events)
    assert [(e.revision, e.outcome, e.serving) for e in entries] == [
        (STABLE, "Deployed", False),
        (CANARY, "RolledBack", False),
        (third, "Promoted", True),
        (CANARY, "InProgress", False),
    ]
    assert "error-rate" in entries[1].message
    table = draw(render.history_table(entries, NOW))
    assert f"{third} *" in table and "RolledBack" in table


def test_history_survives_expired_events() -> None:
    entries = history(rolling(), [])
    assert [(e.revision, e.outcome) for e in entries] == [(STABLE, "Deployed"), (CANARY, "InProgress")]
    assert entries[0].serving
