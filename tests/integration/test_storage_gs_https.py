"""The storage initializer against the GCS emulator (gs://) and an HTTPS server with its own CA."""

from __future__ import annotations

import http.server
import json
import secrets
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_storage_initializer import failed, read_tree, run_initializer, sha256, tree

from modeldeploy_testing.objectstore import GcsEmulator, HttpsServer, start_gcs_emulator, start_https_server

GCS_BUCKET = "gmodels"


@pytest.fixture(scope="module")
def gcs() -> Iterator[GcsEmulator]:
    emulator = start_gcs_emulator()
    emulator.create_bucket(GCS_BUCKET)
    try:
        yield emulator
    finally:
        emulator.stop()


@pytest.fixture(scope="module")
def https(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HttpsServer]:
    root = tmp_path_factory.mktemp("www")
    server = start_https_server(root, tmp_path_factory.mktemp("ca"))
    try:
        yield server
    finally:
        server.stop()


# --- gs:// -------------------------------------------------------------------------------------------


def test_gs_single_object(gcs: GcsEmulator, tmp_path: Path) -> None:
    data = secrets.token_bytes(70_000)
    gcs.put_object(GCS_BUCKET, "single/model.onnx", data)
    dest = tmp_path / "models" / "m"
    r = run_initializer(
        tmp_path,
        f"gs://{GCS_BUCKET}/single/model.onnx",
        str(dest),
        "--layout",
        "triton",
        "--version-dir",
        "1",
        env=gcs.env(),
    )
    assert r.returncode == 0, r
    assert read_tree(dest) == {"1/model.onnx": data}


def test_gs_prefix_model_directory(gcs: GcsEmulator, tmp_path: Path) -> None:
    files = {
        "config.pbtxt": b"c",
        "3/model.py": b"m",
        "3/sub/deep/w.bin": secrets.token_bytes(3000),
        "4/model.py": b"x",
    }
    gcs.put_tree(GCS_BUCKET, "dir/fraud/", tree(tmp_path / "src", files))
    dest = tmp_path / "models" / "fraud"
    r = run_initializer(
        tmp_path,
        f"gs://{GCS_BUCKET}/dir/fraud",
        str(dest),
        "--layout",
        "triton",
        "--version-dir",
        "3",
        env=gcs.env(),
    )
    assert r.returncode == 0, r
    assert read_tree(dest) == {k: v for k, v in files.items() if k.startswith("3/")}


def test_gs_missing_object(gcs: GcsEmulator, tmp_path: Path) -> None:
    uri = f"gs://{GCS_BUCKET}/absent/model.onnx"
    r = run_initializer(
        tmp_path, uri, str(tmp_path / "d"), "--layout", "triton", "--version-dir", "1", env=gcs.env()
    )
    failed(r, f"not found: {uri} does not exist (no object of that name and none below it)")


def service_account_json(token_uri: str) -> tuple[str, str]:
    """A real (generated) service-account key whose token endpoint is ``token_uri``; and its PEM."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    info = {
        "type": "service_account",
        "project_id": "test",
        "private_key_id": secrets.token_hex(20),
        "private_key": pem,
        "client_email": "initializer@test.iam.gserviceaccount.com",
        "client_id": "1",
        "token_uri": token_uri,
    }
    return json.dumps(info), pem


@pytest.fixture
def refusing_token_endpoint() -> Iterator[str]:
    """An OAuth token endpoint on loopback that refuses every grant (a revoked key)."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            body = b'{"error": "invalid_grant", "error_description": "Invalid JWT Signature."}'
            self.send_response(400)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/token"
    finally:
        server.shutdown()
        server.server_close()


def test_gs_refused_service_account_is_access_denied_without_leaking_the_key(
    refusing_token_endpoint: str, tmp_path: Path
) -> None:
    sa_json, pem = service_account_json(refusing_token_endpoint)
    uri = f"gs://{GCS_BUCKET}/m/model.onnx"
    env = {"GOOGLE_SERVICE_ACCOUNT_JSON": sa_json}
    r = run_initializer(
        tmp_path, uri, str(tmp_path / "d"), "--layout", "triton", "--version-dir", "1", env=env
    )
    failed(r, f"access denied: {uri} (check the credentials Secret)")
    out = r.stdout + r.stderr + r.termination
    key_lines = [line for line in pem.splitlines() if "PRIVATE KEY" not in line]
    assert key_lines and not any(line in out for line in key_lines)
    assert json.loads(sa_json)["private_key_id"] not in out


# --- https:// ----------------------------------------------------------------------------------------


def serve(https: HttpsServer, name: str, data: bytes) -> str:
    path = https.root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return https.url(name)


def test_https_with_sha256_and_custom_ca(https: HttpsServer, tmp_path: Path) -> None:
    data = secrets.token_bytes(200_000)
    url = serve(https, "ok/fraud.mar", data)
    dest = tmp_path / "models" / "fraud.mar"
    r = run_initializer(
        tmp_path,
        url,
        str(dest),
        "--layout",
        "torchserve",
        "--sha256",
        sha256(data),
        "--ca-bundle",
        str(https.ca_path),
        env={},
    )
    assert r.returncode == 0, r
    assert dest.read_bytes() == data


def test_https_checksum_mismatch_places_nothing(https: HttpsServer, tmp_path: Path) -> None:
    data = secrets.token_bytes(10_000)
    url = serve(https, "bad/fraud.mar", data)
    wanted = "0" * 64
    dest = tmp_path / "models" / "fraud.mar"
    r = run_initializer(
        tmp_path,
        url,
        str(dest),
        "--layout",
        "torchserve",
        "--sha256",
        wanted,
        "--ca-bundle",
        str(https.ca_path),
        env={},
    )
    failed(r, f"checksum mismatch: {url} sha256 is {sha256(data)}, spec.model.sha256 wants {wanted}")
    assert list(dest.parent.iterdir()) == []


def test_https_without_the_ca_fails_at_once(https: HttpsServer, tmp_path: Path) -> None:
    url = serve(https, "noca/m.onnx", b"m")
    before = https.requests
    r = run_initializer(
        tmp_path, url, str(tmp_path / "d"), "--layout", "triton", "--version-dir", "1", env={}
    )
    assert r.returncode == 1, r
    assert r.termination.startswith(f"TLS verification failed: {url}: ")
    assert "certificate" in r.termination and "--ca-bundle" in r.termination
    assert https.requests == before  # the handshake failed: no request, and no retry of it


def test_https_retries_5xx_and_throttling_then_succeeds(https: HttpsServer, tmp_path: Path) -> None:
    data = secrets.token_bytes(5000)
    url = serve(https, "flaky/m.onnx", data)
    https.fail(503, 1)
    https.fail(429, 1)
    before = https.requests
    dest = tmp_path / "models" / "m"
    r = run_initializer(
        tmp_path,
        url,
        str(dest),
        "--layout",
        "triton",
        "--version-dir",
        "1",
        "--ca-bundle",
        str(https.ca_path),
        env={},
    )
    assert r.returncode == 0, r
    assert https.requests - before == 3
    assert "retry 1/2" in r.stdout and "HTTP 503" in r.stdout and "HTTP 429" in r.stdout
    assert read_tree(dest) == {"1/m.onnx": data}


def test_https_gives_up_after_the_bounded_retries(https: HttpsServer, tmp_path: Path) -> None:
    url = serve(https, "down/m.onnx", b"m")
    https.fail(502, 3)  # as many as the attempts (MODELDEPLOY_STORAGE_ATTEMPTS=3)
    before = https.requests
    r = run_initializer(
        tmp_path,
        url,
        str(tmp_path / "d"),
        "--layout",
        "triton",
        "--version-dir",
        "1",
        "--ca-bundle",
        str(https.ca_path),
        env={},
    )
    failed(r, f"store unavailable: {url}: HTTP 502 (gave up after 3 attempts at byte 0)")
    assert https.requests - before == 3


@pytest.mark.parametrize(("status", "kind"), [(404, "not found"), (403, "access denied")])
def test_https_no_retry_on_404_and_403(https: HttpsServer, tmp_path: Path, status: int, kind: str) -> None:
    url = serve(https, f"gone-{status}/m.onnx", b"m")
    https.fail(status, 1)
    before = https.requests
    r = run_initializer(
        tmp_path,
        url,
        str(tmp_path / "d"),
        "--layout",
        "triton",
        "--version-dir",
        "1",
        "--ca-bundle",
        str(https.ca_path),
        env={},
    )
    assert r.returncode == 1, r
    assert r.termination.startswith(f"{kind}: {url}")
    assert https.requests - before == 1


def test_https_body_cut_off_resumes_from_the_byte_reached(https: HttpsServer, tmp_path: Path) -> None:
    data = secrets.token_bytes(3_000_000)
    url = serve(https, "cut/m.onnx", data)
    https.cut_after(1_000_000)
    dest = tmp_path / "models" / "m"
    args = ("--layout", "triton", "--version-dir", "1", "--ca-bundle", str(https.ca_path))
    r = run_initializer(tmp_path, url, str(dest), *args, env={})
    assert r.returncode == 0, r
    assert f"retry 1/2 {url} from byte 1000000 " in r.stdout
    assert read_tree(dest) == {"1/m.onnx": data}


def test_https_signed_url_query_never_printed(https: HttpsServer, tmp_path: Path) -> None:
    signature = "X-Amz-Signature=" + secrets.token_hex(16)
    url = https.url("absent/m.onnx") + "?" + signature
    args = ("--layout", "triton", "--version-dir", "1", "--ca-bundle", str(https.ca_path))
    r = run_initializer(tmp_path, url, str(tmp_path / "d"), *args, env={})
    failed(r, f"not found: {https.url('absent/m.onnx')}?*** does not exist (HTTP 404)")
    assert signature not in r.stdout + r.stderr + r.termination
