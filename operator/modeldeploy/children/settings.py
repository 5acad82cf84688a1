"""Operator-level inputs to the builders (filled from the operator's Settings)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

DEFAULT_STORAGE_INITIALIZER_IMAGE = "modeldeploy/storage-initializer:0.1.0"


@dataclass(frozen=True)
class BuildSettings:
    """Image overrides and Deployment knobs.

    ``images`` overrides the runtimes' pinned defaults by runtime name (``triton``, ``torchserve``)
    or, more specifically, by image key (``torchserve-cpu``, ``torchserve-gpu``). A change of an
    effective image changes the revision hash of the ModelDeployments that use it.
    """

    images: Mapping[str, str] = field(default_factory=dict)
    storage_initializer_image: str | None = None
    revision_history_limit: int = 2

    def initializer_image(self) -> str:
        return self.storage_initializer_image or DEFAULT_STORAGE_INITIALIZER_IMAGE
