"""Sequential judge vs threshold guardrails: a seeded traffic simulation, no cluster.

Traffic: ``--rps`` requests per second in total, ``--weight`` percent to the canary; per analysis
interval the canary and stable request counts are Poisson and their errors binomial. Every
interval each judge sees what the operator would see:

* **sequential** (``sequential: {tolerance, alpha}``): the errors and requests of both revisions
  over the interval since its last measurement (modeldeploy.analysis.sequential, the operator's
  own code); rolled back when it finds evidence of a regression.
* **threshold** (README's example: ``error-rate`` ``max: 0.01``; and the default guardrail,
  ``max: 0.05``): the canary's error rate over the window (2 x interval), judged only with at
  least ``minSampleSize`` requests; rolled back at ``failureLimit`` failed measurements.

Figures: canary requests served until rollback in a 1% -> 5% regression (median, p90, share never
rolled back within the horizon), and the false rollback rate over A/A runs (1% on both), each run
lasting the horizon. Output: JSON on stdout and in bench/results/judge.json.

    python bench/judge.py [--runs 1000] [--seed 7]
"""

from __future__ import annotations

import argparse
import json
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from modeldeploy.analysis.sequential import Evidence, Increment, update

RESULTS = Path(__file__).parent / "results" / "judge.json"


@dataclass(frozen=True)
class Traffic:
    rps: float  # all requests per second
    weight: float  # canary share, 0..1
    interval_s: float  # time between measurements
    horizon_s: float  # how long one run lasts at most

    @property
    def intervals(self) -> int:
        return int(self.horizon_s // self.interval_s)


@dataclass(frozen=True)
class Threshold:
    max: float
    window_intervals: int = 2  # window = 2 x interval (the operator's default)
    min_samples: int = 20
    failure_limit: int = 2


def draw(rng: np.random.Generator, t: Traffic, canary_rate: float, stable_rate: float) -> np.ndarray:
    """Per interval: canary requests, canary errors, stable requests, stable errors."""
    n = t.intervals
    c_req = rng.poisson(t.rps * t.weight * t.interval_s, n)
    s_req = rng.poisson(t.rps * (1 - t.weight) * t.interval_s, n)
    return np.stack(
        [c_req, rng.binomial(c_req, canary_rate), s_req, rng.binomial(s_req, stable_rate)], axis=1
    )


def sequential_run(counts: np.ndarray, tolerance: float, alpha: float) -> tuple[str, int]:
    """(decision, canary requests served when it was reached, or over the whole run)."""
    ev, served = Evidence.fresh(), 0
    for c_req, c_err, s_req, s_err in counts.tolist():
        served += c_req
        ev = update(ev, Increment(c_req, c_err, s_req, s_err), tolerance, alpha)
        if ev.decision == "Regression":
            return "Regression", served
    return ev.decision, served


def threshold_run(counts: np.ndarray, rule: Threshold) -> tuple[bool, int]:
    """(rolled back, canary requests served by then or over the whole run)."""
    failures, served = 0, 0
    for i in range(len(counts)):
        served += int(counts[i, 0])
        window = counts[max(0, i - rule.window_intervals + 1) : i + 1]
        requests, errors = int(window[:, 0].sum()), int(window[:, 1].sum())
        if requests >= rule.min_samples and errors / requests > rule.max:
            failures += 1
            if failures >= rule.failure_limit:
                return True, served
    return False, served


def summary(served: list[int], rolled_back: list[bool]) -> dict[str, Any]:
    hits = [s for s, r in zip(served, rolled_back, strict=True) if r]
    q = statistics.quantiles(hits, n=10) if len(hits) >= 2 else [float("nan")] * 9
    return {
        "rolled_back": round(len(hits) / len(served), 4),
        "canary_requests_to_rollback_median": statistics.median(hits) if hits else None,
        "canary_requests_to_rollback_p90": q[8] if hits else None,
    }


def bench(runs: int, seed: int, t: Traffic, tolerance: float, alpha: float) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    rules = {"threshold_readme_max_0.01": Threshold(0.01), "threshold_default_max_0.05": Threshold(0.05)}
    out: dict[str, Any] = {}
    for scenario, canary_rate in (("regression_1_to_5_percent", 0.05), ("aa_1_percent", 0.01)):
        worlds = [draw(rng, t, canary_rate, 0.01) for _ in range(runs)]
        seq = [sequential_run(w, tolerance, alpha) for w in worlds]
        result: dict[str, Any] = {
            "sequential": {
                **summary([s for _, s in seq], [d == "Regression" for d, _ in seq]),
                "passed_no_regression": round(sum(d == "NoRegression" for d, _ in seq) / runs, 4),
            }
        }
        for name, rule in rules.items():
            thr = [threshold_run(w, rule) for w in worlds]
            result[name] = summary([s for _, s in thr], [r for r, _ in thr])
        out[scenario] = result
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--rps", type=float, default=20.0, help="all requests per second")
    parser.add_argument("--weight", type=float, default=10.0, help="canary weight, percent")
    parser.add_argument("--interval", type=float, default=15.0, help="seconds between measurements")
    parser.add_argument("--horizon", type=float, default=1800.0, help="seconds one run lasts at most")
    parser.add_argument("--tolerance", type=float, default=0.2)
    parser.add_argument("--alpha", type=float, default=0.01)
    parser.add_argument("--out", type=Path, default=RESULTS)
    a = parser.parse_args()
    traffic = Traffic(a.rps, a.weight / 100, a.interval, a.horizon)
    report = {
        "config": {
            "runs": a.runs,
            "seed": a.seed,
            "rps": a.rps,
            "canary_weight_percent": a.weight,
            "interval_s": a.interval,
            "horizon_s": a.horizon,
            "sequential": {"tolerance": a.tolerance, "alpha": a.alpha},
            "threshold": {"window": "2 x interval", "minSampleSize": 20, "failureLimit": 2},
        },
        "results": bench(a.runs, a.seed, traffic, a.tolerance, a.alpha),
    }
    text = json.dumps(report, indent=2)
    print(text)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
