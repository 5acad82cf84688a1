"""Serving runtimes (Triton, TorchServe) behind one interface; see :mod:`modeldeploy.runtimes.base`."""

from modeldeploy.runtimes.base import MetricSuggestion, Probes, Runtime, RuntimeMetrics
from modeldeploy.runtimes.registry import RUNTIMES, UnknownRuntimeError, get_runtime

__all__ = [
    "RUNTIMES",
    "MetricSuggestion",
    "Probes",
    "Runtime",
    "RuntimeMetrics",
    "UnknownRuntimeError",
    "get_runtime",
]
