"""Interrupted transfers: the S3 server killed mid-body, the initializer itself killed, a connection
reset with the server up. A partial download never looks complete; a rerun completes."""

from __future__ import annotations

import os
import re
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_storage_initializer import BUCKET, FAST_RETRIES, INITIALIZER, run_initializer, sha256

from modeldeploy_testing.cluster import poll
from modeldeploy_testing.objectstore import S3Server, StallingProxy, start_s3_server


@pytest.fixture
def own_s3(tmp_path: Path) -> Iterator[S3Server]:
    """A MinIO of its own: these tests kill it."""
    server = start_s3_server(tmp_path / "own-s3")
    server.create_bucket(BUCKET)
    try:
        yield server
    finally:
        server.stop()


BIG = 48 * 1024 * 1024
STALL_AT = 6 * 1024 * 1024


def big_object(server: S3Server, tmp_path: Path) -> tuple[bytes, str]:
    data = secrets.token_bytes(BIG)
    path = tmp_path / "big.bin"
    path.write_bytes(data)
    server.create_bucket(BUCKET)
    server.put_file(BUCKET, "big/model.bin", path)
    return data, f"s3://{BUCKET}/big/model.bin"


def test_server_killed_mid_transfer_leaves_no_destination_and_a_rerun_completes(
    own_s3: S3Server, tmp_path: Path
) -> None:
    data, uri = big_object(own_s3, tmp_path)
    proxy = StallingProxy(own_s3.port, stall_after=STALL_AT)
    dest = tmp_path / "models" / "big"
    args = (uri, str(dest), "--layout", "triton", "--version-dir", "1")
    env = {**own_s3.env(), "AWS_ENDPOINT_URL": proxy.endpoint_url}
    try:
        run_env = {
            "PATH": os.environ["PATH"],
            **FAST_RETRIES,
            **env,
            "MODELDEPLOY_TERMINATION_LOG": str(tmp_path / "term"),
        }
        with subprocess.Popen(
            [INITIALIZER, *args], env=run_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        ) as proc:
            poll(
                "the transfer to stall mid-body",
                lambda: proxy.forwarded >= STALL_AT,
                timeout=60,
                interval=0.05,
            )
            assert proc.poll() is None
            own_s3.kill()
            proxy.cut()
            out, err = proc.communicate(timeout=120)
        assert proc.returncode == 1, out + err
        term = (tmp_path / "term").read_text()
        assert term.startswith(f"store unavailable: {uri}"), term
        assert own_s3.secret_key not in out + err + term
        assert not (dest / "1").exists() and list(dest.iterdir()) == []  # nothing that looks complete

        own_s3.restart()
        proxy.stall_after = None
        r = run_initializer(tmp_path, *args, env=env)
        assert r.returncode == 0, r
        assert sha256((dest / "1" / "model.bin").read_bytes()) == sha256(data)
    finally:
        proxy.close()


def test_killed_initializer_leaves_a_partial_that_the_next_run_removes(
    own_s3: S3Server, tmp_path: Path
) -> None:
    data, uri = big_object(own_s3, tmp_path)
    proxy = StallingProxy(own_s3.port, stall_after=STALL_AT)
    dest = tmp_path / "models" / "big"
    args = (uri, str(dest), "--layout", "triton", "--version-dir", "1")
    env = {**own_s3.env(), "AWS_ENDPOINT_URL": proxy.endpoint_url}
    try:
        with subprocess.Popen([INITIALIZER, *args], env={"PATH": os.environ["PATH"], **env}) as proc:
            poll(
                "the transfer to stall mid-body",
                lambda: proxy.forwarded >= STALL_AT,
                timeout=60,
                interval=0.05,
            )
            proc.kill()  # the init container is killed (node drain, OOM)
        partial = dest / ".1.modeldeploy-partial"
        assert partial.is_dir() and not (dest / "1").exists()
        proxy.cut()
        proxy.stall_after = None
        r = run_initializer(tmp_path, *args, env=env)
        assert r.returncode == 0, r
        assert f"removing {partial}" in r.stdout
        assert (dest / "1" / "model.bin").read_bytes() == data
        assert not partial.exists()
    finally:
        proxy.close()


def test_connection_reset_mid_body_resumes_from_the_byte_reached(s3_server: S3Server, tmp_path: Path) -> None:
    data, uri = big_object(s3_server, tmp_path)
    proxy = StallingProxy(s3_server.port, stall_after=STALL_AT)
    dest = tmp_path / "models" / "big"
    env = {**s3_server.env(), "AWS_ENDPOINT_URL": proxy.endpoint_url}
    run_env = {"PATH": os.environ["PATH"], **FAST_RETRIES, **env}
    try:
        with subprocess.Popen(
            [INITIALIZER, uri, str(dest), "--layout", "triton", "--version-dir", "1"],
            env=run_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        ) as proc:  # fmt: skip
            poll(
                "the transfer to stall mid-body",
                lambda: proxy.forwarded >= STALL_AT,
                timeout=60,
                interval=0.05,
            )
            proxy.stall_after = None
            proxy.cut()  # connection reset; the server stays up
            out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, out + err
        # the second request asked for the rest only (obstore resumes a broken body itself; when its
        # retries are spent, the transfer resumes from the byte written, see transfer.download)
        ranges = [int(m) for m in re.findall(rb"(?i)\r\nrange: bytes=(\d+)-", bytes(proxy.sent))]
        assert ranges and ranges[-1] >= STALL_AT // 2, (ranges, out)
        assert sha256((dest / "1" / "model.bin").read_bytes()) == sha256(data)
    finally:
        proxy.close()
