"""Object stores on loopback for tests and the e2e harness: MinIO (S3), the GCS emulator, HTTPS.

    server = start_s3_server(tmp_dir)          # MinIO from e2e/minio.sh, free port, fresh data dir
    server.create_bucket("models")
    server.put_object("models", "fraud/7/model.onnx", b"...")
    server.put_tree("models", "fraud/", Path("model_dir"))
    env = server.env()                          # AWS_* variables, as the pod's Secret gives them
    server.stop()

``start_gcs_emulator()`` (gcp-storage-emulator, in memory) and ``start_https_server(root, tmp_dir)``
(a self-signed CA made with trustme; Range support; injectable failures, in objectstore_faults.py)
follow the same shape.
Objects are written with plain signed HTTP requests (SigV4 below), never with the code under test.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import os
import secrets
import signal
import subprocess
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from modeldeploy_testing.objectstore_faults import HttpsServer, StallingProxy, free_port, start_https_server

__all__ = [
    "GcsEmulator",
    "HttpsServer",
    "S3Server",
    "StallingProxy",
    "free_port",
    "sigv4_headers",
    "start_gcs_emulator",
    "start_https_server",
    "start_s3_server",
]

REPO = Path(__file__).resolve().parents[2]
MINIO_SCRIPT = REPO / "e2e" / "minio.sh"
START_TIMEOUT_S = 60.0
UNSIGNED = "UNSIGNED-PAYLOAD"


def wait_until(what: str, check: Any, timeout: float = START_TIMEOUT_S, interval: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def minio_binary() -> Path:
    """The cached MinIO binary (``MODELDEPLOY_MINIO_BIN``, else built or found by e2e/minio.sh)."""
    explicit = os.environ.get("MODELDEPLOY_MINIO_BIN")
    if explicit:
        return Path(explicit)
    out = subprocess.run(["bash", str(MINIO_SCRIPT)], check=True, capture_output=True, text=True)
    return Path(out.stdout.strip().splitlines()[-1])


# --- S3 (MinIO) ---------------------------------------------------------------------------------


def sigv4_headers(
    method: str, url: str, *, region: str, access_key: str, secret_key: str, payload_hash: str = UNSIGNED
) -> dict[str, str]:
    """AWS Signature Version 4 headers for one S3 request (path-style URL, already quoted)."""
    parts = urllib.parse.urlsplit(url)
    now = dt.datetime.now(dt.UTC)
    amz_date, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
    query = sorted(urllib.parse.parse_qsl(parts.query, keep_blank_values=True))
    canonical_query = "&".join(
        f"{urllib.parse.quote(k, safe='-_.~')}={urllib.parse.quote(v, safe='-_.~')}" for k, v in query
    )
    headers = {"host": parts.netloc, "x-amz-content-sha256": payload_hash, "x-amz-date": amz_date}
    signed = ";".join(sorted(headers))
    canonical_headers = "".join(f"{k}:{headers[k]}\n" for k in sorted(headers))
    request = "\n".join([method, parts.path or "/", canonical_query, canonical_headers, signed, payload_hash])
    scope = f"{day}/{region}/s3/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(request.encode()).hexdigest()])
    key = f"AWS4{secret_key}".encode()
    for part in (day, region, "s3", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    headers["authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={access_key}/{scope}, SignedHeaders={signed}, Signature={signature}"
    )
    return headers


@dataclass
class S3Server:
    """A MinIO server on 127.0.0.1 with one root user (``access_key``/``secret_key``)."""

    binary: Path
    data_dir: Path
    port: int
    access_key: str
    secret_key: str
    region: str = "us-east-1"
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self, *, secret_key: str | None = None) -> dict[str, str]:
        """The variables the pod's credentials Secret gives the initializer (envFrom)."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": secret_key if secret_key is not None else self.secret_key,
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_REGION": self.region,
        }

    def start(self) -> S3Server:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.data_dir.parent / f"minio-{self.port}.log"
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.data_dir.parent),
            "MINIO_ROOT_USER": self.access_key,
            "MINIO_ROOT_PASSWORD": self.secret_key,
            "MINIO_BROWSER": "off",
            "MINIO_UPDATE": "off",
            "MINIO_REGION": self.region,
        }
        certs = self.data_dir.parent / "minio-certs"
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [str(self.binary), "server", str(self.data_dir), "--address", f"127.0.0.1:{self.port}",
                 "--console-address", f"127.0.0.1:{free_port()}", "--certs-dir", str(certs), "--quiet"],
                env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        wait_until(f"MinIO on {self.endpoint_url}", self._ready)
        return self

    def _ready(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            tail = self.log_path.read_text()[-2000:] if self.log_path else ""
            raise RuntimeError(f"MinIO exited with {self.process.returncode}: {tail}")
        try:
            return httpx.get(f"{self.endpoint_url}/minio/health/ready", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def _request(
        self, method: str, bucket: str, key: str = "", content: Any = None, **kw: Any
    ) -> httpx.Response:
        path = "/" + urllib.parse.quote(bucket) + ("/" + urllib.parse.quote(key, safe="/") if key else "")
        url = self.endpoint_url + path
        headers = sigv4_headers(
            method, url, region=self.region, access_key=self.access_key, secret_key=self.secret_key
        )
        r = httpx.request(method, url, headers={**headers, **kw.pop("headers", {})}, content=content,
                          timeout=300, **kw)  # fmt: skip
        if r.status_code >= 300:
            raise RuntimeError(f"{method} {path}: {r.status_code} {r.text[:300]}")
        return r

    def create_bucket(self, name: str) -> None:
        try:
            self._request("PUT", name)
        except RuntimeError as e:
            if "BucketAlreadyOwnedByYou" not in str(e):
                raise

    def put_object(self, bucket: str, key: str, data: bytes) -> None:
        self._request("PUT", bucket, key, content=data)

    def put_file(self, bucket: str, key: str, path: Path) -> None:
        """Upload a (large) local file, streamed."""
        size = path.stat().st_size

        def chunks() -> Iterator[bytes]:
            with open(path, "rb") as f:
                while chunk := f.read(8 << 20):
                    yield chunk

        self._request("PUT", bucket, key, content=chunks(), headers={"content-length": str(size)})

    def put_tree(self, bucket: str, prefix: str, local_dir: Path) -> list[str]:
        """Upload every file below ``local_dir`` as ``prefix + relative path``; returns the keys."""
        keys = []
        for path in sorted(p for p in Path(local_dir).rglob("*") if p.is_file()):
            key = prefix + path.relative_to(local_dir).as_posix()
            self.put_file(bucket, key, path)
            keys.append(key)
        return keys

    def kill(self) -> None:
        """SIGKILL: the server dies mid-whatever (interrupted-transfer tests)."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()
        self.process = None

    def restart(self) -> S3Server:
        """Start again on the same port and data directory."""
        self.stop()
        return self.start()


def start_s3_server(tmp_dir: Path, *, port: int | None = None) -> S3Server:
    """Start MinIO with a fresh data directory below ``tmp_dir`` and random root credentials."""
    server = S3Server(
        binary=minio_binary(),
        data_dir=Path(tmp_dir) / "minio-data",
        port=port or free_port(),
        access_key="md" + secrets.token_hex(6),
        secret_key=secrets.token_urlsafe(24),
    )
    return server.start()


# --- GCS (gcp-storage-emulator) ------------------------------------------------------------------


@dataclass
class GcsEmulator:
    port: int
    server: Any = None

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        return {"STORAGE_EMULATOR_HOST": self.endpoint_url}

    def create_bucket(self, name: str) -> None:
        r = httpx.post(f"{self.endpoint_url}/storage/v1/b", params={"project": "test"}, json={"name": name})
        if r.status_code not in (200, 409):
            raise RuntimeError(f"create bucket {name}: {r.status_code} {r.text[:300]}")

    def put_object(self, bucket: str, key: str, data: bytes) -> None:
        r = httpx.post(
            f"{self.endpoint_url}/upload/storage/v1/b/{bucket}/o",
            params={"uploadType": "media", "name": key},
            content=data,
            timeout=120,
        )
        if r.status_code != 200:
            raise RuntimeError(f"upload gs://{bucket}/{key}: {r.status_code} {r.text[:300]}")

    def put_tree(self, bucket: str, prefix: str, local_dir: Path) -> list[str]:
        keys = []
        for path in sorted(p for p in Path(local_dir).rglob("*") if p.is_file()):
            key = prefix + path.relative_to(local_dir).as_posix()
            self.put_object(bucket, key, path.read_bytes())
            keys.append(key)
        return keys

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None


def start_gcs_emulator() -> GcsEmulator:
    from gcp_storage_emulator.server import create_server

    emulator = GcsEmulator(port=free_port())
    emulator.server = create_server("127.0.0.1", emulator.port, in_memory=True)
    emulator.server.start()
    wait_until("the GCS emulator", lambda: _answers(emulator.endpoint_url + "/"))
    return emulator


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code < 500
    except httpx.HTTPError:
        return False
