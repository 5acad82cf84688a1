"""The TorchServe configuration the operator generates works with a real TorchServe 0.12.

No cluster: the test renders ``config.properties`` and the container command line with
:mod:`modeldeploy.runtimes.torchserve`, archives a tiny torch-free handler with
``torch-model-archiver`` (name and version from the spec, so the per-model ``models`` settings
apply), starts ``torchserve`` exactly as the container does (same flags, paths moved into a tmp
dir, ports moved to free ones) and checks inference, token auth, the Prometheus metric names the
analysis templates query, and that batch size / batch delay / workers took effect.

TorchServe's Python worker imports ``torch`` at module level (``ts.protocol.otf_message_handler``)
but only touches ``torch.Tensor``/``torch.save`` for handlers that return tensors. When torch is not
installed the worker gets a two-name stub on its PYTHONPATH instead of the 800 MB wheel.

Needs the ``dev`` extra (torchserve, torch-model-archiver) and Java 17 (``java``); skips otherwise.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from modeldeploy.analysis.templates import TARGET_LABELS, builtin_template, sample_count_template
from modeldeploy.api.spec import BUILTIN_TEMPLATES, ModelDeploymentSpec
from modeldeploy.runtimes import get_runtime
from modeldeploy.runtimes.torchserve import CONFIG_FILE

pytestmark = [pytest.mark.integration, pytest.mark.timeout(110)]

STARTUP_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0

RUNTIME = get_runtime("torchserve")

HANDLER = textwrap.dedent(
    '''\
    """Echo handler for the integration test: no torch, just the TorchServe function protocol."""
    import json


    def handle(data, context):
        if data is None:  # TorchServe calls handle(None, context) once when the worker loads
            return None
        out = []
        for row in data:
            body = row.get("body") if row.get("body") is not None else row.get("data")
            if isinstance(body, (bytes, bytearray)):
                body = json.loads(body.decode())
            if body.get("fail"):
                raise RuntimeError("failure requested by the test")
            out.append(
                {
                    "echo": body,
                    "model": context.model_name,
                    "batch_size": context.system_properties.get("batch_size"),
                }
            )
        return out
    '''
)

# TorchServe 0.12's worker needs `import torch` to succeed; this is all of torch it touches.
TORCH_STUB = textwrap.dedent(
    '''\
    """Test stub: TorchServe's worker imports torch but a torch-free handler never uses it."""


    class Tensor:
        pass


    def save(obj, f):
        raise RuntimeError("torch stub: the test handler never returns tensors")
    '''
)


def _missing_prerequisite() -> str | None:
    if importlib.util.find_spec("ts") is None:
        return "torchserve is not installed (pip install -e '.[dev]')"
    if importlib.util.find_spec("model_archiver") is None:
        return "torch-model-archiver is not installed (pip install -e '.[dev]')"
    java_home = os.environ.get("JAVA_HOME")
    if not (java_home and Path(java_home, "bin", "java").is_file()) and shutil.which("java") is None:
        return "TorchServe's frontend needs Java, but no `java` on PATH (or JAVA_HOME)"
    return None


_missing = _missing_prerequisite()
if _missing is not None:
    pytest.skip(_missing, allow_module_level=True)


def _tool(name: str) -> str:
    """A console script installed next to this interpreter (the venv), else on PATH."""
    local = Path(sys.executable).parent / name
    found = str(local) if local.is_file() else shutil.which(name)
    if found is None:
        pytest.skip(f"{name} not found next to {sys.executable} or on PATH")
    return found


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_spec(**overrides: Any) -> ModelDeploymentSpec:
    body: dict[str, Any] = {
        "runtime": "torchserve",
        "model": {
            "name": "echo",
            "version": "2.1",
            "storageUri": "s3://models-bucket/echo/2.1",
            "runtimeConfig": {
                "maxBatchSize": 4,
                "dynamicBatching": {"maxQueueDelayMicroseconds": 2500},
                "workers": 2,
                "responseTimeoutSeconds": 30,
            },
        },
        **overrides,
    }
    return ModelDeploymentSpec.model_validate(body)


def read_properties(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            out[key] = value
    return out


@dataclass
class Server:
    spec: ModelDeploymentSpec
    workdir: Path
    proc: subprocess.Popen[bytes]
    inference: str
    management: str
    metrics: str

    def keys(self) -> dict[str, Any]:
        return dict(json.loads((self.workdir / "key_file.json").read_text()))

    def bearer(self, api: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys()[api]['key']}"}

    def logs(self) -> str:
        parts = []
        for name in ("stdout.log", "logs/ts_log.log", "logs/model_log.log"):
            path = self.workdir / name
            if path.is_file():
                parts.append(f"--- {name}\n{path.read_text(errors='replace')[-4000:]}")
        return "\n".join(parts) or "(no logs)"


def build_mar(spec: ModelDeploymentSpec, root: Path) -> Path:
    """<root>/store/<model>.mar, archived with the spec's name and version."""
    src, store = root / "src", root / "store"
    src.mkdir()
    store.mkdir()
    (src / "echo_handler.py").write_text(HANDLER)
    subprocess.run(
        [
            _tool("torch-model-archiver"),
            "--model-name",
            spec.model.name,
            "--version",
            spec.model.version,
            "--handler",
            str(src / "echo_handler.py"),
            "--export-path",
            str(store),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    # the container's model path, /models/<model>.mar, is this file in the tmp store
    mar = store / Path(RUNTIME.model_path(spec)).relative_to(RUNTIME.model_repository)
    assert mar.is_file(), f"archiver wrote {sorted(p.name for p in store.iterdir())}"
    return store


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Terminate TorchServe's whole process group: launcher, Java frontend and Python workers.

    (`torchserve --stop` would only terminate the Java process found through the pid file; the
    group kill also catches workers and the foreground launcher, and cannot miss on a stale file.)
    """
    pgid = proc.pid
    for sig, wait_s in ((signal.SIGTERM, STOP_TIMEOUT_S), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            try:
                proc.wait(timeout=0.2)
            except subprocess.TimeoutExpired:
                continue
            try:
                os.killpg(pgid, 0)  # group members that outlived the launcher?
            except ProcessLookupError:
                return
            time.sleep(0.2)
    proc.wait(timeout=5)


def _wait_ready(server: Server, client: httpx.Client, auth: bool) -> None:
    """Until a prediction succeeds: frontend up, key file written (auth), model workers loaded."""
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    last = "nothing yet"
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            pytest.fail(f"torchserve exited with {server.proc.returncode}\n{server.logs()}")
        try:
            headers = server.bearer("inference") if auth else {}
            r = client.post(
                f"{server.inference}/predictions/{server.spec.model.name}", json={"x": 0}, headers=headers
            )
            if r.status_code == 200:
                return
            last = f"HTTP {r.status_code}: {r.text[:200]}"
        except (httpx.TransportError, FileNotFoundError, KeyError, json.JSONDecodeError) as e:
            last = repr(e)
        time.sleep(0.25)
    pytest.fail(f"torchserve not ready after {STARTUP_TIMEOUT_S}s (last: {last})\n{server.logs()}")


@contextmanager
def running(spec: ModelDeploymentSpec, root: Path) -> Iterator[Server]:
    store = build_mar(spec, root)
    config_dir = root / "config"
    config_dir.mkdir()

    # The config exactly as the ConfigMap carries it, except: the three listener addresses get
    # free ports (the template hardcodes 8080/8081/8082; host parts are kept), model_store points
    # at the tmp store and gRPC gets free ports (below). Nothing else is touched.
    original = RUNTIME.render_config(spec)[CONFIG_FILE]
    ports = {key: _free_port() for key in ("inference_address", "management_address", "metrics_address")}
    lines = []
    for line in original.splitlines():
        key, _, value = line.partition("=")
        if key in ports:
            line = re.sub(r":\d+$", f":{ports[key]}", line)
            assert line != f"{key}={value}", f"no port in {line!r}"
        elif key == "model_store":
            assert value == RUNTIME.model_repository
            line = f"model_store={store}"
        lines.append(line)
    # TorchServe 0.12 also always starts gRPC servers, on 127.0.0.1:7070/7071 by default (the
    # ConfigMap leaves them alone: localhost only, token-checked, one server per pod). Two servers on
    # this machine must not share them, so the copy adds free gRPC ports.
    assert not any(line.startswith("grpc_") for line in lines), "the config now sets gRPC: rewrite it"
    lines += [f"grpc_inference_port={_free_port()}", f"grpc_management_port={_free_port()}"]
    (config_dir / CONFIG_FILE).write_text("\n".join(lines) + "\n")

    # The container command line with the container paths mapped onto the tmp dir.
    def local(arg: str) -> str:
        if arg == RUNTIME.model_repository:
            return str(store)
        if arg.startswith(f"{RUNTIME.config_dir}/"):
            return str(config_dir / arg.removeprefix(f"{RUNTIME.config_dir}/"))
        return arg

    command = RUNTIME.command(spec)
    assert command == ["torchserve"]
    args = [local(a) for a in RUNTIME.args(spec)]
    assert "--foreground" in args

    env = dict(os.environ)
    # TorchServe keeps its pid file in the temp dir and refuses to start while it names a live
    # server: give each server its own temp dir (TEMP is the JVM's java.io.tmpdir).
    tmp = root / "tmp"
    tmp.mkdir()
    env.update(TMPDIR=str(tmp), TEMP=str(tmp))
    if importlib.util.find_spec("torch") is None:
        stub = root / "torch_stub"
        (stub / "torch").mkdir(parents=True)
        (stub / "torch" / "__init__.py").write_text(TORCH_STUB)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(stub), env.get("PYTHONPATH")) if p)

    with (root / "stdout.log").open("wb") as out:
        proc = subprocess.Popen(
            [_tool(command[0]), *args],
            cwd=root,  # key_file.json and logs/ land in the working dir
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so _stop reaches Java and the workers
        )
    server = Server(
        spec=spec,
        workdir=root,
        proc=proc,
        inference=f"http://127.0.0.1:{ports['inference_address']}",
        management=f"http://127.0.0.1:{ports['management_address']}",
        metrics=f"http://127.0.0.1:{ports['metrics_address']}",
    )
    try:
        with httpx.Client(timeout=10) as client:
            _wait_ready(server, client, auth=not spec.disable_auth)
        yield server
    except Exception:
        print(f"torchserve logs:\n{server.logs()}")  # captured; shown with the failure
        raise
    finally:
        _stop(proc)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running(make_spec(), tmp_path_factory.mktemp("ts-auth")) as s:
        yield s


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10) as c:
        yield c


# --- token auth on (the default) -----------------------------------------------------------------


def test_inference_with_the_generated_inference_key(server: Server, client: httpx.Client) -> None:
    keys = server.keys()
    assert {"inference", "management"} <= set(keys), keys.keys()
    r = client.post(
        f"{server.inference}/predictions/echo", json={"hello": "world"}, headers=server.bearer("inference")
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["echo"] == {"hello": "world"}
    assert body["model"] == "echo"
    # the spec's maxBatchSize reached the worker through the per-model `models` property
    assert body["batch_size"] == server.spec.model.runtime_config.max_batch_size


def assert_refused(r: httpx.Response) -> None:
    """TorchServe 0.12 answers a missing or wrong token with 400 (not 401/403) and this message."""
    assert r.status_code in (400, 401, 403), (r.status_code, r.text)
    assert "Token Authorization failed" in r.json()["message"], r.text


def test_requests_without_a_valid_token_are_refused(server: Server, client: httpx.Client) -> None:
    url = f"{server.inference}/predictions/echo"
    assert_refused(client.post(url, json={"x": 1}))
    assert_refused(client.post(url, json={"x": 1}, headers={"Authorization": "Bearer nope"}))
    # the management key is not an inference key
    assert_refused(client.post(url, json={"x": 1}, headers=server.bearer("management")))
    # /ping needs the key too (why the probes use TCP while auth is on)
    assert_refused(client.get(f"{server.inference}/ping"))
    ping = client.get(f"{server.inference}/ping", headers=server.bearer("inference"))
    assert ping.status_code == 200 and ping.json()["status"] == "Healthy", ping.text


def test_management_api_shows_the_spec_settings(server: Server, client: httpx.Client) -> None:
    rc = server.spec.model.runtime_config
    rendered = read_properties(RUNTIME.render_config(server.spec)[CONFIG_FILE])
    model_props = json.loads(rendered["models"])["echo"]["2.1"]

    assert_refused(client.get(f"{server.management}/models/echo"))
    r = client.get(f"{server.management}/models/echo", headers=server.bearer("management"))
    assert r.status_code == 200, r.text
    [described] = r.json()
    assert described["modelName"] == "echo"
    assert described["modelVersion"] == "2.1"
    assert described["batchSize"] == model_props["batchSize"] == rc.max_batch_size == 4
    assert described["maxBatchDelay"] == model_props["maxBatchDelay"] == 3  # 2500us rounded up to ms
    assert described["minWorkers"] == model_props["minWorkers"] == rc.workers == 2
    assert described["maxWorkers"] == model_props["maxWorkers"] == rc.workers
    assert described["responseTimeout"] == rc.response_timeout_seconds == 30
    assert len(described["workers"]) == rc.workers
    assert {w["status"] for w in described["workers"]} == {"READY"}


_SAMPLE = re.compile(r"^([A-Za-z_:][A-Za-z0-9_:]*)(?:\{(.*)\})?\s+(\S+)")
_LABEL = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_exposition(text: str) -> Iterator[tuple[str, dict[str, str], float]]:
    """Samples of the Prometheus text format with their names as exported (prometheus_client's
    parser would rename counters to *_total, hiding a name mismatch with the queries)."""
    for line in text.splitlines():
        if line and not line.startswith("#"):
            match = _SAMPLE.match(line)
            assert match, f"unparsable exposition line {line!r}"
            name, labels, value = match.groups()
            yield name, dict(_LABEL.findall(labels or "")), float(value)


def _template_metrics() -> dict[str, set[str]]:
    """Metric name -> label names matched on it, over every TorchServe analysis query."""
    sources = [builtin_template("torchserve", t) for t in BUILTIN_TEMPLATES]
    sources.append(sample_count_template("torchserve"))
    used: dict[str, set[str]] = {}
    for source in sources:
        # metric{matchers}, where matchers may hold jinja2 {{ ... }} placeholders
        for name, matchers in re.findall(r"([A-Za-z_:][\w:]*)\{((?:[^{}]|\{\{[^}]*\}\})*)\}", source):
            labels = set(re.findall(r"([A-Za-z_]\w*)\s*(?:=~|!=|!~|=)", matchers))
            used.setdefault(name, set()).update(labels)
    return used


def test_template_metric_names_and_labels_are_exported(server: Server, client: httpx.Client) -> None:
    used = _template_metrics()
    assert set(used) == {
        "ts_inference_requests_total",
        "ts_inference_latency_microseconds",
        "ts_queue_latency_microseconds",
        "Requests5XX",
    }, "the templates changed: review what this test checks"

    url = f"{server.inference}/predictions/echo"
    ok = 5
    for i in range(ok):
        r = client.post(url, json={"i": i}, headers=server.bearer("inference"))
        assert r.status_code == 200, r.text
    # addressed by version: the frontend labels the series model_version="2.1", not "default"
    versioned = client.post(f"{url}/2.1", json={"v": 1}, headers=server.bearer("inference"))
    assert versioned.status_code == 200, versioned.text
    failed = client.post(url, json={"fail": True}, headers=server.bearer("inference"))
    assert 500 <= failed.status_code < 600, failed.text
    assert_refused(client.post(url, json={"x": 1}))

    # no token needed: Prometheus scrapes this port without credentials
    r = client.get(f"{server.metrics}/metrics")
    assert r.status_code == 200, r.text
    samples: dict[str, list[dict[str, str]]] = {}
    values: dict[str, float] = {}
    for name, labels, value in parse_exposition(r.text):
        samples.setdefault(name, []).append(labels)
        if labels.get(RUNTIME.metrics.model_label) == "echo" or name.startswith("Requests"):
            values[name] = values.get(name, 0.0) + value

    for name, matched in used.items():
        assert name in samples, f"{name} (used by the analysis templates) not exported; got {sorted(samples)}"
        scrape_labels = matched & set(TARGET_LABELS)
        own_labels = matched - scrape_labels
        for exported in samples[name]:
            # namespace/md/revision come from the scrape's relabelling: TorchServe must not export
            # them itself (Prometheus would rename them exported_* and the selectors would miss).
            assert not scrape_labels & set(exported), (name, exported)
            assert own_labels <= set(exported), (name, exported)
    for name in RUNTIME.metrics.names():
        assert name in samples, f"RuntimeMetrics.{name} not exported"

    # The per-model series carry the labels RuntimeMetrics declares. The version label is the version
    # the request URL names: "default" for /predictions/<name>, the archive version for
    # /predictions/<name>/<version>; it is not the spec's version unless clients address it.
    m = RUNTIME.metrics
    for per_model in (m.requests_total, m.request_duration_us, m.queue_duration_us):
        assert per_model is not None
        series = samples[per_model]
        versions = {e.get(m.version_label) for e in series if e.get(m.model_label) == "echo"}
        assert versions == {"default", "2.1"}, (per_model, series)
    # the request counter includes failed requests (the error-rate denominator relies on it)
    assert values["ts_inference_requests_total"] >= ok + 2
    assert values["ts_inference_latency_microseconds"] > 0
    assert values["Requests5XX"] >= 1
    assert values["Requests2XX"] >= ok + 1
    assert values["Requests4XX"] >= 1


# --- disableAuth -----------------------------------------------------------------------------------


def test_disable_auth_serves_ping_and_inference_without_a_token(tmp_path: Path, client: httpx.Client) -> None:
    spec = make_spec(disableAuth=True)
    assert "--disable-token-auth" in RUNTIME.args(spec)
    with running(spec, tmp_path) as server:
        ping = client.get(f"{server.inference}/ping")
        assert ping.status_code == 200 and ping.json()["status"] == "Healthy", ping.text
        # the readiness probe the operator generates for this spec is exactly this request
        probe = RUNTIME.probes(spec).readiness["httpGet"]
        assert probe["path"] == "/ping" and probe["port"] == RUNTIME.serving_port
        r = client.post(f"{server.inference}/predictions/echo", json={"a": 1})
        assert r.status_code == 200, r.text
        assert r.json()["echo"] == {"a": 1}
        described = client.get(f"{server.management}/models/echo")
        assert described.status_code == 200, described.text
        assert described.json()[0]["batchSize"] == 4
