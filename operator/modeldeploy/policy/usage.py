"""Which ModelDeployments use which policy, so a policy change re-evaluates exactly those.

Every reconcile records what it resolved (:meth:`PolicyUsage.record`); the watch handlers ask
:meth:`PolicyUsage.affected` when a policy changes or is deleted. A change to any
ClusterRolloutPolicy also concerns every ModelDeployment on the cluster default or built-in
defaults (the change may make it the default, or stop it being one). Thread-safe: reconciles run
in worker threads, handlers on the event loop.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from modeldeploy.policy.resolve import CLUSTER, PolicyId

Key = tuple[str, str]  # (namespace, name) of a ModelDeployment


@dataclass(frozen=True)
class Use:
    policy: PolicyId | None
    source: str


class PolicyUsage:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._uses: dict[Key, Use] = {}

    def record(self, key: Key, policy: PolicyId | None, source: str) -> None:
        with self._lock:
            self._uses[key] = Use(policy, source)

    def forget(self, key: Key) -> None:
        with self._lock:
            self._uses.pop(key, None)

    def affected(self, changed: PolicyId) -> list[Key]:
        """ModelDeployments whose effective settings may depend on ``changed``."""
        with self._lock:
            uses = list(self._uses.items())
        out = []
        for key, use in uses:
            if use.policy == changed or (
                changed.kind == CLUSTER and use.source in ("clusterDefault", "builtIn")
            ):
                out.append(key)
        return sorted(out)

    def in_namespace(self, namespace: str) -> list[Key]:
        with self._lock:
            return sorted(k for k in self._uses if k[0] == namespace)
