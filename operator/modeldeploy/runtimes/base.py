"""The one interface every serving runtime implements.

A runtime describes how its server runs in a pod: image, ports, command line, probes, where the
model goes in the container, where Prometheus finds its metrics and what they are called, and the
config files it reads (rendered from jinja2 templates). Everything here is pure: no I/O, no
Kubernetes client. Adding a runtime = one module subclassing :class:`Runtime` + one registry line.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from modeldeploy.api.spec import ModelDeploymentSpec

Probe = dict[str, Any]

MODEL_REPOSITORY = "/models"
CONFIG_DIR = "/config"


@dataclass(frozen=True)
class Probes:
    """Kubernetes probe objects for the server container."""

    startup: Probe
    readiness: Probe
    liveness: Probe


@dataclass(frozen=True)
class RuntimeMetrics:
    """Prometheus names the runtime exports, by role; ``None`` where the runtime has no such series.

    Counters unless noted. Durations are cumulative microseconds (rate(duration) / rate(requests)
    is the mean latency). ``*_summary_us`` are Prometheus summaries with a ``quantile`` label.
    """

    model_label: str
    version_label: str
    request_success: str | None
    request_failure: str | None
    requests_total: str | None
    request_duration_us: str
    queue_duration_us: str
    request_summary_us: str | None = None
    queue_summary_us: str | None = None
    inference_count: str | None = None
    execution_count: str | None = None
    http_2xx: str | None = None
    http_4xx: str | None = None
    http_5xx: str | None = None

    def names(self) -> tuple[str, ...]:
        """Every metric name above (labels excluded), in declaration order."""
        skip = {"model_label", "version_label"}
        return tuple(v for k, v in vars(self).items() if k not in skip and isinstance(v, str))


@dataclass(frozen=True)
class MetricSuggestion:
    """A per-pod metric worth scaling on (served to the HPA by a Prometheus metrics adapter)."""

    metric: str
    description: str
    example_average_value: str


def http_probe(path: str, port: int, period: int, failures: int, timeout: int = 3) -> Probe:
    return {
        "httpGet": {"path": path, "port": port, "scheme": "HTTP"},
        "periodSeconds": period,
        "timeoutSeconds": timeout,
        "failureThreshold": failures,
    }


def tcp_probe(port: int, period: int, failures: int, timeout: int = 3) -> Probe:
    return {
        "tcpSocket": {"port": port},
        "periodSeconds": period,
        "timeoutSeconds": timeout,
        "failureThreshold": failures,
    }


def exec_probe(command: list[str], period: int, failures: int, timeout: int) -> Probe:
    """A probe that runs ``command`` in the container (a new process every ``period`` seconds)."""
    return {
        "exec": {"command": command},
        "periodSeconds": period,
        "timeoutSeconds": timeout,
        "failureThreshold": failures,
    }


# Startup probes allow 15 minutes (90 x 10s) for a large model to load before liveness applies.
STARTUP_PERIOD_S = 10
STARTUP_FAILURES = 90


class Runtime(ABC):
    """A serving runtime. Subclasses fill in the class attributes and the abstract methods."""

    name: ClassVar[str]
    #: image key (see :meth:`image_key`) -> pinned reference without a registry host.
    default_images: ClassVar[Mapping[str, str]]
    #: container ports, name -> number; every one is exposed on the Services.
    ports: ClassVar[Mapping[str, int]]
    metrics_port_name: ClassVar[str]
    #: the port clients send inference requests to (what traffic routers point at).
    serving_port_name: ClassVar[str]
    metrics_path: ClassVar[str] = "/metrics"
    metrics: ClassVar[RuntimeMetrics]
    hpa_suggestions: ClassVar[tuple[MetricSuggestion, ...]] = ()
    #: size of the in-memory /dev/shm volume when the spec sets none; ``None``: no volume.
    default_shm_size: ClassVar[str | None] = None
    model_repository: ClassVar[str] = MODEL_REPOSITORY
    #: True when :meth:`model_path` is a single file (so a pvc:// source must name a file, not a claim).
    model_path_is_file: ClassVar[bool] = False
    config_dir: ClassVar[str] = CONFIG_DIR
    #: directories the server writes at run time, volume name -> absolute path. Each gets its own
    #: emptyDir, so the server container runs with a read-only root filesystem.
    writable_dirs: ClassVar[Mapping[str, str]] = {}
    #: the server container's working directory; ``None``: the image's.
    working_dir: ClassVar[str | None] = None
    #: environment of the server container (pointing the server at its :attr:`writable_dirs`).
    environment: ClassVar[Mapping[str, str]] = {}

    @property
    def metrics_port(self) -> int:
        return self.ports[self.metrics_port_name]

    @property
    def serving_port(self) -> int:
        return self.ports[self.serving_port_name]

    # --- image -------------------------------------------------------------------------------

    @abstractmethod
    def image_key(self, gpu: bool) -> str:
        """Key into :attr:`default_images` (and the operator's ``images`` override mapping)."""

    def default_image(self, gpu: bool, images: Mapping[str, str] | None = None) -> str:
        """Operator override by image key, then by runtime name, then the pinned default."""
        key = self.image_key(gpu)
        overrides = images or {}
        return overrides.get(key) or overrides.get(self.name) or self.default_images[key]

    def image(self, spec: ModelDeploymentSpec, images: Mapping[str, str] | None = None) -> str:
        """The spec's image if set, else the operator override for this key, else the pinned default."""
        return spec.image or self.default_image(spec.resources.gpu is not None, images)

    # --- process -----------------------------------------------------------------------------

    @abstractmethod
    def command(self, spec: ModelDeploymentSpec) -> list[str]:
        """Container command (replaces the image entrypoint)."""

    @abstractmethod
    def args(self, spec: ModelDeploymentSpec) -> list[str]:
        """Container args."""

    @abstractmethod
    def probes(self, spec: ModelDeploymentSpec) -> Probes: ...

    # --- files -------------------------------------------------------------------------------

    @abstractmethod
    def model_path(self, spec: ModelDeploymentSpec) -> str:
        """Absolute path the model artifact is placed at (the storage initializer's destination,
        or the mount point of a pvc:// source)."""

    @abstractmethod
    def render_config(self, spec: ModelDeploymentSpec) -> dict[str, str]:
        """ConfigMap data: file name -> text. Mounted at :attr:`config_dir`."""

    @abstractmethod
    def storage_layout(self, spec: ModelDeploymentSpec) -> tuple[str, list[str]]:
        """Where the storage initializer places the model, and the layout flags it gets:
        ``(destination, ["--layout", NAME, ...])`` (see ``modeldeploy-storage-initializer --help``)."""

    def config_file_mounts(self, spec: ModelDeploymentSpec) -> dict[str, str]:
        """Config files that must also appear elsewhere (file name -> absolute path, subPath mount)."""
        return {}
