"""The storage initializer's pure decisions: URIs, runtime layouts, safe names, redaction, messages."""

from __future__ import annotations

import argparse
import json
from pathlib import Path, PurePosixPath

import pytest

from modeldeploy.storage.cli import build_request, parser
from modeldeploy.storage.errors import BadRequest, BadSource, Redactor, UnsafeSource, one_line
from modeldeploy.storage.layout import Move, plan
from modeldeploy.storage.place import TERMINATION_LIMIT, termination_line
from modeldeploy.storage.safepath import check_link_target, relative_key, safe_relpath
from modeldeploy.storage.transfer import RetryPolicy
from modeldeploy.storage.uri import basename, parse_uri

P = PurePosixPath


def files(*names: str) -> list[PurePosixPath]:
    return [P(n) for n in names]


@pytest.mark.parametrize(
    ("uri", "scheme", "bucket", "key", "prefix"),
    [
        ("s3://models/fraud/7", "s3", "models", "fraud/7", False),
        ("s3://models/fraud/7/", "s3", "models", "fraud/7/", True),
        ("s3://models", "s3", "models", "", True),
        ("gs://bkt/a/b.onnx", "gs", "bkt", "a/b.onnx", False),
        ("https://host:8443/m/x.mar?sig=1", "https", "host:8443", "https://host:8443/m/x.mar?sig=1", False),
    ],
)
def test_parse_uri(uri: str, scheme: str, bucket: str, key: str, prefix: bool) -> None:
    parsed = parse_uri(uri)
    assert (parsed.scheme, parsed.bucket, parsed.key, parsed.is_explicit_prefix) == (
        scheme,
        bucket,
        key,
        prefix,
    )


@pytest.mark.parametrize(
    ("uri", "says"),
    [
        ("ftp://x/y", "unknown URI scheme ftp://"),
        ("models/fraud", "unknown URI scheme"),
        ("http://host/x.mar", "plain http:// is not allowed"),
        ("s3:///key", "no bucket"),
        ("https://user:pw@host/x", "user:password@"),
    ],
)
def test_bad_uris_are_one_clear_message(uri: str, says: str) -> None:
    with pytest.raises(BadRequest, match=says.replace("?", r"\?")):
        parse_uri(uri)


def test_basename_ignores_query_and_trailing_slash() -> None:
    assert basename("https://h/a/model.mar?sig=abc") == "model.mar"
    assert basename("fraud/7/") == "7"


def test_triton_model_directory_places_only_the_version_folder() -> None:
    moves = plan(
        "triton",
        files("config.pbtxt", "1/model.onnx", "2/model.onnx", "2/sub/w.bin", "labels.txt"),
        version_dir="2",
        target_name="",
        source="s3://b/m",
    )
    assert moves == [Move(P("2/model.onnx"), P("2/model.onnx")), Move(P("2/sub/w.bin"), P("2/sub/w.bin"))]


def test_triton_version_folder_may_be_zero_padded_in_the_source() -> None:
    moves = plan("triton", files("007/model.py"), version_dir="7", target_name="", source="s3://b/m")
    assert moves == [Move(P("007/model.py"), P("7/model.py"))]


def test_triton_missing_version_folder_names_those_found() -> None:
    with pytest.raises(BadSource) as e:
        plan(
            "triton",
            files("1/m.onnx", "10/m.onnx", "2/m.onnx"),
            version_dir="7",
            target_name="",
            source="s3://b/m",
        )
    assert e.value.line == "bad model source: s3://b/m: no version folder 7/ (found: 1, 2, 10)"


def test_triton_model_directory_without_version_folder_is_refused() -> None:
    with pytest.raises(BadSource, match="a Triton model directory without a version folder") as e:
        plan(
            "triton", files("config.pbtxt", "model.onnx"), version_dir="3", target_name="", source="gs://b/m"
        )
    assert "<model>/3/model.onnx" in e.value.detail


def test_triton_version_contents_go_under_the_version_folder() -> None:
    moves = plan(
        "triton", files("model.py", "lib/util.py"), version_dir="4", target_name="", source="s3://b/m"
    )
    assert [m.target for m in moves] == [P("4/model.py"), P("4/lib/util.py")]


def test_triton_empty_source_is_refused() -> None:
    with pytest.raises(BadSource, match="contains no files"):
        plan("triton", [], version_dir="1", target_name="", source="s3://b/m")


@pytest.mark.parametrize("version_dir", [None, "0", "x", "-1", "1.5", "²"])
def test_triton_needs_a_positive_integer_version_dir(version_dir: str | None) -> None:
    with pytest.raises(BadRequest, match="version"):
        plan("triton", files("m.onnx"), version_dir=version_dir, target_name="", source="s3://b/m")


def test_torchserve_takes_the_one_mar() -> None:
    moves = plan(
        "torchserve", files("README", "x/fraud.mar"), version_dir=None, target_name="f.mar", source="s"
    )
    assert moves == [Move(P("x/fraud.mar"), P("f.mar"))]


@pytest.mark.parametrize(
    ("names", "says"),
    [
        (("model.pt", "handler.py"), "found no .mar"),
        (("a.mar", "b/c.mar"), "exactly one .mar, found 2"),
    ],
)
def test_torchserve_refuses_anything_but_one_mar(names: tuple[str, ...], says: str) -> None:
    with pytest.raises(BadSource, match=says):
        plan("torchserve", files(*names), version_dir=None, target_name="f.mar", source="s3://b/k")


@pytest.mark.parametrize(
    "name",
    ["../x", "a/../../x", "/etc/passwd", "C:\\x", "a\\..\\x", "", ".", "a/\x00b", "..", "./../x"],
)
def test_names_that_escape_are_refused(name: str) -> None:
    with pytest.raises(UnsafeSource):
        safe_relpath(name, "archive member")


def test_names_are_normalised() -> None:
    assert safe_relpath("./a//b/./c", "x") == P("a/b/c")


def test_object_keys_below_a_prefix_must_stay_inside() -> None:
    assert relative_key("m/7/a/b.bin", "m/7/", "s3://b/m/7") == P("a/b.bin")
    with pytest.raises(UnsafeSource, match=r"'\.\.'"):
        relative_key("m/7/../../etc/x", "m/7/", "s3://b/m/7")


@pytest.mark.parametrize(
    ("member", "target", "ok"),
    [
        ("a/link", "b.bin", True),
        ("a/link", "../c/b.bin", True),
        ("a/link", "../../x", False),
        ("link", "/etc/passwd", False),
        ("link", "..", False),
    ],
)
def test_symlink_targets_must_stay_inside(member: str, target: str, ok: bool) -> None:
    if ok:
        check_link_target(P(member), target, "m")
    else:
        with pytest.raises(UnsafeSource, match="points outside"):
            check_link_target(P(member), target, "m")


def test_redaction_removes_every_credential_form() -> None:
    key = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----\n"
    env = {
        "AWS_ACCESS_KEY_ID": "AKIAEXAMPLEKEY",
        "AWS_SECRET_ACCESS_KEY": "s3cr3t/with+chars",
        "AWS_SESSION_TOKEN": "tok",  # too short to redact safely: left alone
        "GOOGLE_SERVICE_ACCOUNT_JSON": json.dumps({"private_key": key, "private_key_id": "abcdef123456"}),
        "AWS_REGION": "us-east-1",
    }
    redact = Redactor.from_env(env)
    text = (
        f"id=AKIAEXAMPLEKEY secret=s3cr3t/with+chars pk={json.dumps(key)} "
        "line=MIIEvQIBADANBgkqhkiG9w0BAQEFAASC kid=abcdef123456"
    )
    out = redact(text)
    for secret in ("AKIAEXAMPLEKEY", "s3cr3t/with+chars", "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC", "abcdef123456"):
        assert secret not in out
    assert out.count("***") >= 4
    assert redact("region us-east-1") == "region us-east-1"


def test_a_signed_urls_query_is_redacted() -> None:
    redact = Redactor([])
    url = "https://h/m.mar?X-Amz-Signature=abcdef0123&X-Amz-Credential=AKIA"
    redact.add_url_query(url)
    redact.add_url_query("s3://b/k")  # no query: nothing added
    assert redact(f"not found: {url} does not exist") == "not found: https://h/m.mar?*** does not exist"
    assert redact.secrets == ["X-Amz-Signature=abcdef0123&X-Amz-Credential=AKIA"]


def test_termination_line_is_one_line_within_the_kubelet_limit() -> None:
    assert termination_line("not found:\n  s3://b/k\tdoes not exist") == "not found: s3://b/k does not exist"
    long = termination_line("x" * 10_000)
    assert len(long.encode()) < TERMINATION_LIMIT and long.endswith("...")


def test_one_line_keeps_the_first_line_of_a_library_message() -> None:
    assert one_line("\n  Generic S3 error: boom\n\nDebug source: ...") == "Generic S3 error: boom"


def test_retry_settings_that_are_not_numbers_are_one_clear_message() -> None:
    with pytest.raises(BadRequest, match="MODELDEPLOY_STORAGE_ATTEMPTS must be an integer"):
        RetryPolicy.from_env({"MODELDEPLOY_STORAGE_ATTEMPTS": "many"})


def test_retry_policy_backs_off_exponentially_and_is_bounded() -> None:
    policy = RetryPolicy.from_env(
        {"MODELDEPLOY_STORAGE_ATTEMPTS": "4", "MODELDEPLOY_STORAGE_BACKOFF_SECONDS": "1"}
    )
    assert policy.attempts == 4
    for attempt, full in [(1, 1.0), (2, 2.0), (3, 4.0), (10, policy.max_backoff_s)]:
        assert full * 0.5 <= policy.delay(attempt) <= full


def args(*argv: str) -> argparse.Namespace:
    return parser().parse_args(list(argv))


def test_request_triton_lands_in_the_version_folder(tmp_path: Path) -> None:
    request, target = build_request(
        args(
            "s3://b/m",
            str(tmp_path / "fraud"),
            "--layout",
            "triton",
            "--version-dir",
            "7",
            "--sha256",
            "A" * 64,
        )
    )
    assert target.final == tmp_path / "fraud" / "7"
    assert target.work == tmp_path / "fraud" / ".7.modeldeploy-partial"
    assert request.sha256 == "a" * 64


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (("s3://b/k", "/models/f.mar", "--layout", "torchserve", "--sha256", "abc"), "64 hex digits"),
        (("s3://b/k", "/models/f", "--layout", "torchserve"), "must be the .mar file's path"),
        (("s3://b/k", "/models/f", "--layout", "triton"), "needs --version-dir"),
        (("s3://b/k", "/models/f", "--layout", "onnx"), "invalid choice"),
        (("s3://b/k", "/models/f.mar", "--layout", "torchserve", "--archive", "rar"), "invalid choice"),
        (
            ("s3://b/k", "/models/f.mar", "--layout", "torchserve", "--ca-bundle", "/nonexistent/ca.pem"),
            "no such file",
        ),
    ],
)
def test_bad_arguments_are_one_clear_message(argv: tuple[str, ...], says: str) -> None:
    with pytest.raises(BadRequest, match=says):
        build_request(args(*argv))
