"""`--kind`: a kind cluster instead of local processes (needs kind and a Docker daemon)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from .config import REPO, Config, read_state

KIND_CONFIG = REPO / "kind-config.yaml"


KIND_CLUSTER_NAME = "modeldeploy"


def kind_available() -> str | None:
    """None if kind + a Docker daemon are usable, else what is missing."""
    if not shutil.which("kind"):
        return "kind is not on PATH"
    if not shutil.which("docker"):
        return "docker is not on PATH"
    try:
        r = subprocess.run(["docker", "info"], capture_output=True, timeout=20)
    except subprocess.TimeoutExpired:
        return "`docker info` did not answer within 20s"
    if r.returncode != 0:
        return "the Docker daemon is not running (`docker info` failed)"
    return None


def kubectl_bin(cfg: Config) -> str | None:
    state_bin = read_state(cfg).get("bin_dir")
    if state_bin and os.access(Path(state_bin) / "kubectl", os.X_OK):
        return str(Path(state_bin) / "kubectl")
    return shutil.which("kubectl")


def kind_healthy(cfg: Config) -> bool:
    kubectl = kubectl_bin(cfg)
    if not kubectl or not cfg.kubeconfig.exists():
        return False
    try:
        r = subprocess.run(
            [kubectl, "--kubeconfig", str(cfg.kubeconfig), "get", "--raw", "/readyz", "--request-timeout=5s"],
            capture_output=True,
            timeout=15,
        )
    except subprocess.TimeoutExpired:
        return False
    return r.returncode == 0
