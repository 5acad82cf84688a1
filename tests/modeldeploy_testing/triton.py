"""Run the real ``tritonserver`` that PyPI ``nvidia-pytriton`` bundles (Triton 2.51.0, CPU only).

``nvidia-pytriton==0.7.0`` (the ``dev`` extra) ships a complete ``tritonserver`` binary, its shared
libraries (``nvidia_pytriton.libs/``), the Python backend (``libtriton_python.so``) and one
``triton_python_backend_stub`` per Python version. To serve a Python-backend model the stub for this
interpreter must sit next to the backend library, so :func:`prepare_backend_directory` builds a
backend directory ``<dir>/python/{libtriton_python.so, triton_python_backend_utils.py,
triton_python_backend_stub}`` (once, atomically, cached under ``$MODELDEPLOY_CACHE``, default
``~/.cache/modeldeploy``). The copied files lose their ``$ORIGIN`` RPATH, so the environment from
:func:`triton_command` puts ``nvidia_pytriton.libs`` on ``LD_LIBRARY_PATH``; it also puts this
interpreter's ``bin`` (the venv) first on ``PATH``, which is how the stub finds ``numpy``.
``KIND_GPU`` instance groups fail without a GPU: use ``KIND_CPU`` here.

Stable API (the e2e pod runner imports it)::

    from modeldeploy_testing.triton import TritonPorts, TritonProcess, localize_args, triton_command

    ports = TritonPorts.free()
    args = localize_args(container_args, model_repository=tmp / "models", ports=ports)
    with TritonProcess(args, log_path=tmp / "triton.log") as triton:   # starts it
        triton.wait_ready("/v2/health/ready", timeout=60)               # the readiness probe's path
        httpx.post(f"{triton.http_url}/v2/models/m/infer", json=...)
        scrape(triton.metrics_address)                                  # "127.0.0.1:PORT"
    # leaving the block stops it (SIGTERM to its process group, then SIGKILL)

* :func:`tritonserver_binary`, :func:`libs_directory`, :func:`prepare_backend_directory`: paths.
* :func:`triton_command` ``(args, backend_dir) -> (argv, env)``: the argv (binary, ``args``, then
  ``--backend-directory=<backend_dir>``) and the environment to run it with.
* :func:`localize_args`: the operator's container args with ``--model-repository``, the three
  ports substituted and the listeners bound to 127.0.0.1 (``--http-address`` etc. added, since the
  container's default is 0.0.0.0); every other argument kept as is, in order.
* :class:`TritonProcess`: start/stop, ``is_ready(path)``, ``wait_ready(path, timeout)``,
  ``wait_until(what, fn, timeout)``, ``logs()`` (stdout+stderr, captured to ``log_path``),
  ``http_url``/``metrics_url``/``metrics_address``, ``returncode``.
* :func:`missing_prerequisite`: why Triton cannot run here (``None`` when it can), for ``pytest.skip``.
* :func:`scrape` ``(metrics_url) -> Exposition``: the Prometheus text as exported (names unchanged,
  ``# TYPE`` per family), with ``total(name, **labels)`` summing the matching samples.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib import util as importlib_util
from pathlib import Path
from types import TracebackType
from typing import TypeVar

TRITON_VERSION = "2.51.0"  # what nvidia-pytriton 0.7.0 bundles
PYTHON_VERSION = f"{sys.version_info.major}.{sys.version_info.minor}"
READY_PATH = "/v2/health/ready"
STOP_TIMEOUT_S = 20.0

# Container flags that name a port or the repository; localize_args substitutes their values.
_PORT_FLAGS = {"http": "--http-port", "grpc": "--grpc-port", "metrics": "--metrics-port"}
_ADDRESS_FLAGS = ("--http-address", "--grpc-address", "--metrics-address")
_REPOSITORY_FLAG = "--model-repository"
_BACKEND_FLAG = "--backend-directory"

T = TypeVar("T")


class TritonUnavailable(RuntimeError):
    """nvidia-pytriton (and so tritonserver) is not installed, or its files are not where expected."""


def _package_root() -> Path:
    spec = importlib_util.find_spec("pytriton")
    if spec is None or spec.origin is None:
        raise TritonUnavailable("nvidia-pytriton is not installed (pip install -e '.[dev]')")
    return Path(spec.origin).parent


def server_directory() -> Path:
    """``pytriton/tritonserver`` inside the installed package."""
    return _package_root() / "tritonserver"


def tritonserver_binary() -> Path:
    path = server_directory() / "bin" / "tritonserver"
    if not os.access(path, os.X_OK):
        raise TritonUnavailable(f"no executable tritonserver at {path}")
    return path


def libs_directory() -> Path:
    """The bundled shared libraries (libtritonserver, libcudart, ...), next to the package."""
    path = _package_root().parent / "nvidia_pytriton.libs"
    if not path.is_dir():
        raise TritonUnavailable(f"no {path}: nvidia-pytriton must be installed from its wheel")
    return path


def stub_path(python_version: str = PYTHON_VERSION) -> Path:
    path = server_directory() / "python_backend_stubs" / python_version / "triton_python_backend_stub"
    if not path.is_file():
        raise TritonUnavailable(f"nvidia-pytriton has no Python backend stub for Python {python_version}")
    return path


def missing_prerequisite() -> str | None:
    """Why the real tritonserver cannot run here, or ``None``."""
    try:
        tritonserver_binary()
        libs_directory()
        stub_path()
    except TritonUnavailable as e:
        return str(e)
    if importlib_util.find_spec("numpy") is None:
        return "the Python backend stub needs numpy in this interpreter"
    return None


def cache_root() -> Path:
    default = Path.home() / ".cache" / "modeldeploy"
    return Path(os.environ.get("MODELDEPLOY_CACHE") or default).expanduser().resolve()


def prepare_backend_directory(dest: Path | None = None, python_version: str = PYTHON_VERSION) -> Path:
    """A ``--backend-directory`` holding the Python backend with this interpreter's stub.

    Default ``dest``: ``<cache>/tritonserver-<version>-backends-py<X.Y>``. Built in a temporary
    sibling and renamed into place, so concurrent callers never see half a directory; an existing
    complete directory is reused.
    """
    dest = dest or cache_root() / f"tritonserver-{TRITON_VERSION}-backends-py{python_version}"
    stub_target = dest / "python" / "triton_python_backend_stub"
    if stub_target.is_file():
        return dest
    source = server_directory() / "backends" / "python"
    stub = stub_path(python_version)
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}-", dir=dest.parent))
    try:
        shutil.copytree(source, staging / "python", ignore=shutil.ignore_patterns("__pycache__"))
        shutil.copy2(stub, staging / "python" / stub.name)
        try:
            staging.rename(dest)
        except OSError:
            if not stub_target.is_file():  # not a concurrent winner: a real failure
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return dest


def triton_command(args: Sequence[str], backend_dir: Path | str) -> tuple[list[str], dict[str, str]]:
    """argv and environment to run ``tritonserver args... --backend-directory=<backend_dir>``."""
    if any(a == _BACKEND_FLAG or a.startswith(f"{_BACKEND_FLAG}=") for a in args):
        raise ValueError(f"{_BACKEND_FLAG} is added by triton_command; do not pass it in args")
    argv = [str(tritonserver_binary()), *args, f"{_BACKEND_FLAG}={backend_dir}"]
    env = dict(os.environ)
    venv_bin = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join(p for p in (venv_bin, env.get("PATH")) if p)
    env["LD_LIBRARY_PATH"] = os.pathsep.join(
        p for p in (str(libs_directory()), env.get("LD_LIBRARY_PATH")) if p
    )
    return argv, env


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class TritonPorts:
    http: int
    grpc: int
    metrics: int

    @classmethod
    def free(cls) -> TritonPorts:
        return cls(http=free_port(), grpc=free_port(), metrics=free_port())


def _flag_value(args: Sequence[str], flag: str) -> str | None:
    for i, arg in enumerate(args):
        if arg.startswith(f"{flag}="):
            return arg.split("=", 1)[1]
        if arg == flag and i + 1 < len(args):
            return args[i + 1]
    return None


def localize_args(
    args: Sequence[str], model_repository: Path | str, ports: TritonPorts, host: str = "127.0.0.1"
) -> list[str]:
    """The container's args with the repository path and ports substituted, listeners on ``host``.

    Each of ``--model-repository``, ``--http-port``, ``--grpc-port``, ``--metrics-port`` must appear
    (as ``--flag=value`` or ``--flag value``); a missing one is a ValueError, so a change in the
    operator's command line cannot go unnoticed. Address flags the args already carry are replaced.
    """
    values = {_REPOSITORY_FLAG: str(model_repository)} | {
        flag: str(getattr(ports, role)) for role, flag in _PORT_FLAGS.items()
    }
    out: list[str] = []
    seen: set[str] = set()
    skip_next = False
    for i, arg in enumerate(args):
        if skip_next:
            skip_next = False
            continue
        flag = arg.split("=", 1)[0]
        if flag in values or flag in _ADDRESS_FLAGS:
            seen.add(flag)
            if "=" not in arg:
                if i + 1 >= len(args):
                    raise ValueError(f"{flag} without a value in {list(args)}")
                skip_next = True
            if flag in values:
                out.append(f"{flag}={values[flag]}")
            continue
        out.append(arg)
    missing = sorted(set(values) - seen)
    if missing:
        raise ValueError(f"the Triton args lack {', '.join(missing)}: {list(args)}")
    out += [f"{flag}={host}" for flag in _ADDRESS_FLAGS]
    return out


class TritonProcess:
    """One tritonserver process: ``args`` as given (see :func:`localize_args`), output to ``log_path``.

    Ports and host are read back from ``args``. ``start()`` (or entering the context) launches it in
    its own process group (Python backend stubs included); ``stop()`` ends the group.
    """

    def __init__(
        self,
        args: Sequence[str],
        *,
        log_path: Path | str,
        backend_dir: Path | str | None = None,
        env: Mapping[str, str] | None = None,
        cwd: Path | str | None = None,
    ) -> None:
        self.args = list(args)
        self.log_path = Path(log_path)
        self.backend_dir = Path(backend_dir) if backend_dir is not None else None
        self.extra_env = dict(env or {})
        self.cwd = Path(cwd) if cwd is not None else self.log_path.parent
        self.host = _flag_value(self.args, "--http-address") or "127.0.0.1"
        ports = {role: _flag_value(self.args, flag) for role, flag in _PORT_FLAGS.items()}
        if None in ports.values():
            raise ValueError(f"args must name all three ports ({', '.join(_PORT_FLAGS.values())})")
        self.ports = TritonPorts(**{role: int(str(v)) for role, v in ports.items()})
        self.proc: subprocess.Popen[bytes] | None = None

    # --- addresses ---------------------------------------------------------------------------

    @property
    def http_url(self) -> str:
        return f"http://{self.host}:{self.ports.http}"

    @property
    def metrics_address(self) -> str:
        host = _flag_value(self.args, "--metrics-address") or self.host
        return f"{host}:{self.ports.metrics}"

    @property
    def metrics_url(self) -> str:
        return f"http://{self.metrics_address}/metrics"

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> TritonProcess:
        if self.proc is not None:
            raise RuntimeError("already started")
        backend_dir = self.backend_dir or prepare_backend_directory()
        argv, env = triton_command(self.args, backend_dir)
        env.update(self.extra_env)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                argv,
                cwd=self.cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: stop() reaches the backend stubs
            )
        return self

    @property
    def returncode(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def stop(self) -> int | None:
        """SIGTERM to the process group, SIGKILL after :data:`STOP_TIMEOUT_S`; the exit status."""
        proc = self.proc
        if proc is None:
            return None
        for sig, wait_s in ((signal.SIGTERM, STOP_TIMEOUT_S), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            deadline = time.monotonic() + wait_s
            while time.monotonic() < deadline:
                if proc.poll() is not None and not _group_alive(proc.pid):
                    return proc.returncode
                time.sleep(0.1)
        return proc.wait(timeout=5)

    def __enter__(self) -> TritonProcess:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def logs(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""

    # --- readiness ---------------------------------------------------------------------------

    def status(self, path: str = READY_PATH, timeout: float = 3) -> int | None:
        """HTTP status of ``GET <http_url><path>``; ``None`` when nothing answers."""
        try:
            with urllib.request.urlopen(f"{self.http_url}{path}", timeout=timeout) as r:
                return int(r.status)
        except urllib.error.HTTPError as e:
            return int(e.code)
        except (urllib.error.URLError, OSError):
            return None

    def is_ready(self, path: str = READY_PATH) -> bool:
        return self.status(path) == 200

    def wait_until(
        self, what: str, fn: Callable[[], T | None], timeout: float = 60, interval: float = 0.2
    ) -> T:
        """Poll ``fn`` until truthy; RuntimeError (with the log tail) on timeout or if Triton exits."""
        deadline = time.monotonic() + timeout
        while True:
            last = fn()
            if last:
                return last
            if self.returncode is not None:
                raise RuntimeError(
                    f"tritonserver exited with {self.returncode} while waiting for {what}\n"
                    f"{self.logs()[-6000:]}"
                )
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})\n"
                    f"{self.logs()[-6000:]}"
                )
            time.sleep(interval)

    def wait_ready(self, path: str = READY_PATH, timeout: float = 60) -> None:
        self.wait_until(f"GET {path} == 200", lambda: self.is_ready(path), timeout)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


_SAMPLE = re.compile(r"^([A-Za-z_:][A-Za-z0-9_:]*)(?:\{(.*)\})?\s+(\S+)")
_LABEL = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"')


@dataclass(frozen=True)
class Exposition:
    """One scrape: ``types`` (family -> counter, gauge, summary...) and every sample, names as exported."""

    types: dict[str, str]
    samples: list[tuple[str, dict[str, str], float]]

    def names(self) -> set[str]:
        return {name for name, _, _ in self.samples}

    def total(self, name: str, **labels: str) -> float:
        """Sum of the samples of ``name`` whose labels include ``labels`` (0 when none)."""
        return sum(
            value
            for sample, own, value in self.samples
            if sample == name and all(own.get(k) == v for k, v in labels.items())
        )

    def label_values(self, name: str, label: str) -> set[str]:
        return {own[label] for sample, own, _ in self.samples if sample == name and label in own}


def parse_exposition(text: str) -> Exposition:
    """The Prometheus text format, without renaming (prometheus_client's parser adds ``_total``)."""
    types: dict[str, str] = {}
    samples: list[tuple[str, dict[str, str], float]] = []
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, family, kind = line.split(maxsplit=3)
            types[family] = kind.strip()
        elif line and not line.startswith("#"):
            match = _SAMPLE.match(line)
            if match is None:
                raise ValueError(f"unparsable exposition line {line!r}")
            name, labels, value = match.groups()
            samples.append((name, dict(_LABEL.findall(labels or "")), float(value)))
    return Exposition(types, samples)


def scrape(metrics_url: str, timeout: float = 10) -> Exposition:
    with urllib.request.urlopen(metrics_url, timeout=timeout) as r:
        return parse_exposition(r.read().decode("utf-8"))
