"""When the shell should measure (``measurement_due``), check the sequential guardrails' evidence
between measurements (``sequential_check_due``) and come back (``next_wakeup``); pure."""

from __future__ import annotations

from datetime import datetime

from modeldeploy.api.common import parse_duration
from modeldeploy.api.spec import ModelDeploymentSpec
from modeldeploy.api.status import ModelDeploymentStatus, RolloutState
from modeldeploy.rollout.gates import stable_deadline_reported
from modeldeploy.rollout.strategies import strategy_of
from modeldeploy.rollout.timefmt import parse_rfc3339, seconds_left, seconds_since

POLL_SECONDS = 10.0
"""Requeue while waiting on pods (scale ups, scale downs making room in the GPU budget)."""


def _measure_from(st: RolloutState) -> str | None:
    """The last measurement, or the start of the analysis (the first one waits an interval)."""
    if st.analysis is None:
        return st.step_started_at
    return st.analysis.last_measured_at or st.analysis.started_at


def measurement_due(spec: ModelDeploymentSpec, status: ModelDeploymentStatus, now: datetime) -> bool:
    """True when an analysis is active, the rollout is not paused or aborted, and ``interval``
    has passed since the last measurement (or since the analysis began)."""
    st = status.rollout
    if st is None or st.paused or st.aborted or status.stable_revision is None:
        return False
    if strategy_of(st).active_analysis(spec, st) is None:
        return False
    return seconds_since(_measure_from(st), now) >= parse_duration(spec.rollout.analysis.interval)


def _checked_from(st: RolloutState) -> str | None:
    """The end of the newest sequential evidence, or the last measurement."""
    stamps = [e.through for e in st.analysis.sequential] if st.analysis is not None else []
    measured = _measure_from(st)
    stamps += [measured] if measured is not None else []
    return max(stamps, key=parse_rfc3339) if stamps else None


def _has_sequential(spec: ModelDeploymentSpec) -> bool:
    return any(g.sequential is not None for g in spec.rollout.analysis.guardrails)


def sequential_check_due(spec: ModelDeploymentSpec, status: ModelDeploymentStatus, now: datetime) -> bool:
    """True when no measurement is due but the sequential guardrails' evidence should be brought up
    to date: an analysis with sequential guardrails is active and ``sequentialInterval`` has passed
    since the newest evidence (or the last measurement)."""
    if not _has_sequential(spec) or measurement_due(spec, status, now):
        return False
    st = status.rollout
    if st is None or st.paused or st.aborted or status.stable_revision is None:
        return False
    if strategy_of(st).active_analysis(spec, st) is None:
        return False
    every = parse_duration(spec.rollout.analysis.sequential_interval)
    return every < parse_duration(spec.rollout.analysis.interval) and (
        seconds_since(_checked_from(st), now) >= every
    )


def next_wakeup(spec: ModelDeploymentSpec, status: ModelDeploymentStatus, now: datetime) -> float | None:
    """Seconds until the next pass is needed without any watch event; ``None``: nothing to wait for.

    Paused rollouts and rollouts waiting for ``promote`` sleep; an analysis wakes up for its next
    measurement; timed pauses and the blue-green scale-down delay for their end; a rollout still
    moving (pods starting or terminating) polls. With no rollout running, pods starting or
    terminating bring their own watch events: only the stable's progress deadline needs a timer.
    """
    st = status.rollout
    if st is None or st.aborted:
        return _stable_deadline(spec, status, now)
    strategy = strategy_of(st)
    deadline = (
        seconds_left(st.unready_since, spec.rollout.progress_deadline_seconds, now)
        if st.unready_since
        else None
    )
    if st.paused or strategy.waiting_for_promote(spec, st):
        return deadline  # a paused rollout sleeps, but its pods' progress deadline still ends
    timer = strategy.next_wakeup(spec, st, now)
    if deadline is not None:
        timer = deadline if timer is None else min(timer, deadline)
    analysis = strategy.active_analysis(spec, st)
    if analysis is not None:
        interval = parse_duration(spec.rollout.analysis.interval)
        timer = seconds_left(_measure_from(st), interval, now)
        every = parse_duration(spec.rollout.analysis.sequential_interval)
        if _has_sequential(spec) and every < interval:
            timer = min(timer, seconds_left(_checked_from(st), every, now))
    waits = [POLL_SECONDS] + ([timer] if timer is not None else [])
    return min(waits) if analysis is None else timer


def _stable_deadline(spec: ModelDeploymentSpec, status: ModelDeploymentStatus, now: datetime) -> float | None:
    """Seconds until the stable workload's progress deadline, while it is not Ready and the deadline
    has not been reported yet."""
    if status.stable_unready_since is None or stable_deadline_reported(status):
        return None
    return seconds_left(status.stable_unready_since, spec.rollout.progress_deadline_seconds, now)
