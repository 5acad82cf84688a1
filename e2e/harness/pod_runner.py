"""Real bodies for the pods the operator generates: a local kubelet for the pods kwok leaves alone.

kwok makes every pod Running+Ready without running anything, except in namespaces whose name starts
with :data:`REAL_NAMESPACE_PREFIX` (its pod stages exclude them, see ``e2e/kwok/stages.yaml``).
:class:`PodRunner` watches those namespaces (or one of them) and runs each scheduled pod
(``spec.nodeName`` set) the way the pod spec says, with local programs
(:class:`harness.pod_body.PodBody`): volumes as directories, init containers (the storage
initializer) then the model server (the real ``tritonserver`` / ``torchserve``), container paths and
ports mapped (:mod:`harness.commands`), the readinessProbe as declared, and the pod's status written
through ``pods/status`` with a fake pod IP from :data:`POD_IP_PREFIX` (a label only: nothing is ever
sent there).

For each running pod it also writes

* ``<address_map_dir>/<namespace>.<pod>.json``: ``{"<containerPort>": "127.0.0.1:<local port>", ...}``
  (atomically; removed with the pod). The operator reads it when ``MODELDEPLOY_POD_ADDRESS_MAP``
  names that directory, to reach the pod (its smoke test).
* once the pod is Ready, the Prometheus file_sd target ``<targets_dir>/harness-<ns>-<pod>.json`` for the
  metrics port (the ``prometheus.io/port`` annotation, else the port named ``metrics``) with the
  labels :class:`harness.world.World` uses (``job``, ``namespace``, ``pod``, ``revision``, ``md``).

:meth:`PodRunner.server_for_ip` maps a (fake) pod IP to its :class:`RunningPod`, whose
:meth:`RunningPod.inference_call` is the runtime's real inference request (Triton: a v2 request
built from the served model's metadata; TorchServe: ``/predictions/<model>`` with the inference key),
so :class:`harness.load.Load` can route to these pods through EndpointSlices as it does for kwok's.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Final

from harness.api_json import read_json
from harness.pod_body import Backoff, PodBody
from harness.running_pod import RunningPod, metrics_port, served_triton_model, write_json_atomic
from harness.world import (
    DEFAULT_JOB,
    LABEL_DEPLOYMENT,
    LABEL_REVISION,
    LABEL_RUNTIME,
    WATCH_TIMEOUT_S,
    _json_lines,
    _safe,
    model_of,
    write_target,
)

log = logging.getLogger(__name__)

REAL_NAMESPACE_PREFIX: Final = "modeldeploy-real-"
POD_IP_PREFIX: Final = "10.244.250."  # 10.244.250.1-254: kwok hands out the low end of 10.244.0.0/16
ADDRESS_MAP_ENV: Final = "MODELDEPLOY_POD_ADDRESS_MAP"


class PodRunner:
    """Runs the pods of ``namespace`` (or of every namespace with the real-bodies prefix)."""

    def __init__(
        self,
        kubeconfig: str | os.PathLike[str],
        targets_dir: str | os.PathLike[str],
        address_map_dir: str | os.PathLike[str],
        namespace: str | None = None,
        *,
        workdir: str | os.PathLike[str] | None = None,
        job: str = DEFAULT_JOB,
        backoff: Backoff | None = None,
    ) -> None:
        if namespace is not None and not namespace.startswith(REAL_NAMESPACE_PREFIX):
            raise ValueError(
                f"namespace {namespace!r}: kwok runs it (only {REAL_NAMESPACE_PREFIX}* is left alone)"
            )
        self.kubeconfig = Path(kubeconfig)
        self.targets_dir = Path(targets_dir)
        self.address_map_dir = Path(address_map_dir)
        self.namespace = namespace
        self.job = job
        self.backoff = backoff or Backoff()
        self._own_workdir = workdir is None
        self.workdir = Path(workdir) if workdir is not None else Path(tempfile.mkdtemp(prefix="pod-runner-"))
        self._bodies: dict[str, PodBody] = {}  # by pod uid
        self._running: dict[str, RunningPod] = {}  # by pod uid, once started
        self._cleanups: list[threading.Thread] = []
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._synced = threading.Event()
        self._thread: threading.Thread | None = None
        self._response: Any = None
        self._api: Any = None
        self._next_ip = 1
        self.last_error: str | None = None

    # --- lifecycle ---------------------------------------------------------------------------------

    def start(self, sync_timeout: float = 30) -> PodRunner:
        from kubernetes import config

        new_client: Any = config.new_client_from_config
        self._api = new_client(config_file=str(self.kubeconfig))
        self._thread = threading.Thread(target=self._run, name="pod-runner", daemon=True)
        self._thread.start()
        if not self._synced.wait(sync_timeout):
            self.stop()
            raise RuntimeError(f"PodRunner: no pod list within {sync_timeout:.0f}s: {self.last_error}")
        return self

    def stop(self) -> None:
        self._stop.set()
        response = self._response
        if response is not None:
            try:
                response.shutdown()
            except Exception as e:
                log.debug("closing the watch: %s", e)
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
        with self._lock:
            uids = list(self._bodies)
        for uid in uids:
            self._forget(uid)
        with self._lock:
            cleanups = list(self._cleanups)
        for cleanup in cleanups:
            cleanup.join(timeout=90)
        if self._api is not None:
            self._api.close()
            self._api = None
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> PodRunner:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- queries -----------------------------------------------------------------------------------

    def server_for_ip(self, ip: str) -> RunningPod | None:
        with self._lock:
            return next((rp for rp in self._running.values() if rp.ip == ip), None)

    def running(self, namespace: str | None = None, md: str | None = None) -> list[RunningPod]:
        with self._lock:
            found = [
                rp
                for rp in self._running.values()
                if (namespace is None or rp.namespace == namespace) and (md is None or rp.md == md)
            ]
        return sorted(found, key=lambda rp: (rp.namespace, rp.pod))

    def wait_running(self, namespace: str, md: str, count: int, timeout: float = 60) -> list[RunningPod]:
        """Wait until exactly ``count`` pods of ``md`` run and have been Ready (AssertionError on timeout)."""
        deadline = time.monotonic() + timeout
        while True:
            found = [rp for rp in self.running(namespace, md) if rp.ready]
            if len(found) == count:
                return found
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"timed out after {timeout:.0f}s waiting for {count} Ready pod(s) of {namespace}/{md}; "
                    f"have {[rp.pod for rp in found]}; last error: {self.last_error}"
                )
            self._stop.wait(0.2)

    def pod_body(self, namespace: str, name: str) -> PodBody | None:
        """The runner's thread for a pod (its containers' processes), if it runs it."""
        with self._lock:
            return next(
                (b for b in self._bodies.values() if (b.namespace, b.name) == (namespace, name)), None
            )

    def logs(self, pod: str) -> str:
        """The logs of every container run for ``pod`` (for failure messages)."""
        with self._lock:
            roots = [b.root for b in self._bodies.values() if b.name == pod]
        parts = []
        for path in sorted(p for root in roots for p in root.glob("logs/*.log")):
            parts.append(f"--- {path.name}\n{path.read_text(errors='replace')[-3000:]}")
        return "\n".join(parts) or "(no logs)"

    # --- API access (used by the pod bodies) -------------------------------------------------------

    def _core(self) -> Any:
        from kubernetes import client

        return client.CoreV1Api(self._api)

    def _reader(self, namespace: str) -> Any:
        def read(kind: str, name: str) -> dict[str, Any] | None:
            core = self._core()
            call = core.read_namespaced_secret if kind == "secret" else core.read_namespaced_config_map
            return read_json(call, name, namespace)

        return read

    def _write_status(self, namespace: str, name: str, status: dict[str, Any]) -> bool:
        from kubernetes.client.exceptions import ApiException

        try:
            self._core().patch_namespaced_pod_status(
                name,
                namespace,
                {"status": status},
                _content_type="application/strategic-merge-patch+json",
                _request_timeout=10,
            )
        except ApiException as e:
            if e.status == 404:
                return False
            raise
        return True

    # --- the watch ---------------------------------------------------------------------------------

    def _list_or_watch(self, **kwargs: Any) -> Any:
        core = self._core()
        if self.namespace:
            return core.list_namespaced_pod(self.namespace, _preload_content=False, **kwargs)
        return core.list_pod_for_all_namespaces(_preload_content=False, **kwargs)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                response = self._list_or_watch(_request_timeout=30)
                try:
                    body = json.loads(response.data)
                finally:
                    response.release_conn()
                seen = {p["metadata"]["uid"] for p in body.get("items") or []}
                for pod in body.get("items") or []:
                    self._reconcile(pod)
                with self._lock:
                    gone = [uid for uid in self._bodies if uid not in seen]
                for uid in gone:
                    self._forget(uid)
                self._synced.set()
                self._watch(str(body["metadata"]["resourceVersion"]))
            except Exception as e:
                if self._stop.is_set():
                    return
                self.last_error = f"{type(e).__name__}: {e}"
                log.warning("PodRunner: pod list/watch failed (retrying in 1s): %s", self.last_error)
                self._stop.wait(1.0)

    def _watch(self, resource_version: str) -> None:
        response = self._list_or_watch(
            watch=True,
            resource_version=resource_version,
            timeout_seconds=WATCH_TIMEOUT_S,
            _request_timeout=(10, WATCH_TIMEOUT_S + 30),
        )
        self._response = response
        try:
            for event in _json_lines(response):
                if self._stop.is_set():
                    return
                kind, obj = event.get("type"), event.get("object") or {}
                if kind == "ERROR":
                    self.last_error = f"watch error: {obj.get('message')}"
                    return
                if kind == "DELETED":
                    self._forget(obj["metadata"]["uid"])
                elif kind in ("ADDED", "MODIFIED"):
                    self._reconcile(obj)
        finally:
            self._response = None
            response.release_conn()

    def _reconcile(self, pod: dict[str, Any]) -> None:
        meta = pod["metadata"]
        uid, namespace = meta["uid"], meta["namespace"]
        if not namespace.startswith(REAL_NAMESPACE_PREFIX):
            return
        if meta.get("deletionTimestamp"):
            self._forget(uid)
            return
        if not (pod.get("spec") or {}).get("nodeName"):
            return  # not scheduled yet
        with self._lock:
            if uid in self._bodies or self._stop.is_set():
                return
            body = PodBody(
                pod,
                # short: Unix sockets under it (TorchServe's workers, in TMPDIR) allow 108 bytes of path
                self.workdir / uid[:13],
                self._allocate_ip(),
                read=self._reader(namespace),
                write_status=self._write_status,
                backoff=self.backoff,
                on_started=self._started,
                on_ready=self._ready,
            )
            self._bodies[uid] = body
        body.start()

    def _allocate_ip(self) -> str:
        used = {b.pod_ip for b in self._bodies.values()}
        for _ in range(254):
            ip = f"{POD_IP_PREFIX}{self._next_ip}"
            self._next_ip = self._next_ip % 254 + 1
            if ip not in used:
                return ip
        raise RuntimeError("PodRunner: no free fake pod IP (254 pods running)")

    # --- registration ------------------------------------------------------------------------------

    def _address_file(self, body: PodBody) -> Path:
        return self.address_map_dir / f"{body.namespace}.{body.name}.json"

    def _target_file(self, body: PodBody) -> Path:
        return self.targets_dir / f"harness-{_safe(body.namespace)}-{_safe(body.name)}.json"

    def _started(self, body: PodBody) -> None:
        """The server containers run: publish their addresses and know how to reach them."""
        labels = body.pod["metadata"].get("labels") or {}
        server = body.main[0]
        ports = {p: local for c in body.main for p, local in c.ports.items()}
        write_json_atomic(
            self._address_file(body), {str(p): f"127.0.0.1:{local}" for p, local in ports.items()}
        )
        runtime = str(labels.get(LABEL_RUNTIME) or "")
        serving = int(((server.spec.get("ports") or [{}])[0]).get("containerPort", 0))
        running = RunningPod(
            namespace=body.namespace,
            pod=body.name,
            uid=body.uid,
            md=str(labels.get(LABEL_DEPLOYMENT) or ""),
            revision=str(labels.get(LABEL_REVISION) or ""),
            runtime=runtime,
            ip=body.pod_ip,
            ports=ports,
            serving_port=serving,
            workdir=server.cwd or body.root / "containers" / server.name,
            model=model_of(body.pod, runtime)[0],
        )
        with self._lock:
            if body.uid in self._bodies:
                self._running[body.uid] = running

    def _ready(self, body: PodBody) -> None:
        """First Ready: scrape its metrics port; learn the served model (Triton) for the load."""
        with self._lock:
            running = self._running.get(body.uid)
        if running is None:
            return
        port = metrics_port(body.pod)
        if port is not None and port in running.ports:
            labels = {"job": self.job, "namespace": running.namespace, "pod": running.pod}
            labels |= {"revision": running.revision, "md": running.md}
            write_target(self._target_file(body), running.address(port), labels)
        if running.runtime == "triton":
            learned = served_triton_model(running)
            with self._lock:
                running.model, running.inputs = learned or (running.model, running.inputs)
        with self._lock:
            running.ready = True

    def _forget(self, uid: str) -> None:
        """The pod is gone: stop its processes and remove its files (in the background: the watch
        goes on meanwhile; :meth:`stop` waits for it)."""
        with self._lock:
            body = self._bodies.pop(uid, None)
            self._running.pop(uid, None)
            if body is None:
                return
            body.stop()
            cleanup = threading.Thread(target=self._clean_up, args=(body,), name=f"{body.name}-cleanup")
            self._cleanups = [t for t in self._cleanups if t.is_alive()] + [cleanup]
        cleanup.start()

    def _clean_up(self, body: PodBody) -> None:
        body.join(timeout=60)
        self._address_file(body).unlink(missing_ok=True)
        self._target_file(body).unlink(missing_ok=True)
        shutil.rmtree(body.root, ignore_errors=True)
