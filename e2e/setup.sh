#!/usr/bin/env bash
# Shared setup of the project's commands, sourced by e2e/test.sh and e2e/demo.sh (not run on its own):
#   source e2e/setup.sh
#
# Idempotent (fast when already done):
#   - .venv with `pip install -e '.[dev]'` (redone when pyproject.toml changes)
#   - the local control plane + Prometheus (bash e2e/cluster.sh up: builds the binaries into
#     ~/.cache/modeldeploy on first use, ~10-30 min on 2 cores; later runs take seconds)
#   - MinIO, the tests' S3 server (bash e2e/minio.sh: built once into ~/.cache/modeldeploy)
# The cluster is left running so reruns are warm; stop it with `bash e2e/cluster.sh down`.
# Set MODELDEPLOY_SKIP_CLUSTER=1 to skip the cluster (e.g. with -m unit).
# Messages are prefixed with the sourcing script's name (test.sh: ..., demo.sh: ...).
cd "$(dirname "${BASH_SOURCE[0]}")/.."

_setup_name="$(basename "$0")"
py="${PYTHON:-python3}"
if ! command -v "$py" >/dev/null 2>&1; then
  echo "$_setup_name: error: $py is not on PATH; install Python 3.11+" >&2
  exit 1
fi
if [ ! -x .venv/bin/python ]; then
  echo "$_setup_name: creating .venv"
  "$py" -m venv .venv
fi
stamp=.venv/.modeldeploy-installed
want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "$_setup_name: pip install -e '.[dev]'"
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
  echo "$want" > "$stamp"
fi

# Checkers the unit tests run, cached like the cluster: the Argo CD Lua runner and promtool.
bash e2e/argocd-luatest.sh >/dev/null
_promtool="$(bash e2e/promtool.sh)"
export PATH="$(dirname "$_promtool"):$PATH"
unset _promtool

if [ "${MODELDEPLOY_SKIP_CLUSTER:-0}" != "1" ]; then
  bash e2e/minio.sh >/dev/null  # the S3 server of the storage tests: built once, cached like the cluster
  bash e2e/cluster.sh up
fi
unset _setup_name
