"""``kubectl modeldeploy list [-n NS | -A]``: phase, step k/n, weight and last decision of each."""

from __future__ import annotations

from modeldeploy.cli.client import Client
from modeldeploy.cli.view import Summary, summary
from modeldeploy.kube.rest import MODELDEPLOYMENT


def run(client: Client, namespace: str | None) -> list[Summary]:
    """Every ModelDeployment in ``namespace`` (all namespaces when None), sorted like kubectl."""
    items, _ = client.list(MODELDEPLOYMENT, namespace)
    rows = [summary(md) for md in items]
    return sorted(rows, key=lambda r: (r.namespace, r.name))
