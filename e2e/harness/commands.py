"""A container's command line as a local program: image -> executable, container paths and ports mapped.

:func:`local_program` turns one container of a pod spec into a :class:`Program` (argv, env, cwd):

* the executable: the container's ``command`` (or the image's entrypoint when it has none), by its
  base name: ``modeldeploy-storage-initializer`` (also the entrypoint of any ``*/storage-initializer``
  image) -> the venv's console script; ``tritonserver`` -> the real tritonserver bundled by
  nvidia-pytriton (:mod:`modeldeploy_testing.triton`: its Python backend directory and shared
  libraries), ``torchserve`` -> the venv's torchserve (a torch stub when torch is not installed).
  Anything else raises :class:`~harness.volumes.Unsupported`.
* every container path in args and env values -> its local path (:meth:`MountTable.rewrite`);
* ports: each declared ``containerPort`` gets a free loopback port (:func:`allocate_ports`);
  ``--<name>-port=N`` flags naming a declared port are rewritten, Triton gets ``--*-address=127.0.0.1``,
  TorchServe's ``--ts-config`` file (the pod's own copy of its ConfigMap) gets every listener on
  127.0.0.1 with a mapped port; ``workingDir`` is mapped like any container path.
* env: a container's clean environment (PATH with the venv first, HOME/TMPDIR in the container's work
  dir, HOSTNAME = pod name), the container's env on top, and ``MODELDEPLOY_TERMINATION_LOG`` naming the
  local file that stands for its termination message path.
"""

from __future__ import annotations

import importlib.util
import os
import re
import socket
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from harness.volumes import DEFAULT_TERMINATION_MESSAGE_PATH, MountTable, Unsupported

VENV_BIN: Final = Path(sys.executable).parent
INITIALIZER: Final = "modeldeploy-storage-initializer"
TRITON: Final = "tritonserver"
TORCHSERVE: Final = "torchserve"
# Entry points of images that set none in the pod spec, by image name (registry and tag stripped).
IMAGE_ENTRYPOINTS: Final = {"storage-initializer": [INITIALIZER], "tritonserver": [TRITON]}
TERMINATION_LOG_ENV: Final = "MODELDEPLOY_TERMINATION_LOG"
LOOPBACK: Final = "127.0.0.1"
_PORT_FLAG: Final = re.compile(r"^(--[\w-]*port)(=?)(\d*)$")
_ADDRESS_LINE: Final = re.compile(r"^(\w+_address)=(https?)://[^:/]+:(\d+)$")


@dataclass(frozen=True)
class Program:
    argv: list[str]
    env: dict[str, str]
    cwd: Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        port: int = s.getsockname()[1]
        return port


def allocate_ports(container: Mapping[str, Any]) -> dict[int, int]:
    """Declared containerPort -> a free loopback port."""
    return {int(p["containerPort"]): free_port() for p in container.get("ports") or []}


def image_name(image: str) -> str:
    """``registry:5000/org/tritonserver:24.12-py3@sha256:...`` -> ``tritonserver``."""
    last = image.split("@", 1)[0].rsplit("/", 1)[-1]
    return last.split(":", 1)[0]


def entrypoint(container: Mapping[str, Any]) -> list[str]:
    command = [str(c) for c in container.get("command") or []]
    if command:
        return command
    found = IMAGE_ENTRYPOINTS.get(image_name(str(container.get("image", ""))))
    if found is None:
        raise Unsupported(f"image {container.get('image')!r} sets no command the runner knows")
    return list(found)


def rewrite_port_flags(args: list[str], ports: Mapping[int, int]) -> list[str]:
    """``--x-port=N`` / ``--x-port N`` naming a declared port -> the mapped port."""
    out: list[str] = []
    pending = False
    for arg in args:
        if pending and arg.isdigit() and int(arg) in ports:
            arg = str(ports[int(arg)])
        pending = False
        match = _PORT_FLAG.match(arg)
        if match:
            flag, eq, value = match.groups()
            if eq and value and int(value) in ports:
                arg = f"{flag}={ports[int(value)]}"
            pending = not eq
        out.append(arg)
    return out


def rewrite_listeners(text: str, ports: Mapping[int, int], mounts: MountTable) -> str:
    """A TorchServe config.properties for this machine: listeners on 127.0.0.1 with mapped ports
    (undeclared ones, like the management API, on a free port), container paths mapped, and free
    gRPC ports (TorchServe always starts gRPC, on 7070/7071 unless told otherwise)."""
    lines = []
    for line in text.splitlines():
        match = _ADDRESS_LINE.match(line)
        if match:
            key, scheme, port = match.groups()
            line = f"{key}={scheme}://{LOOPBACK}:{ports.get(int(port)) or free_port()}"
        elif "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            line = f"{key}={mounts.rewrite(value)}"
        lines.append(line)
    lines = [ln for ln in lines if not ln.startswith(("grpc_inference_port=", "grpc_management_port="))]
    lines += [f"grpc_inference_port={free_port()}", f"grpc_management_port={free_port()}"]
    return "\n".join(lines) + "\n"


def _base_env(workdir: Path, hostname: str) -> dict[str, str]:
    home, tmp = workdir / "home", workdir / "tmp"
    home.mkdir(parents=True, exist_ok=True)
    tmp.mkdir(parents=True, exist_ok=True)
    env = {
        "PATH": os.pathsep.join([str(VENV_BIN), "/usr/local/bin", "/usr/bin", "/bin"]),
        "HOME": str(home),
        "TMPDIR": str(tmp),
        "HOSTNAME": hostname,
        "LANG": "C.UTF-8",
    }
    if "JAVA_HOME" in os.environ:
        env["JAVA_HOME"] = os.environ["JAVA_HOME"]
    return env


def _venv_tool(name: str) -> str:
    tool = VENV_BIN / name
    if not tool.is_file():
        raise Unsupported(f"{name} is not installed in {VENV_BIN} (pip install -e '.[dev]')")
    return str(tool)


def _triton(args: list[str], env: dict[str, str]) -> list[str]:
    from modeldeploy_testing import triton

    if (missing := triton.missing_prerequisite()) is not None:
        raise Unsupported(missing)
    addresses = [f"--{kind}-address={LOOPBACK}" for kind in ("http", "grpc", "metrics")]
    argv, triton_env = triton.triton_command([*args, *addresses], triton.prepare_backend_directory())
    env["LD_LIBRARY_PATH"] = triton_env["LD_LIBRARY_PATH"]  # the bundled shared libraries
    return list(argv)


def _torchserve(
    args: list[str], env: dict[str, str], workdir: Path, ports: Mapping[int, int], mounts: MountTable
) -> list[str]:
    out = list(args)
    if "--ts-config" in out[:-1]:
        # rewritten in place, in the pod's own copy of the ConfigMap volume: the server and the
        # readiness probe (which reads the listeners from it) see the same local ports
        config = Path(out[out.index("--ts-config") + 1])
        if not config.is_file():
            raise Unsupported(f"--ts-config {config} does not exist")
        pristine = workdir / f"{config.name}.container"  # a restart rewrites the original again
        if not pristine.is_file():
            pristine.write_text(config.read_text())
        config.write_text(rewrite_listeners(pristine.read_text(), ports, mounts))
    env["TEMP"] = env["TMPDIR"]  # the JVM's java.io.tmpdir: TorchServe keeps its pid file there
    if importlib.util.find_spec("torch") is None:
        from modeldeploy_testing.torchserve import TORCH_STUB  # what the worker imports of torch

        stub = workdir / "torch_stub" / "torch"
        stub.mkdir(parents=True, exist_ok=True)
        (stub / "__init__.py").write_text(TORCH_STUB)
        env["PYTHONPATH"] = str(stub.parent)
    return [_venv_tool(TORCHSERVE), *out]


def local_program(
    container: Mapping[str, Any],
    mounts: MountTable,
    env: Mapping[str, str],
    ports: Mapping[int, int],
    workdir: Path,
    hostname: str,
) -> Program:
    """The local command line for ``container`` (see the module doc); ``env`` is the container's env
    (:func:`harness.volumes.container_env`), ``ports`` from :func:`allocate_ports`."""
    workdir.mkdir(parents=True, exist_ok=True)
    command = entrypoint(container)
    args = [mounts.rewrite(a) for a in [*command[1:], *(str(a) for a in container.get("args") or [])]]
    args = rewrite_port_flags(args, ports)
    full_env = {**_base_env(workdir, hostname), **env}
    message_path = container.get("terminationMessagePath") or DEFAULT_TERMINATION_MESSAGE_PATH
    full_env[TERMINATION_LOG_ENV] = mounts.map_path(message_path) or ""
    cwd = workdir
    if container.get("workingDir"):
        cwd = Path(mounts.map_path(str(container["workingDir"])) or workdir)
        cwd.mkdir(parents=True, exist_ok=True)
    program = os.path.basename(command[0])
    if program == INITIALIZER:
        argv = [_venv_tool(INITIALIZER), *args]
    elif program == TRITON:
        argv = _triton(args, full_env)
    elif program == TORCHSERVE:
        argv = _torchserve(args, full_env, workdir, ports, mounts)
    else:
        raise Unsupported(f"no local program for command {command[0]!r} (image {container.get('image')!r})")
    return Program(argv, full_env, cwd)
