"""The Gateway API CRDs (HTTPRoute & co.), fetched once from their Go module and installed at `up`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from .build import CONTROLPLANE_SRC, check_go, check_proxy
from .config import Config
from .kubeapi import Api
from .messages import ClusterError, say
from .processes import wait_until

# Gateway API CRDs (standard channel), taken from the sigs.k8s.io/gateway-api Go module.
GATEWAY_API_VERSION = "v1.4.1"


def ensure_gateway_crds(cfg: Config, bin_dir: Path) -> Path:
    """The Gateway API standard CRDs, fetched once from the Go module into the binary cache."""
    dest = bin_dir / f"gateway-api-{GATEWAY_API_VERSION}"
    if dest.is_dir() and any(dest.glob("*.yaml")):
        return dest
    env = {**os.environ, "GOTOOLCHAIN": "local", "GOFLAGS": "-mod=mod"}
    go = check_go(env)
    module = f"sigs.k8s.io/gateway-api@{GATEWAY_API_VERSION}"
    r = subprocess.run(
        [go, "mod", "download", "-json", module],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        cwd=CONTROLPLANE_SRC,
    )
    if r.returncode != 0:
        check_proxy(go, env)
        raise ClusterError(f"could not download {module}: {(r.stdout + r.stderr).strip()[-300:]}")
    src = Path(json.loads(r.stdout)["Dir"]) / "config" / "crd" / "standard"
    tmp = Path(tempfile.mkdtemp(prefix="gateway-", dir=bin_dir))
    for crd in sorted(src.glob("gateway.networking.k8s.io_*.yaml")):
        shutil.copyfile(crd, tmp / crd.name)
    tmp.rename(dest)
    return dest


def install_gateway_crds(cfg: Config, api: Api, bin_dir: Path) -> None:
    path = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/httproutes.gateway.networking.k8s.io"
    if api.request("GET", path)[0] == 200:
        return
    crds = ensure_gateway_crds(cfg, bin_dir)
    kubectl = [str(bin_dir / "kubectl"), "--kubeconfig", str(cfg.kubeconfig)]
    r = subprocess.run(
        [*kubectl, "apply", "--server-side", "-f", str(crds)], capture_output=True, text=True, timeout=120
    )
    if r.returncode != 0:
        raise ClusterError(f"installing the Gateway API CRDs failed: {r.stderr.strip()[-300:]}")
    wait_until("Gateway API CRDs established", lambda: api.request("GET", path)[0] == 200, 60, None)
    say(f"installed Gateway API {GATEWAY_API_VERSION} CRDs")
