"""``s3://`` through obstore (Rust object_store): AWS or any S3-compatible server.

Environment (from the credentials Secret): ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``,
``AWS_SESSION_TOKEN``, ``AWS_ENDPOINT_URL_S3`` or ``AWS_ENDPOINT_URL`` (then path-style requests),
``AWS_REGION`` or ``AWS_DEFAULT_REGION``. Without keys, obstore's own chain applies (web identity,
instance metadata). obstore retries each request (5xx, throttling, connection errors) with
exponential backoff; a body cut mid-transfer surfaces as Transient and is resumed by the transfer.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import obstore
from obstore.exceptions import PermissionDeniedError, UnauthenticatedError

from modeldeploy.storage.errors import AccessDenied, NotFound, Redactor, Transient, Unavailable, one_line
from modeldeploy.storage.transfer import ObjectInfo, RetryPolicy, Sink
from modeldeploy.storage.uri import SourceUri

if TYPE_CHECKING:
    from obstore.store import ClientConfig, RetryConfig, S3Config

CHUNK = 8 * 1024 * 1024
DEFAULT_REGION = "us-east-1"
HTTP_STATUS = re.compile(r"status code: (\d{3})")


def s3_config(env: Mapping[str, str]) -> S3Config:
    """obstore's S3 settings from the environment (pure)."""
    config: S3Config = {
        "region": env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or DEFAULT_REGION,
    }
    endpoint = env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL")
    if endpoint:
        config["endpoint"] = endpoint
        config["virtual_hosted_style_request"] = False  # S3-compatible servers: path-style
    if env.get("AWS_ACCESS_KEY_ID") and env.get("AWS_SECRET_ACCESS_KEY"):
        config["access_key_id"] = env["AWS_ACCESS_KEY_ID"]
        config["secret_access_key"] = env["AWS_SECRET_ACCESS_KEY"]
        if env.get("AWS_SESSION_TOKEN"):
            config["session_token"] = env["AWS_SESSION_TOKEN"]
    return config


def client_options(endpoint: str | None, ca_bundle: Path | None) -> ClientConfig:
    options: ClientConfig = {
        "connect_timeout": timedelta(seconds=10),
        "read_timeout": timedelta(seconds=60),  # a stalled body; retried (resumed) by the transfer
        "timeout": timedelta(hours=12),  # the whole body of a large model
    }
    if endpoint and endpoint.startswith("http://"):
        options["allow_http"] = True
    if ca_bundle is not None:
        options["root_certificate"] = ca_bundle.read_bytes()
    return options


def retry_config(policy: RetryPolicy) -> RetryConfig:
    return {
        "max_retries": policy.attempts - 1,
        "backoff": {
            "init_backoff": timedelta(seconds=policy.initial_backoff_s),
            "max_backoff": timedelta(seconds=policy.max_backoff_s),
            "base": 2.0,
        },
        "retry_timeout": timedelta(seconds=policy.max_backoff_s * policy.attempts),
    }


class S3Source:
    def __init__(self, uri: SourceUri, store: Any, redact: Redactor) -> None:
        self.uri, self.store, self.redact = uri, store, redact

    @classmethod
    def from_env(
        cls,
        uri: SourceUri,
        env: Mapping[str, str],
        *,
        ca_bundle: Path | None,
        policy: RetryPolicy,
        redact: Redactor,
    ) -> S3Source:
        from obstore.store import S3Store

        config = s3_config(env)
        store = S3Store(
            uri.bucket,
            config=config,
            client_options=client_options(config.get("endpoint"), ca_bundle),
            retry_config=retry_config(policy),
        )
        return cls(uri, store, redact)

    def _final(self, e: Exception, where: str) -> Exception:
        """A request failed after obstore's own retries: what it means for the download."""
        text = str(e)
        status = HTTP_STATUS.search(text)
        code = int(status.group(1)) if status else None
        if isinstance(e, FileNotFoundError) or code == 404:  # obstore's "not found"
            bucket = " (no such bucket)" if "NoSuchBucket" in text else ""
            return NotFound(f"{where} does not exist{bucket}")
        if isinstance(e, PermissionDeniedError | UnauthenticatedError) or code in (401, 403):
            return AccessDenied(f"{where} (check the credentials Secret)")
        return Unavailable(f"{where}: {one_line(self.redact(text))}")

    def stat(self, key: str) -> ObjectInfo | None:
        if not key:
            return None
        try:
            meta = obstore.head(self.store, key)
        except FileNotFoundError:
            return None
        except Exception as e:
            raise self._final(e, self.uri.child(key)) from None
        return ObjectInfo(key, int(meta["size"]))

    def list(self, prefix: str) -> list[ObjectInfo]:
        try:
            return [
                ObjectInfo(meta["path"], int(meta["size"]))
                for batch in obstore.list(self.store, prefix=prefix.rstrip("/") or None)
                for meta in batch
            ]
        except Exception as e:
            raise self._final(e, self.uri.raw) from None

    def read(self, key: str, offset: int, sink: Sink) -> None:
        try:
            result = obstore.get(self.store, key, options={"range": {"offset": offset}} if offset else None)
        except Exception as e:
            raise self._final(e, self.uri.child(key)) from None
        chunks = iter(result.stream(min_chunk_size=CHUNK))
        while True:
            try:
                chunk = next(chunks)
            except StopIteration:
                return
            except Exception as e:  # the body broke off: resumed from the byte reached
                raise Transient(one_line(self.redact(str(e)))) from None
            sink(memoryview(chunk))

    def close(self) -> None:
        pass
