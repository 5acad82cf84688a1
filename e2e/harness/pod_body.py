"""One pod's life as a kubelet would run it, with local programs (see :mod:`harness.pod_runner`).

:class:`PodBody` is a thread per pod: it materialises the volumes, runs the init containers in order
(a failure is retried with a doubling back-off, shown as ``terminated`` then ``CrashLoopBackOff``,
with the termination message), starts the main containers, runs their readinessProbe as declared,
restarts a container whose process died (Ready false meanwhile), and writes every change to the
pod's status through ``pods/status``. ``stop()`` (the pod was deleted) ends the processes.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Final

from harness.commands import Program, allocate_ports, local_program
from harness.pod_status import ContainerStatus, pod_status, running, terminated, termination_message, waiting
from harness.probes import ProbeTiming, run_probe
from harness.volumes import ConfigError, MountTable, Unsupported, container_env, materialise_volumes

log = logging.getLogger(__name__)

STOP_GRACE_S: Final = 10.0
# Sends a status body for (namespace, pod); returns False when the pod is gone.
StatusWriter = Callable[[str, str, dict[str, Any]], bool]
ObjectReader = Callable[[str, str], "dict[str, Any] | None"]


@dataclass(frozen=True)
class Backoff:
    """Restart delays: ``initial_s`` doubling up to ``max_s`` (the kubelet: 10 s to 5 min)."""

    initial_s: float = 1.0
    max_s: float = 10.0

    def delay(self, restarts: int) -> float:
        return float(min(self.max_s, self.initial_s * 2 ** max(restarts - 1, 0)))


class Process:
    """A local program in its own process group, output to a log file."""

    def __init__(self, program: Program, log_path: Path) -> None:
        self.log_path = log_path
        self.started_at = time.time()
        self._log: IO[bytes] = log_path.open("ab")
        self.proc = subprocess.Popen(
            program.argv,
            env=program.env,
            cwd=program.cwd,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def poll(self) -> int | None:
        return self.proc.poll()

    def stop(self) -> None:
        for sig, wait_s in ((signal.SIGTERM, STOP_GRACE_S), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.proc.wait(timeout=wait_s)
                os.killpg(self.proc.pid, signal.SIGKILL)  # children that outlived the leader
            except subprocess.TimeoutExpired:
                continue
            except ProcessLookupError:
                pass
            break
        self.proc.wait(timeout=5)
        self._log.close()


@dataclass
class Container:
    spec: Mapping[str, Any]
    status: ContainerStatus
    ports: dict[int, int]
    mounts: MountTable | None = None
    env: dict[str, str] | None = None
    process: Process | None = None
    cwd: Path | None = None  # the local working directory of its program
    next_probe: float = 0.0
    successes: int = 0
    failures: int = 0

    @property
    def name(self) -> str:
        return str(self.spec["name"])


class PodBody(threading.Thread):
    """Runs one pod (see the module doc); ``on_started``/``on_ready`` tell the runner what to register."""

    def __init__(
        self,
        pod: dict[str, Any],
        root: Path,
        pod_ip: str,
        *,
        read: ObjectReader,
        write_status: StatusWriter,
        backoff: Backoff,
        on_started: Callable[[PodBody], None],
        on_ready: Callable[[PodBody], None],
    ) -> None:
        meta = pod["metadata"]
        super().__init__(name=f"pod-{meta['namespace']}-{meta['name']}", daemon=True)
        self.pod = pod
        self.namespace, self.name, self.uid = str(meta["namespace"]), str(meta["name"]), str(meta["uid"])
        self.root, self.pod_ip = root, pod_ip
        self.read, self.write_status, self.backoff = read, write_status, backoff
        self.on_started, self.on_ready = on_started, on_ready
        self.stopping = threading.Event()
        spec = pod["spec"]
        self.init = [
            Container(c, ContainerStatus(c["name"], c["image"], waiting("PodInitializing")), {})
            for c in spec.get("initContainers") or []
        ]
        self.main = [
            Container(
                c, ContainerStatus(c["name"], c["image"], waiting("PodInitializing")), allocate_ports(c)
            )
            for c in spec["containers"]
        ]
        self.start_time = time.time()
        self._conditions: list[dict[str, Any]] = list((pod.get("status") or {}).get("conditions") or [])
        self._last_sent: dict[str, Any] | None = None
        self.volumes: dict[str, Path] = {}
        self.ever_ready = False

    # --- status ------------------------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        return all(c.status.ready for c in self.main) and all(c.status.done for c in self.init)

    def publish(self) -> None:
        status = pod_status(
            [c.status for c in self.init],
            [c.status for c in self.main],
            pod_ip=self.pod_ip,
            host_ip=None,
            start_time=self.start_time,
            previous_conditions=self._conditions,
            now=time.time(),
        )
        if status == self._last_sent:
            return
        try:
            if not self.write_status(self.namespace, self.name, status):
                self.stopping.set()  # the pod is gone
                return
        except Exception as e:  # the API server hiccuped: the next publish() sends it again
            log.warning("pod %s/%s: status not written: %s", self.namespace, self.name, e)
            return
        self._last_sent = status
        self._conditions = status["conditions"]

    # --- the life ----------------------------------------------------------------------------------

    def stop(self) -> None:
        self.stopping.set()

    def run(self) -> None:
        try:
            self.publish()
            if self._materialise() and self._initialise():
                self._serve()
        except Exception:
            log.exception("pod %s/%s: the runner failed", self.namespace, self.name)
        finally:
            for c in self.main + self.init:
                if c.process is not None:
                    c.process.stop()
                    c.process = None

    def _materialise(self) -> bool:
        attempt = 0
        while not self.stopping.is_set():
            try:
                self.volumes = materialise_volumes(self.pod, self.root / "volumes", self.read)
                return True
            except (ConfigError, Unsupported) as e:
                attempt += 1
                for c in self.init or self.main:
                    c.status.state = waiting("ContainerCreating", f"MountVolume.SetUp failed: {e}")
                self.publish()
                self.stopping.wait(self.backoff.delay(attempt))
        return False

    def _prepare(self, c: Container) -> Program | None:
        """Mounts, env and local command line of a container; None (status says why) when impossible."""
        log_name = f"{c.name}-{c.status.restart_count}"
        try:
            c.mounts = MountTable.for_container(c.spec, self.volumes, self.root / "termination" / log_name)
            c.mounts.place_nested()  # what the container's bind mounts would show
            c.env = container_env(c.spec, self.read, c.mounts)
            return local_program(
                c.spec, c.mounts, c.env, c.ports, self.root / "containers" / c.name, hostname=self.name
            )
        except ConfigError as e:
            c.status.state = waiting("CreateContainerConfigError", str(e))
        except Unsupported as e:
            c.status.state = waiting("CreateContainerError", str(e))
        return None

    def _start(self, c: Container) -> bool:
        program = self._prepare(c)
        if program is None:
            self.publish()
            return False
        logs = self.root / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        if "terminated" in c.status.state:  # a restart: the last run's end stays visible
            c.status.last_state = c.status.state
        c.process = Process(program, logs / f"{c.name}.log")
        c.cwd = program.cwd
        c.status.state = running(c.process.started_at)
        c.next_probe = time.time()
        c.successes = c.failures = 0
        return True

    def _finished(self, c: Container, exit_code: int) -> dict[str, Any]:
        """The terminated state of the container's last run, with its termination message."""
        assert c.process is not None and c.mounts is not None
        message = termination_message(
            Path(
                c.mounts.map_path(str(c.spec.get("terminationMessagePath") or "/dev/termination-log")) or "/"
            ),
            c.process.log_path,
            c.spec.get("terminationMessagePolicy"),
            exit_code,
        )
        state = terminated(exit_code, c.process.started_at, time.time(), message or None)
        c.process.stop()
        c.process = None
        return state

    def _crashed(self, c: Container, state: dict[str, Any]) -> None:
        """Record a failed run, publish it and wait out the back-off before the next attempt."""
        delay = self.backoff.delay(c.status.restart_count + 1)
        c.status.failed(state, delay, self.name)
        self.publish()
        self.stopping.wait(delay)
        c.status.restart_count += 1

    def _initialise(self) -> bool:
        for c in self.init:
            while not self.stopping.is_set():
                if not self._start(c):
                    self.stopping.wait(self.backoff.delay(c.status.restart_count + 1))
                    continue
                self.publish()
                while (code := c.process.poll() if c.process else -1) is None:
                    if self.stopping.wait(0.2):
                        return False
                    self.publish()  # resends a status that did not get through
                state = self._finished(c, code)
                if code == 0:
                    c.status.state = state
                    break
                self._crashed(c, state)
        if self.stopping.is_set():
            return False
        for c in self.main:
            c.status.state = waiting("ContainerCreating")
        self.publish()
        return True

    def _serve(self) -> None:
        for c in self.main:
            self._start(c)
        self.publish()
        self.on_started(self)
        while not self.stopping.is_set():
            now = time.time()
            for c in self.main:
                if c.process is None:
                    if self._start(c):
                        self.publish()
                    continue
                code = c.process.poll()
                if code is not None:
                    c.status.ready = False
                    self._crashed(c, self._finished(c, code))
                    continue
                if now >= c.next_probe:
                    self._probe(c, now)
            if self.ready and not self.ever_ready:
                self.ever_ready = True
                self.on_ready(self)  # before the status says Ready: the load knows the model by then
            self.publish()
            self.stopping.wait(0.2)

    def _probe(self, c: Container, now: float) -> None:
        probe = c.spec.get("readinessProbe")
        if not probe:
            c.status.ready = True
            c.next_probe = float("inf")
            return
        timing = ProbeTiming.of(probe)
        assert c.process is not None and c.mounts is not None
        if now < c.process.started_at + timing.initial_delay_s:
            c.next_probe = c.process.started_at + timing.initial_delay_s
            return
        ok, what = run_probe(probe, c.spec, c.ports, c.mounts, c.env or {})
        c.next_probe = now + timing.period_s
        if ok:
            c.successes, c.failures = c.successes + 1, 0
            if c.successes >= timing.success_threshold:
                c.status.ready = True
        else:
            c.successes, c.failures = 0, c.failures + 1
            if c.failures >= timing.failure_threshold or not c.status.ready:
                c.status.ready = False
            log.debug("pod %s/%s %s: readiness probe: %s", self.namespace, self.name, c.name, what)
