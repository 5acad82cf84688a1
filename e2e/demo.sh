#!/usr/bin/env bash
# Brings up the local control plane + Prometheus and shows how to use it:
#   bash e2e/demo.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash e2e/cluster.sh up
# shellcheck disable=SC1091
source .cluster/env
echo
echo "== nodes (kwok-simulated; the real scheduler places pods on them)"
kubectl get nodes -o wide
echo
cat <<EOT
The cluster keeps running. To use it from your shell:
  source .cluster/env            # sets KUBECONFIG, PROMETHEUS_URL and puts kubectl on PATH
  kubectl get nodes
  curl -s "\$PROMETHEUS_URL/api/v1/query?query=up"
Stop it with: bash e2e/cluster.sh down
EOT
