#!/usr/bin/env bash
# Local Kubernetes control plane + Prometheus for the tests: bash e2e/cluster.sh up|down|status|build [--kind]
# Thin shim over the e2e/localcluster package (standard-library Python, so it works before any pip install).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if ! command -v python3 >/dev/null 2>&1; then
  echo "cluster.sh: error: python3 is not on PATH; install Python 3.11+ (Debian: apt-get install python3)" >&2
  exit 1
fi
PYTHONPATH="$here${PYTHONPATH:+:$PYTHONPATH}" exec python3 -m localcluster "$@"
