"""The watch cache's store: events in resourceVersion order, re-list replacing, write-through."""

from __future__ import annotations

from typing import Any

import pytest

from modeldeploy.kube.store import Store, parse_selector

pytestmark = pytest.mark.unit

SELECTOR = "app.kubernetes.io/managed-by=modeldeploy"
OWNER = "modeldeploy.dev/deployment"


def obj(
    name: str, rv: int, ns: str = "a", owner: str = "m1", managed: bool = True, **extra: Any
) -> dict[str, Any]:
    labels = {OWNER: owner}
    if managed:
        labels["app.kubernetes.io/managed-by"] = "modeldeploy"
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": ns, "resourceVersion": str(rv), "labels": labels},
        **extra,
    }


def test_events_apply_in_resource_version_order() -> None:
    store = Store(SELECTOR, OWNER)
    assert store.apply_event("ADDED", obj("x", 5, data={"v": "1"})) is not None
    assert store.apply_event("MODIFIED", obj("x", 7, data={"v": "2"})) is not None
    # an event older than what is held (a late duplicate) changes nothing
    assert store.apply_event("MODIFIED", obj("x", 6, data={"v": "old"})) is None
    held = store.get("a", "x")
    assert held is not None and held["data"] == {"v": "2"}
    change = store.apply_event("DELETED", obj("x", 8))
    assert change is not None and change.new is None and change.old is not None
    assert store.get("a", "x") is None


def test_an_object_leaving_the_selector_is_removed() -> None:
    store = Store(SELECTOR, OWNER)
    store.apply_event("ADDED", obj("x", 5))
    change = store.apply_event("MODIFIED", obj("x", 6, managed=False))
    assert change is not None and change.new is None
    assert store.list("a", SELECTOR) == []


def test_list_by_owner_label_and_namespace() -> None:
    store = Store(SELECTOR, OWNER)
    store.apply_event("ADDED", obj("x", 1, owner="m1"))
    store.apply_event("ADDED", obj("y", 2, owner="m2"))
    store.apply_event("ADDED", obj("z", 3, owner="m1", ns="b"))
    assert [o["metadata"]["name"] for o in store.list("a", f"{OWNER}=m1,{SELECTOR}")] == ["x"]
    assert [o["metadata"]["name"] for o in store.list("a", SELECTOR)] == ["x", "y"]
    assert [o["metadata"]["name"] for o in store.list(None, f"{OWNER}=m1")] == ["x", "z"]
    # an owner label that changes moves the object between index buckets
    store.apply_event("MODIFIED", obj("x", 4, owner="m2"))
    assert store.list("a", f"{OWNER}=m1") == []
    assert len(store.list("a", f"{OWNER}=m2")) == 2


def test_reads_are_copies() -> None:
    store = Store()
    store.apply_event("ADDED", obj("x", 1, data={"v": "1"}))
    got = store.get("a", "x")
    assert got is not None
    got["data"]["v"] = "changed by a caller"
    again = store.get("a", "x")
    assert again is not None and again["data"] == {"v": "1"}


def test_write_through_is_held_and_the_watch_echo_is_dropped() -> None:
    store = Store(SELECTOR, OWNER)
    store.apply_event("ADDED", obj("x", 5, data={"v": "1"}))
    assert store.write_through(obj("x", 9, data={"v": "2"}))
    # the watch delivers the same write later, and an older event in between: neither is a change
    assert store.apply_event("MODIFIED", obj("x", 7, data={"v": "1.5"})) is None
    assert store.apply_event("MODIFIED", obj("x", 9, data={"v": "2"})) is None
    held = store.get("a", "x")
    assert held is not None and held["data"] == {"v": "2"}
    # an older write's answer does not replace a newer object
    assert not store.write_through(obj("x", 8, data={"v": "stale"}))


def test_delete_through_drops_stale_events_for_the_deleted_object() -> None:
    store = Store(SELECTOR, OWNER)
    store.apply_event("ADDED", obj("x", 5))
    store.deleted_through("a", "x", obj("x", 6))
    assert store.get("a", "x") is None
    assert store.apply_event("MODIFIED", obj("x", 6)) is None  # in flight before the delete
    assert store.apply_event("ADDED", obj("x", 10)) is not None  # created again afterwards


def test_relist_replaces_keeping_writes_newer_than_the_snapshot() -> None:
    store = Store(SELECTOR, OWNER)
    store.apply_event("ADDED", obj("kept", 3, data={"v": "1"}))
    store.apply_event("ADDED", obj("vanished", 4))  # deleted while the watch was down
    store.write_through(obj("mine", 30))  # created by our write after the list's snapshot
    changes = store.replace([obj("kept", 12, data={"v": "2"}), obj("new", 15)], "20")
    by_name = {c.object["metadata"]["name"]: c for c in changes}
    assert set(by_name) == {"kept", "vanished", "new"}
    assert by_name["vanished"].new is None
    assert by_name["new"].old is None
    assert by_name["kept"].new is not None and by_name["kept"].new["data"] == {"v": "2"}
    assert sorted(store.keys()) == [("a", "kept"), ("a", "mine"), ("a", "new")]


def test_unchanged_relist_reports_no_change() -> None:
    store = Store()
    items = [obj("x", 1), obj("y", 2)]
    assert len(store.replace(items, "2")) == 2
    assert store.replace(items, "3") == []


def test_selector_parsing() -> None:
    reqs = parse_selector("a=b, c!=d,e,!f")
    assert [(r.key, r.op, r.value) for r in reqs] == [
        ("a", "=", "b"),
        ("c", "!=", "d"),
        ("e", "exists", ""),
        ("f", "!exists", ""),
    ]
    assert all(r.matches({"a": "b", "c": "x", "e": ""}) for r in reqs)
    with pytest.raises(ValueError, match="set-based"):
        parse_selector("a in (b,c)")


def test_managed_fields_are_not_held() -> None:
    """The store drops metadata.managedFields (no pass reads them; often most of an object's size),
    from watch events, re-lists and written-through answers alike; the caller's body is untouched."""
    fields = [{"manager": "modeldeploy", "operation": "Apply", "fieldsV1": {"f:data": {}}}]

    def with_fields(name: str, rv: int) -> dict[str, Any]:
        body = obj(name, rv, data={"v": str(rv)})
        body["metadata"]["managedFields"] = list(fields)
        return body

    store = Store(SELECTOR, OWNER)
    store.apply_event("ADDED", with_fields("x", 1))
    store.replace([with_fields("y", 2)], "2")
    answer = with_fields("z", 3)
    assert store.write_through(answer)
    assert answer["metadata"]["managedFields"] == fields
    for name in ("y", "z"):
        held = store.get("a", name)
        assert held is not None and "managedFields" not in held["metadata"]
        assert held["metadata"]["labels"][OWNER] == "m1" and held["data"]
    assert store.get("a", "x") is None  # the re-list did not have it


def test_unread_fields_are_not_held() -> None:
    """A Pod's spec (``unread``) is not held; the rest of the object, and its versions, are."""
    store = Store(SELECTOR, OWNER, unread=("spec",))
    event = obj("p", 4, spec={"containers": [{"name": "c"}]}, status={"phase": "Running"})
    change = store.apply_event("ADDED", event)
    assert change is not None and change.new is event and "spec" in event  # the event is untouched
    held = store.get("a", "p")
    assert held is not None and "spec" not in held and held["status"] == {"phase": "Running"}
    assert store.versions("a", f"{OWNER}=m1") == ((("a", "p"), "4"),)


def test_the_store_is_independent_of_the_bodies_it_was_given() -> None:
    """What a caller does to a body after handing it over (an event, an API answer) changes
    nothing held; a deletion's ``old`` is the object as it was held."""
    store = Store()
    event = obj("x", 1, data={"v": "1"})
    store.apply_event("ADDED", event)
    event["data"]["v"] = "changed after the event"
    held = store.get("a", "x")
    assert held is not None and held["data"] == {"v": "1"}
    change = store.apply_event("DELETED", obj("x", 2))
    assert change is not None and change.old is not None and change.old["data"] == {"v": "1"}
