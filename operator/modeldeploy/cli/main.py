"""``kubectl modeldeploy`` (the kubectl plugin ``kubectl-modeldeploy``): see, follow and steer rollouts.

  list [-n NS | -A]                 every ModelDeployment: phase, step k/n, weight, last decision
  get NAME [--watch [--timeout D]]  revisions and pods, weights, steps, guardrails, decisions;
                                    --watch redraws live and exits with the rollout's outcome
  history NAME                      revisions rolled out and how each ended
  why NAME                          the last decision, measurements and conditions
  promote | promote-full | abort | pause | resume | retry NAME
                                    one annotation on the object (GitOps-safe), never a spec edit

Like kubectl: --kubeconfig, --context, -n/--namespace (default: the context's), -A, -o json|yaml.
Exit codes: 0 ok (get --watch: promoted/Healthy), 1 error, 2 bad usage, 3 rolled back, 4 Degraded,
5 --watch --timeout ran out, 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from modeldeploy.api.command import COMMAND_ANNOTATION, COMMAND_KINDS
from modeldeploy.api.common import parse_duration
from modeldeploy.cli import render
from modeldeploy.cli.client import Client, connect
from modeldeploy.cli.errors import EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, CliError
from modeldeploy.cli.output import FORMATS, console, dump
from modeldeploy.cli.verbs import control, get, history, watch, why
from modeldeploy.cli.verbs import list as list_verb
from modeldeploy.cli.view import now_utc


def _common() -> argparse.ArgumentParser:
    """Flags accepted before or after the verb (SUPPRESS: a later parser never resets them)."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--kubeconfig", default=argparse.SUPPRESS, help="kubeconfig file (default: $KUBECONFIG)")
    p.add_argument("--context", default=argparse.SUPPRESS, help="kubeconfig context (default: current)")
    p.add_argument("-n", "--namespace", default=argparse.SUPPRESS, help="namespace (default: the context's)")
    return p


def parser() -> argparse.ArgumentParser:
    common = _common()
    root = argparse.ArgumentParser(
        prog="kubectl modeldeploy",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[common],
    )
    verbs = root.add_subparsers(dest="verb", required=True, metavar="VERB")
    output = argparse.ArgumentParser(add_help=False)
    output.add_argument("-o", "--output", choices=FORMATS, help="json or yaml instead of the table")
    ls = verbs.add_parser("list", parents=[common, output], help="list ModelDeployments")
    ls.add_argument("-A", "--all-namespaces", action="store_true", help="in every namespace")
    g = verbs.add_parser("get", parents=[common, output], help="one ModelDeployment in detail")
    g.add_argument("name")
    g.add_argument("-w", "--watch", action="store_true", help="live view; exits with the rollout's outcome")
    g.add_argument("--timeout", help="with --watch: give up after this long (e.g. 10m); exit code 5")
    h = verbs.add_parser("history", parents=[common, output], help="revisions and their outcomes")
    h.add_argument("name")
    verbs.add_parser("why", parents=[common], help="why the last decision was taken").add_argument("name")
    for verb in COMMAND_KINDS:
        v = verbs.add_parser(verb, parents=[common], help=f"send the {verb} command")
        v.add_argument("name")
        v.add_argument("--force", action="store_true", help="send even when it does not apply now")
        v.add_argument("-o", "--output", choices=["json"], help="print the annotation written, as JSON")
    return root


def dispatch(args: argparse.Namespace, client: Client) -> int:
    namespace: str = getattr(args, "namespace", None) or client.namespace
    fmt = getattr(args, "output", None)
    out, now = console(), now_utc()
    if args.verb == "list":
        rows = list_verb.run(client, None if args.all_namespaces else namespace)
        if fmt:
            sys.stdout.write(dump([r.as_dict() for r in rows], fmt))
        elif not rows:
            print(
                f"No ModelDeployments found{'' if args.all_namespaces else f' in {namespace} namespace'}.",
                file=sys.stderr,
            )
        else:
            out.print(render.list_table(rows, now, args.all_namespaces))
        return EXIT_OK
    if args.verb == "get" and args.watch:
        if fmt:
            raise CliError("--watch draws a live view: it does not combine with -o")
        try:
            timeout = parse_duration(args.timeout) if args.timeout else None
        except ValueError as exc:
            raise CliError(f"--timeout: {exc}", exit_code=EXIT_USAGE) from exc
        return watch.run(client, namespace, args.name, out, timeout)
    if args.verb == "get":
        detail = get.run(client, namespace, args.name)
        if fmt:
            sys.stdout.write(dump(detail.as_dict(), fmt))
        else:
            out.print(render.detail_view(detail, now))
        return EXIT_OK
    if args.verb == "history":
        entries = history.run(client, namespace, args.name)
        if fmt:
            sys.stdout.write(dump([e.as_dict() for e in entries], fmt))
        else:
            out.print(render.history_table(entries, now))
        return EXIT_OK
    if args.verb == "why":
        print(why.run(client, namespace, args.name))
        return EXIT_OK
    command = control.run(client, namespace, args.name, args.verb, force=args.force)
    if fmt == "json":
        print(json.dumps({"annotation": COMMAND_ANNOTATION, "value": command.value}))
    else:
        print(f"modeldeployment.modeldeploy.dev/{args.name} {args.verb} requested")
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        if args.verb == "get" and args.timeout and not args.watch:
            raise CliError("--timeout applies to --watch only")
        client = connect(getattr(args, "kubeconfig", None), getattr(args, "context", None))
        return dispatch(args, client)
    except CliError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    raise SystemExit(main())
