"""Sends a smoke test to one pod and records the answer (the only I/O of :mod:`modeldeploy.smoke`).

The pod is reached at ``podIP:port``, as any in-cluster client would. Where the operator runs
outside the pod network (a laptop, or the e2e harness whose pods run on loopback), an address map
says where each pod's port really is: ``--pod-address-map DIR`` holds one JSON file per pod,
``<namespace>.<pod>.json`` = ``{"<containerPort>": "host:port"}``.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import httpx

from modeldeploy.api.spec import ModelDeploymentSpec
from modeldeploy.api.status import SmokeTestResult
from modeldeploy.smoke.judge import judge
from modeldeploy.smoke.plan import plan

log = logging.getLogger("modeldeploy.smoke")
RESPONSE_LIMIT = 1024


def pod_address(pod: dict[str, Any], port: int, address_map: Path | None) -> str | None:
    """``host:port`` where the pod's container port answers; ``None`` when it is not known (no pod
    IP; or, with an address map, no entry: then the pod IP is never used, since the operator is
    outside the pod network)."""
    meta = pod.get("metadata") or {}
    if address_map is not None:
        mapped = address_map / f"{meta.get('namespace')}.{meta.get('name')}.json"
        try:
            ports = json.loads(mapped.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return str(ports[str(port)]) if str(port) in ports else None
    ip = (pod.get("status") or {}).get("podIP")
    if not ip:
        return None
    return f"[{ip}]:{port}" if ":" in str(ip) else f"{ip}:{port}"


def _clip(text: str) -> str:
    return text if len(text) <= RESPONSE_LIMIT else text[: RESPONSE_LIMIT - 1] + "…"


def run_smoke_test(
    spec: ModelDeploymentSpec, revision: str, pod_name: str, address: str, stamp: str
) -> SmokeTestResult:
    """Every exchange of the runtime's plan against ``address``; the last one is judged."""
    test = spec.smoke_test
    assert test is not None
    exchanges = plan(spec)
    deadline = time.monotonic() + test.timeout_seconds

    def result(passed: bool, message: str, code: int | None = None, body: str = "") -> SmokeTestResult:
        return SmokeTestResult(
            revision=revision,
            passed=passed,
            pod=pod_name,
            status_code=code,
            message=_clip(message),
            response=_clip(body),
            at=stamp,
        )

    with httpx.Client(base_url=f"http://{address}", timeout=test.timeout_seconds) as client:
        for i, ex in enumerate(exchanges):
            left = deadline - time.monotonic()
            if left <= 0:
                return result(False, f"timed out after {test.timeout_seconds}s before {ex.what}")
            headers = {"Content-Type": ex.content_type} if ex.content_type else {}
            try:
                resp = client.request(ex.method, ex.path, content=ex.body, headers=headers, timeout=left)
            except httpx.HTTPError as exc:
                return result(False, f"{ex.what}: {ex.method} {ex.path}: {type(exc).__name__}: {exc}")
            if i < len(exchanges) - 1:
                if resp.status_code != 200:
                    message = f"{ex.what}: {ex.method} {ex.path} answered HTTP {resp.status_code}"
                    return result(False, message, resp.status_code, resp.text)
                continue
            verdict = judge(spec.runtime, test.expect, resp.status_code, resp.text)
            log.info("smoke test %s on pod %s: %s", revision, pod_name, verdict.message)
            return result(verdict.passed, verdict.message, resp.status_code, resp.text)
    return result(False, "no exchange to run")
