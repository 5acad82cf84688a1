"""PyTorch TorchServe (0.12).

The model store is flat: ``/models/<model>.mar``, loaded at startup as ``<model>=<model>.mar``.
Per-model settings live in the ``models`` property keyed by model name and *archive version*, so
the .mar must be archived with ``--version <model.version>`` for batching/worker settings to apply.

Security: token authorization stays on unless ``disableAuth`` (then ``--disable-token-auth`` and
``disable_token_authorization=true``); the model register/delete API stays disabled (0.12 default);
the management API binds to 127.0.0.1 only and is not exposed on Services.

With token authorization on, every request on the inference port, ``/ping`` included, needs a
bearer key that TorchServe generates at startup (and expires), so probes cannot use ``/ping``: they
check the inference port by TCP. With auth disabled, readiness and startup use ``/ping``. Liveness is
always TCP: ``/ping`` fails while one worker restarts, which TorchServe handles itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

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
    tcp_probe,
)

CONFIG_FILE = "config.properties"
MANAGEMENT_PORT = 8081  # bound to localhost only


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


class TorchServe(Runtime):
    name = "torchserve"
    default_images: ClassVar[Mapping[str, str]] = {
        "torchserve-cpu": "pytorch/torchserve:0.12.0-cpu",
        "torchserve-gpu": "pytorch/torchserve:0.12.0-gpu",
    }
    ports: ClassVar[Mapping[str, int]] = {"inference": 8080, "metrics": 8082}
    serving_port_name: ClassVar[str] = "inference"
    metrics_port_name = "metrics"
    model_path_is_file = True
    metrics = RuntimeMetrics(
        model_label="model_name",
        # the version the request URL names: "default" for /predictions/<model>, not the archive's
        version_label="model_version",
        request_success=None,
        request_failure=None,
        requests_total="ts_inference_requests_total",
        request_duration_us="ts_inference_latency_microseconds",
        queue_duration_us="ts_queue_latency_microseconds",
        # Requests2XX/4XX/5XX count every HTTP response of the server (probes included), per pod.
        http_2xx="Requests2XX",
        http_4xx="Requests4XX",
        http_5xx="Requests5XX",
    )
    hpa_suggestions = (
        MetricSuggestion(
            "ts_queue_latency_microseconds",
            "rate of cumulative queue time per pod (microseconds queued per second): rises when saturated",
            "50000",
        ),
        MetricSuggestion("ts_inference_requests_total", "rate of inference requests per pod", "20"),
    )

    def image_key(self, gpu: bool) -> str:
        return "torchserve-gpu" if gpu else "torchserve-cpu"

    def mar_file(self, spec: ModelDeploymentSpec) -> str:
        return f"{spec.model.name}.mar"

    def load_models(self, spec: ModelDeploymentSpec) -> str:
        return f"{spec.model.name}={self.mar_file(spec)}"

    def command(self, spec: ModelDeploymentSpec) -> list[str]:
        return ["torchserve"]

    def args(self, spec: ModelDeploymentSpec) -> list[str]:
        args = [
            "--start",
            "--foreground",
            "--ncs",  # no config snapshots: the ConfigMap is the only configuration
            "--model-store",
            self.model_repository,
            "--ts-config",
            f"{self.config_dir}/{CONFIG_FILE}",
            "--models",
            self.load_models(spec),
        ]
        if spec.disable_auth:
            args.append("--disable-token-auth")
        return args

    def probes(self, spec: ModelDeploymentSpec) -> Probes:
        port = self.ports["inference"]
        if spec.disable_auth:
            startup = http_probe("/ping", port, STARTUP_PERIOD_S, STARTUP_FAILURES)
            readiness = http_probe("/ping", port, 5, 3)
        else:
            startup = tcp_probe(port, STARTUP_PERIOD_S, STARTUP_FAILURES)
            readiness = tcp_probe(port, 5, 3)
        return Probes(startup=startup, readiness=readiness, liveness=tcp_probe(port, 10, 3))

    def model_path(self, spec: ModelDeploymentSpec) -> str:
        return f"{self.model_repository}/{self.mar_file(spec)}"

    def render_config(self, spec: ModelDeploymentSpec) -> dict[str, str]:
        rc = spec.model.runtime_config
        batching = rc.dynamic_batching if rc.max_batch_size > 0 else None
        model: dict[str, Any] = {
            "defaultVersion": True,
            "marName": self.mar_file(spec),
            "minWorkers": rc.workers,
            "maxWorkers": rc.workers,
            "batchSize": max(rc.max_batch_size, 1),
            # TorchServe's batch delay is in milliseconds; round up so a small delay stays non-zero.
            "maxBatchDelay": _ceil_div(batching.max_queue_delay_microseconds, 1000) if batching else 1,
            "responseTimeout": rc.response_timeout_seconds,
        }
        gpu = spec.resources.gpu
        text = templating.render(
            "torchserve_config.properties.j2",
            ports=self.ports,
            management_port=MANAGEMENT_PORT,
            model_store=self.model_repository,
            load_models=self.load_models(spec),
            workers=rc.workers,
            response_timeout=rc.response_timeout_seconds,
            number_of_gpu=gpu.quantity if gpu is not None else 0,
            models={spec.model.name: {spec.model.version: model}},
            disable_auth=spec.disable_auth,
        )
        return {CONFIG_FILE: text}
