"""Watch-fed state for the reconcile: the same reads as ``Kube``, answered from informers' stores.

``ClusterCache`` runs one informer per watched kind (children filtered server-side by their label).
``CachedKube`` is a ``Kube`` whose ``get``/``list`` read the cache and whose writes go to the API
server and put the object it answers into the cache (write-through), so the next pass sees its own
writes at once and a steady state stays at zero writes. Reading a kind that is not cached raises
``UncachedRead``: no read silently goes back to the API server.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from kubernetes import client as k8s

from modeldeploy.kube.informer import API_REQUESTS, Informer, OnChange
from modeldeploy.kube.rest import FIELD_MANAGER, Body, Kind, Kube, KubeError
from modeldeploy.kube.store import Store, parse_selector

log = logging.getLogger(__name__)


Query = list[tuple[str, str]]


Read = tuple[str, Kind, str | None, str]  # ("get", kind, namespace, name) or ("list", ..., selector)


@dataclass(frozen=True)
class Fingerprint:
    reads: frozenset[Read]
    versions: dict[Read, Any]


class UncachedRead(LookupError):
    """A read the cache cannot answer (a kind not watched, or a selector wider than the watch's)."""


@dataclass(frozen=True)
class Watched:
    kind: Kind
    selector: str = ""  # server-side label selector of the watch
    index_label: str | None = None  # see Store
    unread: tuple[str, ...] = ()  # see Store


class ClusterCache:
    def __init__(
        self, kube: Kube, watched: Sequence[Watched], in_scope: Callable[[str], bool] | None = None
    ) -> None:
        self._kube = kube
        self._watched = {w.kind: w for w in watched}
        self._stores = {w.kind: Store(w.selector, w.index_label, w.unread) for w in watched}
        self._by_type = {(k.api_version, k.kind): k for k in self._stores}
        self._in_scope = in_scope
        self._informers: dict[Kind, Informer] = {}

    def start(self, on_change: OnChange) -> None:
        for kind, store in self._stores.items():
            informer = Informer(self._kube, kind, store, on_change, self._in_scope)
            self._informers[kind] = informer
            informer.start()

    def wait_synced(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        return all(i.synced.wait(max(0.0, deadline - time.monotonic())) for i in self._informers.values())

    def stop(self) -> None:
        for informer in self._informers.values():
            informer.stop()

    def store(self, kind: Kind) -> Store:
        try:
            return self._stores[kind]
        except KeyError:
            raise UncachedRead(f"{kind.plural} are not watched: add them to the cache") from None

    def kind_of(self, body: Body) -> Kind | None:
        return self._by_type.get((body.get("apiVersion", ""), body.get("kind", "")))

    def watches(self, kind: Kind) -> bool:
        return kind in self._stores

    def informer(self, kind: Kind) -> Informer:
        return self._informers[kind]

    def absent(self, kind: Kind) -> bool:
        informer = self._informers.get(kind)
        return informer is not None and informer.absent


class CachedKube(Kube):
    """Reads from ``cache``; writes to the API server, written through into the cache."""

    def __init__(
        self,
        api_client: k8s.ApiClient,
        cache: ClusterCache,
        field_manager: str = FIELD_MANAGER,
        timeout: float = 30,
    ) -> None:
        super().__init__(api_client, field_manager, timeout)
        self.cache = cache
        self._pass = threading.local()  # the reads of the pass running on this thread
        self._fingerprints: dict[tuple[str, str], Fingerprint] = {}
        self._lock = threading.Lock()

    # --- what a pass read: a resync of an object whose inputs did not change is skipped ----------

    def recording(self, reconcile: Callable[[str, str], float | None]) -> Callable[[str, str], float | None]:
        """``reconcile`` that remembers, after each successful pass, the versions of all it read."""

        def recorded(namespace: str, name: str) -> float | None:
            key = (namespace, name)
            self._pass.reads = set()
            try:
                outcome = reconcile(namespace, name)
            except BaseException:
                with self._lock:
                    self._fingerprints.pop(key, None)
                raise
            finally:
                reads: set[Read] = self._pass.reads
                self._pass.reads = None
            fingerprint = Fingerprint(frozenset(reads), self._versions(reads))
            with self._lock:
                if outcome is not None and outcome < 0:  # GONE: the object is no more
                    self._fingerprints.pop(key, None)
                else:
                    self._fingerprints[key] = fingerprint
            return outcome

        return recorded

    def unchanged(self, namespace: str, name: str) -> bool:
        """Whether nothing the last pass of this object read has changed in the cache since."""
        with self._lock:
            fingerprint = self._fingerprints.get((namespace, name))
        return fingerprint is not None and self._versions(fingerprint.reads) == fingerprint.versions

    def _versions(self, reads: Iterable[Read]) -> dict[Read, Any]:
        out: dict[Read, Any] = {}
        for read in reads:
            verb, kind, namespace, what = read
            store = self.cache.store(kind)
            out[read] = store.version(namespace, what) if verb == "get" else store.versions(namespace, what)
        return out

    def _record(self, read: Read) -> None:
        reads: set[Read] | None = getattr(self._pass, "reads", None)
        if reads is not None:
            reads.add(read)

    # --- reads: the cache only -------------------------------------------------------------------

    def get(self, kind: Kind, namespace: str | None, name: str) -> Body | None:
        store = self.cache.store(kind)
        if self.cache.absent(kind):
            return None
        self._record(("get", kind, namespace, name))
        return store.get(namespace, name)

    def list(self, kind: Kind, namespace: str | None, label_selector: str = "") -> list[Body]:
        store = self.cache.store(kind)
        self._record(("list", kind, namespace, label_selector))
        wanted = set(parse_selector(label_selector))
        missing = [r for r in parse_selector(store.selector) if r not in wanted]
        if missing:
            raise UncachedRead(
                f"list of {kind.plural} with selector {label_selector!r} is wider than the watch's "
                f"{store.selector!r}"
            )
        if self.cache.absent(kind):
            return []
        return store.list(namespace, label_selector)

    # --- writes: the API server, then the cache ---------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        query: Query | None = None,
        content_type: str = "application/json",
    ) -> Body:
        if method == "GET":
            raise UncachedRead(f"GET {path}: reads come from the cache")
        API_REQUESTS.labels(method.lower(), _resource(path)).inc()
        try:
            result = super().request(method, path, body, query, content_type)
        except KubeError as exc:
            if exc.status in (409, 422) and method in ("PATCH", "PUT"):
                self._refresh(path)  # someone wrote first: the retry must not read our stale copy
            raise
        if method in ("PATCH", "PUT", "POST") and "metadata" in result:
            kind = self.cache.kind_of(result)
            if kind is not None:
                self.cache.store(kind).write_through(result)
        return result

    def _refresh(self, path: str) -> None:
        """A precondition failed: fetch the object itself into the cache, as a list of the one
        object with that name (the operator's role grants list, never get)."""
        object_path = path.removesuffix("/status")
        collection, _, name = object_path.rpartition("/")
        API_REQUESTS.labels("list", _resource(object_path)).inc()
        try:
            answer = super().request("GET", collection, query=[("fieldSelector", f"metadata.name={name}")])
        except KubeError as exc:
            log.info("re-read of %s after a conflict failed: %s", object_path, exc)
            return
        items = answer.get("items") or []
        if not items:
            return
        list_kind = str(answer.get("kind", ""))
        fresh = {"apiVersion": answer.get("apiVersion"), "kind": list_kind.removesuffix("List"), **items[0]}
        kind = self.cache.kind_of(fresh)
        if kind is not None:
            self.cache.store(kind).write_through(fresh)

    def delete(self, kind: Kind, namespace: str | None, name: str) -> bool:
        try:
            result = super().request(
                "DELETE", kind.path(namespace, name), body={"propagationPolicy": "Background"}
            )
        except KubeError as exc:
            if exc.status != 404:
                raise
            result = None
        finally:
            API_REQUESTS.labels("delete", kind.plural).inc()
        if self.cache.watches(kind):
            deleted = result if result is not None and result.get("kind") == kind.kind else None
            self.cache.store(kind).deleted_through(namespace, name, deleted)
        return result is not None


def _resource(path: str) -> str:
    """The resource of an API path (``/apis/apps/v1/namespaces/x/deployments/y/status`` -> deployments)."""
    parts = [p for p in path.split("/") if p]
    if "namespaces" in parts:
        at = parts.index("namespaces")
        rest = parts[at + 2 :]
        if rest:
            return rest[0]
    version_at = 1 if parts[:1] == ["api"] else 2
    tail = parts[version_at + 1 :]
    return tail[0] if tail else "?"
