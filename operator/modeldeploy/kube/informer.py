"""An informer: list, then watch from the list's resourceVersion, in a daemon thread, into a Store.

A watch that ends (the server's timeout) resumes from the last resourceVersion seen (bookmarks keep it
fresh); a 410 Gone - the version was compacted away, e.g. after an API server restart - re-lists,
and the store's ``replace`` turns the difference into changes (deletions missed while disconnected
included). Any other failure waits (1 s doubling to 30 s) and re-lists. A kind the API server does
not serve (404 on the list: the Gateway API CRDs are not installed) is reported absent and looked
for again every ``absent_retry`` seconds.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import Counter

from modeldeploy.kube.rest import Body, Kind, Kube, KubeError, _error
from modeldeploy.kube.store import Change, EventType, Store, key_of

log = logging.getLogger(__name__)
API_REQUESTS = Counter(
    "modeldeploy_api_requests_total",
    "Requests to the Kubernetes API by verb (get, list, watch, create, patch, delete) and resource.",
    ["verb", "resource"],
)

# (kind, event type or None for the initial listing, the change)
OnChange = Callable[[Kind, EventType | None, Change], None]
PAGE = 500


class WatchExpired(Exception):
    """410 Gone: the watch's resourceVersion is too old; only a re-list helps."""


class Informer:
    def __init__(
        self,
        kube: Kube,
        kind: Kind,
        store: Store,
        on_change: OnChange,
        in_scope: Callable[[str], bool] | None = None,
        watch_timeout: int = 300,
        absent_retry: float = 300.0,
    ) -> None:
        self.kube = kube
        self.kind = kind
        self.store = store
        self._on_change = on_change
        self._in_scope = in_scope if kind.namespaced else None
        self._watch_timeout = watch_timeout
        self._absent_retry = absent_retry
        self.synced = threading.Event()
        self.absent = False
        self.lists = 0  # how many times it listed (tests: a 410 re-lists)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"informer {kind.plural}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    # --- loop ------------------------------------------------------------------------------------

    def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                version = self._list()
                failures = 0
                while not self._stop.is_set():
                    version = self._watch(version)
            except WatchExpired:
                log.info("watch of %s expired; re-listing", self.kind.plural)
                continue
            except KubeError as exc:
                if exc.status == 404 and (self.absent or not self.synced.is_set()):
                    self._mark_absent()
                    self._stop.wait(self._absent_retry)
                    continue
                failures += 1
                log.warning("watch of %s failed (%s); re-listing", self.kind.plural, exc)
            except Exception as exc:  # connection reset, API server restarting, a malformed line
                failures += 1
                log.warning(
                    "watch of %s failed (%s: %s); re-listing", self.kind.plural, type(exc).__name__, exc
                )
            self._stop.wait(min(30.0, 2.0 ** (failures - 1)))

    def _mark_absent(self) -> None:
        if not self.absent:
            log.warning("%s is not served by the API server; watching for it to appear", self.kind.plural)
        self.absent = True
        self.synced.set()

    def _selector(self) -> list[tuple[str, str]]:
        return [("labelSelector", self.store.selector)] if self.store.selector else []

    def _list(self) -> str:
        items: list[Body] = []
        query = [*self._selector(), ("limit", str(PAGE))]
        cont = ""
        while True:
            API_REQUESTS.labels("list", self.kind.plural).inc()
            page = self.kube.request(
                "GET", self.kind.path(), query=query + ([("continue", cont)] if cont else [])
            )
            items.extend(page.get("items") or [])
            meta = page.get("metadata") or {}
            cont = meta.get("continue") or ""
            if not cont:
                version = str(meta.get("resourceVersion") or "")
                break
        api_version, kind = self.kind.api_version, self.kind.kind
        for item in items:  # list items carry no apiVersion/kind; watch events do
            item.setdefault("apiVersion", api_version)
            item.setdefault("kind", kind)
        self.lists += 1
        first = not self.synced.is_set() or self.absent
        self.absent = False
        changes = self.store.replace([i for i in items if self._wanted(i)], version)
        self.synced.set()
        for change in changes:
            self._emit(None if first else ("DELETED" if change.new is None else "MODIFIED"), change)
        return version

    def _watch(self, version: str) -> str:
        query = [
            *self._selector(),
            ("watch", "1"),
            ("allowWatchBookmarks", "true"),
            ("timeoutSeconds", str(self._watch_timeout)),
            ("resourceVersion", version),
        ]
        API_REQUESTS.labels("watch", self.kind.plural).inc()
        for event in stream(self.kube, self.kind.path(), query, self._watch_timeout + 30):
            if self._stop.is_set():
                break
            type_, obj = event.get("type"), event.get("object") or {}
            if type_ == "ERROR":
                if obj.get("code") == 410:
                    raise WatchExpired()
                raise KubeError(int(obj.get("code") or 0), str(obj.get("reason")), str(obj.get("message")))
            version = str((obj.get("metadata") or {}).get("resourceVersion") or version)
            if type_ == "BOOKMARK" or type_ not in ("ADDED", "MODIFIED", "DELETED"):
                continue
            if not self._wanted(obj):
                continue
            change = self.store.apply_event(type_, obj)
            if change is not None:
                self._emit(type_, change)
        return version

    def _wanted(self, body: Body) -> bool:
        return self._in_scope is None or self._in_scope(key_of(body)[0])

    def _emit(self, type_: EventType | None, change: Change) -> None:
        try:
            self._on_change(self.kind, type_, change)
        except Exception:  # a routing bug must not stop the watch
            log.exception("handling a %s event failed", self.kind.plural)


def stream(
    kube: Kube, path: str, query: list[tuple[str, str]], read_timeout: float
) -> Iterator[dict[str, Any]]:
    """The JSON lines of a watch response, as they arrive."""
    api = kube._api
    serialized = api.param_serialize(
        "GET",
        path,
        query_params=query,
        header_params={"Accept": "application/json"},
        auth_settings=["BearerToken"],
    )
    response = api.call_api(*serialized, _request_timeout=(10, read_timeout))
    raw = response.response  # urllib3's response, not yet read (the client never preloads)
    try:
        if not 200 <= response.status <= 299:
            error = _error(response.status, response.reason or "", raw.data)
            if error.status == 410:
                raise WatchExpired()
            raise error
        pending = b""
        for chunk in raw.stream(65536, decode_content=True):
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                if line.strip():
                    yield json.loads(line)
    finally:
        raw.release_conn()
