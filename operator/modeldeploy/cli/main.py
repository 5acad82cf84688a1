"""``kubectl modeldeploy VERB NAME [-n NAMESPACE]`` (installed as the kubectl plugin ``kubectl-modeldeploy``).

Verbs record intent; the operator acts on it: promote (next step), promote-full, abort, pause,
resume, retry. ``why NAME`` prints the last decision and measurements from status.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from typing import Any

from modeldeploy.cli.commands import COMMAND_ANNOTATION, VERBS, ParsedCommand
from modeldeploy.kube.rest import MODELDEPLOYMENT, Kube, KubeError, connect


def _kube(kubeconfig: str | None) -> Kube:
    return Kube(connect(kubeconfig))


def send(kube: Kube, namespace: str, name: str, verb: str) -> ParsedCommand:
    command = ParsedCommand(verb, str(time.time_ns()))
    kube.request(
        "PATCH",
        MODELDEPLOYMENT.path(namespace, name),
        body={"metadata": {"annotations": {COMMAND_ANNOTATION: command.value}}},
        content_type="application/merge-patch+json",
    )
    return command


def why(kube: Kube, namespace: str, name: str) -> str:
    md = kube.get(MODELDEPLOYMENT, namespace, name)
    if md is None:
        raise KubeError(404, "NotFound", f"modeldeployment {namespace}/{name} not found")
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


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="kubectl modeldeploy", description=__doc__)
    p.add_argument("verb", choices=[*VERBS, "why"])
    p.add_argument("name")
    p.add_argument("-n", "--namespace", default="default")
    p.add_argument("--kubeconfig")
    p.add_argument("-o", "--output", choices=["text", "json"], default="text")
    args = p.parse_args(argv)
    try:
        kube = _kube(args.kubeconfig)
        if args.verb == "why":
            print(why(kube, args.namespace, args.name))
            return 0
        command = send(kube, args.namespace, args.name, args.verb)
    except KubeError as exc:
        print(f"kubectl-modeldeploy: {exc}", file=sys.stderr)
        return 1
    if args.output == "json":
        print(json.dumps({"annotation": COMMAND_ANNOTATION, "value": command.value}))
    else:
        print(
            f"modeldeployment.{MODELDEPLOYMENT.api_version.split('/')[0]}/{args.name} {args.verb} requested"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
