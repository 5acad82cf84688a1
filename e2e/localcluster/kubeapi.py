"""HTTP GETs for health checks and a minimal Kubernetes API client on the admin certificate."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from typing import Any

from .config import Config


def http_get(url: str, ctx: ssl.SSLContext | None = None, timeout: float = 5) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=ctx) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except (urllib.error.URLError, OSError, ValueError):
        return 0, b""


def insecure_ctx() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


class Api:
    """Minimal Kubernetes API client using the admin client certificate."""

    def __init__(self, cfg: Config) -> None:
        self.base = cfg.apiserver_url
        self.ctx = ssl.create_default_context(cafile=str(cfg.pki / "ca.crt"))
        self.ctx.load_cert_chain(str(cfg.pki / "admin.crt"), str(cfg.pki / "admin.key"))

    def request(self, method: str, path: str, body: Any = None, timeout: float = 10) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method)
        req.add_header("Accept", "application/json")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=timeout, context=self.ctx) as r:
                raw = r.read()
                status = r.status
        except urllib.error.HTTPError as e:
            raw, status = e.read(), e.code
        except (urllib.error.URLError, OSError) as e:
            return 0, {"message": str(e)}
        try:
            return status, json.loads(raw) if raw else {}
        except json.JSONDecodeError:
            return status, {"raw": raw.decode("utf-8", "replace")}

    def get_raw(self, path: str) -> tuple[int, bytes]:
        return http_get(self.base + path, self.ctx)
