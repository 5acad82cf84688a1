"""``modeldeploy-storage-initializer URI DEST --layout triton|torchserve [--version-dir N]
[--sha256 HEX64] [--archive tar.gz|zip] [--ca-bundle PATH] [--termination-log PATH]``

Triton: DEST is the model directory and the model lands in ``DEST/N/``; TorchServe: DEST is the
``.mar`` file. Credentials come only from the environment (the pod's Secret, see the backends).
Progress goes to stdout; on failure one line goes to stderr and to the termination log
(``--termination-log``, else ``$MODELDEPLOY_TERMINATION_LOG``, else ``/dev/termination-log``).
Exit status: 0 done (or already complete), 1 the download failed, 2 bad arguments, 3 a bug.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn

from modeldeploy.storage.archive import FORMATS, check_format
from modeldeploy.storage.errors import BadRequest, Redactor, StorageError, one_line
from modeldeploy.storage.layout import LAYOUTS, TORCHSERVE, TRITON, check_version_dir
from modeldeploy.storage.place import (
    DEFAULT_TERMINATION_LOG,
    Target,
    commit,
    discard,
    is_complete,
    prepare,
    write_termination,
)
from modeldeploy.storage.stage import Request, stage
from modeldeploy.storage.transfer import Log, RetryPolicy
from modeldeploy.storage.uri import parse_uri

SHA256 = re.compile(r"[0-9a-fA-F]{64}")
EXIT_FAILED, EXIT_USAGE, EXIT_BUG = 1, 2, 3


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise BadRequest(message)


def parser() -> argparse.ArgumentParser:
    p = _Parser(prog="modeldeploy-storage-initializer", description=__doc__.split("\n\n")[1])
    p.add_argument("uri", help="s3://bucket/key, gs://bucket/key or https://host/path (object or prefix)")
    p.add_argument("dest", type=Path, help="Triton: the model directory; TorchServe: the .mar path")
    p.add_argument("--layout", required=True, choices=LAYOUTS)
    p.add_argument("--version-dir", help="Triton: the version folder N (DEST/N/)")
    p.add_argument("--sha256", help="expected sha256 of the (single) object, 64 hex digits")
    p.add_argument("--archive", choices=FORMATS, help="unpack the object (tar.gz or zip) safely")
    p.add_argument("--ca-bundle", type=Path, help="PEM CA certificates to trust too (https://, s3 endpoints)")
    p.add_argument(
        "--termination-log", help=f"default: $MODELDEPLOY_TERMINATION_LOG or {DEFAULT_TERMINATION_LOG}"
    )
    return p


def build_request(args: argparse.Namespace) -> tuple[Request, Target]:
    """Validate the arguments (pure): the request and where it lands."""
    uri = parse_uri(args.uri)
    sha = args.sha256
    if sha is not None and not SHA256.fullmatch(sha):
        raise BadRequest(f"--sha256 {sha!r}: expected 64 hex digits")
    archive = check_format(args.archive)
    if args.ca_bundle is not None and not args.ca_bundle.is_file():
        raise BadRequest(f"--ca-bundle {args.ca_bundle}: no such file")
    dest: Path = args.dest
    if args.layout == TRITON:
        version_dir = check_version_dir(args.version_dir)
        request = Request(uri, TRITON, version_dir, "", sha and sha.lower(), archive)
        return request, Target(dest / version_dir)
    if not dest.name.endswith(".mar"):
        raise BadRequest(f"--layout torchserve: DEST {dest} must be the .mar file's path")
    return Request(uri, TORCHSERVE, None, dest.name, sha and sha.lower(), archive), Target(dest)


def completion_record(request: Request) -> dict[str, Any]:
    return {
        "source": request.uri.raw,
        "sha256": request.sha256,
        "layout": request.layout,
        "versionDir": request.version_dir,
        "archive": request.archive,
    }


def run(args: argparse.Namespace, env: Mapping[str, str], log: Log, redact: Redactor) -> None:
    from modeldeploy.storage.backends import open_source

    request, target = build_request(args)
    record = completion_record(request)
    if is_complete(target, record):
        log(f"{target.final} is already complete from {request.uri.raw}: nothing to do")
        return
    policy = RetryPolicy.from_env(env)
    source = open_source(request.uri, env, ca_bundle=args.ca_bundle, policy=policy, redact=redact)
    try:
        work = prepare(target, log)
        staged = stage(source, request, work, policy, log)
        commit(target, staged, record)
    except BaseException:
        discard(target)  # nothing half-done stays behind (a killed run's is removed by the next)
        raise
    finally:
        source.close()
    log(f"{request.uri.raw} -> {target.final}: complete")


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    env = os.environ if env is None else env
    redact = Redactor.from_env(env)

    def log(message: str) -> None:
        print(redact(message), flush=True)

    termination_log = env.get("MODELDEPLOY_TERMINATION_LOG") or DEFAULT_TERMINATION_LOG
    try:
        args = parser().parse_args(argv)
        termination_log = args.termination_log or termination_log
        redact.add_url_query(args.uri)
        run(args, env, log, redact)
        return 0
    except StorageError as e:
        line, code = redact(e.line), EXIT_USAGE if isinstance(e, BadRequest) else EXIT_FAILED
    except Exception as e:  # a bug: still one line, never a traceback full of values
        line, code = redact(f"internal error: {type(e).__name__}: {one_line(str(e))}"), EXIT_BUG
    print(f"error: {line}", file=sys.stderr, flush=True)
    problem = write_termination(termination_log, line)
    if problem:
        print(problem, file=sys.stderr, flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
