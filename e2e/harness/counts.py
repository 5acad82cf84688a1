"""What the load did, counted: per revision, pod, Service, audience, and mirrored copies apart.

:meth:`harness.load.Load.traffic` returns a :class:`Traffic` snapshot; ``later - earlier`` is the
traffic of the window in between. Live requests (answered to the user) and mirrored copies
(answers discarded by the Gateway) are never mixed: ``total``, ``share`` and ``by_revision`` count
live requests only, ``mirrored`` the copies, by the revision that received them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

EVERYONE = "others"  # the audience of requests that carry no audience's headers or cookies


@dataclass(frozen=True)
class Counts:
    """Outcomes of requests that reached a pod's server: 2xx, other HTTP status, or no answer."""

    ok: int = 0
    error: int = 0
    refused: int = 0

    @property
    def total(self) -> int:
        return self.ok + self.error + self.refused

    def __add__(self, other: Counts) -> Counts:
        return Counts(self.ok + other.ok, self.error + other.error, self.refused + other.refused)

    def __sub__(self, other: Counts) -> Counts:
        return Counts(self.ok - other.ok, self.error - other.error, self.refused - other.refused)


def _sub(a: Mapping[str, Counts], b: Mapping[str, Counts]) -> dict[str, Counts]:
    out = {k: v - b.get(k, Counts()) for k, v in a.items()}
    return {k: v for k, v in out.items() if v.total}


def _sub_ints(a: Mapping[str, int], b: Mapping[str, int]) -> dict[str, int]:
    return {k: v - b.get(k, 0) for k, v in a.items() if v - b.get(k, 0)}


@dataclass(frozen=True)
class Traffic:
    """A snapshot of what the load did; ``later - earlier`` is the traffic in between."""

    by_revision: Mapping[str, Counts] = field(default_factory=dict)
    by_pod: Mapping[str, Counts] = field(default_factory=dict)  # pod name (the Load is per namespace)
    by_service: Mapping[str, int] = field(default_factory=dict)  # backend Service picked
    no_endpoints: int = 0  # nothing ready behind the route/Service
    unmapped: int = 0  # a ready address with no harness server (yet)
    dropped: int = 0  # too many requests in flight
    # audience name -> revision -> live requests of that audience (see harness.gateway.Audience)
    by_audience: Mapping[str, Mapping[str, Counts]] = field(default_factory=dict)
    mirrored: Mapping[str, Counts] = field(default_factory=dict)  # revision -> mirrored copies
    no_route: int = 0  # no HTTPRoute rule matched (a Gateway answers 404)
    # HTTPRoute resourceVersion -> audience -> revision -> requests routed while that version was live
    # (counted when the Gateway picks the pod, so exact per route version); mirrored copies apart
    routed: Mapping[str, Mapping[str, Mapping[str, int]]] = field(default_factory=dict)
    routed_mirrors: Mapping[str, Mapping[str, int]] = field(default_factory=dict)

    @property
    def total(self) -> int:
        """Live requests that reached a pod's server."""
        return sum(c.total for c in self.by_revision.values())

    def share(self, revision: str) -> float:
        """Fraction (0..1) of the requests that reached a pod which reached one of ``revision``."""
        total = self.total
        return self.by_revision.get(revision, Counts()).total / total if total else 0.0

    def audience(self, name: str) -> Mapping[str, Counts]:
        """Revision -> live requests of one audience (``EVERYONE``: requests of no audience)."""
        return self.by_audience.get(name, {})

    def __sub__(self, other: Traffic) -> Traffic:
        services = {k: v - other.by_service.get(k, 0) for k, v in self.by_service.items()}
        audiences = {k: _sub(v, other.by_audience.get(k, {})) for k, v in self.by_audience.items()}
        return Traffic(
            by_revision=_sub(self.by_revision, other.by_revision),
            by_pod=_sub(self.by_pod, other.by_pod),
            by_service={k: v for k, v in services.items() if v},
            no_endpoints=self.no_endpoints - other.no_endpoints,
            unmapped=self.unmapped - other.unmapped,
            dropped=self.dropped - other.dropped,
            by_audience={k: v for k, v in audiences.items() if v},
            mirrored=_sub(self.mirrored, other.mirrored),
            no_route=self.no_route - other.no_route,
            routed={
                v: {a: _sub_ints(revs, other.routed.get(v, {}).get(a, {})) for a, revs in groups.items()}
                for v, groups in self.routed.items()
            },
            routed_mirrors={
                v: _sub_ints(revs, other.routed_mirrors.get(v, {})) for v, revs in self.routed_mirrors.items()
            },
        )

    def summary(self) -> str:
        revs = " ".join(
            f"{rev}={c.total} ({self.share(rev):.0%}, {c.error + c.refused} failed)"
            for rev, c in sorted(self.by_revision.items())
        )
        groups = "; ".join(
            f"{name}: " + " ".join(f"{rev}={c.total}" for rev, c in sorted(revs_.items()))
            for name, revs_ in sorted(self.by_audience.items())
        )
        mirrored = " ".join(f"{rev}={c.total}" for rev, c in sorted(self.mirrored.items()))
        return (
            f"{self.total} reached pods: {revs or '-'}; audiences [{groups}]; mirrored [{mirrored or '-'}]; "
            f"no endpoints {self.no_endpoints}, no route {self.no_route}, unmapped {self.unmapped}, "
            f"dropped {self.dropped}"
        )
