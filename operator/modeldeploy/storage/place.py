"""Atomic placement: stage next to the destination, rename when complete, record completion;
and the termination message the operator reads from the pod.

For a destination ``final`` (Triton: ``<model dir>/<N>``, TorchServe: ``<model>.mar``):

* ``.<name>.modeldeploy-partial/`` beside it holds everything while it downloads (a killed run
  leaves it; the next run removes it first);
* the staged result is renamed onto ``final`` only when every object is complete and verified;
* then ``.<name>.modeldeploy-complete`` (JSON: source, sha256, layout, ...) is written. A run that
  finds the marker matching its request and ``final`` present exits at once without downloading; a
  ``final`` without a matching marker (killed between rename and marker, or another source) is
  replaced.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modeldeploy.storage.errors import LocalWriteFailed

PARTIAL_SUFFIX = ".modeldeploy-partial"
COMPLETE_SUFFIX = ".modeldeploy-complete"
TERMINATION_LIMIT = 4096  # bytes Kubernetes keeps of a termination message
DEFAULT_TERMINATION_LOG = "/dev/termination-log"


@dataclass(frozen=True)
class Target:
    final: Path

    @property
    def work(self) -> Path:
        return self.final.parent / f".{self.final.name}{PARTIAL_SUFFIX}"

    @property
    def marker(self) -> Path:
        return self.final.parent / f".{self.final.name}{COMPLETE_SUFFIX}"


def is_complete(target: Target, record: dict[str, Any]) -> bool:
    """``final`` exists and the marker records exactly this request."""
    try:
        recorded = json.loads(target.marker.read_text())
    except (OSError, ValueError):
        return False
    return recorded == record and (target.final.exists() or target.final.is_symlink())


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def prepare(target: Target, log: Any) -> Path:
    """An empty work directory beside ``final`` (a partial one left by a killed run is removed)."""
    try:
        target.final.parent.mkdir(parents=True, exist_ok=True)
        if target.work.exists():
            log(f"removing {target.work}: a partial download left by an earlier run")
            _remove(target.work)
        target.marker.unlink(missing_ok=True)
        target.work.mkdir()
    except OSError as e:
        raise LocalWriteFailed(f"{target.work}: {e.strerror or e}") from None
    return target.work


def discard(target: Target) -> None:
    """Remove the work directory after a failure (never raises: the failure is what matters)."""
    shutil.rmtree(target.work, ignore_errors=True)


def commit(target: Target, staged: Path, record: dict[str, Any]) -> None:
    """Rename ``staged`` onto ``final``, write the completion marker, drop the work directory."""
    try:
        if target.final.exists() or target.final.is_symlink():
            _remove(target.final)
        os.rename(staged, target.final)
        tmp = target.marker.with_name(target.marker.name + ".tmp")
        tmp.write_text(json.dumps(record, sort_keys=True) + "\n")
        os.rename(tmp, target.marker)
        _remove(target.work)
    except OSError as e:
        raise LocalWriteFailed(f"{target.final}: {e.strerror or e}") from None


def termination_line(line: str) -> str:
    """One line, within the size Kubernetes keeps (pure)."""
    flat = " ".join(line.split())
    data = flat.encode()
    if len(data) <= TERMINATION_LIMIT - 1:
        return flat
    return data[: TERMINATION_LIMIT - 4].decode("utf-8", "ignore") + "..."


def write_termination(path: str, line: str) -> str | None:
    """Write the termination message; returns why it could not be written, if it could not."""
    try:
        with open(path, "w") as f:
            f.write(termination_line(line) + "\n")
    except OSError as e:
        return f"cannot write the termination message to {path}: {e.strerror or e}"
    return None
