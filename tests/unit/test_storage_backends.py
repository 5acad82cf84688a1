"""What each store's configuration and HTTP statuses mean, decided without a server."""

from __future__ import annotations

import pytest

from modeldeploy.storage.backends.https import status_error
from modeldeploy.storage.backends.s3 import DEFAULT_REGION, client_options, s3_config
from modeldeploy.storage.errors import AccessDenied, BadSource, NotFound, Transient


def test_s3_endpoint_means_path_style_and_plain_http_allowed() -> None:
    env = {
        "AWS_ENDPOINT_URL": "http://minio.store:9000",
        "AWS_ACCESS_KEY_ID": "id",
        "AWS_SECRET_ACCESS_KEY": "secret",
        "AWS_SESSION_TOKEN": "token",
        "AWS_DEFAULT_REGION": "eu-west-3",
    }
    config = s3_config(env)
    assert config == {
        "region": "eu-west-3",
        "endpoint": "http://minio.store:9000",
        "virtual_hosted_style_request": False,
        "access_key_id": "id",
        "secret_access_key": "secret",
        "session_token": "token",
    }
    assert client_options(config.get("endpoint"), None).get("allow_http") is True


def test_s3_service_specific_endpoint_and_region_win() -> None:
    env = {"AWS_ENDPOINT_URL": "https://a", "AWS_ENDPOINT_URL_S3": "https://s3.b", "AWS_REGION": "r1"}
    env["AWS_DEFAULT_REGION"] = "r2"
    config = s3_config(env)
    assert (config["endpoint"], config["region"]) == ("https://s3.b", "r1")
    assert "allow_http" not in client_options(config["endpoint"], None)


def test_s3_without_keys_leaves_credentials_to_the_default_chain() -> None:
    config = s3_config({"AWS_ACCESS_KEY_ID": "id-only"})
    assert config == {"region": DEFAULT_REGION}  # AWS itself: virtual-hosted default, no keys


@pytest.mark.parametrize(
    ("status", "kind"),
    [(404, NotFound), (410, NotFound), (401, AccessDenied), (403, AccessDenied), (400, BadSource)],
)
def test_https_final_statuses(status: int, kind: type[Exception]) -> None:
    assert isinstance(status_error("https://h/m", status), kind)


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
def test_https_retried_statuses(status: int) -> None:
    error = status_error("https://h/m", status)
    assert isinstance(error, Transient) and str(error) == f"HTTP {status}"
