"""Top-level conftest: loads the shared test plugin for tests/ and e2e/tests/ alike.

The plugin (tests/modeldeploy_testing/plugin.py) auto-marks tests by directory and provides the
cluster, api, namespace and prometheus fixtures. It lives here rather than in tests/conftest.py
because e2e/tests/ is outside tests/ and a conftest only applies to its own directory.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent / "e2e"))  # the e2e harness: `import harness`

pytest_plugins = ["modeldeploy_testing.plugin", "modeldeploy_testing.operator", "modeldeploy_testing.faults"]
