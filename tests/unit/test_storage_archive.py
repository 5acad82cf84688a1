"""Safe archive extraction: traversal, absolute paths, links out and device files are refused before
anything is written; a well-formed archive unpacks as it is."""

from __future__ import annotations

import io
import stat
import tarfile
import zipfile
from collections.abc import Callable
from pathlib import Path, PurePosixPath

import pytest

from modeldeploy.storage.archive import extract, tree_files
from modeldeploy.storage.errors import BadSource, UnsafeSource

Member = tuple[str, str, bytes]  # (kind: file|dir|symlink|hardlink|fifo|chr, name, data or link target)


def make_tar(path: Path, members: list[Member]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for kind, name, data in members:
            info = tarfile.TarInfo(name)
            if kind == "file":
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
                continue
            info.type = {
                "dir": tarfile.DIRTYPE,
                "symlink": tarfile.SYMTYPE,
                "hardlink": tarfile.LNKTYPE,
                "fifo": tarfile.FIFOTYPE,
                "chr": tarfile.CHRTYPE,
            }[kind]
            if kind in ("symlink", "hardlink"):
                info.linkname = data.decode()
            tar.addfile(info)
    return path


def make_zip(path: Path, members: list[Member]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for kind, name, data in members:
            info = zipfile.ZipInfo(name)
            mode = {
                "file": stat.S_IFREG | 0o644,
                "symlink": stat.S_IFLNK | 0o777,
                "chr": stat.S_IFCHR | 0o644,
            }
            info.external_attr = mode[kind] << 16
            zf.writestr(info, data)
    return path


MAKERS: dict[str, tuple[str, Callable[[Path, list[Member]], Path]]] = {
    "tar.gz": ("a.tar.gz", make_tar),
    "zip": ("a.zip", make_zip),
}


def unpack(tmp_path: Path, fmt: str, members: list[Member]) -> Path:
    name, make = MAKERS[fmt]
    archive = make(tmp_path / name, members)
    dest = tmp_path / "root" / "dest"
    extract(archive, fmt, dest, f"s3://b/{name}")
    return dest


def everything_outside(tmp_path: Path) -> set[str]:
    """Paths written anywhere below tmp_path other than the archive and the destination."""
    return {
        str(p.relative_to(tmp_path))
        for p in tmp_path.rglob("*")
        if not p.name.startswith("a.") and "dest" not in p.relative_to(tmp_path).parts
    } - {"root"}


@pytest.mark.parametrize("fmt", ["tar.gz", "zip"])
def test_wellformed_archive_unpacks_with_inner_symlinks(tmp_path: Path, fmt: str) -> None:
    dest = unpack(
        tmp_path,
        fmt,
        [
            ("file", "1/model.onnx", b"onnx"),
            ("file", "config.pbtxt", b"cfg"),
            ("symlink", "1/alias.onnx", b"model.onnx"),
        ],
    )
    assert tree_files(dest) == [PurePosixPath(p) for p in ("1/alias.onnx", "1/model.onnx", "config.pbtxt")]
    assert (dest / "1" / "alias.onnx").read_bytes() == b"onnx"


ESCAPES = [
    pytest.param([("file", "../x", b"evil")], "'..'", id="dotdot"),
    pytest.param([("file", "ok/../../x", b"evil")], "'..'", id="nested-dotdot"),
    pytest.param([("file", "/tmp/abs-evil", b"evil")], "absolute path", id="absolute"),
    pytest.param([("symlink", "link", b"../../outside")], "points outside", id="symlink-out"),
    pytest.param([("symlink", "link", b"/etc")], "points outside", id="symlink-absolute"),
    pytest.param([("file", "ok.txt", b"fine"), ("chr", "dev", b"")], "device files", id="device"),
]


@pytest.mark.parametrize("fmt", ["tar.gz", "zip"])
@pytest.mark.parametrize(("members", "says"), ESCAPES)
def test_escaping_members_are_refused_and_nothing_is_written(
    tmp_path: Path, fmt: str, members: list[Member], says: str
) -> None:
    with pytest.raises(UnsafeSource, match=says) as e:
        # a harmless member first: refusal happens before anything is written
        unpack(tmp_path, fmt, [("file", "first.txt", b"ok"), *members])
    assert e.value.line.startswith("unsafe model source: s3://b/a.")
    assert everything_outside(tmp_path) == set()
    dest = tmp_path / "root" / "dest"
    assert not dest.exists() or list(dest.iterdir()) == []
    assert not Path("/tmp/abs-evil").exists()


@pytest.mark.parametrize(
    ("members", "says"),
    [
        ([("hardlink", "h", b"../../etc/passwd")], "hardlink target"),
        ([("fifo", "pipe", b"")], "device files and FIFOs"),
    ],
)
def test_tar_only_member_kinds_are_checked_too(tmp_path: Path, members: list[Member], says: str) -> None:
    with pytest.raises(UnsafeSource, match=says):
        unpack(tmp_path, "tar.gz", members)
    assert everything_outside(tmp_path) == set()


@pytest.mark.parametrize("fmt", ["tar.gz", "zip"])
def test_not_an_archive_is_a_clear_error(tmp_path: Path, fmt: str) -> None:
    bogus = tmp_path / "bogus"
    bogus.write_bytes(b"this is not an archive at all" * 10)
    with pytest.raises(BadSource, match=f"not a readable .{fmt} archive"):
        extract(bogus, fmt, tmp_path / "dest", "https://h/bogus")
