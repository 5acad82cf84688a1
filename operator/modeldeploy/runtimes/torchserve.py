"""PyTorch TorchServe (0.12).

The model store is flat: ``/models/<model>.mar``, loaded at startup as ``<model>=<model>.mar``.
Per-model settings live in the ``models`` property keyed by model name and *archive version*, so
the .mar must be archived with ``--version <model.version>`` for batching/worker settings to apply.

Security: token authorization stays on unless ``disableAuth`` (then ``--disable-token-auth`` and
``disable_token_authorization=true``); the model register/delete API stays disabled (0.12 default);
the management API binds to 127.0.0.1 only and is not exposed on Services.

Probes. Readiness means "the model is loaded and the serving port answers": an exec probe
(:mod:`modeldeploy.runtimes.torchserve_probe`) reads the key file TorchServe generates, calls
``/ping`` with the inference key and the management API's describe call for the model with the
management key, and passes only when the model's ``minWorkers`` workers are ``READY``; it renews a
key that is about to expire. (``/ping`` alone is not enough: it answers ``Healthy`` while workers
load or restart. With ``disableAuth`` the same probe sends no key.) Each run forks a ``python3``
(stdlib sockets, no http.client/ssl imports): about 45 ms of CPU and 11 MB for a tenth of a second,
measured on a busy 2-core machine (the bare interpreter: 14 ms). Hence a 10 s period (0.5% of a
core) with 3 failures: a worker that TorchServe restarts within ~20 s does not take the pod out of
the Service, one that cannot load does. Startup and liveness check the inference port by TCP (no
process): the port opens while the model still loads, and TorchServe restarts dead workers itself,
so liveness must not restart the container.

Files. The root filesystem is read-only; TorchServe writes only to emptyDirs (:attr:`writable_dirs`):
the working directory ``/home/model-server/work`` (``key_file.json`` lands in the JVM's ``user.dir``,
pinned there by the container's ``workingDir``; also ``HOME``), ``/home/model-server/logs``
(``LOG_LOCATION``/``METRICS_LOCATION``: log4j's files) and ``/tmp`` (``TEMP``/``TMPDIR``: the
launcher's pid file, the JVM's ``java.io.tmpdir`` with the extracted .mar, the workers' Unix sockets
and Netty's native libraries, which it loads from there; the JVM's ``hsperfdata``). Traced with
strace on a serving TorchServe 0.12, nothing else is written. The official images
(``pytorch/torchserve:0.12.0-cpu``/``-gpu``, built on Ubuntu 20.04 by pytorch/serve's
``docker/build_image.sh``) run as ``model-server``, UID 1000.
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
    exec_probe,
    tcp_probe,
)
from modeldeploy.runtimes.torchserve_probe import probe_command

CONFIG_FILE = "config.properties"
MANAGEMENT_PORT = 8081  # bound to localhost only
HOME_DIR = "/home/model-server"  # the official image's user (UID 1000)
WORK_DIR = f"{HOME_DIR}/work"
LOG_DIR = f"{HOME_DIR}/logs"
TMP_DIR = "/tmp"
#: TorchServe writes the keys to ``key_file.json`` in its working directory.
KEY_FILE = f"{WORK_DIR}/key_file.json"
READINESS_PERIOD_S = 10
READINESS_TIMEOUT_S = 10  # up to four loopback requests of at most 2 s each


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
    writable_dirs: ClassVar[Mapping[str, str]] = {"work": WORK_DIR, "logs": LOG_DIR, "tmp": TMP_DIR}
    working_dir: ClassVar[str | None] = WORK_DIR
    environment: ClassVar[Mapping[str, str]] = {
        "HOME": WORK_DIR,
        "TEMP": TMP_DIR,  # the launcher passes it to the JVM as java.io.tmpdir
        "TMPDIR": TMP_DIR,
        "LOG_LOCATION": LOG_DIR,
        "METRICS_LOCATION": LOG_DIR,
    }
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

    def readiness_command(self, spec: ModelDeploymentSpec) -> list[str]:
        key_file = None if spec.disable_auth else KEY_FILE
        return probe_command(f"{self.config_dir}/{CONFIG_FILE}", key_file, spec.model.name)

    def probes(self, spec: ModelDeploymentSpec) -> Probes:
        port = self.serving_port
        readiness = exec_probe(self.readiness_command(spec), READINESS_PERIOD_S, 3, READINESS_TIMEOUT_S)
        return Probes(
            startup=tcp_probe(port, STARTUP_PERIOD_S, STARTUP_FAILURES),
            readiness=readiness,
            liveness=tcp_probe(port, 10, 3),
        )

    def storage_layout(self, spec: ModelDeploymentSpec) -> tuple[str, list[str]]:
        return self.model_path(spec), ["--layout", "torchserve"]

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
