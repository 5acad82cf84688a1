"""Safe extraction of ``.tar.gz`` and ``.zip`` archives.

Every member is checked before anything is written: names must stay inside the destination
(:func:`safe_relpath`), symlinks and hardlinks must point inside it, device files and FIFOs are
refused. Tar extraction then also runs with Python's ``data`` filter (defence in depth); zip
symlinks are created last, so no file is ever written through a link.
"""

from __future__ import annotations

import os
import shutil
import stat
import tarfile
import zipfile
from pathlib import Path, PurePosixPath

from modeldeploy.storage.errors import BadRequest, BadSource, UnsafeSource
from modeldeploy.storage.safepath import check_link_target, safe_relpath

TAR_GZ = "tar.gz"
ZIP = "zip"
FORMATS = (TAR_GZ, ZIP)
COPY_CHUNK = 1 << 20


def check_format(archive: str | None) -> str | None:
    if archive is not None and archive not in FORMATS:
        raise BadRequest(f"--archive {archive!r}: expected {' or '.join(FORMATS)}")
    return archive


def extract(archive: Path, fmt: str, dest: Path, source: str) -> None:
    """Unpack ``archive`` (``tar.gz`` or ``zip``) into the empty directory ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    if fmt == TAR_GZ:
        _extract_tar(archive, dest, source)
    else:
        _extract_zip(archive, dest, source)


def _extract_tar(archive: Path, dest: Path, source: str) -> None:
    try:
        with tarfile.open(archive, mode="r:gz") as tar:
            members = tar.getmembers()
            for member in members:
                check_tar_member(member, source)
            tar.extractall(dest, filter="data")
    except (tarfile.TarError, OSError, EOFError) as e:
        raise BadSource(f"{source}: not a readable .tar.gz archive ({type(e).__name__}: {e})") from None


def check_tar_member(member: tarfile.TarInfo, source: str) -> None:
    what = f"{source}: archive member"
    name = safe_relpath(member.name, what)
    if member.issym():
        check_link_target(name, member.linkname, what)
    elif member.islnk():
        safe_relpath(member.linkname, f"{what} {name} (hardlink target)")
    elif not (member.isfile() or member.isdir()):
        raise UnsafeSource(f"{what} {name}: device files and FIFOs are not allowed")


def _zip_mode(info: zipfile.ZipInfo) -> int:
    return info.external_attr >> 16


def _extract_zip(archive: Path, dest: Path, source: str) -> None:
    what = f"{source}: archive member"
    try:
        with zipfile.ZipFile(archive) as zf:
            infos = zf.infolist()
            links: list[tuple[PurePosixPath, str]] = []
            files: list[tuple[PurePosixPath, zipfile.ZipInfo]] = []
            for info in infos:
                name = safe_relpath(info.filename, what)
                mode = _zip_mode(info)
                if stat.S_ISLNK(mode):
                    target = zf.read(info).decode("utf-8", "replace")
                    check_link_target(name, target, what)
                    links.append((name, target))
                elif stat.S_IFMT(mode) not in (0, stat.S_IFREG, stat.S_IFDIR):  # 0: no Unix type recorded
                    raise UnsafeSource(f"{what} {name}: device files and FIFOs are not allowed")
                elif not info.is_dir():
                    files.append((name, info))
            root = dest.resolve()
            for name, info in files:
                path = dest.joinpath(*name.parts)
                path.parent.mkdir(parents=True, exist_ok=True)
                if not path.parent.resolve().is_relative_to(root):
                    raise UnsafeSource(f"{what} {name}: its folder resolves outside the destination")
                with zf.open(info) as src, open(path, "xb") as out:
                    shutil.copyfileobj(src, out, COPY_CHUNK)
            for name, target in links:
                path = dest.joinpath(*name.parts)
                path.parent.mkdir(parents=True, exist_ok=True)
                os.symlink(target, path)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError) as e:
        if isinstance(e, FileExistsError):
            raise BadSource(f"{source}: archive member {e.filename} appears twice") from None
        raise BadSource(f"{source}: not a readable .zip archive ({type(e).__name__}: {e})") from None


def tree_files(root: Path) -> list[PurePosixPath]:
    """Every file and symlink below ``root`` (relative, sorted); directories are implied."""
    found: list[PurePosixPath] = []
    for dirpath, dirnames, filenames in os.walk(root):
        base = Path(dirpath)
        for name in filenames + [d for d in dirnames if (base / d).is_symlink()]:
            found.append(PurePosixPath((base / name).relative_to(root).as_posix()))
    return sorted(found)
