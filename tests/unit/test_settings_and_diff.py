"""Operator settings fail loudly on bad values; the child diff ignores server defaults but not drift."""

from __future__ import annotations

import pytest

from modeldeploy.kube.diff import merge_patch, needs_apply, quantity
from modeldeploy.settings import SettingsError, load

pytestmark = pytest.mark.unit


def test_settings_from_flags_and_environment() -> None:
    s = load(
        ["--namespace", "t-*", "--namespace", "ml", "--image", "triton=my/triton:1"],
        {"MODELDEPLOY_PROMETHEUS_URL": "http://prom:9090/", "MODELDEPLOY_LOG_FORMAT": "text"},
    )
    assert s.namespaces == ("t-*", "ml")
    assert s.prometheus_url == "http://prom:9090"
    assert s.log_format == "text" and dict(s.images) == {"triton": "my/triton:1"}
    assert load([], {"MODELDEPLOY_NAMESPACES": "a, b"}).namespaces == ("a", "b")


@pytest.mark.parametrize(
    ("argv", "env", "words"),
    [
        (["--metrics-port", "http"], {}, "--metrics-port must be a port number"),
        ([], {"MODELDEPLOY_HEALTH_PORT": "70000"}, "within 0..65535"),
        ([], {"MODELDEPLOY_RESYNC_SECONDS": "0"}, "--resync-seconds must be > 0"),
        (["--prometheus-url", "prom:9090"], {}, "must start with http:// or https://"),
        (["--image", "triton"], {}, "--image takes runtime=image"),
        ([], {"MODELDEPLOY_LOG_FORMAT": "xml"}, "json or text"),
        ([], {"MODELDEPLOY_LOG_LEVEL": "loud"}, "log level must be"),
    ],
)
def test_bad_settings_name_the_setting(argv: list[str], env: dict[str, str], words: str) -> None:
    with pytest.raises(SettingsError, match=words.replace(".", r"\.").replace("+", r"\+")):
        load(argv, env)


def test_quantities_compare_by_value() -> None:
    assert quantity("500m") == quantity("0.5") and quantity("1Gi") == quantity("1073741824")
    assert quantity("lots") is None


def test_needs_apply_ignores_what_the_server_adds_but_sees_drift() -> None:
    desired = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "d", "labels": {"a": "1"}},
        "spec": {
            "replicas": 2,
            "template": {
                "spec": {
                    "containers": [{"name": "c", "image": "x:1", "resources": {"requests": {"cpu": "0.5"}}}]
                }
            },
        },
    }
    live = {
        "metadata": {"name": "d", "labels": {"a": "1"}, "resourceVersion": "7", "uid": "u"},
        "spec": {
            "replicas": 2,
            "progressDeadlineSeconds": 600,
            "template": {
                "spec": {
                    "containers": [
                        {
                            "name": "c",
                            "image": "x:1",
                            "imagePullPolicy": "IfNotPresent",
                            "resources": {"requests": {"cpu": "500m"}},
                        }
                    ]
                }
            },
        },
        "status": {"replicas": 2},
    }
    assert needs_apply(desired, live) == []
    live["spec"]["template"]["spec"]["containers"][0]["image"] = "evil:1"
    assert needs_apply(desired, live) == [".spec.template.spec.containers[0].image"]
    assert needs_apply(desired, None) == ["(absent)"]
    live["spec"]["template"]["spec"]["containers"].append({"name": "sidecar"})
    assert ".spec.template.spec.containers" in needs_apply(desired, live)


def test_merge_patch_removes_cleared_fields_at_every_depth() -> None:
    live = {
        "phase": "Progressing",
        "rollout": {"revision": "r1", "unreadySince": "2026-01-01T00:00:00Z", "paused": False},
        "measurements": [{"guardrail": "a"}],
        "gone": 1,
    }
    desired = {"phase": "Progressing", "rollout": {"revision": "r1", "paused": False}, "measurements": []}
    assert merge_patch(live, desired) == {"rollout": {"unreadySince": None}, "measurements": [], "gone": None}
    assert merge_patch(desired, desired) == {}
    assert merge_patch({}, {"a": {"b": 1}}) == {"a": {"b": 1}}
    assert merge_patch({"a": 1}, {"a": {"b": 1}}) == {"a": {"b": 1}}


def test_a_selector_key_the_operator_stopped_setting_is_a_difference() -> None:
    live = {"spec": {"selector": {"md": "x", "revision": "r1"}, "ports": [{"port": 80}]}}
    assert needs_apply({"spec": {"selector": {"md": "x"}}}, live) == [".spec.selector"]
    assert needs_apply({"spec": {"selector": {"md": "x", "revision": "r1"}}}, live) == []
    # elsewhere a subset is still equal (fields defaulted by the API server or owned by others)
    assert needs_apply({"spec": {"ports": [{"port": 80}]}}, live) == []
