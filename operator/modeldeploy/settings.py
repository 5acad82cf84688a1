"""Operator settings: one object, from flags and MODELDEPLOY_* environment variables, failing loudly."""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from modeldeploy.leader import Timing

LOG_FORMATS = ("json", "text")


class SettingsError(ValueError):
    """A bad flag or environment value, with a message that says which and why."""


@dataclass(frozen=True)
class Settings:
    kubeconfig: str | None = None
    namespaces: tuple[str, ...] = ()  # empty: all namespaces
    prometheus_url: str = "http://127.0.0.1:9090"
    log_format: str = "json"
    log_level: str = "INFO"
    metrics_port: int = 8080
    health_port: int = 8081
    bind_address: str = "0.0.0.0"
    resync_seconds: float = 300.0
    prometheus_timeout_seconds: float = 5.0
    images: Mapping[str, str] = field(default_factory=dict)  # runtime name -> image override
    storage_initializer_image: str | None = None
    # Where pods' ports answer when the operator runs outside the pod network (see modeldeploy.smoke.client).
    pod_address_map: str | None = None
    # Leader election (modeldeploy.leader): off for a single local run, on in the Deployment manifest.
    leader_elect: bool = False
    leader_election_namespace: str = "modeldeploy-system"
    leader_election_id: str = "modeldeploy-operator-leader"
    leader_election_identity: str | None = None  # default: $POD_NAME or the hostname, + pid + random
    leader_election_timing: Timing = field(default_factory=Timing)


def _env(environ: Mapping[str, str], name: str) -> str | None:
    value = environ.get(f"MODELDEPLOY_{name}")
    return value if value else None


def _port(value: str, what: str) -> int:
    try:
        port = int(value)
    except ValueError as exc:
        raise SettingsError(f"{what} must be a port number, got {value!r}") from exc
    if not 0 <= port <= 65535:
        raise SettingsError(f"{what} must be within 0..65535, got {port}")
    return port


def _positive(value: str, what: str) -> float:
    try:
        number = float(value)
    except ValueError as exc:
        raise SettingsError(f"{what} must be a number of seconds, got {value!r}") from exc
    if number <= 0:
        raise SettingsError(f"{what} must be > 0, got {number}")
    return number


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="modeldeploy-operator",
        description=(
            "Runs the modeldeploy operator (every flag also reads MODELDEPLOY_<FLAG> from the environment)."
        ),
    )
    p.add_argument("--kubeconfig", help="kubeconfig file (default: in-cluster, then $KUBECONFIG)")
    p.add_argument(
        "--namespace",
        action="append",
        dest="namespaces",
        help="namespace to watch; repeat for several (default: all; env MODELDEPLOY_NAMESPACES=a,b)",
    )
    p.add_argument(
        "--prometheus-url", help="Prometheus base URL for analysis (env MODELDEPLOY_PROMETHEUS_URL)"
    )
    p.add_argument("--log-format", choices=LOG_FORMATS, help="json (default) or text")
    p.add_argument("--log-level", help="DEBUG, INFO (default), WARNING, ERROR")
    p.add_argument("--metrics-port", help="port of the /metrics endpoint (default 8080, 0 disables)")
    p.add_argument("--health-port", help="port of the /healthz liveness endpoint (default 8081, 0 disables)")
    p.add_argument("--bind-address", help="address the metrics and health endpoints listen on")
    p.add_argument("--resync-seconds", help="safety-net resync per ModelDeployment (default 300)")
    p.add_argument(
        "--image", action="append", default=[], help="runtime=image override, e.g. triton=my/triton:1"
    )
    p.add_argument("--storage-initializer-image", help="image of the model storage initializer")
    p.add_argument(
        "--pod-address-map",
        help=(
            "directory of <namespace>.<pod>.json files mapping container ports to host:port, for an "
            "operator outside the pod network (smoke tests); default: pod IPs"
        ),
    )
    election = p.add_argument_group("leader election (run several replicas, one acts)")
    election.add_argument(
        "--leader-elect",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="hold a coordination.k8s.io Lease before acting (default off; the Deployment turns it on)",
    )
    election.add_argument(
        "--leader-election-namespace", help="namespace of the Lease (default modeldeploy-system)"
    )
    election.add_argument(
        "--leader-election-id", help="name of the Lease (default modeldeploy-operator-leader)"
    )
    election.add_argument(
        "--leader-election-identity",
        help="this replica's holder identity (default: $POD_NAME or hostname, pid, random)",
    )
    election.add_argument("--lease-duration-seconds", help=f"default {Timing.lease_duration:g}")
    election.add_argument("--renew-deadline-seconds", help=f"default {Timing.renew_deadline:g}")
    election.add_argument("--retry-period-seconds", help=f"default {Timing.retry_period:g}")
    return p


def _flag(value: str | None, what: str) -> bool | None:
    if value is None:
        return None
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise SettingsError(f"{what} must be true or false, got {value!r}")


def load(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if environ is None else environ
    args = parser().parse_args(argv)

    def pick(flag: str | None, name: str) -> str | None:
        return flag if flag is not None else _env(env, name)

    namespaces: tuple[str, ...] = tuple(args.namespaces or ())
    if not namespaces and _env(env, "NAMESPACES"):
        namespaces = tuple(n.strip() for n in (_env(env, "NAMESPACES") or "").split(",") if n.strip())
    log_format = pick(args.log_format, "LOG_FORMAT") or "json"
    if log_format not in LOG_FORMATS:
        raise SettingsError(f"MODELDEPLOY_LOG_FORMAT must be json or text, got {log_format!r}")
    log_level = (pick(args.log_level, "LOG_LEVEL") or "INFO").upper()
    if log_level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise SettingsError(f"log level must be DEBUG, INFO, WARNING or ERROR, got {log_level!r}")
    images: dict[str, str] = {}
    raw_images = list(args.image) + [i for i in (_env(env, "IMAGES") or "").split(",") if i.strip()]
    for item in raw_images:
        runtime, sep, image = item.partition("=")
        if not sep or not runtime.strip() or not image.strip():
            raise SettingsError(f"--image takes runtime=image, got {item!r}")
        images[runtime.strip()] = image.strip()
    prometheus_url = pick(args.prometheus_url, "PROMETHEUS_URL") or Settings.prometheus_url
    if not prometheus_url.startswith(("http://", "https://")):
        raise SettingsError(f"--prometheus-url must start with http:// or https://, got {prometheus_url!r}")
    timing = Timing(
        lease_duration=_positive(
            pick(args.lease_duration_seconds, "LEASE_DURATION_SECONDS") or str(Timing.lease_duration),
            "--lease-duration-seconds",
        ),
        renew_deadline=_positive(
            pick(args.renew_deadline_seconds, "RENEW_DEADLINE_SECONDS") or str(Timing.renew_deadline),
            "--renew-deadline-seconds",
        ),
        retry_period=_positive(
            pick(args.retry_period_seconds, "RETRY_PERIOD_SECONDS") or str(Timing.retry_period),
            "--retry-period-seconds",
        ),
    )
    if problem := timing.problem():
        raise SettingsError(f"leader election: {problem}")
    leader_elect = args.leader_elect
    if leader_elect is None:
        leader_elect = _flag(_env(env, "LEADER_ELECT"), "MODELDEPLOY_LEADER_ELECT") or False
    return Settings(
        kubeconfig=pick(args.kubeconfig, "KUBECONFIG") or env.get("KUBECONFIG") or None,
        namespaces=namespaces,
        prometheus_url=prometheus_url.rstrip("/"),
        log_format=log_format,
        log_level=log_level,
        metrics_port=_port(pick(args.metrics_port, "METRICS_PORT") or "8080", "--metrics-port"),
        health_port=_port(pick(args.health_port, "HEALTH_PORT") or "8081", "--health-port"),
        bind_address=pick(args.bind_address, "BIND_ADDRESS") or "0.0.0.0",
        resync_seconds=_positive(pick(args.resync_seconds, "RESYNC_SECONDS") or "300", "--resync-seconds"),
        images=images,
        storage_initializer_image=pick(args.storage_initializer_image, "STORAGE_INITIALIZER_IMAGE"),
        pod_address_map=pick(args.pod_address_map, "POD_ADDRESS_MAP") or None,
        leader_elect=leader_elect,
        leader_election_namespace=pick(args.leader_election_namespace, "LEADER_ELECTION_NAMESPACE")
        or Settings.leader_election_namespace,
        leader_election_id=pick(args.leader_election_id, "LEADER_ELECTION_ID") or Settings.leader_election_id,
        leader_election_identity=pick(args.leader_election_identity, "LEADER_ELECTION_IDENTITY"),
        leader_election_timing=timing,
    )
