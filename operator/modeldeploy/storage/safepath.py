"""Names (object keys, archive members, link targets) that must stay inside the destination. Pure."""

from __future__ import annotations

import posixpath
from pathlib import PurePosixPath

from modeldeploy.storage.errors import UnsafeSource


def safe_relpath(name: str, what: str) -> PurePosixPath:
    """A relative path that stays below its root, or UnsafeSource naming ``what``.

    Refused: empty names, absolute paths (``/x``, ``C:\\x``, ``\\\\host``), ``..`` segments, NUL and
    backslashes (a Windows separator in an archive made elsewhere is a traversal there).
    ``./a//b`` is normalised to ``a/b``.
    """
    if not name or "\x00" in name:
        raise UnsafeSource(f"{what}: empty or NUL in name {name!r}")
    if "\\" in name:
        raise UnsafeSource(f"{what}: backslash in name {name!r}")
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise UnsafeSource(f"{what}: absolute path {name!r}")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise UnsafeSource(f"{what}: '..' in {name!r} escapes the destination")
    if not parts:
        raise UnsafeSource(f"{what}: {name!r} names no file")
    return PurePosixPath(*parts)


def check_link_target(member: PurePosixPath, target: str, what: str) -> None:
    """A symlink at ``member`` pointing to ``target`` must resolve inside the root."""
    if not target or target.startswith("/") or "\\" in target:
        raise UnsafeSource(f"{what}: symlink {member} -> {target!r} points outside the destination")
    resolved = posixpath.normpath(posixpath.join(str(member.parent), target))
    if resolved == ".." or resolved.startswith("../") or resolved.startswith("/"):
        raise UnsafeSource(f"{what}: symlink {member} -> {target!r} points outside the destination")


def relative_key(key: str, prefix: str, what: str) -> PurePosixPath:
    """The path of object ``key`` below ``prefix`` (which ends with '/' or is empty)."""
    return safe_relpath(key[len(prefix) :], f"{what}: object key {key!r}")
