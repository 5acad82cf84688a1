"""The README's "run it" command, end to end: ``bash e2e/demo.sh`` must promote a good revision and
roll a bad one back by itself, printing both, and exit 0.

The demo runs its own operator, watching only namespace modeldeploy-demo; the session's operator
(tests/modeldeploy_testing/operator.py) watches only the tests' ``t-*`` namespaces, so the two never
reconcile the same objects. It runs with ``--delete-namespace``: the demo's pods hold 4 of the
cluster's 8 simulated GPUs, which the e2e tests after this one need.
"""

from __future__ import annotations

import os
import re
import subprocess

import pytest

from modeldeploy_testing.cluster import REPO, Cluster

TIMEOUT_S = 480
DEMO_NAMESPACE = "modeldeploy-demo"


@pytest.mark.timeout(TIMEOUT_S + 180)
def test_demo_promotes_the_good_revision_and_rolls_the_bad_one_back(cluster: Cluster) -> None:
    env = {k: v for k, v in os.environ.items() if k != "MODELDEPLOY_SKIP_CLUSTER"}
    try:
        r = subprocess.run(
            ["bash", str(REPO / "e2e" / "demo.sh"), "--delete-namespace"],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
        )
    except subprocess.TimeoutExpired as e:
        out = e.stdout if isinstance(e.stdout, str) else (e.stdout or b"").decode(errors="replace")
        pytest.fail(f"bash e2e/demo.sh ran over {TIMEOUT_S}s; output so far:\n{out[-6000:]}")
    finally:  # a demo killed by the timeout leaves its namespace (and its GPUs) behind
        cluster.kubectl(
            "delete",
            "namespace",
            DEMO_NAMESPACE,
            "--ignore-not-found",
            "--wait=true",
            "--timeout=120s",
            check=False,
            timeout=150,
        )
    output = r.stdout + r.stderr
    assert r.returncode == 0, f"bash e2e/demo.sh exited {r.returncode}:\n{output[-8000:]}"
    stamp = r"^\d\d:\d\d:\d\d  "
    assert re.search(stamp + r"decision RolloutPromoted: revision \w+ promoted", output, re.M), output[-8000:]
    assert re.search(stamp + r"decision RolledBack: guardrail error-rate: .* failed 2/2", output, re.M), (
        output[-8000:]
    )
    failed = re.search(
        stamp + r"measure +canary \w+ +error-rate = (\d\.\d+) \(<= 0\.02.*\) Failed", output, re.M
    )
    assert failed, output[-8000:]
    assert 0.1 <= float(failed.group(1)) <= 0.3  # the harness fails 20% of the bad canary's requests
    assert re.search(r"good revision: promoted in [\d.]+s", output), output[-3000:]
    assert re.search(r"bad revision: +rolled back by the operator", output), output[-3000:]
    assert "operator log: " in output
