"""Reading one object from the API server as plain JSON (the harness never needs the client's
models): ``None`` when it does not exist."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any


def read_json(call: Callable[..., Any], *args: Any) -> dict[str, Any] | None:
    """``call(*args)`` (a kubernetes client read) as JSON; None on 404 (the object, or its CRD, is absent)."""
    from kubernetes.client.exceptions import ApiException

    try:
        response = call(*args, _preload_content=False, _request_timeout=10)
    except ApiException as e:
        if e.status == 404:
            return None
        raise
    body: dict[str, Any] = json.loads(response.data)
    return body
