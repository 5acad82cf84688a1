#!/usr/bin/env bash
# The checker of the Argo CD resource customizations (manifests/argocd/luatest: the scripts run in
# gopher-lua set up as Argo CD sets it up), built once from its Go module into
# ${MODELDEPLOY_CACHE:-~/.cache/modeldeploy}/argocd-luatest-<hash of its sources>/ like the control
# plane. Prints the binary's path on stdout; idempotent (a cached binary is reused).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../manifests/argocd/luatest"

hash="$(cat go.mod go.sum ./*.go | sha256sum | cut -c1-12)"
cache="${MODELDEPLOY_CACHE:-$HOME/.cache/modeldeploy}"
dir="$cache/argocd-luatest-$hash"
if [ -x "$dir/luatest" ]; then
  echo "$dir/luatest"
  exit 0
fi
if ! command -v go >/dev/null 2>&1; then
  echo "argocd-luatest.sh: error: go is not on PATH (needed once to build $dir/luatest)" >&2
  exit 1
fi
mkdir -p "$dir"
tmp="$(mktemp "$dir/luatest.XXXXXX")"
trap 'rm -f "$tmp"' EXIT
if ! out="$(go build -trimpath -o "$tmp" . 2>&1)"; then
  echo "argocd-luatest.sh: error: go build failed:" >&2
  echo "$out" | tail -n 15 >&2
  exit 1
fi
mv "$tmp" "$dir/luatest"
echo "$dir/luatest"
