"""Object stores on loopback for tests and the e2e harness: MinIO (S3), the GCS emulator, HTTPS.

    server = start_s3_server(tmp_dir)          # MinIO from e2e/minio.sh, free port, fresh data dir
    server.create_bucket("models")
    server.put_object("models", "fraud/7/model.onnx", b"...")
    server.put_tree("models", "fraud/", Path("model_dir"))
    env = server.env()                          # AWS_* variables, as the pod's Secret gives them
    server.stop()

``start_gcs_emulator()`` (gcp-storage-emulator, in memory) and ``start_https_server(root, tmp_dir)``
(a self-signed CA made with trustme; Range support; injectable failures) follow the same shape.
Objects are written with plain signed HTTP requests (SigV4 below), never with the code under test.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import hmac
import http.server
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time
import urllib.parse
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[2]
MINIO_SCRIPT = REPO / "e2e" / "minio.sh"
START_TIMEOUT_S = 60.0
UNSIGNED = "UNSIGNED-PAYLOAD"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


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


# --- HTTPS (self-signed CA) ----------------------------------------------------------------------


@dataclass
class HttpsServer:
    """Serves files below ``root`` over TLS (a trustme CA, cert for 127.0.0.1 and localhost).

    ``fail(status, times)`` answers the next ``times`` requests with ``status``; ``cut_after(n)``
    drops the connection after ``n`` body bytes of the next response; ``requests`` counts every
    request (retry tests); Range requests get 206.
    """

    root: Path
    ca_path: Path
    port: int
    requests: int = 0
    _failures: list[int] = field(default_factory=list)
    _cuts: list[int] = field(default_factory=list)
    _httpd: Any = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, path: str) -> str:
        return f"https://127.0.0.1:{self.port}/{path.lstrip('/')}"

    def fail(self, status: int, times: int) -> None:
        with self._lock:
            self._failures.extend([status] * times)

    def cut_after(self, body_bytes: int) -> None:
        with self._lock:
            self._cuts.append(body_bytes)

    def _next_cut(self) -> int | None:
        with self._lock:
            return self._cuts.pop(0) if self._cuts else None

    def _next_failure(self) -> int | None:
        with self._lock:
            self.requests += 1
            return self._failures.pop(0) if self._failures else None

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None


def _handler(server: HttpsServer) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            failure = server._next_failure()
            if failure is not None:
                self.send_error(failure)
                return
            rel = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path).lstrip("/")
            path = (server.root / rel).resolve()
            if not path.is_relative_to(server.root.resolve()) or not path.is_file():
                self.send_error(404)
                return
            size = path.stat().st_size
            start = 0
            rng = self.headers.get("Range", "")
            if rng.startswith("bytes=") and rng[6:].split("-")[0].isdigit():
                start = int(rng[6:].split("-")[0])
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{size - 1}/{size}")
            else:
                self.send_response(200)
            self.send_header("Content-Length", str(size - start))
            self.end_headers()
            cut = server._next_cut()
            with open(path, "rb") as f:
                f.seek(start)
                if cut is None:
                    shutil.copyfileobj(f, self.wfile, 1 << 20)
                    return
                self.wfile.write(f.read(cut))
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)  # the body breaks off

    return Handler


def start_https_server(root: Path, tmp_dir: Path) -> HttpsServer:
    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    ca_path = Path(tmp_dir) / "https-ca.pem"
    ca.cert_pem.write_to_path(str(ca_path))
    server = HttpsServer(root=Path(root), ca_path=ca_path, port=free_port())
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", server.port), _handler(server))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    cert.configure_cert(context)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    httpd.daemon_threads = True
    server._httpd = httpd
    threading.Thread(target=httpd.serve_forever, name="https-server", daemon=True).start()
    return server


# --- a TCP proxy that can stall and cut a transfer -----------------------------------------------


class StallingProxy:
    """Forwards 127.0.0.1:``port`` to ``target_port``; after ``stall_after`` bytes of responses it
    stops forwarding (the transfer hangs mid-body) until ``cut()`` closes every connection.
    ``sent`` keeps what clients sent (request lines and headers: which ranges were asked for)."""

    def __init__(self, target_port: int, stall_after: int | None = None) -> None:
        self.target_port = target_port
        self.stall_after = stall_after
        self.port = free_port()
        self.forwarded = 0
        self.sent = bytearray()
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self._cut = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns += [client, upstream]
            threading.Thread(target=self._pipe, args=(client, upstream, False), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, True), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, response: bool) -> None:
        try:
            while data := src.recv(1 << 16):
                if response and self.stall_after is not None:
                    room = self.stall_after - self.forwarded
                    if room <= 0:
                        self._cut.wait()  # hang until cut() closes the sockets
                        return
                    data = data[:room]
                dst.sendall(data)
                with self._lock:
                    if response:
                        self.forwarded += len(data)
                    else:
                        self.sent += data
        except OSError:
            pass
        finally:
            for s in (src, dst):
                _close(s)

    def cut(self) -> None:
        """Reset every open connection (a server that died mid-transfer)."""
        self._cut.set()
        with self._lock:
            conns, self._conns = self._conns, []
        for s in conns:
            _close(s)

    def close(self) -> None:
        self.cut()
        _close(self._listener)


def _close(s: socket.socket) -> None:
    with contextlib.suppress(OSError):
        s.shutdown(socket.SHUT_RDWR)
    s.close()


def sha256_of(chunks: Iterable[bytes]) -> str:
    h = hashlib.sha256()
    for chunk in chunks:
        h.update(chunk)
    return h.hexdigest()
