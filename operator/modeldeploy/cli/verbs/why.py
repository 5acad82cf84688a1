"""``kubectl modeldeploy why NAME``: the last decision, the latest measurements, the conditions."""

from __future__ import annotations

from typing import Any

from modeldeploy.cli.client import Client
from modeldeploy.cli.objects import read_md


def text(namespace: str, name: str, md: dict[str, Any]) -> str:
    status: dict[str, Any] = md.get("status") or {}
    lines = [
        f"{namespace}/{name}: phase={status.get('phase')} stable={status.get('stableRevision')} "
        f"canary={status.get('canaryRevision')} weight={status.get('canaryWeight')}"
    ]
    if status.get("lastDecision"):
        d = status["lastDecision"]
        lines.append(f"last decision at {d['at']}: {d['action']} - {d['reason']}")
    for m in status.get("measurements", [])[-10:]:
        lines.append(
            f"  {m['at']} {m['guardrail']:<24} {m['verdict']:<12} value={m.get('value')} "
            f"{m.get('threshold', '')} {m.get('message', '')}"
        )
    for c in status.get("conditions", []):
        lines.append(f"  condition {c['type']}={c['status']} ({c['reason']}): {c.get('message', '')}")
    return "\n".join(lines)


def run(client: Client, namespace: str, name: str) -> str:
    return text(namespace, name, read_md(client, namespace, name))
