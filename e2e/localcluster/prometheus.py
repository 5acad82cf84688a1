"""Prometheus: installed from the Debian package when missing; its config scrapes file_sd targets."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from .config import Config
from .messages import ClusterError, fmt_secs, say


def ensure_prometheus() -> str:
    found = shutil.which("prometheus")
    if found:
        return found
    if not shutil.which("apt-get"):
        raise ClusterError(
            "prometheus is not on PATH and apt-get is missing: install Prometheus and put it on PATH"
        )
    if os.geteuid() != 0:
        raise ClusterError(
            "prometheus is not on PATH: run `sudo apt-get install prometheus` (or put it on PATH)"
        )
    say("installing prometheus (Debian package) ...")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    # Keep the package's own service from starting (it would listen on :9090).
    policy = Path("/usr/sbin/policy-rc.d")
    made_policy = False
    if not policy.exists():
        policy.write_text("#!/bin/sh\nexit 101\n", encoding="utf-8")
        policy.chmod(0o755)
        made_policy = True
    try:
        for cmd, limit in (
            (["apt-get", "update"], 600),
            (["apt-get", "install", "-y", "--no-install-recommends", "prometheus"], 900),
        ):
            try:
                r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=limit)
            except subprocess.TimeoutExpired:
                raise ClusterError(f"`{' '.join(cmd)}` did not finish in {fmt_secs(limit)}") from None
            if r.returncode != 0:
                last = (r.stderr.strip().splitlines() or ["(no output)"])[-1]
                raise ClusterError(f"`{' '.join(cmd)}` failed: {last}")
    finally:
        if made_policy:
            policy.unlink(missing_ok=True)
    found = shutil.which("prometheus") or (
        "/usr/bin/prometheus" if Path("/usr/bin/prometheus").exists() else None
    )
    if not found:
        raise ClusterError("apt-get installed prometheus but no prometheus binary is on PATH")
    return found


def write_prometheus_config(cfg: Config) -> None:
    cfg.targets_dir.mkdir(parents=True, exist_ok=True)
    (cfg.prom_dir / "prometheus.yml").write_text(f"""\
# Written by e2e/localcluster. Tests add scrape targets by writing file_sd JSON files to
# {cfg.targets_dir}/ (e.g. [{{"targets": ["127.0.0.1:8000"], "labels": {{"job": "x"}}}}]).
global:
  scrape_interval: 2s
  scrape_timeout: 2s
  evaluation_interval: 2s
scrape_configs:
- job_name: modeldeploy
  file_sd_configs:
  - files: ['{cfg.targets_dir}/*.json']
    refresh_interval: 2s
""")
