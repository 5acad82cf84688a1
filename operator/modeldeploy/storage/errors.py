"""Failures of the initializer, each one clear line, and the redaction of credentials. Pure."""

from __future__ import annotations

import json
from collections.abc import Mapping
from urllib.parse import urlsplit

# Environment variables whose values are credentials (from the pod's Secret): never printed.
SECRET_ENV = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "GOOGLE_SERVICE_ACCOUNT_JSON",
)
# Fields of a service-account JSON that are secrets on their own.
SECRET_JSON_FIELDS = ("private_key", "private_key_id", "client_secret", "refresh_token")
MIN_SECRET_LEN = 4


class StorageError(Exception):
    """A failure with a message fit for the termination log (``<kind>: <detail>``)."""

    kind = "error"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail

    @property
    def line(self) -> str:
        return f"{self.kind}: {self.detail}"


class BadRequest(StorageError):
    kind = "invalid arguments"


class NotFound(StorageError):
    kind = "not found"


class AccessDenied(StorageError):
    kind = "access denied"


class ChecksumMismatch(StorageError):
    kind = "checksum mismatch"


class BadSource(StorageError):
    """The source exists but is not what the runtime can load."""

    kind = "bad model source"


class UnsafeSource(StorageError):
    """An archive member or object key that would land outside the destination."""

    kind = "unsafe model source"


class Unavailable(StorageError):
    """The store kept failing (5xx, throttling, connection errors) after every retry."""

    kind = "store unavailable"


class LocalWriteFailed(StorageError):
    """Writing below the destination failed (disk full, read-only volume)."""

    kind = "cannot write the model"


class TlsFailed(StorageError):
    """The server's certificate could not be verified (a private CA needs --ca-bundle)."""

    kind = "TLS verification failed"


class Transient(Exception):
    """A retryable failure of one request (5xx, 429, connection reset); never leaves the transfer."""


def secret_values(env: Mapping[str, str]) -> list[str]:
    """Every credential value found in the environment, longest first."""
    values: list[str] = []
    for name in SECRET_ENV:
        value = env.get(name, "")
        if len(value) >= MIN_SECRET_LEN:
            values.append(value)
    sa = env.get("GOOGLE_SERVICE_ACCOUNT_JSON", "")
    if sa:
        try:
            info = json.loads(sa)
        except ValueError:
            info = None
        if isinstance(info, dict):
            for field in SECRET_JSON_FIELDS:
                secret = info.get(field)
                if isinstance(secret, str) and len(secret) >= MIN_SECRET_LEN:
                    # as it is, JSON-escaped, and each line of a PEM key
                    values += [secret, json.dumps(secret)[1:-1]]
                    values += [line for line in secret.splitlines() if len(line) >= 16]
    return sorted(set(values), key=len, reverse=True)


class Redactor:
    def __init__(self, secrets: list[str]) -> None:
        self.secrets = secrets

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Redactor:
        return cls(secret_values(env))

    def add_url_query(self, url: str) -> None:
        """A signed URL's query string (``X-Amz-Signature=...``, ``sig=...``) is a credential too."""
        query = urlsplit(url).query if "://" in url else ""
        if len(query) >= MIN_SECRET_LEN:
            self.secrets = sorted({*self.secrets, query}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text


def one_line(text: str, limit: int = 400) -> str:
    """First line of a library's error message, shortened (they can be pages of debug output)."""
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    return first if len(first) <= limit else first[: limit - 3] + "..."
