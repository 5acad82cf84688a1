"""The control-plane binaries: built once from e2e/controlplane with Go, cached outside the clone.

The cache directory is named by the Kubernetes version and a hash of the Go sources and build flags
(`source_key`), so a checkout with the same sources finds the binaries of an earlier build.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Sequence
from pathlib import Path

from .config import REPO, Config, read_state
from .messages import ClusterError, fmt_secs, say, tail

K8S_VERSION = "v1.36.3"


ETCD_VERSION = "v3.6.8"


KWOK_VERSION = "v0.8.0"


BUILD_DATE = "2026-01-01T00:00:00Z"


CONTROLPLANE_SRC = REPO / "e2e" / "controlplane"


NEED_DISK_GIB = 6


HYPERKUBE_COMMANDS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl", "kwok")


def ldflags() -> str:
    minor = K8S_VERSION.lstrip("v").split(".")[1]
    stamps = {
        "k8s.io/component-base/version.gitVersion": K8S_VERSION,
        "k8s.io/component-base/version.gitMajor": "1",
        "k8s.io/component-base/version.gitMinor": minor,
        "k8s.io/component-base/version.gitTreeState": "clean",
        "k8s.io/component-base/version.buildDate": BUILD_DATE,
        "k8s.io/client-go/pkg/version.gitVersion": K8S_VERSION,
    }
    return " ".join(["-s", "-w", *(f"-X {k}={v}" for k, v in stamps.items())])


def source_key() -> str:
    """Cache key: k8s version + short hash of the control-plane module sources and build flags."""
    h = hashlib.sha256(ldflags().encode())
    files = sorted(
        p
        for p in CONTROLPLANE_SRC.rglob("*")
        if p.is_file() and (p.name in ("go.mod", "go.sum") or p.suffix == ".go")
    )
    if not files:
        raise ClusterError(f"no Go sources under {CONTROLPLANE_SRC}; is this a complete checkout?")
    for p in files:
        h.update(str(p.relative_to(CONTROLPLANE_SRC)).encode() + b"\0")
        h.update(p.read_bytes() + b"\0")
    return f"{K8S_VERSION}-{h.hexdigest()[:12]}"


def bin_dir_for(cfg: Config) -> Path:
    return cfg.cache_root / f"controlplane-{source_key()}"


def binaries_present(bin_dir: Path) -> bool:
    return (bin_dir / ".complete").is_file() and all(
        os.access(bin_dir / n, os.X_OK) for n in ("hyperkube", "etcd", *HYPERKUBE_COMMANDS)
    )


def install_binaries(hyperkube: Path, etcd: Path, bin_dir: Path) -> None:
    """Copy built binaries into bin_dir (atomically) with one symlink per hyperkube command."""
    bin_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=bin_dir.name + ".tmp-", dir=bin_dir.parent))
    tmp.chmod(0o755)
    try:
        shutil.copy2(hyperkube, tmp / "hyperkube")
        shutil.copy2(etcd, tmp / "etcd")
        for cmd in HYPERKUBE_COMMANDS:
            (tmp / cmd).symlink_to("hyperkube")
        (tmp / "VERSIONS").write_text(
            f"kubernetes {K8S_VERSION}\netcd {ETCD_VERSION}\nkwok {KWOK_VERSION}\n", encoding="utf-8"
        )
        (tmp / ".complete").write_text(time.strftime("%Y-%m-%dT%H:%M:%SZ\n", time.gmtime()), encoding="utf-8")
        if bin_dir.exists():
            shutil.rmtree(bin_dir)
        tmp.rename(bin_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def go_env(go: str, env: dict[str, str], *names: str) -> list[str]:
    try:
        out = subprocess.run(
            [go, "env", *names], env=env, capture_output=True, text=True, timeout=60, check=True
        ).stdout
    except (subprocess.SubprocessError, OSError) as e:
        raise ClusterError(f"`go env` failed ({e}); check the Go installation") from None
    return out.splitlines()


def version_tuple(v: str) -> tuple[int, ...]:
    m = re.match(r"(?:go)?(\d+)(?:\.(\d+))?(?:\.(\d+))?", v.strip())
    if not m:
        return (0,)
    return tuple(int(x or 0) for x in m.groups())


def required_go_version() -> str:
    m = re.search(r"^go\s+(\S+)", (CONTROLPLANE_SRC / "go.mod").read_text(encoding="utf-8"), re.M)
    return m.group(1) if m else "1.0"


def check_go(env: dict[str, str]) -> str:
    go = shutil.which("go", path=env.get("PATH"))
    need = required_go_version()
    if not go:
        raise ClusterError(
            f"go is not on PATH: install Go >= {need} (or put it on PATH) to build the control plane binaries"
        )
    (have,) = go_env(go, env, "GOVERSION")
    if version_tuple(have) < version_tuple(need):
        raise ClusterError(
            f"{go} is {have} but e2e/controlplane/go.mod needs Go >= {need}; install a newer Go"
        )
    return go


def free_gib(path: Path) -> float:
    p = path
    while not p.exists() and p != p.parent:
        p = p.parent
    return shutil.disk_usage(p).free / 2**30


def check_disk(paths: Iterable[Path]) -> None:
    by_dev: dict[int, Path] = {}
    for path in paths:
        p = path
        while not p.exists() and p != p.parent:
            p = p.parent
        by_dev.setdefault(p.stat().st_dev, path)
    for path in by_dev.values():
        free = free_gib(path)
        if free < NEED_DISK_GIB:
            raise ClusterError(
                f"only {free:.1f} GiB free at {path}; the control-plane build needs about "
                f"{NEED_DISK_GIB} GiB (binary cache + Go build cache): free some space or "
                "point MODELDEPLOY_CACHE/GOCACHE elsewhere"
            )


def modules_cached(go: str, env: dict[str, str]) -> bool:
    offline = {**env, "GOPROXY": "off", "GOFLAGS": env.get("GOFLAGS", "") + " -mod=mod"}
    for mod_dir in (CONTROLPLANE_SRC, CONTROLPLANE_SRC / "etcd"):
        try:
            r = subprocess.run(
                [go, "mod", "download"], cwd=mod_dir, env=offline, capture_output=True, timeout=300
            )
        except subprocess.TimeoutExpired:
            return False
        if r.returncode != 0:
            return False
    return True


def check_proxy(go: str, env: dict[str, str]) -> None:
    (proxy,) = go_env(go, env, "GOPROXY")
    entries = [e for e in re.split(r"[,|]", proxy) if e]
    urls = [e for e in entries if e.startswith(("http://", "https://", "file://"))]
    if not urls:
        if "direct" in entries:
            return  # direct VCS fetches cannot be probed cheaply; `go mod download` will tell
        raise ClusterError(
            f"Go modules are not in the module cache and GOPROXY={proxy!r} allows no downloads; set GOPROXY"
        )
    url = urls[0].rstrip("/")
    probe = f"{url}/k8s.io/kubernetes/@v/{K8S_VERSION}.info"
    try:
        with urllib.request.urlopen(probe, timeout=15) as r:
            r.read(1024)
    except (urllib.error.URLError, OSError, ValueError) as e:
        reason = getattr(e, "reason", e)
        raise ClusterError(
            f"cannot reach the Go module proxy {url} ({reason}); check the network, or set GOPROXY"
        ) from None


def run_with_progress(
    cmd: Sequence[str], cwd: Path, env: dict[str, str], label: str, log: Path, limit: float
) -> None:
    start = time.monotonic()
    say(f"  {label} ...")
    with log.open("ab") as out:
        out.write(f"\n$ (cd {cwd} && {' '.join(cmd)})\n".encode())
        out.flush()
        proc = subprocess.Popen(
            cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
        next_report = 30.0
        while proc.poll() is None:
            time.sleep(1)
            elapsed = time.monotonic() - start
            if elapsed > limit:
                proc.kill()
                proc.wait()
                raise ClusterError(f"{label} did not finish within {fmt_secs(limit)}; see {log}", tail(log))
            if elapsed >= next_report:
                say(f"  {label}: {fmt_secs(elapsed)} elapsed")
                next_report += 30
    if proc.returncode != 0:
        raise ClusterError(f"{label} failed (exit {proc.returncode}); see {log}", tail(log, 25))
    say(f"  {label}: done in {fmt_secs(time.monotonic() - start)}")


def ensure_binaries(cfg: Config) -> Path:
    bin_dir = bin_dir_for(cfg)
    if binaries_present(bin_dir):
        return bin_dir
    env = {**os.environ, "GOTOOLCHAIN": "local"}
    go = check_go(env)
    gocache, gomodcache = go_env(go, env, "GOCACHE", "GOMODCACHE")
    check_disk([cfg.cache_root, Path(gocache), Path(gomodcache)])
    cfg.cache_root.mkdir(parents=True, exist_ok=True)
    log = cfg.cache_root / f"build-{bin_dir.name}.log"
    say(
        f"building control-plane binaries (kubernetes {K8S_VERSION}, etcd {ETCD_VERSION}, "
        f"kwok {KWOK_VERSION});"
    )
    say(f"  first build takes ~10-30 min on 2 cores; cached in {bin_dir}; log: {log}")
    start = time.monotonic()
    if not modules_cached(go, env):
        check_proxy(go, env)
        for mod_dir in (CONTROLPLANE_SRC, CONTROLPLANE_SRC / "etcd"):
            run_with_progress(
                [go, "mod", "download"], mod_dir, env, f"go mod download ({mod_dir.name})", log, 1800
            )
    out = Path(tempfile.mkdtemp(prefix="build-", dir=cfg.cache_root))
    try:
        run_with_progress(
            [
                go,
                "build",
                "-trimpath",
                "-ldflags",
                ldflags(),
                "-o",
                str(out / "hyperkube"),
                "./cmd/hyperkube",
            ],
            CONTROLPLANE_SRC,
            env,
            "go build hyperkube",
            log,
            5400,
        )
        run_with_progress(
            [go, "build", "-trimpath", "-ldflags", "-s -w", "-o", str(out / "etcd"), "."],
            CONTROLPLANE_SRC / "etcd",
            env,
            "go build etcd",
            log,
            1800,
        )
        install_binaries(out / "hyperkube", out / "etcd", bin_dir)
    finally:
        shutil.rmtree(out, ignore_errors=True)
    say(f"built control-plane binaries in {fmt_secs(time.monotonic() - start)}: {bin_dir}")
    prune_cache(cfg, keep=bin_dir)
    return bin_dir


def prune_cache(cfg: Config, keep: Path) -> None:
    """Drop binaries of older sources, except those a running cluster in this cluster dir uses."""
    in_use = read_state(cfg).get("bin_dir")
    for old in cfg.cache_root.glob("controlplane-*"):
        if old == keep or str(old) == in_use:
            continue
        shutil.rmtree(old, ignore_errors=True)
        log = cfg.cache_root / f"build-{old.name}.log"
        log.unlink(missing_ok=True)
