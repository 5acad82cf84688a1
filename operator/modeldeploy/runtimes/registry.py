"""Runtime name -> implementation. Adding a runtime adds one line to ``RUNTIMES``."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from modeldeploy.runtimes.base import Runtime
from modeldeploy.runtimes.torchserve import TorchServe
from modeldeploy.runtimes.triton import Triton

RUNTIMES: Mapping[str, Runtime] = MappingProxyType(
    {
        Triton.name: Triton(),
        TorchServe.name: TorchServe(),
    }
)


class UnknownRuntimeError(ValueError):
    """The requested runtime is not registered."""


def get_runtime(name: str) -> Runtime:
    try:
        return RUNTIMES[name]
    except KeyError:
        known = ", ".join(sorted(RUNTIMES))
        raise UnknownRuntimeError(f"unknown runtime {name!r}: expected one of {known}") from None
