"""Find (or start) the test cluster and talk to it: kubectl, kubernetes client, Prometheus.

Usable outside pytest too::

    from modeldeploy_testing.cluster import connect
    c = connect()
    print(c.kubectl("get", "nodes").stdout)
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
CLUSTER_SH = REPO / "e2e" / "cluster.sh"


class ClusterUnavailable(RuntimeError):
    """No usable cluster and none could be started."""


def cluster_dir() -> Path:
    return Path(os.environ.get("MODELDEPLOY_CLUSTER_DIR") or REPO / ".cluster").expanduser().resolve()


def read_env_file(path: Path) -> dict[str, str]:
    """Parse the `export K='V'` lines e2e/localcluster writes to <cluster dir>/env."""
    out: dict[str, str] = {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return out
    for line in lines:
        parts = shlex.split(line, comments=True)
        if len(parts) == 2 and parts[0] == "export" and "=" in parts[1]:
            key, value = parts[1].split("=", 1)
            if "$" not in value:
                out[key] = value
    return out


def api_client(kubeconfig: Path) -> Any:
    """kubernetes.client.ApiClient for a kubeconfig file (imported lazily: unit tests need no client)."""
    from kubernetes import config

    load: Any = config.new_client_from_config  # untyped in the client
    return load(config_file=str(kubeconfig))


def api_answers(kubeconfig: Path, timeout: float = 5) -> bool:
    if not kubeconfig.is_file():
        return False
    try:
        from kubernetes import client

        with api_client(kubeconfig) as api:
            client.VersionApi(api).get_code(_request_timeout=timeout)
    except Exception:  # any failure means "not usable": unreachable, bad creds, bad file
        return False
    return True


@dataclass
class Cluster:
    kubeconfig: Path
    prometheus_url: str | None
    bin_dir: Path | None
    cluster_dir: Path | None  # None when reusing a foreign KUBECONFIG
    audit_log: Path | None = None
    prometheus_targets_dir: Path | None = None
    started_here: bool = False
    _kubectl: str | None = field(default=None, repr=False)

    @property
    def kubectl_path(self) -> str:
        if self._kubectl is None:
            cand = self.bin_dir / "kubectl" if self.bin_dir else None
            found = str(cand) if cand and os.access(cand, os.X_OK) else shutil.which("kubectl")
            if not found:
                raise ClusterUnavailable("no kubectl: neither in the control-plane cache nor on PATH")
            self._kubectl = found
        return self._kubectl

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        """Run kubectl against this cluster; raises AssertionError with stderr when check fails."""
        cmd = [self.kubectl_path, "--kubeconfig", str(self.kubeconfig), *args]
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig)}
        r = subprocess.run(cmd, input=input, capture_output=True, text=True, timeout=timeout, env=env)
        if check and r.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed (exit {r.returncode}): {r.stderr.strip()}")
        return r

    def apply(
        self, manifest: str | Path | dict[str, Any] | list[dict[str, Any]], namespace: str | None = None
    ) -> str:
        """kubectl apply a file, YAML/JSON text, or object(s)."""
        ns = ["-n", namespace] if namespace else []
        if isinstance(manifest, Path):
            return self.kubectl("apply", *ns, "-f", str(manifest)).stdout
        if isinstance(manifest, dict | list):
            items = manifest if isinstance(manifest, list) else [manifest]
            manifest = json.dumps({"apiVersion": "v1", "kind": "List", "items": items})
        return self.kubectl("apply", *ns, "-f", "-", input=manifest).stdout

    def api_client(self) -> Any:
        return api_client(self.kubeconfig)


def _local(cdir: Path, started_here: bool = False) -> Cluster:
    env = read_env_file(cdir / "env")
    bin_dir = env.get("MODELDEPLOY_BIN")
    return Cluster(
        kubeconfig=cdir / "kubeconfig",
        prometheus_url=env.get("PROMETHEUS_URL"),
        bin_dir=Path(bin_dir) if bin_dir else None,
        cluster_dir=cdir,
        audit_log=Path(env["MODELDEPLOY_AUDIT_LOG"]) if "MODELDEPLOY_AUDIT_LOG" in env else None,
        prometheus_targets_dir=(
            Path(env["MODELDEPLOY_PROMETHEUS_TARGETS"]) if "MODELDEPLOY_PROMETHEUS_TARGETS" in env else None
        ),
        started_here=started_here,
    )


def connect(start: bool = True, up_timeout: float = 3600) -> Cluster:
    """The cluster tests should use.

    1. $KUBECONFIG, if set and its API server answers (Prometheus: $PROMETHEUS_URL, else the local one);
    2. the local cluster in $MODELDEPLOY_CLUSTER_DIR (default <repo>/.cluster), if it answers;
    3. otherwise `e2e/cluster.sh up` (when start=True). It is left running: reruns are warm.
    """
    cdir = cluster_dir()
    local_kc = cdir / "kubeconfig"
    env_kc = os.environ.get("KUBECONFIG", "").split(os.pathsep)[0]
    if env_kc and Path(env_kc).expanduser().resolve() != local_kc and api_answers(Path(env_kc).expanduser()):
        local = _local(cdir) if api_answers(local_kc) else None
        return Cluster(
            kubeconfig=Path(env_kc).expanduser(),
            prometheus_url=os.environ.get("PROMETHEUS_URL") or (local.prometheus_url if local else None),
            bin_dir=local.bin_dir if local else None,
            cluster_dir=None,
            prometheus_targets_dir=(
                Path(os.environ["MODELDEPLOY_PROMETHEUS_TARGETS"])
                if "MODELDEPLOY_PROMETHEUS_TARGETS" in os.environ
                else (local.prometheus_targets_dir if local else None)
            ),
        )
    if api_answers(local_kc) and (cdir / "env").is_file():
        return _local(cdir)
    if not start:
        raise ClusterUnavailable(f"no live cluster in {cdir} (start one: bash e2e/cluster.sh up)")
    r = subprocess.run(
        ["bash", str(CLUSTER_SH), "up"], capture_output=True, text=True, timeout=up_timeout, cwd=REPO
    )
    if r.returncode != 0:
        raise ClusterUnavailable(f"`bash e2e/cluster.sh up` failed:\n{r.stdout[-3000:]}{r.stderr[-3000:]}")
    return _local(cdir, started_here=True)


def poll(what: str, fn: Callable[[], Any], timeout: float = 60, interval: float = 0.5) -> Any:
    """Call fn until it returns something truthy; AssertionError naming `what` on timeout."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        last = fn()
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}; last value: {last!r}")
        time.sleep(interval)


class Prometheus:
    """The local Prometheus: file_sd scrape targets + instant queries."""

    def __init__(self, url: str, targets_dir: Path) -> None:
        self.url = url.rstrip("/")
        self.targets_dir = targets_dir
        self._added: set[str] = set()

    def _path(self, name: str) -> Path:
        safe = "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in name)
        return self.targets_dir / f"{safe}.json"

    def add_target(self, name: str, address: str, labels: dict[str, str] | None = None) -> Path:
        """Scrape `address` (host:port, path /metrics) with these labels (a `job` label overrides the job)."""
        self.targets_dir.mkdir(parents=True, exist_ok=True)
        path = self._path(name)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".partial", dir=self.targets_dir)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump([{"targets": [address], "labels": labels or {}}], f)
        os.replace(tmp, path)  # atomic: Prometheus never reads half a file
        self._added.add(name)
        return path

    def remove_target(self, name: str) -> None:
        self._path(name).unlink(missing_ok=True)
        self._added.discard(name)

    def remove_all(self) -> None:
        for name in list(self._added):
            self.remove_target(name)

    def get(self, path: str, params: dict[str, str] | None = None, timeout: float = 10) -> tuple[int, bytes]:
        url = self.url + path + ("?" + urllib.parse.urlencode(params) if params else "")
        try:
            with urllib.request.urlopen(url, timeout=timeout) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def ready(self) -> bool:
        try:
            return self.get("/-/ready", timeout=5)[0] == 200
        except (urllib.error.URLError, OSError):
            return False

    def query(self, promql: str) -> list[dict[str, Any]]:
        """Instant query; returns data.result (a list of {metric: {...}, value: [ts, "v"]})."""
        code, body = self.get("/api/v1/query", {"query": promql})
        data = json.loads(body)
        if code != 200 or data.get("status") != "success":
            raise AssertionError(
                f"Prometheus query {promql!r} failed: HTTP {code} {data.get('error', body[:200])}"
            )
        result: list[dict[str, Any]] = data["data"]["result"]
        return result

    def wait_for(self, promql: str, timeout: float = 60) -> list[dict[str, Any]]:
        """Poll until the query returns at least one series."""
        result: list[dict[str, Any]] = poll(
            f"Prometheus series for {promql!r}", lambda: self.query(promql), timeout
        )
        return result

    def active_targets(self) -> list[dict[str, Any]]:
        _, body = self.get("/api/v1/targets", {"state": "active"})
        targets: list[dict[str, Any]] = json.loads(body)["data"]["activeTargets"]
        return targets
