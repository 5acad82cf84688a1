"""``https://`` through httpx: one object per URI, Range requests to resume, a custom CA bundle.

Plain ``http://`` is refused (also as a redirect target). Certificates are verified against the
public roots plus ``--ca-bundle``; a certificate that does not verify fails at once (no retry).
"""

from __future__ import annotations

import ssl
from pathlib import Path

import certifi
import httpx

from modeldeploy.storage.errors import (
    AccessDenied,
    BadSource,
    NotFound,
    Redactor,
    StorageError,
    TlsFailed,
    Transient,
    one_line,
)
from modeldeploy.storage.transfer import ObjectInfo, Sink
from modeldeploy.storage.uri import SourceUri

TIMEOUT = httpx.Timeout(60.0, connect=10.0)


def tls_context(ca_bundle: Path | None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=certifi.where())
    if ca_bundle is not None:
        context.load_verify_locations(cafile=str(ca_bundle))
    return context


def status_error(url: str, status: int) -> StorageError | Transient:
    """What an HTTP error status means for the download (pure)."""
    if status in (404, 410):
        return NotFound(f"{url} does not exist (HTTP {status})")
    if status in (401, 403):
        return AccessDenied(f"{url} (HTTP {status}; check the credentials Secret)")
    if status == 429 or status >= 500:
        return Transient(f"HTTP {status}")
    return BadSource(f"{url}: the server answered HTTP {status}")


def _cert_failure(e: BaseException) -> ssl.SSLCertVerificationError | None:
    seen: BaseException | None = e
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


class HttpsSource:
    def __init__(self, uri: SourceUri, *, ca_bundle: Path | None, redact: Redactor) -> None:
        self.uri, self.redact = uri, redact
        self.ca_bundle = ca_bundle
        self.client = httpx.Client(
            verify=tls_context(ca_bundle),
            timeout=TIMEOUT,
            follow_redirects=True,
            headers={"Accept-Encoding": "identity"},  # the object's own bytes (and sha256)
        )

    def stat(self, key: str) -> ObjectInfo | None:
        return ObjectInfo(key, None)  # the size comes with the body

    def list(self, prefix: str) -> list[ObjectInfo]:
        raise BadSource(f"{self.uri.raw}: an https:// source is one object, it cannot be listed")

    def _transport_error(self, e: httpx.TransportError) -> Exception:
        cert = _cert_failure(e)
        if cert is not None:
            hint = "" if self.ca_bundle else "; a server with a private CA needs the CA bundle (--ca-bundle)"
            return TlsFailed(f"{self.uri.raw}: {cert.verify_message or cert.reason}{hint}")
        return Transient(one_line(self.redact(f"{type(e).__name__}: {e}")))

    def read(self, key: str, offset: int, sink: Sink) -> None:
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        try:
            with self.client.stream("GET", key, headers=headers) as response:
                if response.url.scheme != "https":
                    raise BadSource(f"{self.uri.raw}: redirected to plain {response.url.scheme}://")
                if response.status_code >= 400:
                    raise status_error(self.uri.raw, response.status_code)
                # a server that ignores Range sends the whole body again: skip what we have
                skip = offset if offset and response.status_code == 200 else 0
                for chunk in response.iter_bytes():  # as received: a cut body keeps every byte
                    if skip:
                        dropped = min(skip, len(chunk))
                        chunk, skip = chunk[dropped:], skip - dropped
                    if chunk:
                        sink(chunk)
        except httpx.TransportError as e:
            raise self._transport_error(e) from None

    def close(self) -> None:
        self.client.close()
