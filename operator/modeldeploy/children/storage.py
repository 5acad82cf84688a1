"""Where the model comes from: a remote URI (downloaded by an init container) or a PVC mount."""

from __future__ import annotations

from dataclasses import dataclass

PVC_SCHEME = "pvc://"


@dataclass(frozen=True)
class PvcSource:
    claim: str
    sub_path: str  # "" = the whole claim


def pvc_source(storage_uri: str) -> PvcSource | None:
    """``pvc://claim/a/b`` -> PvcSource("claim", "a/b"); ``None`` for remote URIs.

    Raises ValueError for '.' or '..' segments (Kubernetes refuses such subPaths anyway).
    """
    if not storage_uri.startswith(PVC_SCHEME):
        return None
    claim, _, path = storage_uri[len(PVC_SCHEME) :].partition("/")
    segments = [s for s in path.split("/") if s]
    if any(s in (".", "..") for s in segments):
        raise ValueError(f"storageUri {storage_uri!r}: path segments '.' and '..' are not allowed")
    return PvcSource(claim, "/".join(segments))
