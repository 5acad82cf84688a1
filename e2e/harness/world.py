"""The e2e world: a model server for every Ready serving pod, scraped by the local Prometheus.

:class:`World` lists and watches the Pods labelled ``app.kubernetes.io/managed-by=modeldeploy``
(in one namespace or all). For every pod that is Ready, has a pod IP and carries the labels
``modeldeploy.dev/deployment``, ``modeldeploy.dev/revision`` and ``modeldeploy.dev/runtime``
(``triton`` or ``torchserve``), it starts one :class:`~harness.model_server.ModelServer` on
127.0.0.1 (a free port) and writes one Prometheus file_sd target for it::

    <targets_dir>/harness-<namespace>-<pod>.json
    [{"targets": ["127.0.0.1:PORT"],
      "labels": {"job": "modeldeploy-harness", "namespace": NS, "pod": POD, "revision": REV, "md": MD}}]

Those are exactly the target labels a PodMonitor with the relabelling documented in
``modeldeploy.analysis.templates`` attaches, so the operator's guardrail queries see the pod.
When the pod is deleted or stops being Ready, its server stops and its file is removed.

Run one World per pod: two Worlds watching the same pod write the same file name (the last one
wins) and both serve it. Tests scope their World to their own namespace.

Behaviour is set per revision (``set_behavior``) and applies to the revision's running servers and
to any started later; revisions without their own behaviour use ``default_behavior``.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from harness.model_server import FLAVORS, Behavior, Flavor, ModelServer

log = logging.getLogger(__name__)

MANAGED_SELECTOR: Final = "app.kubernetes.io/managed-by=modeldeploy"
LABEL_DEPLOYMENT: Final = "modeldeploy.dev/deployment"
LABEL_REVISION: Final = "modeldeploy.dev/revision"
LABEL_RUNTIME: Final = "modeldeploy.dev/runtime"
DEFAULT_JOB: Final = "modeldeploy-harness"
WATCH_TIMEOUT_S: Final = 240

RevisionKey = tuple[str, str, str]  # namespace, ModelDeployment name, revision
EventCallback = Callable[[str, "PodServer"], None]


@dataclass(frozen=True)
class PodServer:
    """One pod's model server and the scrape target registered for it."""

    namespace: str
    pod: str
    uid: str
    md: str
    revision: str
    runtime: Flavor
    ip: str
    server: ModelServer
    target_file: Path

    @property
    def key(self) -> RevisionKey:
        return (self.namespace, self.md, self.revision)

    def __str__(self) -> str:
        return (
            f"{self.namespace}/{self.pod} md={self.md} revision={self.revision} runtime={self.runtime} "
            f"podIP={self.ip} -> {self.server.address}"
        )


def pod_is_ready(pod: dict[str, Any]) -> bool:
    """Ready condition True, a pod IP, and not being deleted."""
    meta, status = pod.get("metadata") or {}, pod.get("status") or {}
    if meta.get("deletionTimestamp") or not status.get("podIP"):
        return False
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])


def model_of(pod: dict[str, Any], runtime: str) -> tuple[str, str | None]:
    """(model name, version) the pod serves, read from the operator's container args.

    Triton: the initializer's arguments ``URI /models/<model> --layout triton --version-dir N``;
    TorchServe: ``--models <model>=<model>.mar``. Falls back to the ModelDeployment's name (and the
    flavour's default version).
    """
    spec = pod.get("spec") or {}
    fallback = ((pod.get("metadata") or {}).get("labels") or {}).get(LABEL_DEPLOYMENT, "model")
    if runtime == "torchserve":
        for c in spec.get("containers") or []:
            args = list(c.get("args") or [])
            if "--models" in args[:-1]:
                return args[args.index("--models") + 1].split("=", 1)[0], None
        return fallback, None
    for c in spec.get("initContainers") or []:
        args = [str(a) for a in c.get("args") or []]
        if len(args) >= 2 and args[1].startswith("/models/") and "--version-dir" in args[:-1]:
            parts = args[1].strip("/").split("/")
            version = args[args.index("--version-dir") + 1]
            if len(parts) == 2 and version.isdigit():
                return parts[1], version
    return fallback, None


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in name)


def write_target(path: Path, address: str, labels: dict[str, str]) -> None:
    """Write a file_sd target atomically (Prometheus never reads half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-harness-", suffix=".partial", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump([{"targets": [address], "labels": labels}], f)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class World:
    """Model servers for the Ready serving pods of a cluster (or one namespace); see the module doc."""

    def __init__(
        self,
        kubeconfig: str | os.PathLike[str],
        targets_dir: str | os.PathLike[str],
        namespace: str | None = None,
        *,
        job: str = DEFAULT_JOB,
        label_selector: str = MANAGED_SELECTOR,
        default_behavior: Behavior | None = None,
        on_event: EventCallback | None = None,
    ) -> None:
        self.kubeconfig = Path(kubeconfig)
        self.targets_dir = Path(targets_dir)
        self.namespace = namespace
        self.job = job
        self.label_selector = label_selector
        self.on_event = on_event
        self._default = default_behavior or Behavior()
        self._overrides: dict[RevisionKey, Behavior] = {}
        self._servers: dict[str, PodServer] = {}  # by pod uid
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._stop = threading.Event()
        self._synced = threading.Event()
        self._thread: threading.Thread | None = None
        self._response: Any = None  # the open watch response, shut down by stop()
        self._api: Any = None
        self.last_error: str | None = None

    # --- lifecycle ---------------------------------------------------------------------------------

    def start(self, sync_timeout: float = 30) -> World:
        """Start watching; returns once the first list has been handled (servers started)."""
        from kubernetes import config

        new_client: Any = config.new_client_from_config
        self._api = new_client(config_file=str(self.kubeconfig))
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="harness-world", daemon=True)
        self._thread.start()
        if not self._synced.wait(sync_timeout):
            error = self.last_error
            self.stop()
            raise RuntimeError(f"World: no pod list within {sync_timeout:.0f}s; last error: {error}")
        return self

    def stop(self) -> None:
        """Stop watching, stop every server and remove every target file written."""
        self._stop.set()
        response = self._response
        if response is not None:
            try:
                response.shutdown()  # unblocks the watch read in the World thread
            except Exception as e:  # already closed
                log.debug("closing the watch: %s", e)
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
        with self._lock:
            for uid in list(self._servers):
                self._remove(uid)
        if self._api is not None:
            self._api.close()
            self._api = None

    def __enter__(self) -> World:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- behaviour ---------------------------------------------------------------------------------

    @property
    def default_behavior(self) -> Behavior:
        with self._lock:
            return self._default

    @default_behavior.setter
    def default_behavior(self, behavior: Behavior) -> None:
        with self._lock:
            self._default = behavior
            for ps in self._servers.values():
                if ps.key not in self._overrides:
                    ps.server.set_behavior(behavior)

    def behavior(self, namespace: str, md: str, revision: str) -> Behavior:
        with self._lock:
            return self._overrides.get((namespace, md, revision), self._default)

    def set_behavior(
        self,
        namespace: str,
        md: str,
        revision: str,
        behavior: Behavior | None = None,
        *,
        error_rate: float | None = None,
        latency_ms: float | None = None,
        queue_ms: float | None = None,
        down: bool | None = None,
    ) -> Behavior:
        """Set a revision's behaviour (``behavior``, or changes to its current one); returns it.

        Applies at once to the revision's running servers and to every server started for it later.
        """
        key = (namespace, md, revision)
        with self._lock:
            base = behavior or self._overrides.get(key, self._default)
            new = base.with_changes(
                error_rate=error_rate, latency_ms=latency_ms, queue_ms=queue_ms, down=down
            )
            self._overrides[key] = new
            for ps in self._servers.values():
                if ps.key == key:
                    ps.server.set_behavior(new)
            return new

    def clear_behavior(self, namespace: str, md: str, revision: str) -> None:
        """Back to ``default_behavior`` for this revision."""
        key = (namespace, md, revision)
        with self._lock:
            self._overrides.pop(key, None)
            for ps in self._servers.values():
                if ps.key == key:
                    ps.server.set_behavior(self._default)

    # --- queries -----------------------------------------------------------------------------------

    def servers(
        self, namespace: str | None = None, md: str | None = None, revision: str | None = None
    ) -> list[PodServer]:
        """The running servers, optionally filtered, sorted by namespace and pod."""
        with self._lock:
            found = [
                ps
                for ps in self._servers.values()
                if (namespace is None or ps.namespace == namespace)
                and (md is None or ps.md == md)
                and (revision is None or ps.revision == revision)
            ]
        return sorted(found, key=lambda ps: (ps.namespace, ps.pod))

    def server_for_ip(self, ip: str) -> PodServer | None:
        """The server standing in for the pod with this pod IP (what a packet to ip:port would reach)."""
        with self._lock:
            for ps in self._servers.values():
                if ps.ip == ip:
                    return ps
        return None

    def wait_for_servers(
        self,
        count: int,
        *,
        namespace: str | None = None,
        md: str | None = None,
        revision: str | None = None,
        timeout: float = 60,
    ) -> list[PodServer]:
        """Wait until exactly ``count`` servers match; returns them (AssertionError on timeout)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = self.servers(namespace, md, revision)
                if len(found) == count:
                    return found
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"timed out after {timeout:.0f}s waiting for {count} harness server(s) "
                        f"(namespace={namespace} md={md} revision={revision}); have {len(found)}: "
                        + ", ".join(ps.pod for ps in found)
                        + (f"; last watch error: {self.last_error}" if self.last_error else "")
                    )
                self._changed.wait(min(left, 1.0))

    # --- the watch loop ----------------------------------------------------------------------------

    def _core(self) -> Any:
        from kubernetes import client

        return client.CoreV1Api(self._api)

    def _list_or_watch(self, **kwargs: Any) -> Any:
        core = self._core()
        common = {"label_selector": self.label_selector, "_preload_content": False}
        if self.namespace:
            return core.list_namespaced_pod(self.namespace, **common, **kwargs)
        return core.list_pod_for_all_namespaces(**common, **kwargs)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                resource_version = self._relist()
                self._synced.set()
                self._watch(resource_version)
            except Exception as e:
                if self._stop.is_set():
                    return
                self.last_error = f"{type(e).__name__}: {e}"
                log.warning("World: pod list/watch failed (retrying in 1s): %s", self.last_error)
                self._stop.wait(1.0)

    def _relist(self) -> str:
        response = self._list_or_watch(_request_timeout=30)
        try:
            body = json.loads(response.data)
        finally:
            response.release_conn()
        pods: list[dict[str, Any]] = body.get("items") or []
        seen = set()
        with self._lock:
            for pod in pods:
                seen.add(pod["metadata"]["uid"])
                self._reconcile(pod)
            for uid in list(self._servers):
                if uid not in seen:
                    self._remove(uid)
        return str(body["metadata"]["resourceVersion"])

    def _watch(self, resource_version: str) -> None:
        """Follow the watch until it ends (server timeout, 410 Gone, error); the caller relists."""
        response = self._list_or_watch(
            watch=True,
            resource_version=resource_version,
            timeout_seconds=WATCH_TIMEOUT_S,
            _request_timeout=(10, WATCH_TIMEOUT_S + 30),
        )
        self._response = response
        try:
            if self._stop.is_set():
                return
            for event in _json_lines(response):
                kind, obj = event.get("type"), event.get("object") or {}
                if kind == "ERROR":
                    self.last_error = f"watch error: {obj.get('message')}"
                    return  # 410 Gone and friends: relist
                if kind == "BOOKMARK":
                    continue
                with self._lock:
                    if kind == "DELETED":
                        self._remove(obj["metadata"]["uid"])
                    else:
                        self._reconcile(obj)
        finally:
            self._response = None
            response.release_conn()

    # --- servers -----------------------------------------------------------------------------------

    def _reconcile(self, pod: dict[str, Any]) -> None:
        meta = pod["metadata"]
        uid = meta["uid"]
        labels = meta.get("labels") or {}
        runtime = labels.get(LABEL_RUNTIME)
        md, revision = labels.get(LABEL_DEPLOYMENT), labels.get(LABEL_REVISION)
        wanted = pod_is_ready(pod) and runtime in FLAVORS and bool(md) and bool(revision)
        current = self._servers.get(uid)
        ip = (pod.get("status") or {}).get("podIP")
        if current is not None and (not wanted or current.ip != ip):
            self._remove(uid)
            current = None
        if wanted and current is None:
            assert md and revision and runtime in FLAVORS
            self._add(pod, md, revision, runtime)

    def _add(self, pod: dict[str, Any], md: str, revision: str, runtime: Flavor) -> None:
        meta = pod["metadata"]
        namespace, name = meta["namespace"], meta["name"]
        model, version = model_of(pod, runtime)
        server = ModelServer(
            runtime,
            model=model,
            version=version,
            hostname=name,
            behavior=self.behavior(namespace, md, revision),
        ).start()
        path = self.targets_dir / f"harness-{_safe(namespace)}-{_safe(name)}.json"
        labels = {"job": self.job, "namespace": namespace, "pod": name, "revision": revision, "md": md}
        ps = PodServer(
            namespace, name, meta["uid"], md, revision, runtime, pod["status"]["podIP"], server, path
        )
        try:
            write_target(path, server.address, labels)
        except BaseException:
            server.stop()
            raise
        self._servers[ps.uid] = ps
        self._changed.notify_all()
        self._emit("started", ps)

    def _remove(self, uid: str) -> None:
        ps = self._servers.pop(uid, None)
        if ps is None:
            return
        ps.target_file.unlink(missing_ok=True)
        ps.server.stop()
        self._changed.notify_all()
        self._emit("stopped", ps)

    def _emit(self, what: str, ps: PodServer) -> None:
        if self.on_event is not None:
            try:
                self.on_event(what, ps)
            except Exception:  # a printing callback must not break the world
                log.exception("World on_event callback failed")


def _json_lines(response: Any) -> Iterator[dict[str, Any]]:
    """Decode a watch stream (one JSON object per line) as chunks arrive."""
    buffer = b""
    for chunk in response.stream(64 * 1024, decode_content=True):
        buffer += chunk
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            if line.strip():
                decoded: dict[str, Any] = json.loads(line)
                yield decoded
