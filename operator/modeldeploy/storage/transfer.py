"""Streaming one object to a file: bounded retries with exponential backoff, resume from the byte
reached (HTTP Range), optional sha256, progress lines. Also the interface each store implements."""

from __future__ import annotations

import hashlib
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeVar

from modeldeploy.storage.errors import BadRequest, ChecksumMismatch, LocalWriteFailed, Transient, Unavailable

MIB = 1024 * 1024
PROGRESS_EVERY_S = 2.0
T = TypeVar("T")
Log = Callable[[str], None]
# A piece of an object's body: bytes, or any buffer (obstore hands out zero-copy buffers).
Chunk = bytes | memoryview
Sink = Callable[[Chunk], None]


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int | None


class ObjectSource(Protocol):
    """One store, already authenticated. Raises StorageError (final) or Transient (retry)."""

    def stat(self, key: str) -> ObjectInfo | None:
        """The object ``key``, or None when there is none (also when ``key`` is only a prefix)."""

    def list(self, prefix: str) -> list[ObjectInfo]:
        """Every object whose key starts with ``prefix``."""

    def read(self, key: str, offset: int, sink: Sink) -> None:
        """Pass the object's bytes from ``offset`` on to ``sink``, in order."""

    def close(self) -> None: ...


@dataclass(frozen=True)
class RetryPolicy:
    """``attempts`` tries per request (1 = no retry); the wait doubles from ``initial_backoff_s``."""

    attempts: int = 6
    initial_backoff_s: float = 0.5
    max_backoff_s: float = 20.0

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> RetryPolicy:
        """``MODELDEPLOY_STORAGE_ATTEMPTS`` and ``MODELDEPLOY_STORAGE_BACKOFF_SECONDS`` override."""
        default = cls()
        try:
            attempts = int(env.get("MODELDEPLOY_STORAGE_ATTEMPTS", default.attempts))
            backoff = float(env.get("MODELDEPLOY_STORAGE_BACKOFF_SECONDS", default.initial_backoff_s))
        except ValueError:
            raise BadRequest(
                "MODELDEPLOY_STORAGE_ATTEMPTS must be an integer, "
                "MODELDEPLOY_STORAGE_BACKOFF_SECONDS a number"
            ) from None
        return cls(attempts=max(1, attempts), initial_backoff_s=backoff)

    def delay(self, attempt: int) -> float:
        """Wait before retry number ``attempt`` (1-based): exponential, capped, with jitter."""
        base = min(self.max_backoff_s, self.initial_backoff_s * 2.0 ** (attempt - 1))
        return base * random.uniform(0.5, 1.0)


def retrying(policy: RetryPolicy, uri: str, action: str, log: Log, call: Callable[[], T]) -> T:
    """``call()``, retried on Transient up to the policy's bound, then Unavailable."""
    attempt = 1
    while True:
        try:
            return call()
        except Transient as e:
            if attempt >= policy.attempts:
                raise Unavailable(f"{uri}: {e} (gave up after {attempt} attempts to {action})") from None
            delay = policy.delay(attempt)
            log(f"retry {attempt}/{policy.attempts - 1} {action} {uri} in {delay:.1f}s: {e}")
            time.sleep(delay)
            attempt += 1


class Progress:
    def __init__(self, uri: str, size: int | None, log: Log) -> None:
        self.uri, self.size, self.log = uri, size, log
        self.start = self.last = time.monotonic()
        self.done = 0

    def add(self, n: int) -> None:
        self.done += n
        now = time.monotonic()
        if now - self.last >= PROGRESS_EVERY_S:
            self.last = now
            of = f"/{self.size / MIB:.1f}" if self.size is not None else ""
            self.log(f"{self.uri}: {self.done / MIB:.1f}{of} MiB, {self.rate(now):.1f} MiB/s")

    def rate(self, now: float) -> float:
        return self.done / MIB / max(now - self.start, 1e-6)

    def finish(self) -> None:
        now = time.monotonic()
        self.log(
            f"{self.uri}: {self.done / MIB:.1f} MiB ({self.done} bytes) in {now - self.start:.1f} s, "
            f"{self.rate(now):.1f} MiB/s"
        )


def download(
    source: ObjectSource,
    obj: ObjectInfo,
    uri: str,
    path: Path,
    *,
    policy: RetryPolicy,
    log: Log,
    sha256: str | None = None,
) -> int:
    """Write the object to ``path`` (created or truncated); returns its size.

    A transient failure mid-body resumes from the byte reached; the retry count starts over after
    each attempt that delivered bytes, so a flapping store cannot loop forever without progress.
    """
    hasher = hashlib.sha256() if sha256 else None
    progress = Progress(uri, obj.size, log)
    attempt = 1
    with open(path, "wb") as out:

        def sink(chunk: Chunk) -> None:
            try:
                out.write(chunk)
            except OSError as e:
                raise LocalWriteFailed(f"{path}: {e.strerror or e}") from None
            if hasher is not None:
                hasher.update(chunk)
            progress.add(len(chunk))

        while True:
            before = progress.done
            try:
                source.read(obj.key, progress.done, sink)
                break
            except Transient as e:
                if progress.done > before:
                    attempt = 1
                if attempt >= policy.attempts:
                    raise Unavailable(
                        f"{uri}: {e} (gave up after {attempt} attempts at byte {progress.done})"
                    ) from None
                delay = policy.delay(attempt)
                where = f"{uri} from byte {progress.done}"
                log(f"retry {attempt}/{policy.attempts - 1} {where} in {delay:.1f}s: {e}")
                time.sleep(delay)
                attempt += 1
    if obj.size is not None and progress.done != obj.size:
        raise Unavailable(f"{uri}: received {progress.done} bytes, the store announced {obj.size}")
    if sha256 and hasher is not None:
        got = hasher.hexdigest()
        if got != sha256.lower():
            raise ChecksumMismatch(f"{uri} sha256 is {got}, spec.model.sha256 wants {sha256.lower()}")
    progress.finish()
    return progress.done
