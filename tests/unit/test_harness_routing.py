"""The e2e harness's pure parts: routing decisions, traffic arithmetic, reading pods."""

from __future__ import annotations

from collections import Counter
from typing import Any

from harness.load import (
    Counts,
    SmoothWeightedRoundRobin,
    Traffic,
    ready_addresses,
    route_backends,
)
from harness.world import model_of, pod_is_ready
from modeldeploy.api.spec import ModelDeploymentSpec
from modeldeploy.children import BuildSettings, OwnerInfo, build_deployment
from modeldeploy.runtimes import get_runtime


def test_smooth_weighted_round_robin_is_exact_and_interleaved() -> None:
    rr = SmoothWeightedRoundRobin([("stable", 90), ("canary", 10)])
    picks = [rr.next() for _ in range(100)]
    assert Counter(picks) == {"stable": 90, "canary": 10}
    assert picks[:10].count("canary") == 1  # spread out, not a burst at the end
    rr = SmoothWeightedRoundRobin([("a", 5), ("b", 1), ("c", 1)])
    assert [rr.next() for _ in range(7)] == ["a", "a", "b", "a", "c", "a", "a"]


def test_zero_weights_are_never_picked() -> None:
    assert SmoothWeightedRoundRobin([("stable", 0)]).next() is None
    rr = SmoothWeightedRoundRobin([("stable", 100), ("canary", 0)])
    assert {rr.next() for _ in range(10)} == {"stable"}


def test_ready_addresses_skip_unready_endpoints_and_treat_unknown_as_ready() -> None:
    slices: list[dict[str, Any]] = [
        {
            "addressType": "IPv4",
            "endpoints": [
                {"addresses": ["10.0.0.2"], "conditions": {"ready": True}},
                {"addresses": ["10.0.0.3"], "conditions": {"ready": False, "serving": True}},
                {"addresses": ["10.0.0.1"]},
            ],
        },
        {"addressType": "FQDN", "endpoints": [{"addresses": ["x.example"]}]},
        {"addressType": "IPv4", "endpoints": None},
    ]
    assert ready_addresses(slices) == ("10.0.0.1", "10.0.0.2")


def test_route_backends_take_the_first_rule_with_service_refs_and_default_weight_one() -> None:
    route = {
        "spec": {
            "rules": [
                {"backendRefs": [{"group": "example.com", "kind": "Bucket", "name": "b"}]},
                {
                    "backendRefs": [
                        {"group": "", "kind": "Service", "name": "m-stable", "port": 8000, "weight": 75},
                        {"name": "m-canary", "port": 8000},
                        {"name": "m-off", "weight": 0},
                    ]
                },
                {"backendRefs": [{"name": "later", "weight": 5}]},
            ]
        }
    }
    assert route_backends(route) == [("m-stable", 75), ("m-canary", 1), ("m-off", 0)]
    assert route_backends({"spec": {}}) == []


def test_traffic_windows_and_shares() -> None:
    before = Traffic(by_revision={"aaa": Counts(ok=10)}, by_pod={"p1": Counts(ok=10)}, no_endpoints=2)
    after = Traffic(
        by_revision={"aaa": Counts(ok=40, error=5), "bbb": Counts(ok=10, refused=5)},
        by_pod={"p1": Counts(ok=40, error=5), "p2": Counts(ok=10, refused=5)},
        no_endpoints=3,
    )
    window = after - before
    assert window.by_revision == {"aaa": Counts(ok=30, error=5), "bbb": Counts(ok=10, refused=5)}
    assert window.total == 50 and window.no_endpoints == 1
    assert window.share("bbb") == 0.3 and window.share("nope") == 0.0
    assert Traffic().share("aaa") == 0.0


def _pod(**status: object) -> dict[str, object]:
    return {"metadata": {"name": "p", "uid": "u"}, "status": status}


def test_pod_is_ready_needs_the_condition_an_ip_and_no_deletion() -> None:
    ready = {"podIP": "10.244.0.9", "conditions": [{"type": "Ready", "status": "True"}]}
    assert pod_is_ready(_pod(**ready))
    assert not pod_is_ready(_pod(conditions=ready["conditions"]))
    assert not pod_is_ready(_pod(podIP="10.244.0.9", conditions=[{"type": "Ready", "status": "False"}]))
    deleting = {"metadata": {"deletionTimestamp": "2026-01-01T00:00:00Z"}, "status": ready}
    assert not pod_is_ready(deleting)


def test_model_of_reads_the_operators_container_args() -> None:
    # the pod template exactly as the operator builds it
    spec = ModelDeploymentSpec.model_validate(
        {"runtime": "triton", "model": {"name": "fraud", "version": "7", "storageUri": "s3://bucket/fraud/7"}}
    )
    owner = OwnerInfo("modeldeploy.dev/v1alpha1", "ModelDeployment", "md", "ns", "uid")
    dep = build_deployment(owner, spec, "abc", 1, get_runtime("triton"), BuildSettings())
    assert model_of(dep["spec"]["template"], "triton") == ("fraud", "7")
    ts = {"metadata": {}, "spec": {"containers": [{"args": ["--start", "--models", "fraud=fraud.mar"]}]}}
    assert model_of(ts, "torchserve") == ("fraud", None)
    bare = {"metadata": {"labels": {"modeldeploy.dev/deployment": "md"}}, "spec": {"containers": [{}]}}
    assert model_of(bare, "triton") == ("md", None)
