"""What goes where for each runtime, decided from the source's relative file paths. Pure.

Triton (destination = the model directory, version folder N from ``--version-dir``):

* numeric top-level folders: a Triton model directory; only ``N/`` is placed, at ``N/`` (a missing
  ``N/`` fails naming the folders found); its top-level ``config.pbtxt`` is dropped (the operator
  mounts its own rendered one);
* a top-level ``config.pbtxt`` without numeric folders: refused (Triton needs ``<model>/<N>/``);
* anything else: the version's contents, placed under ``N/``.

TorchServe (destination = ``<model>.mar``): exactly one ``.mar`` file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath

from modeldeploy.storage.errors import BadRequest, BadSource

TRITON = "triton"
TORCHSERVE = "torchserve"
LAYOUTS = (TRITON, TORCHSERVE)
TRITON_CONFIG = "config.pbtxt"
MAR_SUFFIX = ".mar"


@dataclass(frozen=True)
class Move:
    source: PurePosixPath  # relative to the source root
    target: PurePosixPath  # relative to the staging root (Triton: "N/...", TorchServe: the .mar name)


def check_version_dir(version_dir: str | None) -> str:
    if version_dir is None:
        raise BadRequest("--layout triton needs --version-dir N")
    if not version_dir.isdigit() or not version_dir.isascii():
        raise BadRequest(f"--version-dir {version_dir!r}: Triton version folders are positive integers")
    if int(version_dir) < 1:
        raise BadRequest(f"--version-dir {version_dir!r}: Triton version folders start at 1")
    return version_dir


def _numeric_folders(files: list[PurePosixPath]) -> list[str]:
    tops = {f.parts[0] for f in files if len(f.parts) > 1}
    return sorted((t for t in tops if t.isdigit() and t.isascii()), key=int)


def triton_moves(files: list[PurePosixPath], version_dir: str, source: str) -> list[Move]:
    """Where each placed file goes below the staging root (``N/...``); files not placed are dropped."""
    if not files:
        raise BadSource(f"{source}: contains no files")
    versions = _numeric_folders(files)
    if versions:
        chosen = next((v for v in versions if int(v) == int(version_dir)), None)
        if chosen is None:
            found = ", ".join(versions)
            raise BadSource(f"{source}: no version folder {version_dir}/ (found: {found})")
        return [
            Move(f, PurePosixPath(version_dir, *f.parts[1:]))
            for f in files
            if f.parts[0] == chosen and len(f.parts) > 1
        ]
    if PurePosixPath(TRITON_CONFIG) in files:
        raise BadSource(
            f"{source}: a Triton model directory without a version folder: Triton expects "
            f"<model>/config.pbtxt next to numbered version folders (<model>/{version_dir}/model.onnx, "
            f"<model>/{version_dir}/model.py, ...); put the model files in {version_dir}/ or point the URI "
            "at the version's contents"
        )
    return [Move(f, PurePosixPath(version_dir, *f.parts)) for f in files]


def torchserve_moves(files: list[PurePosixPath], target_name: str, source: str) -> list[Move]:
    """The one ``.mar`` in the source, placed as ``target_name``."""
    mars = [f for f in files if f.name.endswith(MAR_SUFFIX)]
    if len(mars) == 1:
        return [Move(mars[0], PurePosixPath(target_name))]
    if not mars:
        shown = ", ".join(str(f) for f in files[:5]) + (", ..." if len(files) > 5 else "")
        raise BadSource(
            f"{source}: TorchServe needs a .mar model archive (made with torch-model-archiver), or a "
            f".tar.gz/.zip containing exactly one; found no .mar (files: {shown or 'none'})"
        )
    names = ", ".join(str(m) for m in mars)
    raise BadSource(f"{source}: TorchServe needs exactly one .mar, found {len(mars)} ({names})")


def plan(
    layout: str, files: list[PurePosixPath], *, version_dir: str | None, target_name: str, source: str
) -> list[Move]:
    """The moves for ``layout``; BadSource/BadRequest when the source does not fit it."""
    if layout == TRITON:
        return triton_moves(files, check_version_dir(version_dir), source)
    if layout == TORCHSERVE:
        return torchserve_moves(files, target_name, source)
    raise BadRequest(f"unknown layout {layout!r} (expected {' or '.join(LAYOUTS)})")
