"""Run a container's probe as the kubelet would, against the container's local program.

``httpGet`` goes to 127.0.0.1 on the port the container port was mapped to (a named port is looked
up in the container's ports), with the probe's path, scheme and headers; 200-399 is success.
``tcpSocket`` connects to the mapped port. ``exec`` runs the command with container paths mapped
(:meth:`~harness.volumes.MountTable.rewrite`) in the container's environment; exit 0 is success.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from harness.volumes import MountTable

DEFAULT_TIMEOUT_S: Final = 1  # the kubelet's default timeoutSeconds


@dataclass(frozen=True)
class ProbeTiming:
    initial_delay_s: float
    period_s: float
    timeout_s: float
    success_threshold: int
    failure_threshold: int

    @classmethod
    def of(cls, probe: Mapping[str, Any]) -> ProbeTiming:
        return cls(
            float(probe.get("initialDelaySeconds", 0)),
            float(probe.get("periodSeconds", 10)),
            float(probe.get("timeoutSeconds", DEFAULT_TIMEOUT_S)),
            int(probe.get("successThreshold", 1)),
            int(probe.get("failureThreshold", 3)),
        )


def resolve_port(port: int | str, container: Mapping[str, Any], ports: Mapping[int, int]) -> int:
    """A probe's port (number or name) -> the local port its container port was mapped to."""
    number: int | None = port if isinstance(port, int) else None
    if isinstance(port, str):
        if port.isdigit():
            number = int(port)
        else:
            number = next(
                (int(p["containerPort"]) for p in container.get("ports") or [] if p.get("name") == port), None
            )
    if number is None or number not in ports:
        raise ValueError(f"probe port {port!r} is not a declared container port")
    return ports[number]


def run_probe(
    probe: Mapping[str, Any],
    container: Mapping[str, Any],
    ports: Mapping[int, int],
    mounts: MountTable,
    env: Mapping[str, str],
) -> tuple[bool, str]:
    """One probe attempt: (success, what happened)."""
    timeout = float(probe.get("timeoutSeconds", DEFAULT_TIMEOUT_S))
    try:
        if "httpGet" in probe:
            get = probe["httpGet"]
            port = resolve_port(get["port"], container, ports)
            if str(get.get("scheme", "HTTP")).upper() == "HTTPS":
                conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                    "127.0.0.1", port, timeout=timeout, context=ssl._create_unverified_context()
                )
            else:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
            try:
                headers = {h["name"]: h["value"] for h in get.get("httpHeaders") or []}
                conn.request("GET", str(get.get("path", "/")), headers=headers)
                response = conn.getresponse()
                response.read()
            finally:
                conn.close()
            return 200 <= response.status < 400, f"HTTP probe failed with statuscode: {response.status}"
        if "tcpSocket" in probe:
            port = resolve_port(probe["tcpSocket"]["port"], container, ports)
            with socket.create_connection(("127.0.0.1", port), timeout=timeout):
                return True, "connected"
        if "exec" in probe:
            command = [mounts.rewrite(str(a)) for a in probe["exec"]["command"]]
            result = subprocess.run(
                command, env=dict(env), capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL
            )
            output = (result.stdout + result.stderr).decode(errors="replace").strip()
            return result.returncode == 0, f"exit {result.returncode}: {output[-500:]}"
    except (OSError, http.client.HTTPException, subprocess.TimeoutExpired, ValueError) as e:
        return False, f"probe failed: {type(e).__name__}: {e}"
    return False, f"unsupported probe handler {sorted(probe)}"
