"""A loopback HTTP proxy in front of the real Prometheus that fails on purpose (the fault-matrix tests).

The operator's ``--prometheus-url`` points at the proxy; the proxy forwards every request to the real
Prometheus and answers what Prometheus answered, unless told otherwise:

- ``down``: the listening socket is closed (connection refused, as a Prometheus that is not running);
- ``malformed``: HTTP 200 with a truncated JSON body;
- ``slow``: the answer is held back ``delay_s`` seconds (longer than the operator's query timeout).

Only ``/api/v1/query`` answers are corrupted or delayed; ``/-/ready`` and everything else pass through.
"""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Literal

Mode = Literal["forward", "down", "malformed", "slow"]
MALFORMED_BODY = b'{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[17'


class PrometheusProxy:
    def __init__(self, upstream: str, delay_s: float = 8.0) -> None:
        self.upstream = upstream.rstrip("/")
        self.delay_s = delay_s
        self.mode: Mode = "forward"
        self.port = 0
        self.queries: dict[Mode, int] = {"forward": 0, "down": 0, "malformed": 0, "slow": 0}
        self.promql: list[str] = []  # every PromQL expression the operator sent, in order
        self._server: ThreadingHTTPServer | None = None
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> PrometheusProxy:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self._relay(None)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self._relay(self.rfile.read(length))

            def _relay(self, body: bytes | None) -> None:
                mode = proxy.mode
                is_query = self.path.startswith("/api/v1/query")
                if is_query:
                    form = (
                        urllib.parse.urlsplit(self.path).query + "&" + (body or b"").decode(errors="replace")
                    )
                    with proxy._lock:
                        proxy.queries[mode] += 1
                        proxy.promql.extend(urllib.parse.parse_qs(form).get("query", []))
                if is_query and mode == "malformed":
                    self._answer(200, MALFORMED_BODY, "application/json")
                    return
                if is_query and mode == "slow":
                    time.sleep(proxy.delay_s)
                request = urllib.request.Request(proxy.upstream + self.path, data=body, method=self.command)
                if body is not None:
                    request.add_header(
                        "Content-Type", self.headers.get("Content-Type", "application/x-www-form-urlencoded")
                    )
                try:
                    with urllib.request.urlopen(request, timeout=30) as r:
                        self._answer(r.status, r.read(), r.headers.get("Content-Type", "application/json"))
                except urllib.error.HTTPError as e:
                    self._answer(e.code, e.read(), e.headers.get("Content-Type", "application/json"))
                except OSError:
                    self._answer(502, b"upstream Prometheus unreachable", "text/plain")

            def _answer(self, code: int, payload: bytes, content_type: str) -> None:
                try:
                    self.send_response(code)
                    self.send_header("Content-Type", content_type)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except OSError:
                    pass  # the client gave up (its timeout): nothing to do

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._handler = Handler
        self._listen()
        return self

    def _listen(self) -> None:
        server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler)
        server.daemon_threads = True
        self.port = server.server_address[1]
        threading.Thread(target=server.serve_forever, name="prometheus-proxy", daemon=True).start()
        self._server = server

    def set_mode(self, mode: Mode) -> None:
        """Switch behaviour; ``down`` closes the port, any other mode opens it again (same port)."""
        if mode == "down" and self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        elif mode != "down" and self._server is None:
            self._listen()
        self.mode = mode

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
