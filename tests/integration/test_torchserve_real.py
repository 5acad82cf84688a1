"""The TorchServe configuration the operator generates works with a real TorchServe 0.12.

No cluster: :mod:`modeldeploy_testing.torchserve` renders ``config.properties`` and the container
command line with :mod:`modeldeploy.runtimes.torchserve`, archives a tiny torch-free handler and
starts ``torchserve`` exactly as the container does (same flags, working directory and environment,
container paths mapped into a tmp dir, ports moved to free ones). These tests check inference, token
auth, the Prometheus metric names the analysis templates query, and that batch size / batch delay /
workers took effect. The readiness probe and the read-only root filesystem are proven in
``test_torchserve_readiness_real.py``.

Needs the ``dev`` extra (torchserve, torch-model-archiver) and Java 17 (``java``); skips otherwise.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from modeldeploy.analysis.templates import TARGET_LABELS, builtin_template, sample_count_template
from modeldeploy.api.spec import BUILTIN_TEMPLATES, ModelDeploymentSpec
from modeldeploy.runtimes.torchserve import CONFIG_FILE, KEY_FILE, LOG_DIR, TMP_DIR, WORK_DIR
from modeldeploy_testing.torchserve import RUNTIME, TorchServeServer, missing_prerequisite, running

pytestmark = [pytest.mark.integration, pytest.mark.timeout(110)]

_missing = missing_prerequisite()
if _missing is not None:
    pytest.skip(_missing, allow_module_level=True)


def make_spec(**overrides: Any) -> ModelDeploymentSpec:
    body: dict[str, Any] = {
        "runtime": "torchserve",
        "model": {
            "name": "echo",
            "version": "2.1",
            "storageUri": "s3://models-bucket/echo/2.1/echo.mar",
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


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TorchServeServer]:
    with running(make_spec(), tmp_path_factory.mktemp("ts-auth")) as s:
        yield s


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10) as c:
        yield c


# --- token auth on (the default) -----------------------------------------------------------------


def test_inference_with_the_generated_inference_key(server: TorchServeServer, client: httpx.Client) -> None:
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


def test_requests_without_a_valid_token_are_refused(server: TorchServeServer, client: httpx.Client) -> None:
    url = f"{server.inference}/predictions/echo"
    assert_refused(client.post(url, json={"x": 1}))
    assert_refused(client.post(url, json={"x": 1}, headers={"Authorization": "Bearer nope"}))
    # the management key is not an inference key
    assert_refused(client.post(url, json={"x": 1}, headers=server.bearer("management")))
    # /ping needs the key too (why readiness is an exec probe that reads the key file)
    assert_refused(client.get(f"{server.inference}/ping"))
    ping = client.get(f"{server.inference}/ping", headers=server.bearer("inference"))
    assert ping.status_code == 200 and ping.json()["status"] == "Healthy", ping.text


def test_management_api_shows_the_spec_settings(server: TorchServeServer, client: httpx.Client) -> None:
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


def test_template_metric_names_and_labels_are_exported(
    server: TorchServeServer, client: httpx.Client
) -> None:
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
        assert not Path(server.local(KEY_FILE)).exists()
        # the generated readiness probe passes without any key file
        probe = server.readiness_probe()
        assert probe.returncode == 0, (probe.stdout, probe.stderr)
        assert probe.stdout.strip() == "model echo: 2/2 workers READY"
        r = client.post(f"{server.inference}/predictions/echo", json={"a": 1})
        assert r.status_code == 200, r.text
        assert r.json()["echo"] == {"a": 1}
        described = client.get(f"{server.management}/models/echo")
        assert described.status_code == 200, described.text
        assert described.json()[0]["batchSize"] == 4


# --- read-only root filesystem ---------------------------------------------------------------------


def test_server_writes_only_to_its_writable_dirs(server: TorchServeServer, client: httpx.Client) -> None:
    for i in range(3):
        r = client.post(
            f"{server.inference}/predictions/echo", json={"i": i}, headers=server.bearer("inference")
        )
        assert r.status_code == 200, r.text
    assert client.get(f"{server.metrics}/metrics").status_code == 200
    assert server.readiness_probe().returncode == 0
    # nothing in the mapped container tree changed outside the emptyDirs (model store and ConfigMap
    # are read-only there; as root the chmod does not bind, this comparison does)
    assert server.image_changes() == []

    # ...and each emptyDir is used: the pod needs every one of them.
    assert set(RUNTIME.writable_dirs.values()) == {WORK_DIR, LOG_DIR, TMP_DIR}
    work, logs, tmp = (Path(server.local(d)) for d in (WORK_DIR, LOG_DIR, TMP_DIR))
    assert server.cwd == work
    assert (work / "key_file.json").is_file()
    assert {"ts_log.log", "model_log.log", "access_log.log"} <= {p.name for p in logs.iterdir()}
    assert (tmp / ".model_server.pid").is_file()  # the launcher's, through TEMP
    assert any((tmp / "models").iterdir())  # the extracted .mar, through java.io.tmpdir
    workers = server.spec.model.runtime_config.workers
    assert {f".ts.sock.{9000 + i}" for i in range(workers)} <= {p.name for p in tmp.iterdir()}
