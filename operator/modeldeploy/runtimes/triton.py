"""NVIDIA Triton Inference Server.

Model repository layout: ``/models/<model>/config.pbtxt`` and ``/models/<model>/<version>/<files>``.
Triton only loads version directories whose name is a positive integer, so a non-numeric
``model.version`` (e.g. ``v2``) is served from directory ``1``; the spec's version still makes a new
revision. ``config.pbtxt`` comes from the revision's ConfigMap through a subPath mount; Triton's
auto-complete (on by default since 22.07; ``--strict-model-config`` is deprecated, so it is not
passed) fills inputs/outputs from the model file when the spec declares none; declared
``runtimeConfig.inputs``/``outputs`` and ``warmup`` (``model_warmup``: Triton runs these requests on
every instance before the model is ready) are rendered as given.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar, get_args

from modeldeploy.api.runtime_config import TritonDataType
from modeldeploy.api.spec import ModelDeploymentSpec
from modeldeploy.runtimes import templating
from modeldeploy.runtimes.base import (
    STARTUP_FAILURES,
    STARTUP_PERIOD_S,
    MetricSuggestion,
    Probes,
    Runtime,
    RuntimeMetrics,
    http_probe,
)

CONFIG_FILE = "config.pbtxt"
# Values of ``platform``; anything else in runtimeConfig.platform is a backend name (python, onnxruntime...).
PLATFORMS = (
    "tensorrt_plan",
    "tensorflow_graphdef",
    "tensorflow_savedmodel",
    "onnxruntime_onnx",
    "pytorch_libtorch",
    "ensemble",
)
INSTANCE_KINDS = ("KIND_GPU", "KIND_CPU")
HOME_DIR = "/home/triton-server"
DATA_TYPES: tuple[str, ...] = get_args(TritonDataType)


def version_directory(version: str) -> str:
    """The numeric version directory Triton loads: the version itself if a positive integer, else 1."""
    if version.isascii() and version.isdigit() and int(version) > 0:
        return str(int(version))
    return "1"


class Triton(Runtime):
    name = "triton"
    # NVIDIA's official image; release 24.10 is tritonserver 2.51.0, the version the tests run.
    default_images: ClassVar[Mapping[str, str]] = {"triton": "nvcr.io/nvidia/tritonserver:24.10-py3"}
    ports: ClassVar[Mapping[str, int]] = {"http": 8000, "grpc": 8001, "metrics": 8002}
    serving_port_name: ClassVar[str] = "http"
    metrics_port_name = "metrics"
    default_shm_size = "1Gi"
    # Read-only root filesystem. Traced (strace) on tritonserver 2.51 serving a Python-backend model,
    # Triton writes: /tmp (the Python backend's /tmp/python_env_* for every model, hard-coded),
    # /dev/shm (the stubs' shared-memory regions: the dshm volume), the model's __pycache__ (in the
    # /models emptyDir) and /var/log/nv-hostengine.log (DCGM's log: /var/log is root's, so UID 1000
    # cannot write it with or without a read-only root; only that log is lost). HOME gets an emptyDir
    # too (Python-backend libraries' caches, CUDA's JIT cache): the image's user triton-server
    # (UID 1000) has no home directory.
    writable_dirs: ClassVar[Mapping[str, str]] = {"tmp": "/tmp", "home": HOME_DIR}
    environment: ClassVar[Mapping[str, str]] = {"HOME": HOME_DIR}
    metrics = RuntimeMetrics(
        model_label="model",
        version_label="version",
        request_success="nv_inference_request_success",
        request_failure="nv_inference_request_failure",
        requests_total=None,
        request_duration_us="nv_inference_request_duration_us",
        queue_duration_us="nv_inference_queue_duration_us",
        request_summary_us="nv_inference_request_summary_us",
        queue_summary_us="nv_inference_queue_summary_us",
        inference_count="nv_inference_count",
        execution_count="nv_inference_exec_count",
    )
    hpa_suggestions = (
        MetricSuggestion(
            "nv_inference_queue_duration_us",
            "rate of cumulative queue time per pod (microseconds queued per second): rises when saturated",
            "50000",
        ),
        MetricSuggestion(
            "nv_inference_pending_request_count",
            "requests waiting or executing in the pod (gauge)",
            "8",
        ),
    )

    def image_key(self, gpu: bool) -> str:
        return "triton"  # one image serves CPU and GPU

    def command(self, spec: ModelDeploymentSpec) -> list[str]:
        return ["tritonserver"]

    def args(self, spec: ModelDeploymentSpec) -> list[str]:
        return [
            f"--model-repository={self.model_repository}",
            f"--http-port={self.ports['http']}",
            f"--grpc-port={self.ports['grpc']}",
            f"--metrics-port={self.ports['metrics']}",
            "--allow-metrics=true",
            # quantile summaries for the latency-p99/p50 guardrail templates
            "--metrics-config=summary_latencies=true",
            "--model-control-mode=none",
        ]

    def probes(self, spec: ModelDeploymentSpec) -> Probes:
        port = self.ports["http"]
        return Probes(
            # Triton answers HTTP only once the repository is loaded: allow a long startup.
            startup=http_probe("/v2/health/ready", port, STARTUP_PERIOD_S, STARTUP_FAILURES),
            readiness=http_probe("/v2/health/ready", port, 5, 3),
            liveness=http_probe("/v2/health/live", port, 10, 3),
        )

    def model_directory(self, spec: ModelDeploymentSpec) -> str:
        return f"{self.model_repository}/{spec.model.name}"

    def model_path(self, spec: ModelDeploymentSpec) -> str:
        return f"{self.model_directory(spec)}/{version_directory(spec.model.version)}"

    def storage_layout(self, spec: ModelDeploymentSpec) -> tuple[str, list[str]]:
        """The initializer fills the model directory; only version folder N is kept (see module doc)."""
        version = version_directory(spec.model.version)
        return self.model_directory(spec), ["--layout", "triton", "--version-dir", version]

    def config_file_mounts(self, spec: ModelDeploymentSpec) -> dict[str, str]:
        return {CONFIG_FILE: f"{self.model_directory(spec)}/{CONFIG_FILE}"}

    def render_config(self, spec: ModelDeploymentSpec) -> dict[str, str]:
        rc = spec.model.runtime_config
        platform = rc.platform if rc.platform in PLATFORMS else None
        backend = rc.platform if rc.platform and platform is None else None
        batching = rc.dynamic_batching if rc.max_batch_size > 0 else None
        text = templating.render(
            "triton_config.pbtxt.j2",
            name=spec.model.name,
            platform=platform,
            backend=backend,
            max_batch_size=rc.max_batch_size,
            dynamic_batching=batching,
            instance_count=rc.instance_count,
            instance_kind="KIND_GPU" if spec.resources.gpu is not None else "KIND_CPU",
            instance_kinds=INSTANCE_KINDS,
            inputs=rc.inputs or [],
            outputs=rc.outputs or [],
            warmup=rc.warmup or [],
            data_types=DATA_TYPES,
        )
        return {CONFIG_FILE: text}
