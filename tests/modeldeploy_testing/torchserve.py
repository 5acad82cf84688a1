"""Run the real TorchServe 0.12 (PyPI ``torchserve``, Java 17) exactly as the operator's container does.

:func:`running` archives a tiny torch-free handler with ``torch-model-archiver`` (name and version
from the spec, so the per-model ``models`` settings apply) and starts ``torchserve`` with the
operator's own ``config.properties`` and command line. The container's file system is mapped onto
``<root>/fs``: the model store (``/models``) and the ConfigMap (``/config``) are the "image" part,
made read-only, and each of the runtime's ``writable_dirs`` (the pod's emptyDirs) is a fresh
``<root>/fs/emptydir/<volume>``; the container's ``workingDir`` and ``env`` are mapped the same way.
:meth:`TorchServeServer.image_changes` then tells whether the server wrote anywhere else in that
tree, and :meth:`TorchServeServer.readiness_probe` runs the generated exec probe as the kubelet
would (same argv with container paths mapped, the container's working directory and environment).

TorchServe 0.12's Python worker imports ``torch`` at module level (``ts.protocol.otf_message_handler``)
but only touches ``torch.Tensor``/``torch.save`` for handlers that return tensors. When torch is not
installed the worker gets a two-name stub on its PYTHONPATH instead of the 800 MB wheel.

Copies of the config differ from the ConfigMap only in ports: the three listeners and gRPC (which
0.12 always starts, on 127.0.0.1:7070/7071 by default) get free ones, so servers can run side by side.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from modeldeploy.api.spec import ModelDeploymentSpec
from modeldeploy.runtimes import get_runtime
from modeldeploy.runtimes.torchserve import CONFIG_FILE, KEY_FILE, LOG_DIR

RUNTIME = get_runtime("torchserve")
STARTUP_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0

HANDLER = textwrap.dedent(
    '''\
    """Echo handler for the integration test: no torch, just the TorchServe function protocol."""
    import json


    def handle(data, context):
        if data is None:  # TorchServe calls handle(None, context) once when the worker loads
            return None
        out = []
        for row in data:
            body = row.get("body") if row.get("body") is not None else row.get("data")
            if isinstance(body, (bytes, bytearray)):
                body = json.loads(body.decode())
            if body.get("fail"):
                raise RuntimeError("failure requested by the test")
            out.append(
                {
                    "echo": body,
                    "model": context.model_name,
                    "batch_size": context.system_properties.get("batch_size"),
                }
            )
        return out
    '''
)

# TorchServe 0.12's worker needs `import torch` to succeed; this is all of torch it touches.
TORCH_STUB = textwrap.dedent(
    '''\
    """Test stub: TorchServe's worker imports torch but a torch-free handler never uses it."""


    class Tensor:
        pass


    def save(obj, f):
        raise RuntimeError("torch stub: the test handler never returns tensors")
    '''
)


def gated_handler(gate: Path) -> str:
    """:data:`HANDLER` whose workers finish loading only while the file ``gate`` exists (a slow model)."""
    return HANDLER + textwrap.dedent(
        f"""

        import os as _os
        import time as _time

        _echo = handle


        def handle(data, context):
            if data is None:
                while not _os.path.exists({str(gate)!r}):
                    _time.sleep(0.05)
            return _echo(data, context)
        """
    )


def missing_prerequisite() -> str | None:
    """Why TorchServe cannot run here (``None`` when it can), for ``pytest.skip``."""
    if importlib.util.find_spec("ts") is None:
        return "torchserve is not installed (pip install -e '.[dev]')"
    if importlib.util.find_spec("model_archiver") is None:
        return "torch-model-archiver is not installed (pip install -e '.[dev]')"
    java_home = os.environ.get("JAVA_HOME")
    if not (java_home and Path(java_home, "bin", "java").is_file()) and shutil.which("java") is None:
        return "TorchServe's frontend needs Java, but no `java` on PATH (or JAVA_HOME)"
    return None


def tool(name: str) -> str:
    """A console script installed next to this interpreter (the venv), else on PATH."""
    local = Path(sys.executable).parent / name
    found = str(local) if local.is_file() else shutil.which(name)
    if found is None:
        raise FileNotFoundError(f"{name} not found next to {sys.executable} or on PATH")
    return found


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def poll_until(what: str, check: Callable[[], bool], timeout: float, interval: float = 0.25) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout}s")
        time.sleep(interval)


def map_path(paths: dict[str, Path], arg: str) -> str:
    """A container path (or an argument that is one) -> the local path; anything else unchanged."""
    for container_path in sorted(paths, key=len, reverse=True):
        if arg == container_path or arg.startswith(f"{container_path}/"):
            return str(paths[container_path]) + arg[len(container_path) :]
    return arg


def tree_snapshot(root: Path, skip: Iterable[Path]) -> dict[str, tuple[int, int, int]]:
    """relative path -> (mode, size, mtime_ns) of every entry under ``root`` outside ``skip``."""
    skipped = {p.resolve() for p in skip}
    out: dict[str, tuple[int, int, int]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if (Path(dirpath) / d).resolve() not in skipped]
        for name in [*dirnames, *filenames]:
            path = Path(dirpath) / name
            st = path.lstat()
            out[str(path.relative_to(root))] = (st.st_mode, st.st_size, st.st_mtime_ns)
    return out


@dataclass
class TorchServeServer:
    spec: ModelDeploymentSpec
    root: Path
    fs: Path
    #: container path -> local path (model store, config dir, every writable dir)
    paths: dict[str, Path]
    env: dict[str, str]
    cwd: Path
    proc: subprocess.Popen[bytes]
    inference: str
    management: str
    metrics: str
    image_snapshot: dict[str, tuple[int, int, int]] = field(default_factory=dict)

    def local(self, arg: str) -> str:
        return map_path(self.paths, arg)

    def writable(self) -> dict[str, Path]:
        return {path: self.paths[path] for path in RUNTIME.writable_dirs.values()}

    def keys(self) -> dict[str, Any]:
        return dict(json.loads(Path(self.local(KEY_FILE)).read_text()))

    def bearer(self, api: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys()[api]['key']}"}

    def logs(self) -> str:
        log_dir = Path(self.local(LOG_DIR))
        parts = []
        for path in (self.root / "stdout.log", log_dir / "ts_log.log", log_dir / "model_log.log"):
            if path.is_file():
                parts.append(f"--- {path.name}\n{path.read_text(errors='replace')[-4000:]}")
        return "\n".join(parts) or "(no logs)"

    def readiness_probe(self) -> subprocess.CompletedProcess[str]:
        """The generated readiness probe, run as the kubelet runs an exec probe in the container."""
        probe = RUNTIME.probes(self.spec).readiness
        command = [self.local(arg) for arg in probe["exec"]["command"]]
        executable = shutil.which(command[0], path=self.env.get("PATH")) or sys.executable
        return subprocess.run(
            [executable, *command[1:]],
            cwd=self.cwd,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=probe["timeoutSeconds"],
            check=False,
        )

    def image_changes(self) -> list[str]:
        """Entries of the mapped container tree outside the writable dirs that were added, removed or
        modified since the server started."""
        now = tree_snapshot(self.fs, self.writable().values())
        before = self.image_snapshot
        return sorted(p for p in before.keys() | now.keys() if before.get(p) != now.get(p))


def build_mar(spec: ModelDeploymentSpec, root: Path, store: Path, handler: str) -> None:
    """``<store>/<model>.mar``, archived with the spec's name and version."""
    src = root / "src"
    src.mkdir()
    (src / "echo_handler.py").write_text(handler)
    subprocess.run(
        [
            tool("torch-model-archiver"),
            "--model-name",
            spec.model.name,
            "--version",
            spec.model.version,
            "--handler",
            str(src / "echo_handler.py"),
            "--export-path",
            str(store),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    # the container's model path, /models/<model>.mar, is this file in the mapped store
    mar = store / Path(RUNTIME.model_path(spec)).relative_to(RUNTIME.model_repository)
    assert mar.is_file(), f"archiver wrote {sorted(p.name for p in store.iterdir())}"


def local_config(
    spec: ModelDeploymentSpec, paths: dict[str, Path], extra: Iterable[str] = ()
) -> tuple[str, dict[str, int]]:
    """The ConfigMap's config.properties with free ports (listener hosts kept) and container paths
    mapped, plus ``extra`` lines."""
    ports = {key: free_port() for key in ("inference_address", "management_address", "metrics_address")}
    lines = []
    for line in RUNTIME.render_config(spec)[CONFIG_FILE].splitlines():
        key, _, value = line.partition("=")
        if key in ports:
            line = re.sub(r":\d+$", f":{ports[key]}", line)
            assert line != f"{key}={value}", f"no port in {line!r}"
        elif key == "model_store":
            assert value == RUNTIME.model_repository
            line = f"{key}={map_path(paths, value)}"
        lines.append(line)
    assert not any(line.startswith("grpc_") for line in lines), "the config now sets gRPC: rewrite this"
    lines += [f"grpc_inference_port={free_port()}", f"grpc_management_port={free_port()}", *extra]
    return "\n".join(lines) + "\n", ports


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Terminate TorchServe's whole process group: launcher, Java frontend and Python workers.

    (`torchserve --stop` would only terminate the Java process found through the pid file; the
    group kill also catches workers and the foreground launcher, and cannot miss on a stale file.)
    """
    pgid = proc.pid
    for sig, wait_s in ((signal.SIGTERM, STOP_TIMEOUT_S), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            try:
                proc.wait(timeout=0.2)
            except subprocess.TimeoutExpired:
                continue
            try:
                os.killpg(pgid, 0)  # group members that outlived the launcher?
            except ProcessLookupError:
                return
            time.sleep(0.2)
    proc.wait(timeout=5)


def _wait(server: TorchServeServer, client: httpx.Client, until_ready: bool) -> None:
    """Until a prediction succeeds (``until_ready``), else until the management API answers
    (frontend up, key file written, model registered, workers maybe still loading)."""
    auth = not server.spec.disable_auth
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    last = "nothing yet"
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(f"torchserve exited with {server.proc.returncode}\n{server.logs()}")
        try:
            if until_ready:
                headers = server.bearer("inference") if auth else {}
                url = f"{server.inference}/predictions/{server.spec.model.name}"
                r = client.post(url, json={"x": 0}, headers=headers)
            else:
                headers = server.bearer("management") if auth else {}
                r = client.get(f"{server.management}/models/{server.spec.model.name}", headers=headers)
            # registration precedes the listeners: any answer from the management API means the
            # model is registered (400: the key expired already, with a very short expiry)
            if r.status_code == 200 or (not until_ready and r.status_code == 400):
                return
            last = f"HTTP {r.status_code}: {r.text[:200]}"
        except (httpx.TransportError, FileNotFoundError, KeyError, json.JSONDecodeError) as e:
            last = repr(e)
        time.sleep(0.25)
    raise TimeoutError(f"torchserve not up after {STARTUP_TIMEOUT_S}s (last: {last})\n{server.logs()}")


@contextmanager
def running(
    spec: ModelDeploymentSpec,
    root: Path,
    *,
    handler: str = HANDLER,
    extra_config: Iterable[str] = (),
    until_ready: bool = True,
) -> Iterator[TorchServeServer]:
    """TorchServe started like the container; yields once a prediction succeeds (``until_ready``) or
    once the management API answers."""
    fs = root / "fs"
    store, config_dir = fs / "models", fs / "config"
    store.mkdir(parents=True)
    config_dir.mkdir()
    build_mar(spec, root, store, handler)
    paths = {RUNTIME.model_repository: store, RUNTIME.config_dir: config_dir}
    for volume, container_path in RUNTIME.writable_dirs.items():
        paths[container_path] = fs / "emptydir" / volume
        paths[container_path].mkdir(parents=True)
    config, ports = local_config(spec, paths, extra_config)
    (config_dir / CONFIG_FILE).write_text(config)
    # The "image" part is read-only (this binds only when the tests do not run as root; the
    # snapshot comparison in image_changes() holds either way).
    for path in (*store.iterdir(), *config_dir.iterdir()):
        path.chmod(0o444)
    store.chmod(0o555)
    config_dir.chmod(0o555)

    def local(arg: str) -> str:
        return map_path(paths, arg)

    # The container's command line, working directory and environment, container paths mapped.
    command = RUNTIME.command(spec)
    assert command == ["torchserve"]
    args = [local(a) for a in RUNTIME.args(spec)]
    assert "--foreground" in args
    env = dict(os.environ)
    env.update({name: local(value) for name, value in RUNTIME.environment.items()})
    if importlib.util.find_spec("torch") is None:
        stub = root / "torch_stub"
        (stub / "torch").mkdir(parents=True)
        (stub / "torch" / "__init__.py").write_text(TORCH_STUB)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(stub), env.get("PYTHONPATH")) if p)
    assert RUNTIME.working_dir is not None
    cwd = Path(local(RUNTIME.working_dir))

    image_snapshot = tree_snapshot(fs, [paths[p] for p in RUNTIME.writable_dirs.values()])
    with (root / "stdout.log").open("wb") as out:
        proc = subprocess.Popen(
            [tool(command[0]), *args],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so stop() reaches Java and the workers
        )
    server = TorchServeServer(
        spec=spec,
        root=root,
        fs=fs,
        paths=paths,
        env=env,
        cwd=cwd,
        proc=proc,
        inference=f"http://127.0.0.1:{ports['inference_address']}",
        management=f"http://127.0.0.1:{ports['management_address']}",
        metrics=f"http://127.0.0.1:{ports['metrics_address']}",
        image_snapshot=image_snapshot,
    )
    try:
        with httpx.Client(timeout=10) as client:
            _wait(server, client, until_ready)
        yield server
    except BaseException:
        print(f"torchserve logs:\n{server.logs()}")  # captured; shown with the failure
        raise
    finally:
        stop(proc)  # the read-only dirs stay so (pytest's tmp cleanup makes them writable to remove them)
