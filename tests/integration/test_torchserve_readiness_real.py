"""The TorchServe pod's readiness probe and read-only root filesystem, on a real TorchServe 0.12.

The generated exec probe runs as the kubelet would run it in the container (same argv, container
paths mapped, the container's working directory and environment; see
:mod:`modeldeploy_testing.torchserve`), with token authorization on. It must fail before the model is
loaded, pass once it is, fail again when a worker dies and cannot come back, keep passing across an
expiring key, and never print a key. (That the server writes only to the runtime's writable dirs
is checked in ``test_torchserve_real.py``, on its shared server.)

Needs the ``dev`` extra (torchserve, torch-model-archiver) and Java 17 (``java``); skips otherwise.
"""

from __future__ import annotations

import calendar
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from modeldeploy.api.spec import ModelDeploymentSpec
from modeldeploy.runtimes.torchserve import KEY_FILE
from modeldeploy_testing.torchserve import (
    TorchServeServer,
    gated_handler,
    missing_prerequisite,
    poll_until,
    running,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(150)]

_missing = missing_prerequisite()
if _missing is not None:
    pytest.skip(_missing, allow_module_level=True)

WORKERS = 2
STATE_TIMEOUT_S = 45.0  # a worker load or restart on a busy 2-core machine


def make_spec() -> ModelDeploymentSpec:
    return ModelDeploymentSpec.model_validate(
        {
            "runtime": "torchserve",
            "model": {
                "name": "echo",
                "version": "1",
                "storageUri": "s3://models-bucket/echo/1/echo.mar",
                "runtimeConfig": {"workers": WORKERS},
            },
        }
    )


class ProbeLog:
    """Runs the readiness probe and keeps every output, to check that no key ever appears in one."""

    def __init__(self, server: TorchServeServer) -> None:
        self.server = server
        self.outputs: list[str] = []
        self.keys: set[str] = set()

    def run(self) -> subprocess.CompletedProcess[str]:
        result = self.server.readiness_probe()
        self.outputs.append(result.stdout + result.stderr)
        self.remember_keys()
        return result

    def remember_keys(self) -> None:
        self.keys |= {entry["key"] for entry in self.server.keys().values()}

    def wait(self, passing: bool) -> str:
        """Run the probe until it passes (or fails); its last output."""
        outcome: list[subprocess.CompletedProcess[str]] = []

        def reached() -> bool:
            outcome[:] = [self.run()]
            return (outcome[0].returncode == 0) is passing

        poll_until(f"readiness probe {'passing' if passing else 'failing'}", reached, STATE_TIMEOUT_S, 0.5)
        return outcome[0].stdout.strip()

    def assert_no_key_printed(self) -> None:
        assert len(self.keys) >= 3  # inference, management, API
        for output in self.outputs:
            for key in self.keys:
                assert key not in output, "a key appeared in the probe's output"


def workers(server: TorchServeServer, client: httpx.Client) -> list[dict[str, Any]]:
    r = client.get(f"{server.management}/models/echo", headers=server.bearer("management"))
    assert r.status_code == 200, r.text
    return list(r.json()[0]["workers"])


def ping(server: TorchServeServer, client: httpx.Client) -> str:
    r = client.get(f"{server.inference}/ping", headers=server.bearer("inference"))
    return f"{r.status_code} {r.json().get('status')}"


def test_probe_is_ready_only_while_the_model_is_loaded(tmp_path: Path) -> None:
    gate = tmp_path / "gate"  # the handler's workers finish loading only while it exists
    spec = make_spec()
    with running(spec, tmp_path, handler=gated_handler(gate), until_ready=False) as server:
        log = ProbeLog(server)
        with httpx.Client(timeout=10) as client:
            # Up and answering, workers still loading: TorchServe's own /ping already says Healthy,
            # the probe does not.
            assert ping(server, client) == "200 Healthy"
            assert {w["status"] for w in workers(server, client)} == {"UNLOADING"}
            first = log.run()
            assert first.returncode == 1, (first.stdout, first.stderr)
            assert first.stdout.strip() == f"model echo: 0/{WORKERS} workers READY"

            gate.touch()
            assert log.wait(passing=True) == f"model echo: {WORKERS}/{WORKERS} workers READY"
            r = client.post(
                f"{server.inference}/predictions/echo", json={"a": 1}, headers=server.bearer("inference")
            )
            assert r.status_code == 200 and r.json()["echo"] == {"a": 1}, r.text

            # A worker dies and cannot load again (the gate is gone): not Ready, although /ping
            # still says Healthy (TorchServe counts a failing worker healthy for 5 minutes).
            gate.unlink()
            victim = workers(server, client)[0]["pid"]
            os.kill(victim, signal.SIGKILL)
            assert log.wait(passing=False) == f"model echo: {WORKERS - 1}/{WORKERS} workers READY"
            assert ping(server, client) == "200 Healthy"
            poll_until(
                "the dead worker replaced",
                lambda: victim not in {w["pid"] for w in workers(server, client)},
                STATE_TIMEOUT_S,
            )

            # TorchServe restarts the worker; once it loads, Ready again.
            gate.touch()
            assert log.wait(passing=True) == f"model echo: {WORKERS}/{WORKERS} workers READY"
        log.assert_no_key_printed()
        # the probe found the key file where the container's workingDir pins it
        assert Path(server.local(KEY_FILE)).parent == server.cwd


def _expiry(entry: dict[str, str]) -> float:
    return calendar.timegm(time.strptime(entry["expiration time"][:19], "%Y-%m-%dT%H:%M:%S"))


def test_probe_renews_expiring_keys_and_stays_ready(tmp_path: Path) -> None:
    # Keys that expire after 6 s instead of 60 minutes (the only setting added to the ConfigMap's).
    with running(
        make_spec(), tmp_path, extra_config=["token_expiration_min=0.1"], until_ready=False
    ) as server:
        log = ProbeLog(server)
        log.wait(passing=True)
        old = server.keys()
        with httpx.Client(timeout=10) as client:
            poll_until("the inference key expired", lambda: time.time() > _expiry(old["inference"]) + 1, 15)
            url = f"{server.inference}/predictions/echo"
            stale = {"Authorization": f"Bearer {old['inference']['key']}"}
            assert client.post(url, json={"a": 1}, headers=stale).status_code == 400

            result = log.run()
            assert result.returncode == 0, (result.stdout, result.stderr)
            new = server.keys()
            assert new["inference"]["key"] != old["inference"]["key"]
            assert new["management"]["key"] != old["management"]["key"]
            assert new["API"]["key"] == old["API"]["key"]  # the renewing key never changes
            # the renewed key in the file works for clients
            r = client.post(url, json={"a": 2}, headers=server.bearer("inference"))
            assert r.status_code == 200, r.text
        log.assert_no_key_printed()
