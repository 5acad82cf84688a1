"""``kubectl modeldeploy get NAME --watch`` in a real pseudo-terminal, read off the screen as a user
sees it: the plugin runs under pexpect in a pty, its bytes go through a terminal emulator (pyte), and
the assertions read the emulator's screen. A real rollout (operator, Prometheus, harness, load, as in
test_rollouts.py) is watched from its start: the screen shows the step and weight change in place, and
the process exits with the rollout's outcome: 0 when promoted, 3 when rolled back.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pexpect
import pyte
from test_rollouts import Env, env, manifest  # noqa: F401 (env: the fixture that test's rollouts run in)

from modeldeploy.cli.errors import EXIT_OK, EXIT_ROLLED_BACK
from modeldeploy_testing.cluster import Cluster

ROWS, COLUMNS = 60, 160


class Terminal:
    """A command in a pty of ROWS x COLUMNS, its output drawn by a VT100 emulator."""

    def __init__(self, argv: list[str], env_vars: dict[str, str]) -> None:
        self.screen = pyte.Screen(COLUMNS, ROWS)
        self.stream = pyte.ByteStream(self.screen)
        self.child = pexpect.spawn(argv[0], argv[1:], env=env_vars, dimensions=(ROWS, COLUMNS))
        self.frames: list[list[str]] = []

    def pump(self, wait: float = 0.2) -> bool:
        """Feed what the program wrote to the emulator; False once it exited and all is read."""
        try:
            self.stream.feed(self.child.read_nonblocking(65536, timeout=wait))
        except pexpect.TIMEOUT:
            pass
        except pexpect.EOF:
            return False
        lines = [line.rstrip() for line in self.screen.display]
        if not self.frames or self.frames[-1] != lines:
            self.frames.append(lines)
        return True

    @property
    def lines(self) -> list[str]:
        return [line.rstrip() for line in self.screen.display]

    def field(self, label: str) -> str | None:
        """The value of a header field such as ``  Step:`` on the screen now."""
        for line in self.lines:
            if line.strip().startswith(f"{label}:"):
                return line.split(":", 1)[1].strip()
        return None

    def colour_of(self, text: str) -> str:
        """The foreground colour the terminal shows ``text`` in (its first character)."""
        for row, line in enumerate(self.lines):
            if text in line:
                return str(self.screen.buffer[row][line.index(text)].fg)
        raise AssertionError(f"{text!r} is not on the screen:\n" + "\n".join(self.lines))

    def until_exit(self, timeout: float, watch: Callable[[Terminal], None]) -> int:
        deadline = time.monotonic() + timeout
        while self.pump():
            watch(self)
            if time.monotonic() > deadline:
                self.child.terminate(force=True)
                raise AssertionError("the watch did not exit; screen:\n" + "\n".join(self.lines))
        self.child.close()
        code = self.child.exitstatus
        assert code is not None, f"killed by signal {self.child.signalstatus}"
        return int(code)


def watch_argv(
    cluster: Cluster, name: str, namespace: str, **extra_env: str
) -> tuple[list[str], dict[str, str]]:
    """``kubectl modeldeploy get NAME --watch``: kubectl finds the plugin on PATH, as for a user."""
    assert cluster.bin_dir is not None, "needs the local control plane's kubectl"
    path = os.pathsep.join([str(Path(sys.executable).parent), str(cluster.bin_dir), "/usr/bin", "/bin"])
    env_vars = {
        "PATH": path,
        "HOME": str(Path.home()),
        "TERM": "xterm-256color",
        "KUBECONFIG": str(cluster.kubeconfig),
        **extra_env,
    }
    return ["kubectl", "modeldeploy", "get", name, "-n", namespace, "--watch", "--timeout", "5m"], env_vars


def distinct(values: list[str | None]) -> list[str]:
    out: list[str] = []
    for v in values:
        if v and (not out or out[-1] != v):
            out.append(v)
    return out


def test_watch_follows_a_promotion_in_place_and_exits_0(env: Env) -> None:  # noqa: F811
    env.deploy(manifest("watched", "1", gpu=False))
    old = env.stable("watched")
    env.load("watched")
    env.deploy(manifest("watched", "2", gpu=False))  # the watch starts before the operator has seen it
    term = Terminal(*watch_argv(env.cluster, "watched", env.ns))
    steps: list[str | None] = []
    weights: list[str | None] = []
    names: list[int] = []

    def look(t: Terminal) -> None:
        steps.append(t.field("Step"))
        weights.append(t.field("Weight"))
        names.append(sum(1 for line in t.lines if line.startswith("Name:")))

    code = term.until_exit(240, look)
    screen = "\n".join(term.lines)
    assert code == EXIT_OK, screen
    # the step and the weight changed on the screen, in order, while the rollout went on
    seen_steps, seen_weights = distinct(steps), distinct(weights)
    assert {"1/4", "2/4", "3/4", "4/4"} & set(seen_steps), seen_steps
    assert len([s for s in seen_steps if "/" in s]) >= 2, seen_steps
    assert "25%" in seen_weights and "50%" in seen_weights, seen_weights
    assert seen_weights.index("25%") < seen_weights.index("50%"), seen_weights
    # redrawn in place: one view on the screen at every moment, not a scroll of copies
    assert set(names) <= {0, 1} and 1 in names, names
    assert term.field("Status") == "✔ Healthy", screen
    assert term.colour_of("✔ Healthy") == "green"  # a terminal: colours
    new = term.field("Stable")
    assert new and not new.startswith(old), screen
    assert "watched: promoted: Healthy (exit code 0)" in screen


def test_watch_of_a_rollback_exits_3(env: Env) -> None:  # noqa: F811
    env.deploy(manifest("doomed", "1", gpu=False))
    env.stable("doomed")
    env.load("doomed")
    env.deploy(manifest("doomed", "2", gpu=False))
    canary = env.canary("doomed")
    env.world.set_behavior(env.ns, "doomed", canary, error_rate=0.2)
    term = Terminal(*watch_argv(env.cluster, "doomed", env.ns, NO_COLOR="1"))
    code = term.until_exit(240, lambda t: None)
    screen = "\n".join(term.lines)
    assert code == EXIT_ROLLED_BACK, screen
    assert term.field("Status") == "✖ RolledBack", screen
    assert term.colour_of("✖ RolledBack") == "default"  # NO_COLOR: none, even on a terminal
    rate = next(line for line in term.lines if line.startswith("error-rate"))
    assert rate.split()[2:4] == ["<=", "0.05"] and "Failed" in rate, screen
    assert "doomed: rolled back (exit code 3)" in screen
