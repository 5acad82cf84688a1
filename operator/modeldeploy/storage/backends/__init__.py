"""One module per store; :func:`open_source` picks it from the URI's scheme."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from modeldeploy.storage.errors import Redactor
from modeldeploy.storage.transfer import ObjectSource, RetryPolicy
from modeldeploy.storage.uri import SourceUri


def open_source(
    uri: SourceUri, env: Mapping[str, str], *, ca_bundle: Path | None, policy: RetryPolicy, redact: Redactor
) -> ObjectSource:
    """The store behind ``uri``, configured from the environment (the pod's credentials Secret)."""
    if uri.scheme == "s3":
        from modeldeploy.storage.backends.s3 import S3Source

        return S3Source.from_env(uri, env, ca_bundle=ca_bundle, policy=policy, redact=redact)
    if uri.scheme == "gs":
        from modeldeploy.storage.backends.gs import GcsSource

        return GcsSource.from_env(uri, env, redact=redact)
    from modeldeploy.storage.backends.https import HttpsSource

    return HttpsSource(uri, ca_bundle=ca_bundle, redact=redact)
