#!/usr/bin/env bash
# The demo: bash e2e/demo.sh
#
# On a fresh machine: sets up .venv and the local control plane + Prometheus (e2e/setup.sh, the same
# setup as e2e/test.sh), then e2e/demo.py installs the operator's manifests, starts the operator and
# the model-server harness, applies e2e/samples/fraud-detector.yaml, rolls a good revision through
# its canary to stable and a bad one back by itself, printing each change as it happens.
# Exit 0 only when the good revision was promoted and the bad one rolled back. The cluster keeps
# running afterwards (source .cluster/env; kubectl get md -n modeldeploy-demo).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=e2e/setup.sh
source e2e/setup.sh

exec .venv/bin/python -u e2e/demo.py "$@"
