"""Component processes: started in their own session with a pid file, recognised by command line, stopped."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from .config import Config
from .messages import ClusterError, fmt_secs, tail
from .procfs import cmdline, is_zombie_or_gone

# Executable basenames our processes run under (used to recognise strays).
OUR_EXECUTABLES = frozenset(
    {"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok", "hyperkube", "prometheus"}
)


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
