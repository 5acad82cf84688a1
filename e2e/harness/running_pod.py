"""A pod the pod runner runs, as the load sees it: its local ports and one real inference request.

:meth:`RunningPod.inference_call` is the runtime's request for the model the pod serves: Triton, a
v2 ``/v2/models/<model>/infer`` with one input per input of the model's metadata (every ``-1``
dimension 1, every value 1); TorchServe, ``/predictions/<model>`` with the bearer inference key
TorchServe wrote to ``key_file.json`` in its working directory.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

log = logging.getLogger(__name__)

METRICS_PORT_ANNOTATION: Final = "prometheus.io/port"


@dataclass(frozen=True)
class InferenceCall:
    host: str
    port: int
    path: str
    body: bytes
    headers: dict[str, str]


@dataclass
class RunningPod:
    """A pod the runner runs: where its ports are and how to send it one real inference."""

    namespace: str
    pod: str
    uid: str
    md: str
    revision: str
    runtime: str
    ip: str
    ports: dict[int, int]  # containerPort -> local port
    serving_port: int  # the containerPort clients use
    workdir: Path  # the server container's working directory (TorchServe's key file)
    model: str
    inputs: list[dict[str, Any]] = field(default_factory=list)  # Triton model metadata
    ready: bool = False  # has been Ready (its scrape target is registered)

    def address(self, container_port: int) -> str:
        return f"127.0.0.1:{self.ports[container_port]}"

    def inference_call(self) -> InferenceCall:
        port = self.ports[self.serving_port]
        headers = {"Content-Type": "application/json"}
        if self.runtime == "torchserve":
            key_file = self.workdir / "key_file.json"
            if key_file.is_file():
                key = json.loads(key_file.read_text())["inference"]["key"]
                headers["Authorization"] = f"Bearer {key}"
            body: dict[str, Any] = {"data": [1, 2, 3, 4]}
            return InferenceCall(
                "127.0.0.1", port, f"/predictions/{self.model}", json.dumps(body).encode(), headers
            )
        body = {"inputs": [triton_input(i) for i in self.inputs]}
        return InferenceCall(
            "127.0.0.1", port, f"/v2/models/{self.model}/infer", json.dumps(body).encode(), headers
        )


def triton_input(meta: dict[str, Any]) -> dict[str, Any]:
    """A v2 request input for one input of the model metadata: every -1 dimension 1, values 1."""
    shape = [1 if int(d) < 0 else int(d) for d in meta["shape"]]
    count = 1
    for d in shape:
        count *= d
    value: Any = "1" if meta["datatype"] == "BYTES" else (True if meta["datatype"] == "BOOL" else 1)
    return {"name": meta["name"], "datatype": meta["datatype"], "shape": shape, "data": [value] * count}


def get_json(url: str, method: str = "GET", timeout: float = 5) -> Any:
    request = urllib.request.Request(url, method=method, data=b"{}" if method == "POST" else None)
    with urllib.request.urlopen(request, timeout=timeout) as r:
        return json.loads(r.read())


def write_json_atomic(path: Path, body: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".partial", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(body, f)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def metrics_port(pod: dict[str, Any]) -> int | None:
    """The port Prometheus scrapes: the ``prometheus.io/port`` annotation, else the port named metrics."""
    annotation = ((pod.get("metadata") or {}).get("annotations") or {}).get(METRICS_PORT_ANNOTATION)
    if annotation:
        return int(annotation)
    for c in (pod.get("spec") or {}).get("containers") or []:
        for p in c.get("ports") or []:
            if p.get("name") == "metrics":
                return int(p["containerPort"])
    return None


def served_triton_model(running: RunningPod) -> tuple[str, list[dict[str, Any]]] | None:
    """(name, inputs metadata) of the model a Triton pod serves (the first READY one); None if unknown."""
    base = f"http://{running.address(running.serving_port)}"
    try:
        index = get_json(f"{base}/v2/repository/index", method="POST")
        ready = [m["name"] for m in index if m.get("state") == "READY"]
        model = ready[0] if ready else running.model
        meta = get_json(f"{base}/v2/models/{model}")
    except (OSError, ValueError, KeyError) as e:
        log.warning("pod %s/%s: model metadata unavailable: %s", running.namespace, running.pod, e)
        return None
    return model, list(meta.get("inputs") or [])
