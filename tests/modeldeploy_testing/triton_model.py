"""Client side of the test model ``tests/integration/data/triton_python_model/model.py``.

The model (Triton Python backend) takes ``INPUT`` (FP32 [4]) and ``CONTROL`` (INT32 [1]) and answers
``OUTPUT`` = 2 x INPUT and ``BATCH_SIZE`` (rows in the ``execute`` call that served it). ``CONTROL``
picks how a request ends: :data:`OK`, :data:`RAISE` (``execute`` raises: a failure inside Triton),
:data:`ERROR_RESPONSE` (an error response), :data:`HOLD` (parked until the test releases it, see
:func:`hold_and_queue`; needs ``$TRITON_TEST_MODEL_GATE_DIR`` in the server's environment).

:data:`TENSORS` is the model's inputs/outputs in ModelDeployment spec form (``runtimeConfig``);
:class:`ControlledModel` sends requests to one served copy and reads its counters.

Served the way a pod would serve it: :func:`materialize` lays out the server container's volumes
from the operator's own ConfigMap and Deployment under a temporary root, :func:`triton_for` /
:func:`serving` run the container's command line on the real tritonserver (repository path and
ports localized, see :mod:`modeldeploy_testing.triton`).
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import httpx

from modeldeploy.api.common import API_VERSION
from modeldeploy.api.spec import ModelDeploymentSpec
from modeldeploy.children import BuildSettings, OwnerInfo, build_configmap, build_deployment, revision_hash
from modeldeploy.runtimes import get_runtime
from modeldeploy_testing.cluster import REPO
from modeldeploy_testing.triton import TritonPorts, TritonProcess, localize_args, scrape

MODEL_SOURCE = REPO / "tests" / "integration" / "data" / "triton_python_model" / "model.py"
GATE_ENV = "TRITON_TEST_MODEL_GATE_DIR"
OK, RAISE, ERROR_RESPONSE, HOLD = 0, 1, 2, 3
RUNTIME = get_runtime("triton")
READY_TIMEOUT_S = 120.0

TENSORS: dict[str, Any] = {
    "inputs": [
        {"name": "INPUT", "dataType": "TYPE_FP32", "dims": [4]},
        {"name": "CONTROL", "dataType": "TYPE_INT32", "dims": [1]},
    ],
    "outputs": [
        {"name": "OUTPUT", "dataType": "TYPE_FP32", "dims": [4]},
        {"name": "BATCH_SIZE", "dataType": "TYPE_INT32", "dims": [1]},
    ],
}


# --- requests --------------------------------------------------------------------------------------


def request_body(control: int, rows: int = 1, width: int = 4) -> dict[str, Any]:
    """A KServe v2 inference request: ``rows`` x INPUT (width 4 unless a bad shape is wanted)."""
    return {
        "inputs": [
            {"name": "INPUT", "shape": [rows, width], "datatype": "FP32", "data": [1.5] * (rows * width)},
            {"name": "CONTROL", "shape": [rows, 1], "datatype": "INT32", "data": [control] * rows},
        ]
    }


def output(response: httpx.Response, name: str) -> list[Any]:
    """The flat data of output ``name`` of a successful response."""
    assert response.status_code == 200, response.text
    [tensor] = [o for o in response.json()["outputs"] if o["name"] == name]
    data: list[Any] = tensor["data"]
    return data


@dataclass
class Held:
    """Requests parked by the HOLD control, and the requests queued behind them, once answered."""

    responses: dict[str, httpx.Response]  # hold-<i>, queued-<i>
    queued_for_s: float  # time the queued requests certainly waited in Triton's queue


def _held_count_is(gate: Path, count: int) -> bool:
    return len(list(gate.glob("held-*"))) == count


@dataclass(frozen=True)
class ControlledModel:
    """The test model as served by ``triton`` under the name ``name``."""

    triton: TritonProcess
    name: str

    def infer(self, client: httpx.Client, control: int, rows: int = 1, width: int = 4) -> httpx.Response:
        url = f"{self.triton.http_url}/v2/models/{self.name}/infer"
        return client.post(url, json=request_body(control, rows, width))

    def counters(self) -> dict[str, float]:
        """Its counters now: ``success``, ``inferences`` and ``failure:<reason>`` per reason."""
        m = scrape(self.triton.metrics_url)
        out = {
            "success": m.total("nv_inference_request_success", model=self.name),
            "inferences": m.total("nv_inference_count", model=self.name),
        }
        for reason in m.label_values("nv_inference_request_failure", "reason"):
            out[f"failure:{reason}"] = m.total("nv_inference_request_failure", model=self.name, reason=reason)
        return out

    def wait_counters(self, what: str, check: Callable[[dict[str, float]], bool]) -> dict[str, float]:
        """Poll the counters until ``check`` holds; the counters that satisfied it."""

        def satisfied() -> dict[str, float] | None:
            now = self.counters()
            return now if check(now) else None

        return self.triton.wait_until(what, satisfied, 30)

    def pending(self) -> float:
        return scrape(self.triton.metrics_url).total("nv_inference_pending_request_count", model=self.name)

    def hold_and_queue(
        self,
        gate: Path,
        holds: int,
        queued: int,
        min_wait_s: float,
        while_queued: Callable[[], None] | None = None,
    ) -> Held:
        """Park ``holds`` requests in model instances (one after the other, so each takes its own
        instance), queue ``queued`` OK requests behind them, keep them queued at least
        ``min_wait_s`` (calling ``while_queued`` then, if given), then release everything; returns
        once every request is answered."""
        for leftover in gate.iterdir():
            leftover.unlink()
        responses: dict[str, httpx.Response] = {}
        threads: list[threading.Thread] = []

        def send(key: str, control: int) -> None:
            with httpx.Client(timeout=90) as c:
                responses[key] = self.infer(c, control)

        def start(key: str, control: int) -> None:
            thread = threading.Thread(target=send, args=(key, control), daemon=True)
            thread.start()
            threads.append(thread)

        try:
            for i in range(holds):
                start(f"hold-{i}", HOLD)
                self.triton.wait_until(
                    f"{i + 1} held request(s) in execute()", partial(_held_count_is, gate, i + 1), 30
                )
            for i in range(queued):
                start(f"queued-{i}", OK)
            self.triton.wait_until(f"{queued} requests pending", lambda: self.pending() == queued)
            queued_since = time.monotonic()
            if while_queued is not None:
                while_queued()
            self.triton.wait_until(
                f"{min_wait_s}s with requests queued", lambda: time.monotonic() - queued_since >= min_wait_s
            )
            queued_for = time.monotonic() - queued_since
        finally:
            (gate / "release").write_text("")
        for thread in threads:
            thread.join(timeout=90)
        assert len(responses) == holds + queued, sorted(responses)
        return Held(responses, queued_for)


# --- served from what the operator generates -----------------------------------------------------


@dataclass
class Pod:
    spec: ModelDeploymentSpec
    revision: str
    root: Path  # the pod's "/"
    container: dict[str, Any]  # the server container as the Deployment has it

    def path(self, container_path: str) -> Path:
        return self.root / container_path.lstrip("/")

    @property
    def readiness_path(self) -> str:
        probe = self.container["readinessProbe"]["httpGet"]
        assert probe["port"] in (RUNTIME.ports["http"], "http"), probe
        path: str = probe["path"]
        return path


def materialize(spec: ModelDeploymentSpec, root: Path, md_name: str, namespace: str) -> Pod:
    """The server container's view of its volumes under ``root`` (the pod's "/"), built from the
    operator's own ConfigMap and Deployment for ``spec``; the test model where the storage initializer
    would leave the model (``/models/<model>/<version>/model.py``)."""
    owner = OwnerInfo(
        API_VERSION, "ModelDeployment", md_name, namespace, "00000000-0000-0000-0000-000000000001"
    )
    revision = revision_hash(spec)
    config_map = build_configmap(owner, spec, revision, RUNTIME)
    deployment = build_deployment(owner, spec, revision, 1, RUNTIME, BuildSettings())
    pod_spec = deployment["spec"]["template"]["spec"]
    [container] = pod_spec["containers"]
    volumes = {v["name"]: v for v in pod_spec["volumes"]}
    pod = Pod(spec, revision, root, container)
    for mount in container["volumeMounts"]:
        volume, target = volumes[mount["name"]], pod.path(mount["mountPath"])
        if "configMap" in volume:
            assert volume["configMap"]["name"] == config_map["metadata"]["name"]
            files = config_map["data"]
            if "subPath" in mount:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(files[mount["subPath"]])
            else:
                target.mkdir(parents=True, exist_ok=True)
                for name, text in files.items():
                    (target / name).write_text(text)
        else:  # emptyDir (the model store, /dev/shm, writable dirs)
            target.mkdir(parents=True, exist_ok=True)
    # what the storage initializer leaves in the model store
    version_dir = pod.path(RUNTIME.model_path(spec))
    version_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy(MODEL_SOURCE, version_dir / "model.py")
    return pod


def triton_for(pod: Pod, args: list[str] | None = None, gate: Path | None = None) -> TritonProcess:
    """The server container's command line, repository and ports localized; not started yet."""
    assert pod.container["command"] == ["tritonserver"]
    container_args = pod.container["args"] if args is None else args
    local_args = localize_args(container_args, pod.path(RUNTIME.model_repository), TritonPorts.free())
    env = {
        e["name"]: str(pod.path(e["value"])) if e["value"].startswith("/") else e["value"]
        for e in pod.container.get("env", [])
    }
    if gate is not None:
        env[GATE_ENV] = str(gate)
    return TritonProcess(
        local_args, log_path=pod.root.parent / "tritonserver.log", env=env, cwd=pod.root.parent
    )


@contextmanager
def serving(pod: Pod, args: list[str] | None = None, gate: Path | None = None) -> Iterator[ControlledModel]:
    """Start Triton for ``pod`` and wait until the generated readiness probe's path answers 200."""
    triton = triton_for(pod, args, gate)
    with triton:
        try:
            triton.wait_ready(pod.readiness_path, READY_TIMEOUT_S)
            yield ControlledModel(triton, pod.spec.model.name)
        except BaseException:
            print(f"tritonserver log:\n{triton.logs()[-8000:]}")  # shown with the failure
            raise
