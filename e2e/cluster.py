#!/usr/bin/env python3
"""Local Kubernetes control plane + Prometheus for modeldeploy's tests.

Standard library only: it runs before any `pip install`.

    python3 e2e/cluster.py up|down|status|build [--kind]      (or: bash e2e/cluster.sh ...)

`up` starts, as plain processes on 127.0.0.1: etcd, kube-apiserver, kube-controller-manager,
kube-scheduler, kwok (fake GPU/CPU nodes whose pods become Running+Ready) and Prometheus.
Binaries are built once from e2e/controlplane into a cache outside the clone; state lives in
the cluster dir (default <repo>/.cluster, override with MODELDEPLOY_CLUSTER_DIR).

Environment:
  MODELDEPLOY_CLUSTER_DIR   state dir (pki, logs, pids, etcd data, kubeconfig, env file)
  MODELDEPLOY_CACHE         binary cache root (default $HOME/.cache/modeldeploy)
  MODELDEPLOY_*_PORT        ports, see PORT_SPECS below
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

K8S_VERSION = "v1.36.3"
ETCD_VERSION = "v3.6.8"
KWOK_VERSION = "v0.8.0"
# Gateway API CRDs (standard channel), taken from the sigs.k8s.io/gateway-api Go module.
GATEWAY_API_VERSION = "v1.4.1"
BUILD_DATE = "2026-01-01T00:00:00Z"

REPO = Path(__file__).resolve().parent.parent
CONTROLPLANE_SRC = REPO / "e2e" / "controlplane"
KWOK_STAGES = REPO / "e2e" / "kwok" / "stages.yaml"
KIND_CONFIG = REPO / "kind-config.yaml"
KIND_CLUSTER_NAME = "modeldeploy"

NEED_DISK_GIB = 6
SERVICE_CIDR = "10.96.0.0/16"
SERVICE_IP = "10.96.0.1"
POD_CIDR = "10.244.0.0/16"
SA_ISSUER = "https://kubernetes.default.svc.cluster.local"

# name -> (environment variable, default port)
PORT_SPECS: dict[str, tuple[str, int]] = {
    "etcd": ("MODELDEPLOY_ETCD_PORT", 12379),
    "etcd-peer": ("MODELDEPLOY_ETCD_PEER_PORT", 12380),
    "apiserver": ("MODELDEPLOY_APISERVER_PORT", 16443),
    "controller-manager": ("MODELDEPLOY_CONTROLLER_MANAGER_PORT", 17257),
    "scheduler": ("MODELDEPLOY_SCHEDULER_PORT", 17259),
    "kwok": ("MODELDEPLOY_KWOK_PORT", 17247),
    "prometheus": ("MODELDEPLOY_PROMETHEUS_PORT", 19090),
}

# Start order; `down` stops in reverse.
COMPONENTS = ("prometheus", "etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")
# Executable basenames our processes run under (used to recognise strays).
OUR_EXECUTABLES = frozenset(
    {"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok", "hyperkube", "prometheus"}
)
HYPERKUBE_COMMANDS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl", "kwok")

AUDIT_POLICY = """\
# Written by e2e/cluster.py. Tests count the operator's write calls from audit.log.
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
- level: Metadata
  verbs: ["create", "update", "patch", "delete", "deletecollection"]
- level: None
"""

GPU_NODES = (
    ("gpu-a100-0", "NVIDIA-A100-SXM4-80GB"),
    ("gpu-h100-0", "NVIDIA-H100-80GB-HBM3"),
)
CPU_NODES = ("cpu-0",)


class ClusterError(Exception):
    """An expected failure: printed as one line (plus optional context), exit status 1."""

    def __init__(self, message: str, context: str = "") -> None:
        super().__init__(message)
        self.context = context


# ---------------------------------------------------------------------------------------------
# configuration


@dataclass(frozen=True)
class Config:
    cluster_dir: Path
    cache_root: Path
    ports: dict[str, int]

    @property
    def pki(self) -> Path:
        return self.cluster_dir / "pki"

    @property
    def logs(self) -> Path:
        return self.cluster_dir / "logs"

    @property
    def pids(self) -> Path:
        return self.cluster_dir / "pids"

    @property
    def etcd_data(self) -> Path:
        return self.cluster_dir / "etcd"

    @property
    def prom_dir(self) -> Path:
        return self.cluster_dir / "prometheus"

    @property
    def targets_dir(self) -> Path:
        return self.prom_dir / "targets"

    @property
    def kubeconfig(self) -> Path:
        return self.cluster_dir / "kubeconfig"

    @property
    def env_file(self) -> Path:
        return self.cluster_dir / "env"

    @property
    def state_file(self) -> Path:
        return self.cluster_dir / "state.json"

    @property
    def audit_log(self) -> Path:
        return self.logs / "audit.log"

    @property
    def apiserver_url(self) -> str:
        return f"https://127.0.0.1:{self.ports['apiserver']}"

    @property
    def prometheus_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['prometheus']}"


def load_config(env: dict[str, str] | None = None) -> Config:
    env = dict(os.environ) if env is None else env
    ports: dict[str, int] = {}
    for name, (var, default) in PORT_SPECS.items():
        raw = env.get(var, "").strip()
        if not raw:
            ports[name] = default
            continue
        if not raw.isdigit() or not 1 <= int(raw) <= 65535:
            raise ClusterError(f"{var}={raw!r} is not a port number (1-65535)")
        ports[name] = int(raw)
    seen: dict[int, str] = {}
    for name, port in ports.items():
        if port in seen:
            raise ClusterError(
                f"{PORT_SPECS[name][0]} and {PORT_SPECS[seen[port]][0]} are both {port}; "
                "give them different ports"
            )
        seen[port] = name
    cluster_dir = Path(env.get("MODELDEPLOY_CLUSTER_DIR") or REPO / ".cluster").expanduser().resolve()
    home = Path(env.get("HOME") or Path.home())
    cache_root = Path(env.get("MODELDEPLOY_CACHE") or home / ".cache" / "modeldeploy").expanduser().resolve()
    return Config(cluster_dir=cluster_dir, cache_root=cache_root, ports=ports)


def say(msg: str) -> None:
    print(msg, flush=True)


def fmt_secs(secs: float) -> str:
    secs = int(secs)
    return f"{secs // 60}m{secs % 60:02d}s" if secs >= 60 else f"{secs}s"


def tail(path: Path, lines: int = 15) -> str:
    try:
        data = path.read_bytes()[-16384:].decode("utf-8", "replace")
    except OSError:
        return f"(no log at {path})"
    return "\n".join("    " + line for line in data.splitlines()[-lines:])


# ---------------------------------------------------------------------------------------------
# binaries: build once, cache outside the clone


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


def prune_cache(cfg: Config, keep: Path) -> None:
    """Drop binaries of older sources, except those a running cluster in this cluster dir uses."""
    in_use = read_state(cfg).get("bin_dir")
    for old in cfg.cache_root.glob("controlplane-*"):
        if old == keep or str(old) == in_use:
            continue
        shutil.rmtree(old, ignore_errors=True)
        log = cfg.cache_root / f"build-{old.name}.log"
        log.unlink(missing_ok=True)


# ---------------------------------------------------------------------------------------------
# prometheus (Debian package)


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


# ---------------------------------------------------------------------------------------------
# certificates (openssl CLI)

OPENSSL_CNF = """\
[req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
[v3_ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign,digitalSignature
subjectKeyIdentifier = hash
"""

SERVER_SANS = (
    f"IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,"
    f"DNS:kubernetes.default.svc.cluster.local,IP:{SERVICE_IP}"
)
# file stem -> (subject, extendedKeyUsage, SANs)
LEAF_CERTS: dict[str, tuple[str, str, str]] = {
    "apiserver": ("/CN=kube-apiserver", "serverAuth", SERVER_SANS),
    "admin": ("/O=system:masters/CN=modeldeploy-admin", "clientAuth", ""),
    "controller-manager": ("/CN=system:kube-controller-manager", "clientAuth", ""),
    "scheduler": ("/CN=system:kube-scheduler", "clientAuth", ""),
}
PKI_FILES = (
    "ca.crt",
    "ca.key",
    "sa.key",
    "sa.pub",
    *(f"{n}.{e}" for n in LEAF_CERTS for e in ("crt", "key")),
)


def openssl(args: Sequence[str], cwd: Path) -> None:
    openssl_bin = shutil.which("openssl")
    if not openssl_bin:
        raise ClusterError("openssl is not on PATH: install it (Debian: apt-get install openssl)")
    try:
        r = subprocess.run([openssl_bin, *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        raise ClusterError(f"openssl {args[0]} did not finish in 60s") from None
    if r.returncode != 0:
        last = (r.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise ClusterError(f"openssl {' '.join(args[:2])} failed: {last}")


def ensure_pki(cfg: Config) -> None:
    pki = cfg.pki
    if all((pki / f).is_file() for f in PKI_FILES):
        return
    pki.mkdir(parents=True, exist_ok=True)
    os.chmod(pki, 0o700)
    (pki / "openssl.cnf").write_text(OPENSSL_CNF, encoding="utf-8")

    def genkey(name: str) -> None:
        openssl(["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", name], pki)

    genkey("ca.key")
    openssl(
        [
            "req",
            "-x509",
            "-new",
            "-key",
            "ca.key",
            "-subj",
            "/CN=modeldeploy-local-ca",
            "-days",
            "3650",
            "-config",
            "openssl.cnf",
            "-extensions",
            "v3_ca",
            "-out",
            "ca.crt",
        ],
        pki,
    )
    genkey("sa.key")
    openssl(["pkey", "-in", "sa.key", "-pubout", "-out", "sa.pub"], pki)
    for name, (subject, usage, sans) in LEAF_CERTS.items():
        genkey(f"{name}.key")
        ext = [
            "[v3]",
            "basicConstraints = critical,CA:FALSE",
            "keyUsage = critical,digitalSignature,keyEncipherment",
            f"extendedKeyUsage = {usage}",
            "authorityKeyIdentifier = keyid",
        ]
        if sans:
            ext.append(f"subjectAltName = {sans}")
        (pki / f"{name}.ext").write_text("\n".join(ext) + "\n", encoding="utf-8")
        openssl(
            [
                "req",
                "-new",
                "-key",
                f"{name}.key",
                "-subj",
                subject,
                "-config",
                "openssl.cnf",
                "-out",
                f"{name}.csr",
            ],
            pki,
        )
        openssl(
            [
                "x509",
                "-req",
                "-in",
                f"{name}.csr",
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-set_serial",
                "0x" + secrets.token_hex(16),
                "-days",
                "3650",
                "-extfile",
                f"{name}.ext",
                "-extensions",
                "v3",
                "-out",
                f"{name}.crt",
            ],
            pki,
        )
    for f in pki.iterdir():
        if f.suffix == ".key":
            f.chmod(0o600)


def b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def write_kubeconfig(cfg: Config, path: Path, user: str) -> None:
    text = f"""\
apiVersion: v1
kind: Config
clusters:
- name: modeldeploy
  cluster:
    server: {cfg.apiserver_url}
    certificate-authority-data: {b64(cfg.pki / "ca.crt")}
users:
- name: {user}
  user:
    client-certificate-data: {b64(cfg.pki / f"{user}.crt")}
    client-key-data: {b64(cfg.pki / f"{user}.key")}
contexts:
- name: modeldeploy
  context:
    cluster: modeldeploy
    user: {user}
current-context: modeldeploy
"""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.chmod(0o600)
    tmp.replace(path)


# ---------------------------------------------------------------------------------------------
# HTTP helpers


def http_get(url: str, ctx: ssl.SSLContext | None = None, timeout: float = 5) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=ctx) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except (urllib.error.URLError, OSError, ValueError):
        return 0, b""


def insecure_ctx() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


class Api:
    """Minimal Kubernetes API client using the admin client certificate."""

    def __init__(self, cfg: Config) -> None:
        self.base = cfg.apiserver_url
        self.ctx = ssl.create_default_context(cafile=str(cfg.pki / "ca.crt"))
        self.ctx.load_cert_chain(str(cfg.pki / "admin.crt"), str(cfg.pki / "admin.key"))

    def request(self, method: str, path: str, body: Any = None, timeout: float = 10) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method)
        req.add_header("Accept", "application/json")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=timeout, context=self.ctx) as r:
                raw = r.read()
                status = r.status
        except urllib.error.HTTPError as e:
            raw, status = e.read(), e.code
        except (urllib.error.URLError, OSError) as e:
            return 0, {"message": str(e)}
        try:
            return status, json.loads(raw) if raw else {}
        except json.JSONDecodeError:
            return status, {"raw": raw.decode("utf-8", "replace")}

    def get_raw(self, path: str) -> tuple[int, bytes]:
        return http_get(self.base + path, self.ctx)


# ---------------------------------------------------------------------------------------------
# processes


def read_proc(pid: int, what: str) -> bytes:
    try:
        return Path(f"/proc/{pid}/{what}").read_bytes()
    except OSError:
        return b""


def cmdline(pid: int) -> list[str]:
    return [a.decode("utf-8", "replace") for a in read_proc(pid, "cmdline").split(b"\0") if a]


def is_zombie_or_gone(pid: int) -> bool:
    stat = read_proc(pid, "stat").decode("utf-8", "replace")
    if not stat:
        return True
    return stat.rsplit(")", 1)[-1].split()[0] in ("Z", "X")


def belongs_to(pid: int, cluster_dir: Path) -> bool:
    """True if pid is one of our component processes for this cluster dir (not a recycled pid)."""
    if pid <= 0 or is_zombie_or_gone(pid):
        return False
    args = cmdline(pid)
    if not args or os.path.basename(args[0]) not in OUR_EXECUTABLES:
        return False
    marker = str(cluster_dir) + os.sep
    return any(marker in a for a in args[1:])


def scan_processes(cluster_dir: Path) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if (
            entry.name.isdigit()
            and int(entry.name) != os.getpid()
            and belongs_to(int(entry.name), cluster_dir)
        ):
            pids.append(int(entry.name))
    return sorted(pids)


def rss_mib(pid: int) -> float:
    for line in read_proc(pid, "status").decode("utf-8", "replace").splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def pid_file(cfg: Config, name: str) -> Path:
    return cfg.pids / f"{name}.pid"


def recorded_pid(cfg: Config, name: str) -> int | None:
    try:
        return int(pid_file(cfg, name).read_text().strip())
    except (OSError, ValueError):
        return None


def live_pid(cfg: Config, name: str) -> int | None:
    pid = recorded_pid(cfg, name)
    return pid if pid is not None and belongs_to(pid, cfg.cluster_dir) else None


_children: dict[str, subprocess.Popen[bytes]] = {}


def start_process(cfg: Config, name: str, argv: Sequence[str]) -> int:
    cfg.logs.mkdir(parents=True, exist_ok=True)
    cfg.pids.mkdir(parents=True, exist_ok=True)
    log = (cfg.logs / f"{name}.log").open("ab")
    log.write(f"\n==== {time.strftime('%Y-%m-%dT%H:%M:%S')} starting: {' '.join(argv)}\n".encode())
    log.flush()
    try:
        proc = subprocess.Popen(
            list(argv),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=cfg.cluster_dir,
            start_new_session=True,
        )
    except OSError as e:
        raise ClusterError(f"cannot start {name} ({argv[0]}): {e}") from None
    finally:
        log.close()
    _children[name] = proc
    pid_file(cfg, name).write_text(f"{proc.pid}\n")
    return proc.pid


def process_died(name: str) -> int | None:
    proc = _children.get(name)
    return proc.poll() if proc is not None else None


def stop_pids(pids: Sequence[int], cluster_dir: Path, grace: float = 15) -> list[int]:
    """SIGTERM, wait, SIGKILL. Returns pids still alive afterwards (should be none)."""
    for pid in pids:
        if belongs_to(pid, cluster_dir):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    alive = [p for p in pids if belongs_to(p, cluster_dir)]
    while alive and time.monotonic() < deadline:
        time.sleep(0.2)
        for proc in _children.values():
            proc.poll()
        alive = [p for p in alive if belongs_to(p, cluster_dir)]
    for pid in alive:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while alive and time.monotonic() < deadline:
        time.sleep(0.1)
        alive = [p for p in alive if belongs_to(p, cluster_dir)]
    return alive


# ---------------------------------------------------------------------------------------------
# ports


def port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def port_owner(port: int) -> int | None:
    """Pid of the process listening on a TCP port, from /proc (None if unknown)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            cols = row.split()
            if len(cols) > 9 and cols[3] == "0A" and int(cols[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(cols[9])
    if not inodes:
        return None
    wanted = {f"socket:[{i}]" for i in inodes}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            for fd in (entry / "fd").iterdir():
                if os.readlink(fd) in wanted:
                    return int(entry.name)
        except OSError:
            continue
    return None


def check_ports(cfg: Config, names: Iterable[str]) -> None:
    for name in names:
        port = cfg.ports[name]
        if port_free(port):
            continue
        owner = port_owner(port)
        who = "another process"
        if owner is not None:
            args = " ".join(cmdline(owner))
            who = f"another process (pid {owner}: {args[:80]})"
        raise ClusterError(f"port {port} is in use by {who}; stop it or set {PORT_SPECS[name][0]}")


COMPONENT_PORTS: dict[str, tuple[str, ...]] = {
    "prometheus": ("prometheus",),
    "etcd": ("etcd", "etcd-peer"),
    "kube-apiserver": ("apiserver",),
    "kube-controller-manager": ("controller-manager",),
    "kube-scheduler": ("scheduler",),
    "kwok": ("kwok",),
}


# ---------------------------------------------------------------------------------------------
# component command lines and health


def argv_for(cfg: Config, name: str, bin_dir: Path, prometheus: str) -> list[str]:
    p, pki, c = cfg.ports, cfg.pki, cfg.cluster_dir
    if name == "prometheus":
        return [
            prometheus,
            f"--config.file={cfg.prom_dir / 'prometheus.yml'}",
            f"--storage.tsdb.path={cfg.prom_dir / 'data'}",
            "--storage.tsdb.retention.time=1d",
            f"--web.listen-address=127.0.0.1:{p['prometheus']}",
            "--web.enable-lifecycle",
        ]
    if name == "etcd":
        return [
            str(bin_dir / "etcd"),
            "--name=modeldeploy",
            f"--data-dir={cfg.etcd_data}",
            f"--listen-client-urls=http://127.0.0.1:{p['etcd']}",
            f"--advertise-client-urls=http://127.0.0.1:{p['etcd']}",
            f"--listen-peer-urls=http://127.0.0.1:{p['etcd-peer']}",
            f"--initial-advertise-peer-urls=http://127.0.0.1:{p['etcd-peer']}",
            f"--initial-cluster=modeldeploy=http://127.0.0.1:{p['etcd-peer']}",
            "--quota-backend-bytes=2147483648",
            "--unsafe-no-fsync",  # test cluster: speed over durability
            "--log-level=warn",
        ]
    if name == "kube-apiserver":
        return [
            str(bin_dir / "kube-apiserver"),
            f"--etcd-servers=http://127.0.0.1:{p['etcd']}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={p['apiserver']}",
            f"--cert-dir={c / 'apiserver-certs'}",
            f"--tls-cert-file={pki / 'apiserver.crt'}",
            f"--tls-private-key-file={pki / 'apiserver.key'}",
            f"--client-ca-file={pki / 'ca.crt'}",
            "--authorization-mode=Node,RBAC",
            # Both are on by default in 1.36; named so that nobody turns them off by accident.
            "--enable-admission-plugins=NodeRestriction,PodSecurity,ValidatingAdmissionPolicy",
            "--allow-privileged=true",
            f"--service-account-issuer={SA_ISSUER}",
            f"--service-account-key-file={pki / 'sa.pub'}",
            f"--service-account-signing-key-file={pki / 'sa.key'}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            f"--audit-policy-file={c / 'audit-policy.yaml'}",
            f"--audit-log-path={cfg.audit_log}",
            "--audit-log-maxsize=200",
            "--audit-log-maxbackup=2",
            "--audit-log-mode=blocking",
            "--profiling=false",
        ]
    if name == "kube-controller-manager":
        kc = c / "controller-manager.kubeconfig"
        return [
            str(bin_dir / "kube-controller-manager"),
            f"--kubeconfig={kc}",
            f"--authentication-kubeconfig={kc}",
            f"--authorization-kubeconfig={kc}",
            "--bind-address=127.0.0.1",
            f"--secure-port={p['controller-manager']}",
            f"--cert-dir={c / 'controller-manager-certs'}",
            "--use-service-account-credentials=true",
            f"--service-account-private-key-file={pki / 'sa.key'}",
            f"--root-ca-file={pki / 'ca.crt'}",
            f"--cluster-signing-cert-file={pki / 'ca.crt'}",
            f"--cluster-signing-key-file={pki / 'ca.key'}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--controllers=*",
            "--leader-elect=false",
            "--horizontal-pod-autoscaler-sync-period=5s",
            "--profiling=false",
        ]
    if name == "kube-scheduler":
        kc = c / "scheduler.kubeconfig"
        return [
            str(bin_dir / "kube-scheduler"),
            f"--kubeconfig={kc}",
            f"--authentication-kubeconfig={kc}",
            f"--authorization-kubeconfig={kc}",
            "--bind-address=127.0.0.1",
            f"--secure-port={p['scheduler']}",
            f"--cert-dir={c / 'scheduler-certs'}",
            "--leader-elect=false",
            "--profiling=false",
        ]
    if name == "kwok":
        return [
            str(bin_dir / "kwok"),
            f"--config={c / 'kwok-stages.yaml'}",
            f"--kubeconfig={cfg.kubeconfig}",
            "--manage-all-nodes=false",
            "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
            f"--cidr={POD_CIDR}",
            "--node-ip=10.240.0.1",
            "--node-lease-duration-seconds=40",
            f"--server-address=127.0.0.1:{p['kwok']}",
        ]
    raise AssertionError(name)


def healthy(cfg: Config, name: str) -> bool:
    p = cfg.ports
    if name == "prometheus":
        return http_get(f"{cfg.prometheus_url}/-/ready")[0] == 200
    if name == "etcd":
        code, body = http_get(f"http://127.0.0.1:{p['etcd']}/health")
        return code == 200 and b'"true"' in body
    if name == "kube-apiserver":
        try:
            return Api(cfg).get_raw("/readyz")[0] == 200
        except (OSError, ssl.SSLError):
            return False
    if name == "kube-controller-manager":
        return http_get(f"https://127.0.0.1:{p['controller-manager']}/healthz", insecure_ctx())[0] == 200
    if name == "kube-scheduler":
        return http_get(f"https://127.0.0.1:{p['scheduler']}/healthz", insecure_ctx())[0] == 200
    if name == "kwok":
        return http_get(f"http://127.0.0.1:{p['kwok']}/healthz")[0] == 200
    raise AssertionError(name)


READY_TIMEOUT = {
    "prometheus": 60,
    "etcd": 60,
    "kube-apiserver": 120,
    "kube-controller-manager": 90,
    "kube-scheduler": 90,
    "kwok": 90,
}


def wait_until(
    what: str,
    check: Callable[[], bool],
    timeout: float,
    log: Path | None = None,
    died: Callable[[], int | None] | None = None,
) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if check():
            return
        if died is not None:
            rc = died()
            if rc is not None:
                raise ClusterError(
                    f"{what}: the process exited with status {rc}; last lines of {log}:",
                    tail(log) if log else "",
                )
        if time.monotonic() > deadline:
            extra = tail(log) if log else ""
            where = f"; last lines of {log}:" if log else ""
            raise ClusterError(f"{what}: not ready after {fmt_secs(timeout)}{where}", extra)
        time.sleep(0.25)


def wait_healthy(cfg: Config, name: str) -> None:
    wait_until(
        f"{name} on port {cfg.ports[COMPONENT_PORTS[name][0]]}",
        lambda: healthy(cfg, name),
        READY_TIMEOUT[name],
        cfg.logs / f"{name}.log",
        lambda: process_died(name),
    )


# ---------------------------------------------------------------------------------------------
# fake nodes (kwok)


def node_objects() -> list[dict[str, Any]]:
    nodes = []
    base_labels = {"type": "kwok", "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64"}
    for name, product in GPU_NODES:
        res = {
            "cpu": "32",
            "memory": "256Gi",
            "pods": "110",
            "nvidia.com/gpu": "4",
            "ephemeral-storage": "1Ti",
        }
        nodes.append(
            {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {
                    "name": name,
                    "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
                    "labels": {
                        **base_labels,
                        "kubernetes.io/hostname": name,
                        "nvidia.com/gpu.present": "true",
                        "nvidia.com/gpu.product": product,
                        "nvidia.com/gpu.count": "4",
                        "nvidia.com/gpu.memory": "81920",
                    },
                },
                "spec": {"taints": [{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}]},
                "status": {"capacity": res, "allocatable": res},
            }
        )
    for name in CPU_NODES:
        res = {"cpu": "16", "memory": "64Gi", "pods": "110", "ephemeral-storage": "1Ti"}
        nodes.append(
            {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {
                    "name": name,
                    "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
                    "labels": {**base_labels, "kubernetes.io/hostname": name},
                },
                "status": {"capacity": res, "allocatable": res},
            }
        )
    return nodes


def ensure_nodes(api: Api) -> None:
    for node in node_objects():
        name = node["metadata"]["name"]
        code, body = api.request("GET", f"/api/v1/nodes/{name}")
        if code == 200:
            continue
        code, body = api.request("POST", "/api/v1/nodes", node)
        if code not in (201, 409):
            raise ClusterError(f"cannot create node {name}: HTTP {code} {body.get('message', '')}")


def nodes_ready(api: Api) -> bool:
    code, body = api.request("GET", "/api/v1/nodes?labelSelector=type%3Dkwok")
    if code != 200:
        return False
    want = {n["metadata"]["name"] for n in node_objects()}
    ready = set()
    for item in body.get("items", []):
        for cond in item.get("status", {}).get("conditions", []):
            if cond.get("type") == "Ready" and cond.get("status") == "True":
                ready.add(item["metadata"]["name"])
    return want <= ready


def default_sa_exists(api: Api) -> bool:
    return api.request("GET", "/api/v1/namespaces/default/serviceaccounts/default")[0] == 200


# ---------------------------------------------------------------------------------------------
# state


def read_state(cfg: Config) -> dict[str, Any]:
    try:
        data = json.loads(cfg.state_file.read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, json.JSONDecodeError):
        return {}


def write_state(cfg: Config, state: dict[str, Any]) -> None:
    tmp = cfg.state_file.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2) + "\n")
    tmp.replace(cfg.state_file)


def effective_config(cfg: Config) -> Config:
    """A running cluster keeps the ports it was started with."""
    state = read_state(cfg)
    ports = state.get("ports")
    if isinstance(ports, dict) and set(ports) == set(cfg.ports) and ports != cfg.ports:
        return Config(
            cluster_dir=cfg.cluster_dir,
            cache_root=cfg.cache_root,
            ports={k: int(v) for k, v in ports.items()},
        )
    return cfg


def find_stale(cfg: Config) -> str | None:
    """A one-line description if cluster_dir holds state from a run none of whose processes is alive."""
    d = cfg.cluster_dir
    if not d.is_dir() or not any(d.iterdir()):
        return None
    if read_state(cfg).get("mode") == "kind":
        return None
    if any(live_pid(cfg, n) for n in COMPONENTS) or scan_processes(d):
        return None
    dead = sorted(p.stem for p in cfg.pids.glob("*.pid")) if cfg.pids.is_dir() else []
    what = []
    if dead:
        what.append(f"pid files of dead processes ({', '.join(dead)})")
    if cfg.etcd_data.exists():
        what.append("etcd data")
    if not what:
        what.append("files")
    return f"stale state in {d} from a previous run ({' and '.join(what)}, no component running)"


def write_env_file(cfg: Config, bin_dir: Path | None) -> None:
    lines = [
        "# Written by e2e/cluster.py: `source` it to use the local test cluster.",
        f"export KUBECONFIG='{cfg.kubeconfig}'",
        f"export PROMETHEUS_URL='{cfg.prometheus_url}'",
        f"export MODELDEPLOY_CLUSTER_DIR='{cfg.cluster_dir}'",
        f"export MODELDEPLOY_PROMETHEUS_TARGETS='{cfg.targets_dir}'",
        f"export MODELDEPLOY_AUDIT_LOG='{cfg.audit_log}'",
    ]
    if bin_dir is not None:
        lines += [f"export MODELDEPLOY_BIN='{bin_dir}'", 'export PATH="$MODELDEPLOY_BIN:$PATH"']
    cfg.env_file.write_text("\n".join(lines) + "\n")


def write_prometheus_config(cfg: Config) -> None:
    cfg.targets_dir.mkdir(parents=True, exist_ok=True)
    (cfg.prom_dir / "prometheus.yml").write_text(f"""\
# Written by e2e/cluster.py. Tests add scrape targets by writing file_sd JSON files to
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


# ---------------------------------------------------------------------------------------------
# commands


def cmd_build(cfg: Config) -> int:
    bin_dir = ensure_binaries(cfg)
    say(f"control-plane binaries: {bin_dir}")
    return 0


def clean_stale(cfg: Config) -> None:
    stale = find_stale(cfg)
    if stale:
        say(f"found {stale}; removing it and starting fresh")
        shutil.rmtree(cfg.cluster_dir)
        return
    if not cfg.cluster_dir.is_dir():
        return
    known = {pid for n in COMPONENTS if (pid := live_pid(cfg, n)) is not None}
    strays = [pid for pid in scan_processes(cfg.cluster_dir) if pid not in known]
    if strays:
        say(f"stopping {len(strays)} process(es) of this cluster dir without pid files: {strays}")
        left = stop_pids(strays, cfg.cluster_dir)
        if left:
            raise ClusterError(f"could not stop stray processes {left}; kill them and retry")


def cmd_up(cfg: Config) -> int:
    start = time.monotonic()
    clean_stale(cfg)
    cfg = effective_config(cfg)
    running = {n for n in COMPONENTS if live_pid(cfg, n)}
    if running == set(COMPONENTS) and all(healthy(cfg, n) for n in COMPONENTS):
        api = Api(cfg)
        if nodes_ready(api):
            install_gateway_crds(cfg, api, bin_dir_for(cfg))
            say(f"cluster already up in {cfg.cluster_dir}; nothing to do")
            print_status(cfg)
            return 0
    to_start = [n for n in COMPONENTS if n not in running]
    check_ports(cfg, [port for n in to_start for port in COMPONENT_PORTS[n]])
    bin_dir = ensure_binaries(cfg)
    prometheus = ensure_prometheus()
    for d in (cfg.cluster_dir, cfg.logs, cfg.pids, cfg.prom_dir):
        d.mkdir(parents=True, exist_ok=True)
    check_ports(
        cfg, [port for n in to_start for port in COMPONENT_PORTS[n]]
    )  # again: the build takes a while
    if running and to_start:
        say(f"repairing: restarting {', '.join(to_start)} (not running)")
    ensure_pki(cfg)
    write_kubeconfig(cfg, cfg.kubeconfig, "admin")
    write_kubeconfig(cfg, cfg.cluster_dir / "controller-manager.kubeconfig", "controller-manager")
    write_kubeconfig(cfg, cfg.cluster_dir / "scheduler.kubeconfig", "scheduler")
    (cfg.cluster_dir / "audit-policy.yaml").write_text(AUDIT_POLICY)
    shutil.copyfile(KWOK_STAGES, cfg.cluster_dir / "kwok-stages.yaml")
    write_prometheus_config(cfg)
    write_state(
        cfg, {"mode": "local", "ports": cfg.ports, "bin_dir": str(bin_dir), "kubernetes": K8S_VERSION}
    )

    def launch(name: str) -> None:
        if name in to_start:
            start_process(cfg, name, argv_for(cfg, name, bin_dir, prometheus))

    launch("prometheus")
    for name in ("etcd", "kube-apiserver"):
        launch(name)
        wait_healthy(cfg, name)
    for name in ("kube-controller-manager", "kube-scheduler", "kwok"):
        launch(name)
    for name in ("kube-controller-manager", "kube-scheduler", "kwok", "prometheus"):
        wait_healthy(cfg, name)
    api = Api(cfg)
    ensure_nodes(api)
    wait_until("kwok nodes Ready", lambda: nodes_ready(api), 90, cfg.logs / "kwok.log")
    wait_until(
        "default ServiceAccount (kube-controller-manager)",
        lambda: default_sa_exists(api),
        90,
        cfg.logs / "kube-controller-manager.log",
    )
    install_gateway_crds(cfg, api, bin_dir)
    write_env_file(cfg, bin_dir)
    say(f"cluster up in {fmt_secs(time.monotonic() - start)}")
    print_status(cfg)
    return 0


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


def cmd_up_kind(cfg: Config) -> int:
    start = time.monotonic()
    missing = kind_available()
    if missing:
        raise ClusterError(f"--kind needs kind and a running Docker daemon: {missing}")
    state = read_state(cfg)
    if (
        cfg.cluster_dir.is_dir()
        and state.get("mode") != "kind"
        and (any(live_pid(cfg, n) for n in COMPONENTS) or scan_processes(cfg.cluster_dir))
    ):
        raise ClusterError(f"a local (non-kind) cluster is running in {cfg.cluster_dir}; run `down` first")
    clean_stale(cfg)
    running = live_pid(cfg, "prometheus")
    if not running:
        check_ports(cfg, ["prometheus"])
    prometheus = ensure_prometheus()
    for d in (cfg.cluster_dir, cfg.logs, cfg.pids, cfg.prom_dir):
        d.mkdir(parents=True, exist_ok=True)
    clusters = subprocess.run(["kind", "get", "clusters"], capture_output=True, text=True, timeout=60)
    if KIND_CLUSTER_NAME not in clusters.stdout.split():
        say(f"creating kind cluster {KIND_CLUSTER_NAME} ...")
        r = subprocess.run(
            [
                "kind",
                "create",
                "cluster",
                "--name",
                KIND_CLUSTER_NAME,
                "--config",
                str(KIND_CONFIG),
                "--kubeconfig",
                str(cfg.kubeconfig),
                "--wait",
                "180s",
            ],
            timeout=900,
        )
        if r.returncode != 0:
            raise ClusterError(f"`kind create cluster` failed (exit {r.returncode})")
    else:
        r2 = subprocess.run(
            ["kind", "get", "kubeconfig", "--name", KIND_CLUSTER_NAME],
            capture_output=True,
            text=True,
            timeout=60,
        )
        if r2.returncode != 0:
            raise ClusterError(f"`kind get kubeconfig` failed: {r2.stderr.strip()[-200:]}")
        cfg.kubeconfig.write_text(r2.stdout)
    write_prometheus_config(cfg)
    write_state(cfg, {"mode": "kind", "ports": cfg.ports, "kubernetes": "kind"})
    if not running:
        start_process(cfg, "prometheus", argv_for(cfg, "prometheus", Path("/nonexistent"), prometheus))
    wait_healthy(cfg, "prometheus")
    write_env_file(cfg, None)
    say(
        f"kind cluster up in {fmt_secs(time.monotonic() - start)} "
        "(no GPU nodes: add a GPU node or a kwok node for GPU tests)"
    )
    print_status(cfg)
    return 0


def cmd_down(cfg: Config) -> int:
    d = cfg.cluster_dir
    if not d.exists():
        say(f"nothing to stop: {d} does not exist")
        return 0
    if read_state(cfg).get("mode") == "kind" and shutil.which("kind"):
        say(f"deleting kind cluster {KIND_CLUSTER_NAME} ...")
        subprocess.run(["kind", "delete", "cluster", "--name", KIND_CLUSTER_NAME], timeout=300, check=False)
    pids: list[int] = []
    for name in reversed(COMPONENTS):
        pid = live_pid(cfg, name)
        if pid is not None:
            pids.append(pid)
    pids += [p for p in scan_processes(d) if p not in pids]
    left = stop_pids(pids, d)
    left += [p for p in scan_processes(d) if p not in left]
    if left:
        raise ClusterError(f"processes {left} of {d} survived SIGKILL; not removing state")
    shutil.rmtree(d, ignore_errors=True)
    if d.exists():
        raise ClusterError(f"could not remove {d}")
    say(f"stopped {len(pids)} process(es); removed {d}")
    return 0


def print_status(cfg: Config) -> bool:
    cfg = effective_config(cfg)
    state = read_state(cfg)
    all_ok = True
    total_rss = 0.0
    say(f"cluster dir: {cfg.cluster_dir}")
    names: tuple[str, ...] = COMPONENTS
    if state.get("mode") == "kind":
        names = ("prometheus",)
        ok = kind_healthy(cfg)
        all_ok &= ok
        say(
            f"  {'kind-cluster':<24} {'-':>8} {'-':>6} {'ok' if ok else 'DOWN':<6} "
            f"(kind cluster {KIND_CLUSTER_NAME})"
        )
    say(f"  {'component':<24} {'pid':>8} {'port':>6} {'health':<6} {'rss':>8}")
    for name in names:
        pid = live_pid(cfg, name)
        port = cfg.ports[COMPONENT_PORTS[name][0]]
        ok = pid is not None and healthy(cfg, name)
        all_ok &= ok
        rss = rss_mib(pid) if pid else 0.0
        total_rss += rss
        health = "ok" if ok else ("DOWN" if pid is None else "unready")
        say(f"  {name:<24} {pid or '-':>8} {port:>6} {health:<6} {rss:>6.0f}Mi")
    say(f"  {'total':<24} {'':>8} {'':>6} {'':<6} {total_rss:>6.0f}Mi")
    say(f"kubeconfig:     {cfg.kubeconfig}")
    say(f"apiserver:      {cfg.apiserver_url}")
    say(f"prometheus:     {cfg.prometheus_url}  (targets: {cfg.targets_dir}/*.json)")
    say(f"audit log:      {cfg.audit_log}")
    say(f"env file:       source {cfg.env_file}")
    return all_ok


def cmd_status(cfg: Config) -> int:
    stale = find_stale(cfg)
    if stale:
        raise ClusterError(f"{stale}; `up` cleans it up, `down` removes it")
    if not cfg.cluster_dir.is_dir():
        say(f"not running: {cfg.cluster_dir} does not exist (start it with: bash e2e/cluster.sh up)")
        return 1
    return 0 if print_status(cfg) else 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="cluster.sh", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("command", choices=("up", "down", "status", "build"))
    parser.add_argument(
        "--kind", action="store_true", help="use a kind cluster (needs kind + Docker) for `up`"
    )
    args = parser.parse_args(argv)
    try:
        cfg = load_config()
        if args.command == "build":
            return cmd_build(cfg)
        if args.command == "up":
            return cmd_up_kind(cfg) if args.kind else cmd_up(cfg)
        if args.command == "down":
            return cmd_down(cfg)
        return cmd_status(cfg)
    except ClusterError as e:
        print(f"cluster.sh {args.command}: error: {e}", file=sys.stderr, flush=True)
        if e.context:
            print(e.context, file=sys.stderr, flush=True)
        return 1
    except BrokenPipeError:  # e.g. `cluster.sh status | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        print(f"cluster.sh {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
