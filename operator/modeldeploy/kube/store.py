"""An in-memory copy of one kind's objects, fed by a watch: pure bookkeeping, no I/O.

The store applies watch events in resourceVersion order (an event older than what it holds is dropped),
replaces its content on a re-list (keeping objects written through after the list's snapshot), and
takes the objects the API server returns to our own writes (write-through), so the pass after a write
never sees the state from before it. Every change it accepts is returned as a ``Change`` so the caller
can turn it into work.

Each object is held frozen: its compact JSON text (a few KiB) beside its key, resourceVersion and
labels, instead of a tree of dicts (several times larger in Python: 1 KiB of JSON is ~7 KiB of
objects). A read thaws a fresh copy, which is what a read returned before too (a deep copy), and
``json.loads`` is cheaper than ``copy.deepcopy``.

resourceVersions are opaque by contract; every API server in practice (etcd revisions) makes them
integers that grow, which is what the ordering uses. One that is not an integer is always accepted.
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

Body = dict[str, Any]
Key = tuple[str, str]  # (namespace or "", name)
EventType = Literal["ADDED", "MODIFIED", "DELETED"]


@dataclass(frozen=True)
class Change:
    """One accepted change: ``new`` None means deleted, ``old`` None means created."""

    held: str | None  # the object as held before the change, frozen (None: created)
    new: Body | None

    @property
    def old(self) -> Body | None:
        return None if self.held is None else thaw(self.held)

    @property
    def object(self) -> Body:
        body = self.new if self.new is not None else self.old
        assert body is not None
        return body


Changes = list[Change]
Keys = list[Key]


@dataclass(frozen=True)
class Requirement:
    key: str
    op: Literal["=", "!=", "exists", "!exists"]
    value: str = ""

    def matches(self, labels: Mapping[str, str]) -> bool:
        if self.op == "=":
            return labels.get(self.key) == self.value
        if self.op == "!=":
            return labels.get(self.key) != self.value
        return (self.key in labels) == (self.op == "exists")


def parse_selector(selector: str) -> tuple[Requirement, ...]:
    """Equality-based label selectors (``a=b,c!=d,e,!f``); set-based ones are refused, not guessed."""
    out = []
    for raw in (part.strip() for part in selector.split(",")):
        if not raw:
            continue
        if " in " in raw or " notin " in raw or "(" in raw:
            raise ValueError(f"set-based label selector not supported by the cache: {selector!r}")
        if "!=" in raw:
            k, _, v = raw.partition("!=")
            out.append(Requirement(k.strip(), "!=", v.strip()))
        elif "=" in raw:
            k, _, v = raw.replace("==", "=").partition("=")
            out.append(Requirement(k.strip(), "=", v.strip()))
        elif raw.startswith("!"):
            out.append(Requirement(raw[1:].strip(), "!exists"))
        else:
            out.append(Requirement(raw, "exists"))
    return tuple(out)


def labels_of(body: Body) -> Mapping[str, str]:
    labels: Mapping[str, str] = (body.get("metadata") or {}).get("labels") or {}
    return labels


def matches(requirements: Iterable[Requirement], body: Body) -> bool:
    labels = labels_of(body)
    return all(r.matches(labels) for r in requirements)


def key_of(body: Body) -> Key:
    meta = body.get("metadata") or {}
    return meta.get("namespace") or "", meta["name"]


def rv_of(body: Body | None) -> int | None:
    if body is None:
        return None
    try:
        return int((body.get("metadata") or {}).get("resourceVersion") or "")
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class _Held:
    """One object as the store holds it: frozen, with what lookups need at hand."""

    key: Key
    version: str | None
    labels: Mapping[str, str]
    frozen: str

    @property
    def rv(self) -> int | None:
        return _int(self.version)


HeldList = list[_Held]


def freeze(body: Body) -> str:
    return json.dumps(body, separators=(",", ":"))


def thaw(frozen: str) -> Body:
    body: Body = json.loads(frozen)
    return body


class Store:
    """The objects of one kind that match ``selector``, by (namespace, name); thread-safe.

    ``index_label``: a label whose equality in a selector narrows ``list`` to one bucket (the owner
    label: a ModelDeployment's children are found without scanning the namespace).
    ``unread``: top-level fields no pass reads (a Pod's ``spec``): not held, to save memory.
    """

    def __init__(
        self, selector: str = "", index_label: str | None = None, unread: tuple[str, ...] = ()
    ) -> None:
        self.selector = selector
        self._requirements = parse_selector(selector)
        self._index_label = index_label
        self._unread = unread
        self._lock = threading.Lock()
        self._objects: dict[Key, _Held] = {}
        self._by_namespace: dict[str, dict[str, _Held]] = {}
        self._index: dict[tuple[str, str], dict[str, _Held]] = {}
        self._tombstones: dict[Key, int] = {}  # deleted by our own write: older events are stale

    # --- reads -----------------------------------------------------------------------------------

    def get(self, namespace: str | None, name: str) -> Body | None:
        """A copy of the object, the caller's to change."""
        with self._lock:
            held = self._objects.get((namespace or "", name))
        return None if held is None else thaw(held.frozen)

    def list(self, namespace: str | None, selector: str = "") -> list[Body]:
        """Copies of the matching objects, by (namespace, name)."""
        return [thaw(h.frozen) for h in self._matching(namespace, selector)]

    def version(self, namespace: str | None, name: str) -> str | None:
        """The held object's resourceVersion (None: not held), without thawing it."""
        with self._lock:
            held = self._objects.get((namespace or "", name))
            return None if held is None else str(held.version)

    def versions(self, namespace: str | None, selector: str = "") -> tuple[tuple[Key, str], ...]:
        """(key, resourceVersion) of what ``list`` would return, without thawing anything."""
        return tuple((h.key, str(h.version)) for h in self._matching(namespace, selector))

    def keys(self) -> Keys:
        with self._lock:
            return list(self._objects)

    def __len__(self) -> int:
        return len(self._objects)

    def _matching(self, namespace: str | None, selector: str) -> HeldList:
        requirements = parse_selector(selector)
        with self._lock:
            candidates = self._candidates(namespace, requirements)
            found = [h for h in candidates if all(r.matches(h.labels) for r in requirements)]
        return sorted(found, key=lambda h: h.key)

    def _candidates(self, namespace: str | None, requirements: tuple[Requirement, ...]) -> Iterable[_Held]:
        if namespace and self._index_label:
            for r in requirements:
                if r.key == self._index_label and r.op == "=":
                    return list(self._index.get((namespace, r.value), {}).values())
        if namespace:
            return list(self._by_namespace.get(namespace, {}).values())
        return list(self._objects.values())

    # --- changes ---------------------------------------------------------------------------------

    def apply_event(self, type_: EventType, body: Body) -> Change | None:
        """A watch event; None when it changes nothing (stale, or already written through)."""
        key = key_of(body)
        with self._lock:
            held = self._objects.get(key)
            if type_ == "DELETED":
                if held is None or (not _newer(body, held) and rv_of(body) != held.rv):
                    return None
                self._remove(key)
                return Change(held.frozen, None)
            tomb = self._tombstones.get(key)
            rv = rv_of(body)
            if tomb is not None and rv is not None and rv <= tomb:
                return None
            if not matches(self._requirements, body):  # a label no longer ours: it left the selector
                if held is None:
                    return None
                self._remove(key)
                return Change(held.frozen, None)
            if held is not None and not _newer(body, held):
                return None
            self._put(key, body)
            return Change(None if held is None else held.frozen, body)

    def replace(self, items: Iterable[Body], list_version: str | None) -> Changes:
        """A re-list: the list is the truth as of ``list_version``; what was written through after it
        (a higher resourceVersion) is kept. Returns what differed."""
        snapshot = _int(list_version)
        fresh = {key_of(b): b for b in items if matches(self._requirements, b)}
        changes: Changes = []
        with self._lock:
            for key, gone in [*self._objects.items()]:
                if key in fresh:
                    continue
                if snapshot is not None and gone.rv is not None and gone.rv > snapshot:
                    continue  # created by our write after the snapshot
                self._remove(key)
                changes.append(Change(gone.frozen, None))
            for key, body in fresh.items():
                held = self._objects.get(key)
                if held is not None and not _newer(body, held):
                    continue
                self._put(key, body)
                if held is None or held.rv != rv_of(body):
                    changes.append(Change(None if held is None else held.frozen, body))
            self._tombstones.clear()
        return changes

    def write_through(self, body: Body) -> bool:
        """The object an API write returned: held if newer than what the store has."""
        key = key_of(body)
        with self._lock:
            held = self._objects.get(key)
            if held is not None and not _newer(body, held):
                return False
            if not matches(self._requirements, body):
                if held is not None:
                    self._remove(key)
                return False
            self._put(key, body)
            self._tombstones.pop(key, None)
            return True

    def deleted_through(self, namespace: str | None, name: str, body: Body | None) -> None:
        """Our own delete succeeded: drop the object; watch events older than the delete are stale."""
        key = (namespace or "", name)
        with self._lock:
            held = self._objects.get(key)
            if body is not None and (body.get("metadata") or {}).get("finalizers"):
                if held is None or _newer(body, held):
                    self._put(key, body)  # still there until its finalizers run
                return
            versions = [v for v in (rv_of(body), None if held is None else held.rv) if v is not None]
            if versions:
                self._tombstones[key] = max(versions)
            if held is not None:
                self._remove(key)

    # --- internals -------------------------------------------------------------------------------

    def _put(self, key: Key, body: Body) -> None:
        """Hold ``body`` frozen, without its managedFields (no pass reads them, and they are often
        the larger part of an object; controller-runtime strips them too) or the ``unread`` fields.
        ``body`` itself is left as it was: it may be the caller's."""
        metadata = body.get("metadata") or {}
        kept = {k: v for k, v in body.items() if k not in self._unread}
        if "managedFields" in metadata:
            kept["metadata"] = {k: v for k, v in metadata.items() if k != "managedFields"}
        labels = {sys.intern(k): sys.intern(str(v)) for k, v in labels_of(body).items()}
        version = metadata.get("resourceVersion")
        held = _Held(key, None if version is None else str(version), labels, freeze(kept))
        self._remove(key)
        self._objects[key] = held
        self._by_namespace.setdefault(key[0], {})[key[1]] = held
        if self._index_label is not None:
            value = labels.get(self._index_label)
            if value is not None:
                self._index.setdefault((key[0], value), {})[key[1]] = held

    def _remove(self, key: Key) -> None:
        held = self._objects.pop(key, None)
        if held is None:
            return
        bucket = self._by_namespace.get(key[0])
        if bucket is not None:
            bucket.pop(key[1], None)
            if not bucket:
                del self._by_namespace[key[0]]
        if self._index_label is not None:
            value = held.labels.get(self._index_label)
            if value is not None:
                index = self._index.get((key[0], value))
                if index is not None:
                    index.pop(key[1], None)
                    if not index:
                        del self._index[(key[0], value)]


def _newer(candidate: Body, held: _Held) -> bool:
    """Whether ``candidate`` may replace ``held`` (unknown versions: yes)."""
    a, b = rv_of(candidate), held.rv
    return a is None or b is None or a > b


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value else None
    except ValueError:
        return None
