"""Where the plugin writes: a rich Console for people, JSON or YAML for programs (``-o``)."""

from __future__ import annotations

import json
import os
import sys
from typing import Any, TextIO

import yaml
from rich.console import Console

FORMATS = ("json", "yaml")


def console(stream: TextIO | None = None) -> Console:
    """Colours only on a terminal (rich also honours NO_COLOR); no wrapping of tables into a pipe."""
    out = stream or sys.stdout
    terminal = out.isatty()
    width = None if terminal else int(os.environ.get("COLUMNS") or 200)
    return Console(file=out, highlight=False, width=width, soft_wrap=not terminal)


def dump(data: Any, fmt: str) -> str:
    if fmt == "yaml":
        return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"
