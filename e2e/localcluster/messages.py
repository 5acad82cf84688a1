"""The one-line error every failure becomes, and the progress lines printed on the way."""

from __future__ import annotations

from pathlib import Path


class ClusterError(Exception):
    """An expected failure: printed as one line (plus optional context), exit status 1."""

    def __init__(self, message: str, context: str = "") -> None:
        super().__init__(message)
        self.context = context


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
