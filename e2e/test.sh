#!/usr/bin/env bash
# The project's test command: bash e2e/test.sh [pytest args...]
#
# Sets up what the tests need (e2e/setup.sh, shared with e2e/demo.sh), idempotently (fast when
# already done):
#   - .venv with `pip install -e '.[dev]'` (redone when pyproject.toml changes)
#   - the local control plane + Prometheus (bash e2e/cluster.sh up: builds the binaries into
#     ~/.cache/modeldeploy on first use, ~10-30 min on 2 cores; later runs take seconds)
# then runs pytest. The cluster is left running so reruns are warm; stop it with
# `bash e2e/cluster.sh down`. Set MODELDEPLOY_SKIP_CLUSTER=1 to skip the cluster (e.g. with -m unit).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=e2e/setup.sh
source e2e/setup.sh

exec .venv/bin/python -m pytest "$@"
