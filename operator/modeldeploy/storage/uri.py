"""What a storage URI names: scheme, bucket (or host) and key (or path). Pure."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from modeldeploy.storage.errors import BadRequest

SCHEMES = ("s3", "gs", "https")


@dataclass(frozen=True)
class SourceUri:
    scheme: str  # s3 | gs | https
    bucket: str  # the bucket; for https the host[:port]
    key: str  # object key or prefix ("" = the whole bucket); for https the URL itself
    raw: str

    @property
    def is_explicit_prefix(self) -> bool:
        """``s3://b/dir/`` (trailing slash) or a whole bucket: a prefix, never a single object."""
        return self.scheme != "https" and (self.key == "" or self.key.endswith("/"))

    def child(self, key: str) -> str:
        """The URI of one object below this source (for messages)."""
        if self.scheme == "https":
            return self.raw
        return f"{self.scheme}://{self.bucket}/{key}"


def parse_uri(uri: str) -> SourceUri:
    """``s3://bucket/key``, ``gs://bucket/key`` or ``https://host/path``; anything else is refused."""
    scheme, sep, rest = uri.partition("://")
    if not sep:
        raise BadRequest(f"unknown URI scheme: {uri!r} (expected s3://, gs:// or https://)")
    scheme = scheme.lower()
    if scheme == "http":
        raise BadRequest(f"{uri}: plain http:// is not allowed, use https://")
    if scheme not in SCHEMES:
        raise BadRequest(f"unknown URI scheme {scheme}:// in {uri!r} (expected s3://, gs:// or https://)")
    if scheme == "https":
        parts = urlsplit(uri)
        if not parts.hostname:
            raise BadRequest(f"{uri}: no host")
        if parts.username or parts.password:
            raise BadRequest("https URI with user:password@ is not allowed (use the credentials Secret)")
        return SourceUri(scheme, parts.netloc, uri, uri)
    bucket, _, key = rest.partition("/")
    if not bucket:
        raise BadRequest(f"{uri}: no bucket")
    return SourceUri(scheme, bucket, key, uri)


def basename(key: str) -> str:
    """Last path segment of an object key or URL path (query and fragment dropped)."""
    path = urlsplit(key).path if "://" in key else key
    return path.rstrip("/").rsplit("/", 1)[-1]
