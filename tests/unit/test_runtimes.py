"""Runtime implementations: registry, rendered config files, command lines, probes, images."""

from __future__ import annotations

import ast
import re
from typing import Any

import pytest

from modeldeploy.api.spec import ModelDeploymentSpec
from modeldeploy.runtimes import RUNTIMES, Runtime, UnknownRuntimeError, get_runtime, torchserve_probe
from modeldeploy.runtimes.templating import (
    TemplateValueError,
    pbtxt_enum,
    pbtxt_int,
    pbtxt_string,
    properties_value,
)
from modeldeploy.runtimes.torchserve import KEY_FILE
from modeldeploy.runtimes.triton import version_directory

pytestmark = pytest.mark.unit

OFFICIAL_REGISTRIES = {"nvcr.io"}


def make_spec(runtime: str = "triton", **overrides: Any) -> ModelDeploymentSpec:
    uri = "s3://models-bucket/resnet/3" if runtime == "triton" else "s3://models-bucket/resnet-3.mar"
    model = {"name": "resnet", "version": "3", "storageUri": uri}
    model.update(overrides.pop("model", {}))
    body: dict[str, Any] = {"runtime": runtime, "model": model, **overrides}
    return ModelDeploymentSpec.model_validate(body)


def properties(text: str) -> dict[str, str]:
    """Minimal java.util.Properties reader for the subset the template emits."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        key, _, value = line.partition("=")
        out[key] = value
    return out


# --- registry ----------------------------------------------------------------------------------


def test_registry_serves_each_runtime_by_its_name() -> None:
    assert set(RUNTIMES) == {"triton", "torchserve"}
    for name, runtime in RUNTIMES.items():
        assert isinstance(runtime, Runtime)
        assert get_runtime(name) is runtime
        assert runtime.name == name


def test_registry_rejects_unknown_runtime_with_the_known_names() -> None:
    with pytest.raises(
        UnknownRuntimeError, match=r"unknown runtime 'tfserving': expected one of torchserve, triton"
    ):
        get_runtime("tfserving")
    assert issubclass(UnknownRuntimeError, ValueError)


@pytest.mark.parametrize("name", sorted(RUNTIMES))
def test_every_runtime_exposes_its_metrics_port_and_names(name: str) -> None:
    runtime = get_runtime(name)
    assert runtime.metrics_port in runtime.ports.values()
    assert runtime.metrics_path == "/metrics"
    assert runtime.metrics.names(), "a runtime must name its Prometheus series"
    prefix = {"triton": "nv_", "torchserve": "ts_"}[name]
    assert runtime.hpa_suggestions
    assert all(s.metric.startswith(prefix) for s in runtime.hpa_suggestions)
    for image in runtime.default_images.values():
        first = image.split("/", 1)[0]
        if "." in first or ":" in first:  # a registry host: only a vendor's official one
            assert first in OFFICIAL_REGISTRIES, f"{image} names a registry that is not official"
        assert ":" in image.rsplit("/", 1)[-1], f"{image} is not pinned to a tag"


def test_triton_metric_names() -> None:
    m = get_runtime("triton").metrics
    assert (m.request_success, m.request_failure) == (
        "nv_inference_request_success",
        "nv_inference_request_failure",
    )
    assert (m.request_duration_us, m.queue_duration_us) == (
        "nv_inference_request_duration_us",
        "nv_inference_queue_duration_us",
    )
    assert (m.inference_count, m.execution_count) == ("nv_inference_count", "nv_inference_exec_count")
    assert (m.model_label, m.version_label) == ("model", "version")


def test_torchserve_metric_names() -> None:
    m = get_runtime("torchserve").metrics
    assert m.requests_total == "ts_inference_requests_total"
    assert m.request_duration_us == "ts_inference_latency_microseconds"
    assert m.queue_duration_us == "ts_queue_latency_microseconds"
    assert (m.http_2xx, m.http_4xx, m.http_5xx) == ("Requests2XX", "Requests4XX", "Requests5XX")
    assert (m.model_label, m.version_label) == ("model_name", "model_version")


# --- images ------------------------------------------------------------------------------------


def test_image_resolution_order_spec_then_operator_override_then_default() -> None:
    ts = get_runtime("torchserve")
    cpu = make_spec("torchserve")
    gpu = make_spec("torchserve", resources={"gpu": {"count": 1}})
    assert ts.image(cpu) == "pytorch/torchserve:0.12.0-cpu"
    assert ts.image(gpu) == "pytorch/torchserve:0.12.0-gpu"
    override = {"torchserve-gpu": "mirror.example/torchserve:0.12.0-gpu"}
    assert ts.image(gpu, override) == "mirror.example/torchserve:0.12.0-gpu"
    assert ts.image(cpu, override) == "pytorch/torchserve:0.12.0-cpu"
    by_runtime = {"torchserve": "mirror.example/torchserve:0.12.0", **override}
    assert ts.image(cpu, by_runtime) == "mirror.example/torchserve:0.12.0"
    assert ts.image(gpu, by_runtime) == "mirror.example/torchserve:0.12.0-gpu", "image key beats runtime name"
    pinned = make_spec("torchserve", image="team/custom-ts:1.2.3")
    assert ts.image(pinned, override) == "team/custom-ts:1.2.3"
    # NVIDIA publishes Triton only on its own registry; 24.10 is tritonserver 2.51.0 (what the tests run)
    assert get_runtime("triton").image(make_spec()) == "nvcr.io/nvidia/tritonserver:24.10-py3"


# --- Triton ------------------------------------------------------------------------------------


def test_triton_config_pbtxt_with_dynamic_batching_on_gpu() -> None:
    spec = make_spec(
        model={
            "runtimeConfig": {
                "maxBatchSize": 16,
                "platform": "onnxruntime_onnx",
                "instanceCount": 2,
                "dynamicBatching": {"maxQueueDelayMicroseconds": 2500, "preferredBatchSizes": [4, 8]},
            }
        },
        resources={"gpu": {"count": 1}},
    )
    files = get_runtime("triton").render_config(spec)
    assert list(files) == ["config.pbtxt"]
    lines = [ln for ln in files["config.pbtxt"].splitlines() if not ln.startswith("#")]
    assert lines == [
        'name: "resnet"',
        'platform: "onnxruntime_onnx"',
        "max_batch_size: 16",
        "dynamic_batching {",
        "  max_queue_delay_microseconds: 2500",
        "  preferred_batch_size: [ 4, 8 ]",
        "}",
        "instance_group [",
        "  {",
        "    count: 2",
        "    kind: KIND_GPU",
        "  }",
        "]",
    ]


def test_triton_config_pbtxt_cpu_backend_without_batching() -> None:
    spec = make_spec(model={"runtimeConfig": {"platform": "python"}})
    text = get_runtime("triton").render_config(spec)["config.pbtxt"]
    assert 'backend: "python"' in text.splitlines()
    assert "platform:" not in text
    assert "max_batch_size: 0" in text.splitlines()
    assert "dynamic_batching" not in text
    assert "    kind: KIND_CPU" in text.splitlines()


def test_triton_drops_dynamic_batching_when_batching_is_off() -> None:
    spec = make_spec(model={"runtimeConfig": {"maxBatchSize": 0, "dynamicBatching": {}}})
    assert "dynamic_batching" not in get_runtime("triton").render_config(spec)["config.pbtxt"]


TENSORS_AND_WARMUP = {
    "platform": "python",
    "maxBatchSize": 4,
    "inputs": [
        {"name": "INPUT", "dataType": "TYPE_FP32", "dims": [4]},
        {"name": "input:0", "dataType": "TYPE_STRING", "dims": [-1, 2]},
    ],
    "outputs": [{"name": "OUTPUT", "dataType": "TYPE_INT64", "dims": [1]}],
    "warmup": [
        {
            "name": "zeros",
            "batchSize": 4,
            "count": 2,
            "inputs": [
                {"name": "INPUT", "dataType": "TYPE_FP32", "dims": [4], "zeroData": True},
                {"name": "input:0", "dataType": "TYPE_STRING", "dims": [3, 2], "randomData": True},
            ],
        },
        {
            "name": "one",
            "inputs": [{"name": "INPUT", "dataType": "TYPE_FP32", "dims": [4], "zeroData": True}],
        },
    ],
}


def test_triton_config_pbtxt_declares_tensors_and_warmup() -> None:
    spec = make_spec(model={"runtimeConfig": TENSORS_AND_WARMUP})
    text = get_runtime("triton").render_config(spec)["config.pbtxt"]
    assert text == (
        "# Generated by modeldeploy; inputs and outputs the spec leaves out are auto-completed by Triton.\n"
        'name: "resnet"\n'
        'backend: "python"\n'
        "max_batch_size: 4\n"
        "input [\n"
        "  {\n"
        '    name: "INPUT"\n'
        "    data_type: TYPE_FP32\n"
        "    dims: [ 4 ]\n"
        "  },\n"
        "  {\n"
        '    name: "input:0"\n'
        "    data_type: TYPE_STRING\n"
        "    dims: [ -1, 2 ]\n"
        "  }\n"
        "]\n"
        "output [\n"
        "  {\n"
        '    name: "OUTPUT"\n'
        "    data_type: TYPE_INT64\n"
        "    dims: [ 1 ]\n"
        "  }\n"
        "]\n"
        "instance_group [\n"
        "  {\n"
        "    count: 1\n"
        "    kind: KIND_CPU\n"
        "  }\n"
        "]\n"
        "model_warmup [\n"
        "  {\n"
        '    name: "zeros"\n'
        "    batch_size: 4\n"
        "    count: 2\n"
        "    inputs {\n"
        '      key: "INPUT"\n'
        "      value: {\n"
        "        data_type: TYPE_FP32\n"
        "        dims: [ 4 ]\n"
        "        zero_data: true\n"
        "      }\n"
        "    }\n"
        "    inputs {\n"
        '      key: "input:0"\n'
        "      value: {\n"
        "        data_type: TYPE_STRING\n"
        "        dims: [ 3, 2 ]\n"
        "        random_data: true\n"
        "      }\n"
        "    }\n"
        "  },\n"
        "  {\n"
        '    name: "one"\n'
        "    batch_size: 1\n"
        "    count: 1\n"
        "    inputs {\n"
        '      key: "INPUT"\n'
        "      value: {\n"
        "        data_type: TYPE_FP32\n"
        "        dims: [ 4 ]\n"
        "        zero_data: true\n"
        "      }\n"
        "    }\n"
        "  }\n"
        "]\n"
    )


def test_triton_config_without_tensors_leaves_them_to_auto_complete() -> None:
    text = get_runtime("triton").render_config(make_spec())["config.pbtxt"]
    for section in ("input [", "output [", "model_warmup"):
        assert section not in text


def _runtime_config(**changes: Any) -> dict[str, Any]:
    body = {k: v for k, v in TENSORS_AND_WARMUP.items() if k not in changes}
    return {**body, **{k: v for k, v in changes.items() if v is not None}}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"inputs": [{"name": "A", "dataType": "TYPE_FP32", "dims": [0]}]}, "dims must be -1"),
        ({"inputs": [{"name": "A", "dataType": "TYPE_FP32", "dims": [-2]}]}, "dims must be -1"),
        ({"inputs": [{"name": "A", "dataType": "TYPE_FP32", "dims": []}]}, "at least 1 item"),
        ({"inputs": [{"name": "A", "dataType": "FP32", "dims": [1]}]}, "TYPE_FP32"),
        ({"inputs": [{"name": 'A" dims: [1]', "dataType": "TYPE_FP32", "dims": [1]}]}, "pattern"),
        (
            {"outputs": [{"name": "B", "dataType": "TYPE_FP32", "dims": [1]}] * 2},
            "output names must be unique",
        ),
        ({"maxBatchSize": 2}, "warmup zeros: batchSize 4"),
        (
            {
                "maxBatchSize": 0,
                "warmup": [
                    {
                        "name": "w",
                        "batchSize": 2,
                        "inputs": [{"name": "INPUT", "dataType": "TYPE_FP32", "dims": [4], "zeroData": True}],
                    }
                ],
            },
            "batchSize 2",
        ),
        (
            {
                "warmup": [
                    {
                        "name": "w",
                        "inputs": [
                            {
                                "name": "INPUT",
                                "dataType": "TYPE_FP32",
                                "dims": [4],
                                "zeroData": True,
                                "randomData": True,
                            }
                        ],
                    }
                ]
            },
            "exactly one of zeroData",
        ),
        (
            {"warmup": [{"name": "w", "inputs": [{"name": "INPUT", "dataType": "TYPE_FP32", "dims": [4]}]}]},
            "exactly one of zeroData",
        ),
        (
            {
                "warmup": [
                    {
                        "name": "w",
                        "inputs": [
                            {"name": "INPUT", "dataType": "TYPE_FP32", "dims": [-1], "zeroData": True}
                        ],
                    }
                ]
            },
            "between 1 and",
        ),
        (
            {
                "warmup": [
                    {
                        "name": "w",
                        "inputs": [{"name": "INPUT", "dataType": "TYPE_FP32", "dims": [4], "zeroData": True}]
                        * 2,
                    }
                ]
            },
            "unique",
        ),
    ],
)
def test_triton_tensor_and_warmup_specs_are_validated(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        make_spec(model={"runtimeConfig": _runtime_config(**changes)})


def test_triton_command_line_and_probes() -> None:
    triton = get_runtime("triton")
    spec = make_spec()
    assert triton.command(spec) == ["tritonserver"]
    args = triton.args(spec)
    for expected in (
        "--model-repository=/models",
        "--http-port=8000",
        "--grpc-port=8001",
        "--metrics-port=8002",
        "--allow-metrics=true",
    ):
        assert expected in args
    assert dict(triton.ports) == {"http": 8000, "grpc": 8001, "metrics": 8002}
    probes = triton.probes(spec)
    assert probes.liveness["httpGet"] == {"path": "/v2/health/live", "port": 8000, "scheme": "HTTP"}
    assert probes.readiness["httpGet"] == {"path": "/v2/health/ready", "port": 8000, "scheme": "HTTP"}
    assert probes.startup["failureThreshold"] * probes.startup["periodSeconds"] >= 600


@pytest.mark.parametrize(
    ("version", "directory"), [("3", "3"), ("0012", "12"), ("v2", "1"), ("0", "1"), ("2.1", "1")]
)
def test_triton_version_directory_is_a_positive_integer(version: str, directory: str) -> None:
    assert version_directory(version) == directory
    spec = make_spec(model={"version": version})
    triton = get_runtime("triton")
    assert triton.model_path(spec) == f"/models/resnet/{directory}"
    assert triton.config_file_mounts(spec) == {"config.pbtxt": "/models/resnet/config.pbtxt"}


# --- TorchServe --------------------------------------------------------------------------------


def test_torchserve_config_properties_defaults() -> None:
    spec = make_spec("torchserve", model={"runtimeConfig": {"workers": 3, "responseTimeoutSeconds": 30}})
    files = get_runtime("torchserve").render_config(spec)
    assert list(files) == ["config.properties"]
    props = properties(files["config.properties"])
    assert props["metrics_mode"] == "prometheus"
    assert props["inference_address"] == "http://0.0.0.0:8080"
    assert props["metrics_address"] == "http://0.0.0.0:8082"
    assert props["management_address"] == "http://127.0.0.1:8081"
    assert props["model_store"] == "/models"
    assert props["load_models"] == "resnet=resnet.mar"
    assert props["default_workers_per_model"] == "3"
    assert props["default_response_timeout"] == "30"
    assert props["number_of_gpu"] == "0"
    assert "disable_token_authorization" not in props, "token auth must stay on by default"
    assert props["models"] == (
        '{"resnet":{"3":{"batchSize":1,"defaultVersion":true,"marName":"resnet.mar","maxBatchDelay":1,'
        '"maxWorkers":3,"minWorkers":3,"responseTimeout":30}}}'
    )


def test_torchserve_batching_delay_is_rounded_up_to_milliseconds() -> None:
    spec = make_spec(
        "torchserve",
        model={"runtimeConfig": {"maxBatchSize": 8, "dynamicBatching": {"maxQueueDelayMicroseconds": 2500}}},
        resources={"gpu": {"count": 2}},
    )
    props = properties(get_runtime("torchserve").render_config(spec)["config.properties"])
    assert '"batchSize":8' in props["models"]
    assert '"maxBatchDelay":3' in props["models"]
    assert props["number_of_gpu"] == "2"


def test_torchserve_auth_on_by_default() -> None:
    ts = get_runtime("torchserve")
    spec = make_spec("torchserve")
    args = ts.args(spec)
    assert "--disable-token-auth" not in args
    assert args[:3] == ["--start", "--foreground", "--ncs"]
    assert args[args.index("--ts-config") + 1] == "/config/config.properties"
    assert args[args.index("--model-store") + 1] == "/models"
    assert args[args.index("--models") + 1] == "resnet=resnet.mar"
    probes = ts.probes(spec)
    # /ping needs a bearer key while auth is on (and says Healthy while workers load): readiness is
    # an exec probe that reads the key file TorchServe writes into its working directory
    assert probes.readiness["exec"]["command"] == [
        "python3",
        "-I",
        "-S",
        "-c",
        torchserve_probe.SCRIPT,
        "/config/config.properties",
        "/home/model-server/work/key_file.json",
        "resnet",
    ]
    assert probes.readiness["periodSeconds"] == 10
    # up to four loopback requests (two key renewals, /ping, describe) fit in the probe's timeout
    assert probes.readiness["timeoutSeconds"] >= 4 * torchserve_probe.REQUEST_TIMEOUT_S
    for probe in (probes.startup, probes.liveness):  # no process forked for these
        assert probe["tcpSocket"] == {"port": 8080}
    assert probes.startup["failureThreshold"] * probes.startup["periodSeconds"] >= 600
    assert f"{ts.working_dir}/key_file.json" == KEY_FILE
    assert ts.working_dir in ts.writable_dirs.values()


def test_torchserve_disable_auth_adds_flag_property_and_a_probe_without_key() -> None:
    ts = get_runtime("torchserve")
    spec = make_spec("torchserve", disableAuth=True)
    assert ts.args(spec)[-1] == "--disable-token-auth"
    props = properties(ts.render_config(spec)["config.properties"])
    assert props["disable_token_authorization"] == "true"
    probes = ts.probes(spec)
    command = probes.readiness["exec"]["command"]
    assert command[-3:] == ["/config/config.properties", torchserve_probe.NO_KEY_FILE, "resnet"]
    assert "tcpSocket" in probes.liveness


def test_torchserve_probe_script_is_python_3_9_and_reads_the_rendered_ports() -> None:
    # the official 0.12 images run Python 3.9
    ast.parse(torchserve_probe.SCRIPT, feature_version=(3, 9))
    props = properties(get_runtime("torchserve").render_config(make_spec("torchserve"))["config.properties"])
    assert props["inference_address"].rsplit(":", 1)[1] == "8080"
    assert props["management_address"] == "http://127.0.0.1:8081"  # the probe runs in the container
    assert '"inference_address"' in torchserve_probe.SCRIPT
    assert '"management_address"' in torchserve_probe.SCRIPT


def test_writable_dirs_cover_every_path_the_environment_names() -> None:
    for runtime in RUNTIMES.values():
        dirs = list(runtime.writable_dirs.values())
        assert dirs and len(set(dirs)) == len(dirs), runtime.name
        assert all(d.startswith("/") for d in dirs)
        for name, value in runtime.environment.items():
            if value.startswith("/"):
                assert value in dirs, (runtime.name, name)
        if runtime.working_dir is not None:
            assert runtime.working_dir in dirs
    assert get_runtime("triton").writable_dirs == {"tmp": "/tmp", "home": "/home/triton-server"}
    assert get_runtime("triton").environment == {"HOME": "/home/triton-server"}
    ts = get_runtime("torchserve")
    assert set(ts.writable_dirs.values()) == {"/tmp", "/home/model-server/work", "/home/model-server/logs"}
    assert ts.environment["TEMP"] == "/tmp"  # the launcher's pid file and the JVM's java.io.tmpdir
    assert ts.environment["LOG_LOCATION"] == ts.environment["METRICS_LOCATION"] == "/home/model-server/logs"


def test_torchserve_model_path_is_the_mar_in_the_flat_store() -> None:
    ts = get_runtime("torchserve")
    spec = make_spec("torchserve")
    assert ts.model_path(spec) == "/models/resnet.mar"
    assert ts.config_file_mounts(spec) == {}
    assert dict(ts.ports) == {"inference": 8080, "metrics": 8082}


# --- filters -----------------------------------------------------------------------------------


def test_pbtxt_string_escapes_quotes_and_rejects_control_characters() -> None:
    assert pbtxt_string('a"b\\c') == '"a\\"b\\\\c"'
    with pytest.raises(TemplateValueError):
        pbtxt_string("a\nplatform: 'evil'")
    with pytest.raises(TemplateValueError):
        pbtxt_string(3)


def test_pbtxt_int_and_enum_validate() -> None:
    assert pbtxt_int(7) == "7"
    for bad in (True, "7", 1.5):
        with pytest.raises(TemplateValueError):
            pbtxt_int(bad)
    assert pbtxt_enum("KIND_CPU", ("KIND_GPU", "KIND_CPU")) == "KIND_CPU"
    with pytest.raises(TemplateValueError):
        pbtxt_enum("KIND_MODEL", ("KIND_GPU", "KIND_CPU"))


def test_properties_value_cannot_inject_a_new_property() -> None:
    escaped = properties_value("x\ndisable_token_authorization=true")
    assert "\n" not in escaped
    assert escaped == "x\\ndisable_token_authorization=true"
    assert properties_value(" lead") == "\\ lead"
    assert properties_value("a\\b") == "a\\\\b"
    assert properties_value("é") == "\\u00e9"
    assert properties_value(False) == "false"


@pytest.mark.parametrize("runtime", sorted(RUNTIMES))
def test_a_config_is_rendered_again_without_touching_the_filesystem(
    runtime: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every pass renders its runtime's config (it is part of the revision's name): the packaged
    templates are read and compiled once, not looked up on disk again for each render."""
    spec = make_spec(runtime)
    first = get_runtime(runtime).render_config(spec)

    def no_disk(*args: object) -> None:
        raise AssertionError(f"a template was looked up on disk again: {args}")

    import os.path

    monkeypatch.setattr(os.path, "getmtime", no_disk)
    monkeypatch.setattr(os.path, "isfile", no_disk)
    assert get_runtime(runtime).render_config(spec) == first
