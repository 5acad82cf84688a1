"""Bring the source into the work directory, laid out for the runtime (the decisions are in
:mod:`.layout`; this is the I/O around them).

* a prefix (``s3://b/dir``: no object of that name, objects below it, or a trailing ``/``): listed,
  planned from the keys (so only what is placed is downloaded), then downloaded one by one;
* a single object: downloaded (sha256 checked when given); an archive (``--archive``) is unpacked
  safely and planned from its tree; anything else is one file (Triton ``N/<name>``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from modeldeploy.storage.archive import extract, tree_files
from modeldeploy.storage.errors import BadRequest, BadSource, NotFound, UnsafeSource
from modeldeploy.storage.layout import TORCHSERVE, TRITON, Move, plan
from modeldeploy.storage.safepath import check_link_target, relative_key, safe_relpath
from modeldeploy.storage.transfer import Log, ObjectInfo, ObjectSource, RetryPolicy, download, retrying
from modeldeploy.storage.uri import SourceUri, basename


@dataclass(frozen=True)
class Request:
    uri: SourceUri
    layout: str
    version_dir: str | None  # Triton's N
    target_name: str  # TorchServe: the .mar's file name
    sha256: str | None
    archive: str | None  # tar.gz | zip


def find(
    source: ObjectSource, uri: SourceUri, policy: RetryPolicy, log: Log
) -> tuple[ObjectInfo | None, str, list[ObjectInfo]]:
    """The single object the URI names, or else the prefix and the objects below it."""
    if uri.scheme == "https":
        return ObjectInfo(uri.raw, None), "", []
    if not uri.is_explicit_prefix:
        obj = retrying(policy, uri.raw, "stat", log, lambda: source.stat(uri.key))
        if obj is not None:
            return obj, "", []
    prefix = uri.key if uri.key == "" or uri.key.endswith("/") else uri.key + "/"
    listed = retrying(policy, uri.raw, "list", log, lambda: source.list(prefix))
    objects = [o for o in listed if not o.key.endswith("/")]  # folder markers
    if not objects:
        raise NotFound(f"{uri.raw} does not exist (no object of that name and none below it)")
    return None, prefix, objects


def _staged_root(request: Request, out: Path) -> Path:
    if request.layout == TRITON:
        assert request.version_dir is not None
        return out / request.version_dir
    return out / request.target_name


def _plan(request: Request, files: list[PurePosixPath]) -> list[Move]:
    return plan(
        request.layout,
        files,
        version_dir=request.version_dir,
        target_name=request.target_name,
        source=request.uri.raw,
    )


def check_placed_link(request: Request, tree: Path, move: Move) -> None:
    """A symlink from an archive must still point inside what is placed, from where it lands."""
    member = tree.joinpath(*move.source.parts)
    if not member.is_symlink():
        return
    what = f"{request.uri.raw}: archive member {move.source}"
    if request.layout != TRITON:
        raise UnsafeSource(f"{what} is a symlink; the .mar must be a regular file")
    inside = PurePosixPath(*move.target.parts[1:])  # below the version folder
    check_link_target(inside, os.readlink(member), what)


def stage(source: ObjectSource, request: Request, work: Path, policy: RetryPolicy, log: Log) -> Path:
    """Download and lay out below ``work``; returns the path to rename onto the destination."""
    uri = request.uri
    out = work / "out"
    obj, prefix, objects = find(source, uri, policy, log)
    if obj is None:
        if request.sha256:
            raise BadRequest(
                f"sha256 applies to a single object; {uri.raw} is a prefix ({len(objects)} objects)"
            )
        if request.archive:
            raise BadRequest(
                f"archive applies to a single object; {uri.raw} is a prefix ({len(objects)} objects)"
            )
        if request.layout == TORCHSERVE:
            raise BadSource(
                f"{uri.raw}: TorchServe needs a single .mar object (or a .tar.gz/.zip containing one), "
                f"not a prefix ({len(objects)} objects)"
            )
        by_path = {relative_key(o.key, prefix, uri.raw): o for o in objects}
        moves = _plan(request, sorted(by_path))
        log(f"{uri.raw}: {len(objects)} objects, placing {len(moves)}")
        for move in moves:
            item = by_path[move.source]
            path = out.joinpath(*move.target.parts)
            path.parent.mkdir(parents=True, exist_ok=True)
            download(source, item, uri.child(item.key), path, policy=policy, log=log)
        return _staged_root(request, out)

    name = basename(obj.key)
    if request.archive:
        archive = work / f"archive.{request.archive}"
        download(source, obj, uri.raw, archive, policy=policy, log=log, sha256=request.sha256)
        tree = work / "tree"
        extract(archive, request.archive, tree, uri.raw)
        archive.unlink()
        moves = _plan(request, tree_files(tree))
        for move in moves:
            check_placed_link(request, tree, move)
            path = out.joinpath(*move.target.parts)
            path.parent.mkdir(parents=True, exist_ok=True)
            os.rename(tree.joinpath(*move.source.parts), path)
        log(f"{uri.raw}: unpacked, placed {len(moves)} files")
        return _staged_root(request, out)

    if name.endswith((".tar.gz", ".tgz", ".zip")) and request.layout != TRITON:
        raise BadSource(
            f"{uri.raw}: looks like an archive; set the archive format (tar.gz or zip) to unpack it"
        )
    moves = _plan(request, [safe_relpath(name, f"{uri.raw}: object name")])
    path = out.joinpath(*moves[0].target.parts)
    path.parent.mkdir(parents=True, exist_ok=True)
    download(source, obj, uri.raw, path, policy=policy, log=log, sha256=request.sha256)
    return _staged_root(request, out)
