"""A small, controllable stand-in for Triton or TorchServe: the real HTTP API shape and metric names.

kwok pods run no containers; the e2e harness gives each serving pod one of these on 127.0.0.1.

Ports: one port serves both the inference API and ``/metrics`` (real Triton serves metrics on
8002 and TorchServe on 8082, apart from the API). Scrapes of ``/metrics`` are not counted in any
metric, so the separation makes no difference to what Prometheus sees.

Triton flavour (KServe v2 HTTP/REST):

* ``GET /v2/health/live``, ``GET /v2/health/ready``, ``GET /v2``;
* ``GET /v2/models/<m>[/versions/<v>]``, ``GET /v2/models/<m>[/versions/<v>]/ready``;
* ``POST /v2/models/<m>[/versions/<v>]/infer``: echoes every input as ``OUTPUT<i>``;
* metrics, labelled ``model`` and ``version``: ``nv_inference_request_success``,
  ``nv_inference_request_failure`` (with ``reason``, as Triton >= 24.x), ``nv_inference_count``,
  ``nv_inference_exec_count``, ``nv_inference_request_duration_us``, ``nv_inference_queue_duration_us``,
  ``nv_inference_compute_infer_duration_us`` (counters; durations of successful requests only),
  ``nv_inference_pending_request_count`` (gauge), and the summaries ``nv_inference_request_summary_us``
  and ``nv_inference_queue_summary_us`` (quantiles 0.5 0.9 0.95 0.99 0.999 over the last
  :data:`SUMMARY_MAX_AGE_S` seconds, as with ``--metrics-config summary_latencies=true``).

TorchServe flavour (0.12, ``metrics_mode=prometheus``):

* ``GET /ping`` (``{"status": "Healthy"}``), ``POST /predictions/<m>[/<version>]`` (echoes the body);
* metrics ``ts_inference_requests_total`` (every inference request received, failures included),
  ``ts_inference_latency_microseconds`` and ``ts_queue_latency_microseconds`` (successful requests),
  labelled ``model_name``, ``model_version`` (``default`` when the URL names no version, as
  TorchServe does) and ``hostname``; ``Requests2XX`` / ``Requests4XX`` / ``Requests5XX`` (labels
  ``Level="Host"``, ``Hostname``) count every HTTP response except scrapes, ``/ping`` included.
  TorchServe creates its series on first use, so they appear only after the first request.

Behaviour knobs (:class:`Behavior`, changed at any time with :meth:`ModelServer.set_behavior`,
thread-safe): ``error_rate`` (0..1: that fraction of inference requests fails: Triton answers 500,
TorchServe 503 ``Prediction failed``; deterministic: with 0.25 exactly every 4th request fails),
``queue_ms`` and ``latency_ms`` (time spent queued, then computing; both recorded in the latency
metrics) and ``down`` (the listening socket is closed: connections are refused, scrapes fail; it
is reopened on the same port when ``down`` goes back to False).
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Final, Literal

Flavor = Literal["triton", "torchserve"]
FLAVORS: Final[tuple[Flavor, ...]] = ("triton", "torchserve")

SUMMARY_QUANTILES: Final = (0.5, 0.9, 0.95, 0.99, 0.999)
SUMMARY_MAX_AGE_S: Final = 60.0
SUMMARY_MAX_SAMPLES: Final = 20_000
TRITON_FAILURE_REASONS: Final = ("REJECTED", "CANCELED", "BACKEND", "OTHER")
TORCHSERVE_DEFAULT_VERSION_LABEL: Final = "default"


@dataclass(frozen=True)
class Behavior:
    """How a server answers inference requests (health and metrics are unaffected, except by down)."""

    error_rate: float = 0.0
    latency_ms: float = 0.0
    queue_ms: float = 0.0
    down: bool = False

    def __post_init__(self) -> None:
        if not 0.0 <= self.error_rate <= 1.0:
            raise ValueError(f"error_rate must be within 0..1, got {self.error_rate}")
        if self.latency_ms < 0 or self.queue_ms < 0:
            raise ValueError(f"latency_ms and queue_ms must be >= 0, got {self.latency_ms}, {self.queue_ms}")

    def with_changes(self, **changes: Any) -> Behavior:
        """A copy with the given fields changed (None values are ignored)."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})


@dataclass(frozen=True)
class ServerStats:
    """What the server itself counted (inference requests only)."""

    success: int
    failure: int

    @property
    def requests(self) -> int:
        return self.success + self.failure


class _Summary:
    """A Prometheus summary over a sliding time window (like Triton's, via prometheus-cpp)."""

    def __init__(self) -> None:
        self.count = 0
        self.sum = 0.0
        self._window: deque[tuple[float, float]] = deque(maxlen=SUMMARY_MAX_SAMPLES)

    def observe(self, value: float, now: float) -> None:
        self.count += 1
        self.sum += value
        self._window.append((now, value))

    def quantiles(self, now: float) -> dict[float, float]:
        while self._window and self._window[0][0] < now - SUMMARY_MAX_AGE_S:
            self._window.popleft()
        values = sorted(v for _, v in self._window)
        if not values:
            return {q: float("nan") for q in SUMMARY_QUANTILES}
        # nearest rank
        return {
            q: values[min(len(values) - 1, max(0, int(q * len(values) + 0.999999) - 1))]
            for q in SUMMARY_QUANTILES
        }


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(labels: dict[str, str]) -> str:
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items()) + "}"


def _num(value: float) -> str:
    if value != value:  # NaN
        return "NaN"
    return repr(float(value)) if isinstance(value, float) and not value.is_integer() else str(int(value))


class _Exposition:
    """Builds Prometheus text format (version 0.0.4)."""

    def __init__(self) -> None:
        self._lines: list[str] = []

    def family(
        self, name: str, type_: str, help_: str, samples: list[tuple[str, dict[str, str], float]]
    ) -> None:
        if not samples:
            return
        self._lines.append(f"# HELP {name} {help_}")
        self._lines.append(f"# TYPE {name} {type_}")
        for sample_name, labels, value in samples:
            self._lines.append(f"{sample_name}{_labels(labels)} {_num(value)}")

    def text(self) -> str:
        return "\n".join(self._lines) + "\n"


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    app: ModelServer


_TRITON_MODEL = re.compile(
    r"^/v2/models/(?P<model>[^/]+)(?:/versions/(?P<version>[^/]+))?(?P<rest>/ready|/infer)?$"
)
_TS_PREDICT = re.compile(r"^/predictions/(?P<model>[^/]+)(?:/(?P<version>[^/]+))?$")


class _Handler(BaseHTTPRequestHandler):
    server: _HTTPServer
    protocol_version = "HTTP/1.0"

    def log_message(self, format: str, *args: Any) -> None:
        return  # quiet: the harness runs hundreds of requests a second in tests

    def do_GET(self) -> None:
        self.server.app._handle(self, "GET")

    def do_POST(self) -> None:
        self.server.app._handle(self, "POST")

    def reply(
        self, status: int, body: bytes | dict[str, Any], content_type: str = "application/json"
    ) -> None:
        data = json.dumps(body).encode() if isinstance(body, dict) else body
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""


class ModelServer:
    """One model server on ``host:port`` (port 0: a free one, kept across down/up)."""

    def __init__(
        self,
        flavor: Flavor,
        *,
        model: str = "model",
        version: str | None = None,
        hostname: str = "harness",
        host: str = "127.0.0.1",
        port: int = 0,
        behavior: Behavior | None = None,
    ) -> None:
        if flavor not in FLAVORS:
            raise ValueError(f"unknown flavor {flavor!r}: expected one of {', '.join(FLAVORS)}")
        self.flavor: Flavor = flavor
        self.model = model
        self.version = version or ("1" if flavor == "triton" else "1.0")
        self.hostname = hostname
        self.host = host
        self._port = port
        self._lock = threading.Lock()
        self._behavior = behavior or Behavior()
        self._error_acc = 0.0
        self._stopping = threading.Event()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._started = False
        # triton
        self._success = 0
        self._failure = 0
        self._inferences = 0
        self._duration_us = 0.0
        self._queue_us = 0.0
        self._compute_us = 0.0
        self._pending = 0
        self._request_summary = _Summary()
        self._queue_summary = _Summary()
        # torchserve: per model_version label value
        self._ts_requests: dict[str, int] = {}
        self._ts_latency_us: dict[str, float] = {}
        self._ts_queue_us: dict[str, float] = {}
        self._http_classes: dict[str, int] = {}

    # --- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> ModelServer:
        with self._lock:
            if self._started:
                return self
            self._started = True
            self._stopping.clear()
            if not self._behavior.down:
                self._listen()
        return self

    def stop(self) -> None:
        with self._lock:
            self._started = False
            self._stopping.set()  # wakes requests sleeping for latency
            self._close()

    def __enter__(self) -> ModelServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _listen(self) -> None:
        httpd = _HTTPServer((self.host, self._port), _Handler)
        httpd.app = self
        self._port = httpd.server_address[1]
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.1},
            name=f"model-server-{self._port}",
            daemon=True,
        )
        self._thread.start()

    def _close(self) -> None:
        httpd, thread = self._httpd, self._thread
        self._httpd = self._thread = None
        if httpd is not None:
            httpd.shutdown()
            httpd.server_close()
        if thread is not None:
            thread.join(timeout=10)

    @property
    def port(self) -> int:
        if not self._port:
            raise RuntimeError("the server has not been started")
        return self._port

    @property
    def address(self) -> str:
        """``host:port``: the scrape target."""
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    @property
    def listening(self) -> bool:
        with self._lock:
            return self._httpd is not None

    # --- behaviour ---------------------------------------------------------------------------------

    @property
    def behavior(self) -> Behavior:
        with self._lock:
            return self._behavior

    def set_behavior(self, behavior: Behavior | None = None, **changes: Any) -> Behavior:
        """Replace the behaviour, or change some fields: ``set_behavior(error_rate=0.5)``."""
        with self._lock:
            new = (behavior or self._behavior).with_changes(**changes)
            was_down, self._behavior = self._behavior.down, new
            if self._started and new.down and not was_down:
                self._close()
            elif self._started and not new.down and self._httpd is None:
                self._listen()
            return new

    def stats(self) -> ServerStats:
        with self._lock:
            return ServerStats(self._success, self._failure)

    # --- request handling --------------------------------------------------------------------------

    def _handle(self, req: _Handler, method: str) -> None:
        path = req.path.split("?", 1)[0]
        if path == "/metrics" and method == "GET":
            req.reply(200, self.metrics_text().encode(), "text/plain; version=0.0.4; charset=utf-8")
            return
        route = self._triton_route if self.flavor == "triton" else self._torchserve_route
        status = route(req, method, path)
        if self.flavor == "torchserve":
            with self._lock:
                cls = f"Requests{status // 100}XX"
                self._http_classes[cls] = self._http_classes.get(cls, 0) + 1

    def _decide_failure(self) -> tuple[bool, Behavior]:
        with self._lock:
            b = self._behavior
            self._error_acc += b.error_rate
            if self._error_acc >= 1.0 - 1e-9:
                self._error_acc -= 1.0
                return True, b
            return False, b

    def _simulate(self, behavior: Behavior) -> tuple[float, float]:
        """Queue then compute; returns (queue_us, total_us) as measured."""
        start = time.perf_counter()
        if behavior.queue_ms > 0:
            self._stopping.wait(behavior.queue_ms / 1000)
        queued = time.perf_counter()
        if behavior.latency_ms > 0:
            self._stopping.wait(behavior.latency_ms / 1000)
        done = time.perf_counter()
        return (queued - start) * 1e6, (done - start) * 1e6

    def _triton_route(self, req: _Handler, method: str, path: str) -> int:
        if method == "GET" and path in ("/v2/health/live", "/v2/health/ready"):
            req.reply(200, b"", "text/plain")
            return 200
        if method == "GET" and path == "/v2":
            req.reply(200, {"name": "triton", "version": "2.53.0", "extensions": ["classification"]})
            return 200
        m = _TRITON_MODEL.match(path)
        if m is None:
            req.reply(404, {"error": "Not Found"})
            return 404
        model, version, rest = m["model"], m["version"], m["rest"]
        if model != self.model or (version is not None and version != self.version):
            req.reply(400, {"error": f"Request for unknown model: '{model}' is not found"})
            return 400
        if method == "GET" and rest is None:
            req.reply(
                200,
                {
                    "name": self.model,
                    "versions": [self.version],
                    "platform": "harness",
                    "inputs": [{"name": "INPUT0", "datatype": "FP32", "shape": [-1, -1]}],
                    "outputs": [{"name": "OUTPUT0", "datatype": "FP32", "shape": [-1, -1]}],
                },
            )
            return 200
        if method == "GET" and rest == "/ready":
            req.reply(200, b"", "text/plain")
            return 200
        if method != "POST" or rest != "/infer":
            req.reply(405, {"error": "Method Not Allowed"})
            return 405
        try:
            request = json.loads(req.body() or b"{}")
            inputs = request["inputs"]
            if not isinstance(inputs, list) or not all(isinstance(i, dict) for i in inputs):
                raise ValueError("inputs must be a list of objects")
        except (ValueError, KeyError, TypeError) as e:
            req.reply(400, {"error": f"failed to parse the request JSON buffer: {e}"})
            return 400
        shape = inputs[0].get("shape") if inputs else None
        batch = shape[0] if isinstance(shape, list) and shape and isinstance(shape[0], int) else 1
        fail, behavior = self._decide_failure()
        with self._lock:
            self._pending += 1
        try:
            queue_us, total_us = self._simulate(behavior)
        finally:
            with self._lock:
                self._pending -= 1
        now = time.monotonic()
        with self._lock:
            if fail:
                self._failure += 1
            else:
                self._success += 1
                self._inferences += max(1, batch)
                self._duration_us += total_us
                self._queue_us += queue_us
                self._compute_us += total_us - queue_us
                self._request_summary.observe(total_us, now)
                self._queue_summary.observe(queue_us, now)
        if fail:
            req.reply(500, {"error": "harness: injected failure (error_rate)"})
            return 500
        outputs = [
            {
                "name": f"OUTPUT{i}",
                "datatype": inp.get("datatype", "FP32"),
                "shape": inp.get("shape", []),
                "data": inp.get("data", []),
            }
            for i, inp in enumerate(inputs)
        ]
        response: dict[str, Any] = {
            "model_name": self.model,
            "model_version": self.version,
            "outputs": outputs,
        }
        if "id" in request:
            response["id"] = request["id"]
        req.reply(200, response)
        return 200

    def _torchserve_route(self, req: _Handler, method: str, path: str) -> int:
        if path == "/ping" and method == "GET":
            req.reply(200, {"status": "Healthy"})
            return 200
        m = _TS_PREDICT.match(path)
        if m is None:
            req.reply(
                404,
                {
                    "code": 404,
                    "type": "ResourceNotFoundException",
                    "message": "Requested resource is not found, please refer to API document.",
                },
            )
            return 404
        model, version = m["model"], m["version"]
        if model != self.model or (version is not None and version != self.version):
            message = (
                f"Model not found: {model}"
                if model != self.model
                else f"Model version: {version} does not exist for model: {model}"
            )
            req.reply(404, {"code": 404, "type": "ModelNotFoundException", "message": message})
            return 404
        if method != "POST":
            req.reply(
                405,
                {
                    "code": 405,
                    "type": "MethodNotAllowedException",
                    "message": "Requested method is not allowed, please refer to API document.",
                },
            )
            return 405
        body = req.body()
        label = version or TORCHSERVE_DEFAULT_VERSION_LABEL
        with self._lock:
            self._ts_requests[label] = self._ts_requests.get(label, 0) + 1
        fail, behavior = self._decide_failure()
        queue_us, total_us = self._simulate(behavior)
        with self._lock:
            if fail:
                self._failure += 1
            else:
                self._success += 1
                self._ts_latency_us[label] = self._ts_latency_us.get(label, 0.0) + total_us
                self._ts_queue_us[label] = self._ts_queue_us.get(label, 0.0) + queue_us
        if fail:
            req.reply(503, {"code": 503, "type": "InternalServerException", "message": "Prediction failed"})
            return 503
        req.reply(200, body, req.headers.get("Content-Type") or "application/octet-stream")
        return 200

    # --- metrics -----------------------------------------------------------------------------------

    def metrics_text(self) -> str:
        """The ``/metrics`` body (Prometheus text format 0.0.4)."""
        render: Callable[[], str] = (
            self._triton_metrics if self.flavor == "triton" else self._torchserve_metrics
        )
        return render()

    def _triton_metrics(self) -> str:
        ml = {"model": self.model, "version": self.version}
        out = _Exposition()
        now = time.monotonic()
        with self._lock:
            counters: list[tuple[str, str, float]] = [
                (
                    "nv_inference_request_success",
                    "Number of successful inference requests, all batch sizes",
                    self._success,
                ),
                (
                    "nv_inference_count",
                    "Number of inferences performed (does not include cached requests)",
                    self._inferences,
                ),
                (
                    "nv_inference_exec_count",
                    "Number of model executions performed (does not include cached requests)",
                    self._success,
                ),
                (
                    "nv_inference_request_duration_us",
                    "Cumulative inference request duration in microseconds (includes cached requests)",
                    self._duration_us,
                ),
                (
                    "nv_inference_queue_duration_us",
                    "Cumulative inference queuing duration in microseconds (includes cached requests)",
                    self._queue_us,
                ),
                (
                    "nv_inference_compute_infer_duration_us",
                    "Cumulative compute inference duration in microseconds "
                    "(does not include cached requests)",
                    self._compute_us,
                ),
            ]
            out.family(counters[0][0], "counter", counters[0][1], [(counters[0][0], ml, counters[0][2])])
            out.family(
                "nv_inference_request_failure",
                "counter",
                "Number of failed inference requests, all batch sizes",
                [
                    (
                        "nv_inference_request_failure",
                        {**ml, "reason": r},
                        self._failure if r == "BACKEND" else 0,
                    )
                    for r in TRITON_FAILURE_REASONS
                ],
            )
            for name, help_, value in counters[1:]:
                out.family(name, "counter", help_, [(name, ml, value)])
            out.family(
                "nv_inference_pending_request_count",
                "gauge",
                "Instantaneous number of pending requests awaiting execution per-model.",
                [("nv_inference_pending_request_count", ml, self._pending)],
            )
            for name, summary, what in (
                ("nv_inference_request_summary_us", self._request_summary, "inference request duration"),
                ("nv_inference_queue_summary_us", self._queue_summary, "inference queuing duration"),
            ):
                quantiles = summary.quantiles(now)
                samples = [(name, {**ml, "quantile": str(q)}, v) for q, v in quantiles.items()]
                samples += [(f"{name}_count", ml, summary.count), (f"{name}_sum", ml, summary.sum)]
                out.family(
                    name, "summary", f"Summary of {what} in microseconds (includes cached requests)", samples
                )
        return out.text()

    def _torchserve_metrics(self) -> str:
        out = _Exposition()
        help_ = "Torchserve prometheus counter metric with unit: {}"
        with self._lock:
            for name, unit, values in (
                ("ts_inference_requests_total", "Count", dict(self._ts_requests)),
                ("ts_inference_latency_microseconds", "Microseconds", dict(self._ts_latency_us)),
                ("ts_queue_latency_microseconds", "Microseconds", dict(self._ts_queue_us)),
            ):
                samples = [
                    (name, {"model_name": self.model, "model_version": v, "hostname": self.hostname}, value)
                    for v, value in sorted(values.items())
                ]
                out.family(name, "counter", help_.format(unit), samples)
            for cls in ("Requests2XX", "Requests4XX", "Requests5XX"):
                if cls in self._http_classes:
                    out.family(
                        cls,
                        "counter",
                        help_.format("Count"),
                        [(cls, {"Level": "Host", "Hostname": self.hostname}, self._http_classes[cls])],
                    )
        return out.text()
