"""What /proc says about a process: its command line, liveness, memory, and the ports it listens on."""

from __future__ import annotations

import os
from pathlib import Path


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


def rss_mib(pid: int) -> float:
    for line in read_proc(pid, "status").decode("utf-8", "replace").splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


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
