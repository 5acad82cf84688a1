"""``gs://`` through google-cloud-storage (the JSON API).

Environment: ``GOOGLE_SERVICE_ACCOUNT_JSON`` (the key itself: a Secret's keys become variables) or
``GOOGLE_APPLICATION_CREDENTIALS`` (a path to it); neither: the default chain (workload identity).
``STORAGE_EMULATOR_HOST`` points at an emulator (no credentials). The library's own retries are off:
the transfer retries (and resumes) every request itself.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from modeldeploy.storage.errors import (
    AccessDenied,
    BadRequest,
    NotFound,
    Redactor,
    StorageError,
    Transient,
    Unavailable,
    one_line,
)
from modeldeploy.storage.transfer import ObjectInfo, Sink
from modeldeploy.storage.uri import SourceUri

READ_ONLY_SCOPE = "https://www.googleapis.com/auth/devstorage.read_only"
CHUNK = 8 * 1024 * 1024


class _SinkWriter:
    """The file-like object google-cloud-storage writes a download into."""

    def __init__(self, sink: Sink) -> None:
        self.sink = sink

    def write(self, data: bytes) -> int:
        self.sink(data)
        return len(data)


class GcsSource:
    def __init__(self, uri: SourceUri, client: Any, redact: Redactor) -> None:
        self.uri, self.client, self.redact = uri, client, redact
        self.bucket = client.bucket(uri.bucket)

    @classmethod
    def from_env(cls, uri: SourceUri, env: Mapping[str, str], *, redact: Redactor) -> GcsSource:
        from google.cloud import storage

        emulator = env.get("STORAGE_EMULATOR_HOST")
        if emulator:
            from google.auth.credentials import AnonymousCredentials

            endpoint = emulator if "://" in emulator else f"http://{emulator}"
            client = storage.Client(
                project="emulator",
                credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
                client_options={"api_endpoint": endpoint},
            )
        elif env.get("GOOGLE_SERVICE_ACCOUNT_JSON"):
            from google.oauth2 import service_account

            try:
                info = json.loads(env["GOOGLE_SERVICE_ACCOUNT_JSON"])
                from_info: Any = service_account.Credentials.from_service_account_info
                credentials = from_info(info, scopes=[READ_ONLY_SCOPE])
            except (ValueError, KeyError, TypeError):
                # the message of a bad key could quote it: say only what is wrong
                raise BadRequest("GOOGLE_SERVICE_ACCOUNT_JSON is not a service-account key (JSON)") from None
            client = storage.Client(project=info.get("project_id"), credentials=credentials)
        else:
            from google.auth.exceptions import DefaultCredentialsError

            try:
                client = storage.Client()  # GOOGLE_APPLICATION_CREDENTIALS or the default chain
            except DefaultCredentialsError:
                raise AccessDenied(
                    f"{uri.raw}: no Google credentials (set GOOGLE_SERVICE_ACCOUNT_JSON or "
                    "GOOGLE_APPLICATION_CREDENTIALS in the credentials Secret, or use workload identity)"
                ) from None
        return cls(uri, client, redact)

    def _error(self, e: Exception, key: str) -> Exception:
        from google.api_core import exceptions as api
        from google.auth import exceptions as auth

        where = self.uri.child(key)
        if isinstance(e, StorageError):
            return e
        if isinstance(e, api.NotFound):
            return NotFound(f"{where} does not exist")
        if isinstance(e, api.Forbidden | api.Unauthorized | auth.RefreshError):
            return AccessDenied(f"{where} (check the credentials Secret)")
        if isinstance(e, api.TooManyRequests | api.ServerError | auth.TransportError | ConnectionError):
            return Transient(one_line(self.redact(f"{type(e).__name__}: {e}")))
        if type(e).__module__.startswith(("requests", "urllib3")):  # connection reset, timeouts
            return Transient(one_line(self.redact(f"{type(e).__name__}: {e}")))
        return Unavailable(f"{where}: {one_line(self.redact(f'{type(e).__name__}: {e}'))}")

    def stat(self, key: str) -> ObjectInfo | None:
        if not key:
            return None
        try:
            blob = self.bucket.get_blob(key, retry=None)
        except Exception as e:
            raise self._error(e, key) from None
        return None if blob is None else ObjectInfo(key, int(blob.size))

    def list(self, prefix: str) -> list[ObjectInfo]:
        try:
            return [
                ObjectInfo(blob.name, int(blob.size))
                for blob in self.client.list_blobs(self.uri.bucket, prefix=prefix, retry=None)
            ]
        except Exception as e:
            raise self._error(e, prefix) from None

    def read(self, key: str, offset: int, sink: Sink) -> None:
        blob = self.bucket.blob(key, chunk_size=None)
        try:
            blob.download_to_file(
                _SinkWriter(sink), start=offset or None, raw_download=True, checksum=None, retry=None
            )
        except Exception as e:
            raise self._error(e, key) from None

    def close(self) -> None:
        self.client.close()
