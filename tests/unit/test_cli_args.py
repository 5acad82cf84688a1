"""kubectl-like flags: accepted before or after the verb; a flag given once is never reset."""

from __future__ import annotations

import pytest

from modeldeploy.cli.main import main, parser

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    "argv",
    [
        ["-n", "ml", "--context", "prod", "--kubeconfig", "/k", "get", "fraud", "--watch"],
        ["get", "fraud", "-n", "ml", "--context", "prod", "--kubeconfig", "/k", "-w"],
        ["--kubeconfig", "/k", "get", "--namespace", "ml", "fraud", "--watch", "--context", "prod"],
    ],
)
def test_flags_before_or_after_the_verb(argv: list[str]) -> None:
    args = parser().parse_args(argv)
    assert (args.verb, args.name, args.namespace, args.context, args.kubeconfig, args.watch) == (
        "get",
        "fraud",
        "ml",
        "prod",
        "/k",
        True,
    )


def test_defaults_are_left_to_the_kubeconfig() -> None:
    args = parser().parse_args(["list", "-A", "-o", "yaml"])
    assert not hasattr(args, "namespace") and not hasattr(args, "context")
    assert (args.all_namespaces, args.output) == (True, "yaml")


def test_usage_errors_are_one_line_and_not_a_cluster_call(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["get", "fraud", "--timeout", "5m"]) == 1
    assert capsys.readouterr().err == "error: --timeout applies to --watch only\n"
    assert main(["--kubeconfig", "/nonexistent/kubeconfig", "list"]) == 1
    assert capsys.readouterr().err == "error: kubeconfig /nonexistent/kubeconfig does not exist\n"
    with pytest.raises(SystemExit) as exit_:
        main(["list", "-o", "wide"])
    assert exit_.value.code == 2
