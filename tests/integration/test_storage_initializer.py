"""The storage initializer's command line against real stores on loopback: MinIO (s3://), the GCS
emulator (gs://) and an HTTPS server with its own CA (https://).

Every run goes through ``run_initializer``, which also checks that no credential value appears in
stdout, stderr or the termination message.
"""

from __future__ import annotations

import hashlib
import io
import os
import secrets
import subprocess
import sys
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from modeldeploy_testing.objectstore import S3Server

INITIALIZER = str(Path(sys.executable).with_name("modeldeploy-storage-initializer"))
BUCKET = "models"
FAST_RETRIES = {"MODELDEPLOY_STORAGE_ATTEMPTS": "3", "MODELDEPLOY_STORAGE_BACKOFF_SECONDS": "0.05"}


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str
    termination: str


def run_initializer(tmp: Path, *args: str, env: dict[str, str], timeout: float = 120) -> Result:
    termination = tmp / f"termination-{secrets.token_hex(3)}"
    full_env = {
        "PATH": os.environ["PATH"],
        "MODELDEPLOY_TERMINATION_LOG": str(termination),
        **FAST_RETRIES,
        **env,
    }
    proc = subprocess.run([INITIALIZER, *args], env=full_env, capture_output=True, text=True, timeout=timeout)
    result = Result(
        proc.returncode, proc.stdout, proc.stderr, termination.read_text() if termination.exists() else ""
    )
    assert_no_credentials(result, env)
    return result


def assert_no_credentials(result: Result, env: dict[str, str]) -> None:
    out = result.stdout + result.stderr + result.termination
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        if env.get(name):
            assert env[name] not in out, f"{name} leaked into the output"


def failed(result: Result, line: str) -> None:
    """Exit 1, exactly ``line`` in the termination log, and the same line on stderr."""
    assert result.returncode == 1, result
    assert result.termination == line + "\n"
    assert f"error: {line}" in result.stderr


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def tree(root: Path, files: dict[str, bytes]) -> Path:
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def read_tree(root: Path) -> dict[str, bytes]:
    """The files placed below ``root`` (the completion marker aside)."""
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.name.endswith(".modeldeploy-complete")
    }


def tar_gz(files: dict[str, bytes], links: dict[str, str] | None = None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)
    return buf.getvalue()


def zip_bytes(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buf.getvalue()


@pytest.fixture(scope="module")
def s3(s3_server: S3Server) -> S3Server:
    s3_server.create_bucket(BUCKET)
    return s3_server


@pytest.fixture
def prefix() -> str:
    return f"t-{secrets.token_hex(4)}/"


# --- s3:// ------------------------------------------------------------------------------------------


def test_s3_single_object_lands_in_the_version_folder_once(s3: S3Server, prefix: str, tmp_path: Path) -> None:
    data = secrets.token_bytes(300_000)
    s3.put_object(BUCKET, prefix + "model.onnx", data)
    dest = tmp_path / "models" / "fraud"
    args = (f"s3://{BUCKET}/{prefix}model.onnx", str(dest), "--layout", "triton", "--version-dir", "3")

    first = run_initializer(tmp_path, *args, env=s3.env())
    assert first.returncode == 0, first
    assert read_tree(dest / "3") == {"model.onnx": data}
    assert "MiB/s" in first.stdout and "300000 bytes" in first.stdout
    assert sorted(p.name for p in dest.iterdir()) == [".3.modeldeploy-complete", "3"]

    # complete: a restarted init container does not download again (it would fail: wrong secret)
    again = run_initializer(tmp_path, *args, env=s3.env(secret_key="wrong-secret-1234"))
    assert again.returncode == 0, again
    assert "already complete" in again.stdout


def test_s3_prefix_with_nested_keys_is_the_version_contents(
    s3: S3Server, prefix: str, tmp_path: Path
) -> None:
    files = {
        "model.py": b"print(1)",
        "lib/a/util.py": b"x = 1",
        "lib/b/weights.bin": secrets.token_bytes(5000),
    }
    s3.put_tree(BUCKET, prefix + "v/", tree(tmp_path / "src", files))
    dest = tmp_path / "models" / "m"
    r = run_initializer(
        tmp_path,
        f"s3://{BUCKET}/{prefix}v",
        str(dest),
        "--layout",
        "triton",
        "--version-dir",
        "2",
        env=s3.env(),
    )
    assert r.returncode == 0, r
    assert read_tree(dest / "2") == files


def test_s3_triton_model_directory_places_only_the_version_asked(
    s3: S3Server, prefix: str, tmp_path: Path
) -> None:
    files = {
        "config.pbtxt": b"name: 'x'",
        "1/model.onnx": b"one",
        "2/model.onnx": b"two",
        "2/extra/t.txt": b"t",
    }
    s3.put_tree(BUCKET, prefix + "fraud/", tree(tmp_path / "src", files))
    dest = tmp_path / "models" / "fraud"
    r = run_initializer(
        tmp_path,
        f"s3://{BUCKET}/{prefix}fraud/",
        str(dest),
        "--layout",
        "triton",
        "--version-dir",
        "2",
        env=s3.env(),
    )
    assert r.returncode == 0, r
    assert read_tree(dest) == {"2/model.onnx": b"two", "2/extra/t.txt": b"t"}  # no config.pbtxt, no 1/


def test_s3_model_directory_without_the_version_folder(s3: S3Server, prefix: str, tmp_path: Path) -> None:
    s3.put_tree(
        BUCKET, prefix + "m/", tree(tmp_path / "src", {"config.pbtxt": b"c", "1/a": b"1", "2/a": b"2"})
    )
    dest = tmp_path / "models" / "m"
    uri = f"s3://{BUCKET}/{prefix}m"
    r = run_initializer(tmp_path, uri, str(dest), "--layout", "triton", "--version-dir", "7", env=s3.env())
    failed(r, f"bad model source: {uri}: no version folder 7/ (found: 1, 2)")
    assert not (dest / "7").exists() and list(dest.iterdir()) == []


def test_s3_model_directory_with_no_version_folder_at_all(s3: S3Server, prefix: str, tmp_path: Path) -> None:
    s3.put_tree(BUCKET, prefix + "m/", tree(tmp_path / "src", {"config.pbtxt": b"c", "model.onnx": b"1"}))
    uri = f"s3://{BUCKET}/{prefix}m"
    r = run_initializer(
        tmp_path, uri, str(tmp_path / "d"), "--layout", "triton", "--version-dir", "1", env=s3.env()
    )
    assert r.returncode == 1
    assert r.termination.startswith(
        f"bad model source: {uri}: a Triton model directory without a version folder"
    )


def test_s3_missing_object(s3: S3Server, prefix: str, tmp_path: Path) -> None:
    uri = f"s3://{BUCKET}/{prefix}nope/model.onnx"
    r = run_initializer(
        tmp_path, uri, str(tmp_path / "d"), "--layout", "triton", "--version-dir", "1", env=s3.env()
    )
    failed(r, f"not found: {uri} does not exist (no object of that name and none below it)")
    assert not (tmp_path / "d" / "1").exists()


def test_s3_wrong_credentials_is_access_denied_without_leaking_them(
    s3: S3Server, prefix: str, tmp_path: Path
) -> None:
    s3.put_object(BUCKET, prefix + "m.onnx", b"m")
    uri = f"s3://{BUCKET}/{prefix}m.onnx"
    wrong = "Wr0ng-" + secrets.token_urlsafe(18)
    env = s3.env(secret_key=wrong)
    r = run_initializer(
        tmp_path, uri, str(tmp_path / "d"), "--layout", "triton", "--version-dir", "1", env=env
    )
    failed(r, f"access denied: {uri} (check the credentials Secret)")
    assert wrong not in r.stdout + r.stderr + r.termination and s3.access_key not in r.termination


def test_s3_tar_gz_model_directory_with_sha256(s3: S3Server, prefix: str, tmp_path: Path) -> None:
    archive = tar_gz({"config.pbtxt": b"c", "4/model.py": b"m", "4/lib/x.py": b"x", "5/model.py": b"5"})
    s3.put_object(BUCKET, prefix + "fraud.tar.gz", archive)
    dest = tmp_path / "models" / "fraud"
    args = ("--layout", "triton", "--version-dir", "4", "--archive", "tar.gz", "--sha256", sha256(archive))
    r = run_initializer(tmp_path, f"s3://{BUCKET}/{prefix}fraud.tar.gz", str(dest), *args, env=s3.env())
    assert r.returncode == 0, r
    assert read_tree(dest) == {"4/model.py": b"m", "4/lib/x.py": b"x"}


@pytest.mark.parametrize(
    ("fmt", "archive", "says"),
    [
        ("tar.gz", tar_gz({"ok.txt": b"1", "../escaped.txt": b"evil"}), "'..' in '../escaped.txt'"),
        ("tar.gz", tar_gz({"/tmp/storage-test-abs.txt": b"evil"}), "absolute path"),
        ("tar.gz", tar_gz({"ok.txt": b"1"}, links={"link": "../../.."}), "points outside"),
        ("zip", zip_bytes({"ok.txt": b"1", "../escaped.txt": b"evil"}), "'..' in '../escaped.txt'"),
        ("zip", zip_bytes({"/tmp/storage-test-abs.txt": b"evil"}), "absolute path"),
    ],
    ids=["tar-dotdot", "tar-absolute", "tar-symlink-out", "zip-dotdot", "zip-absolute"],
)
def test_archive_traversal_is_refused_and_nothing_lands_outside(
    s3: S3Server, prefix: str, tmp_path: Path, fmt: str, archive: bytes, says: str
) -> None:
    key = f"{prefix}evil.{fmt}"
    s3.put_object(BUCKET, key, archive)
    root = tmp_path / "root"
    dest = root / "models" / "m"
    args = ("--layout", "triton", "--version-dir", "1", "--archive", fmt)
    r = run_initializer(tmp_path, f"s3://{BUCKET}/{key}", str(dest), *args, env=s3.env())
    assert r.returncode == 1, r
    assert (
        r.termination.startswith(f"unsafe model source: s3://{BUCKET}/{key}: archive member")
        and says in r.termination
    )
    assert [
        p for p in root.rglob("*") if p != dest and p != dest.parent
    ] == []  # nothing, not even the staging
    assert not Path("/tmp/storage-test-abs.txt").exists()


def test_torchserve_mar_object_and_archive_with_one_mar(s3: S3Server, prefix: str, tmp_path: Path) -> None:
    mar = secrets.token_bytes(20_000)
    s3.put_object(BUCKET, prefix + "fraud.mar", mar)
    s3.put_object(BUCKET, prefix + "bundle.zip", zip_bytes({"README": b"r", "dist/fraud-v2.mar": mar[::-1]}))
    dest = tmp_path / "models" / "fraud.mar"
    r = run_initializer(
        tmp_path, f"s3://{BUCKET}/{prefix}fraud.mar", str(dest), "--layout", "torchserve", env=s3.env()
    )
    assert r.returncode == 0, r
    assert dest.read_bytes() == mar
    args = ("--layout", "torchserve", "--archive", "zip")
    r = run_initializer(tmp_path, f"s3://{BUCKET}/{prefix}bundle.zip", str(dest), *args, env=s3.env())
    assert r.returncode == 0, r
    assert dest.read_bytes() == mar[::-1]  # the new source replaced the old one
    assert sorted(p.name for p in dest.parent.iterdir()) == [".fraud.mar.modeldeploy-complete", "fraud.mar"]


@pytest.mark.parametrize(
    ("key", "extra", "says"),
    [
        ("m.pt", (), "TorchServe needs a .mar model archive"),
        ("two.tar.gz", ("--archive", "tar.gz"), "TorchServe needs exactly one .mar, found 2"),
        ("dir/", (), "TorchServe needs a single .mar object"),
    ],
)
def test_torchserve_anything_but_one_mar_is_a_clear_error(
    s3: S3Server, prefix: str, tmp_path: Path, key: str, extra: tuple[str, ...], says: str
) -> None:
    s3.put_object(BUCKET, prefix + "m.pt", b"pt")
    s3.put_object(BUCKET, prefix + "two.tar.gz", tar_gz({"a.mar": b"a", "b.mar": b"b"}))
    s3.put_object(BUCKET, prefix + "dir/a.mar", b"a")
    dest = tmp_path / "fraud.mar"
    r = run_initializer(
        tmp_path, f"s3://{BUCKET}/{prefix}{key}", str(dest), "--layout", "torchserve", *extra, env=s3.env()
    )
    assert r.returncode == 1, r
    assert r.termination.startswith("bad model source: ") and says in r.termination
    assert not dest.exists()


@pytest.mark.parametrize(
    ("layout", "members", "links", "says"),
    [
        (
            "torchserve",
            {"real.bin": b"m"},
            {"dist/fraud.mar": "../real.bin"},
            "the .mar must be a regular file",
        ),
        ("triton", {"config.pbtxt": b"c", "4/m.py": b"m"}, {"4/cfg": "../config.pbtxt"}, "points outside"),
    ],
    ids=["mar-symlink", "link-out-of-the-version-folder"],
)
def test_archive_links_that_would_point_outside_once_placed(
    s3: S3Server,
    prefix: str,
    tmp_path: Path,
    layout: str,
    members: dict[str, bytes],
    links: dict[str, str],
    says: str,
) -> None:
    key = f"{prefix}linked.tar.gz"
    s3.put_object(BUCKET, key, tar_gz(members, links=links))
    dest = tmp_path / "models" / ("fraud.mar" if layout == "torchserve" else "fraud")
    extra = ("--version-dir", "4") if layout == "triton" else ()
    r = run_initializer(
        tmp_path,
        f"s3://{BUCKET}/{key}",
        str(dest),
        "--layout",
        layout,
        "--archive",
        "tar.gz",
        *extra,
        env=s3.env(),
    )
    assert r.returncode == 1, r
    assert (
        r.termination.startswith(f"unsafe model source: s3://{BUCKET}/{key}: archive member")
        and says in r.termination
    )
    assert list((tmp_path / "models").iterdir()) in ([], [dest]) and not (dest / "4").exists()
