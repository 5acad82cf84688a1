"""The interface both strategy modules (canary.py, bluegreen.py) implement, and the registry."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from modeldeploy.api.spec import AnalysisStep, ModelDeploymentSpec
from modeldeploy.api.status import RolloutState
from modeldeploy.rollout import bluegreen, canary
from modeldeploy.rollout.state import Outcome, Pass


class Strategy(Protocol):
    def start(self, ctx: Pass, revision: str, stable: str) -> RolloutState: ...

    def advance(self, ctx: Pass, st: RolloutState, stable: str) -> Outcome: ...

    def undo_traffic(self, ctx: Pass, st: RolloutState, stable: str) -> None: ...

    def targets(self, ctx: Pass, st: RolloutState, stable: str) -> list[tuple[str, int]]: ...

    def hold_others(self, ctx: Pass, st: RolloutState) -> bool: ...

    def active_analysis(self, spec: ModelDeploymentSpec, st: RolloutState) -> AnalysisStep | None: ...

    def waiting_for_promote(self, spec: ModelDeploymentSpec, st: RolloutState) -> bool: ...

    def current_step(self, spec: ModelDeploymentSpec, st: RolloutState) -> int | None: ...

    def canary_weight(self, st: RolloutState) -> int: ...

    def progress(self, ctx: Pass, st: RolloutState) -> tuple[str, str]: ...

    def next_wakeup(self, spec: ModelDeploymentSpec, st: RolloutState, now: datetime) -> float | None: ...


STRATEGIES: dict[str, Strategy] = {"canary": canary, "blueGreen": bluegreen}


def strategy_of(st: RolloutState) -> Strategy:
    """The strategy a rollout started with (a spec edit does not switch a rollout mid-way)."""
    return STRATEGIES[st.strategy]
