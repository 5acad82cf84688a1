"""Argo CD health and actions for ModelDeployments, run in the Lua VM Argo CD itself uses.

``manifests/argocd/luatest`` (Go) sets up gopher-lua as Argo CD's util/lua/lua.go does (only the
package, base, table and safe os libraries; ``obj`` as a global; the returned table read back as
JSON) and runs ``health.lua``, ``actions/discovery.lua`` and every ``action.lua`` against the cases
of ``health_test.yaml`` and ``actions/action_test.yaml``. It is built once into the cache by
``e2e/argocd-luatest.sh`` (about 10 s cold); afterwards these tests take well under a second each.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from modeldeploy.api.command import COMMAND_ANNOTATION, COMMAND_KINDS, parse_command

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]
ARGOCD = ROOT / "manifests" / "argocd"
CUSTOMIZATION = ARGOCD / "resource_customizations" / "modeldeploy.dev" / "ModelDeployment"


@pytest.fixture(scope="module")
def luatest() -> Path:
    built = subprocess.run(
        ["bash", str(ROOT / "e2e" / "argocd-luatest.sh")], capture_output=True, text=True, timeout=600
    )
    assert built.returncode == 0, built.stderr
    return Path(built.stdout.strip())


def run_check(luatest: Path, directory: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(luatest), "check", str(directory)], capture_output=True, text=True, timeout=60)


def test_every_case_passes_in_argo_cds_vm(luatest: Path) -> None:
    result = run_check(luatest, CUSTOMIZATION)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    health = yaml.safe_load((CUSTOMIZATION / "health_test.yaml").read_text())["tests"]
    actions = yaml.safe_load((CUSTOMIZATION / "actions" / "action_test.yaml").read_text())
    # one line per health case, discovery case, action case and its nonce case
    expected = len(health) + len(actions["discoveryTests"]) + 2 * len(actions["actionTests"])
    assert sum(line.startswith("PASS ") for line in lines) == expected, result.stdout
    assert lines[-1] == "ok"


def test_every_health_state_and_every_testdata_file_has_a_case() -> None:
    health = yaml.safe_load((CUSTOMIZATION / "health_test.yaml").read_text())["tests"]
    assert {t["inputPath"] for t in health} == {
        f"testdata/{p.name}" for p in (CUSTOMIZATION / "testdata").glob("*.yaml")
    }
    assert {t["healthStatus"]["status"] for t in health} == {
        "Healthy",
        "Progressing",
        "Degraded",
        "Suspended",
    }
    actions = yaml.safe_load((CUSTOMIZATION / "actions" / "action_test.yaml").read_text())
    used = {t["inputPath"] for t in actions["discoveryTests"]}
    used |= {t[k] for t in actions["actionTests"] for k in ("inputPath", "expectedOutputPath")}
    assert used == {f"testdata/{p.name}" for p in (CUSTOMIZATION / "actions" / "testdata").glob("*.yaml")}


def test_actions_are_the_plugins_verbs_and_set_its_annotation() -> None:
    folders = {p.parent.name for p in (CUSTOMIZATION / "actions").glob("*/action.lua")}
    assert folders == set(COMMAND_KINDS)
    actions = yaml.safe_load((CUSTOMIZATION / "actions" / "action_test.yaml").read_text())
    assert {t["action"] for t in actions["actionTests"]} == set(COMMAND_KINDS)
    for case in actions["actionTests"]:
        before = yaml.safe_load((CUSTOMIZATION / "actions" / case["inputPath"]).read_text())
        after = yaml.safe_load((CUSTOMIZATION / "actions" / case["expectedOutputPath"]).read_text())
        added = after["metadata"]["annotations"]
        # the operator's own parser accepts the value, for the action's verb
        assert parse_command(added[COMMAND_ANNOTATION]).verb == case["action"]
        # and nothing else changes: not the spec, not any other annotation
        assert after["spec"] == before["spec"]
        others = {k: v for k, v in added.items() if k != COMMAND_ANNOTATION}
        assert others == {
            k: v for k, v in (before["metadata"].get("annotations") or {}).items() if k != COMMAND_ANNOTATION
        }


def _replace(relative: str, old: str, new: str) -> Callable[[Path], None]:
    def mutate(root: Path) -> None:
        path = root / relative
        text = path.read_text()
        assert old in text, f"{old!r} not in {relative}"
        path.write_text(text.replace(old, new, 1))

    return mutate


MUTATIONS = {
    # a wrong expectation in each test file fails its case
    "health expectation": (
        _replace("health_test.yaml", "status: Healthy", "status: Progressing"),
        "FAIL health testdata/healthy.yaml",
    ),
    "discovery expectation": (
        _replace("actions/action_test.yaml", "disabled: true", "disabled: false"),
        "FAIL discovery testdata/canary_step.yaml",
    ),
    "action expected output": (
        _replace("actions/testdata/canary_step_paused.yaml", "pause/1764428400", "resume/1764428400"),
        "FAIL action pause testdata/canary_step.yaml",
    ),
    # a script writing anything but the plugin's value fails
    "action writes another verb": (
        _replace("actions/abort/action.lua", '"abort/"', '"aborted/"'),
        "FAIL action abort testdata/canary_step.yaml",
    ),
    "action changes the spec": (
        _replace("actions/retry/action.lua", "return obj", "obj.spec.replicas = 5\nreturn obj"),
        "FAIL action retry testdata/rolled_back.yaml",
    ),
    "nonce not made distinct": (
        _replace("actions/resume/action.lua", "while value == current", "while false and value == current"),
        "FAIL action resume testdata/paused.yaml (nonce distinct",
    ),
    # the VM is Argo CD's: no global os without require("os"), no string library
    "os without require": (
        _replace("actions/pause/action.lua", 'local os = require("os")', ""),
        "FAIL action pause testdata/canary_step.yaml",
    ),
    "string library": (
        _replace(
            "health.lua",
            'hs.message = "Waiting for the operator to report status"',
            "hs.message = string.lower('X')",
        ),
        "FAIL health testdata/missing_status.yaml",
    ),
}


@pytest.mark.parametrize("mutation", sorted(MUTATIONS))
def test_a_broken_script_or_expectation_fails(luatest: Path, tmp_path: Path, mutation: str) -> None:
    mutate, failing_case = MUTATIONS[mutation]
    copy = tmp_path / "ModelDeployment"
    shutil.copytree(CUSTOMIZATION, copy)
    mutate(copy)
    result = run_check(luatest, copy)
    assert result.returncode == 1, result.stdout + result.stderr
    assert any(line.startswith(failing_case) for line in result.stdout.splitlines()), result.stdout


def test_argocd_cm_carries_exactly_these_scripts(luatest: Path) -> None:
    rendered = subprocess.run(
        [str(luatest), "configmap", str(CUSTOMIZATION)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert (ARGOCD / "argocd-cm.yaml").read_text() == rendered, (
        "manifests/argocd/argocd-cm.yaml is stale: regenerate it with "
        "`$(bash e2e/argocd-luatest.sh) configmap manifests/argocd/resource_customizations/"
        "modeldeploy.dev/ModelDeployment > manifests/argocd/argocd-cm.yaml`"
    )
    data = yaml.safe_load(rendered)["data"]
    assert (
        data["resource.customizations.health.modeldeploy.dev_ModelDeployment"]
        == (CUSTOMIZATION / "health.lua").read_text()
    )
    actions = yaml.safe_load(data["resource.customizations.actions.modeldeploy.dev_ModelDeployment"])
    assert [d["name"] for d in actions["definitions"]] == sorted(COMMAND_KINDS)
