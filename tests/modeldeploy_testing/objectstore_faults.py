"""Servers that misbehave on demand, for the storage initializer's tests: an HTTPS server with its
own CA (trustme) that can fail or cut responses, and a TCP proxy that stalls and cuts a transfer.
Re-exported by :mod:`modeldeploy_testing.objectstore`."""

from __future__ import annotations

import contextlib
import http.server
import shutil
import socket
import ssl
import threading
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


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
