#!/usr/bin/env bash
# The S3-compatible server that the storage initializer's tests and the e2e harness run on loopback:
# MinIO, built once from its Go module into ${MODELDEPLOY_CACHE:-~/.cache/modeldeploy}/minio-<version>/
# (like the control plane). Prints the binary's path on stdout; idempotent (a cached binary is reused).
#   bash e2e/minio.sh            # path of the binary, building it first if needed
# The cold build (module download + compile) takes ~10-20 min on 2 cores and ~1.5 GB of Go caches.
set -euo pipefail

MINIO_MODULE=github.com/minio/minio
# MinIO tags its releases RELEASE.<date>, which are not semver: the module proxy serves pseudo-versions.
MINIO_VERSION=v0.0.0-20260212201848-7aac2a2c5b7c

cache="${MODELDEPLOY_CACHE:-$HOME/.cache/modeldeploy}"
dir="$cache/minio-$MINIO_VERSION"
if [ -x "$dir/minio" ]; then
  echo "$dir/minio"
  exit 0
fi
if ! command -v go >/dev/null 2>&1; then
  echo "minio.sh: error: go is not on PATH (needed once to build MinIO into $dir)" >&2
  exit 1
fi
mkdir -p "$cache"
log="$cache/build-minio-$MINIO_VERSION.log"
tmp="$(mktemp -d "$cache/minio-build-XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
echo "minio.sh: building MinIO $MINIO_VERSION (first time only, ~10-20 min on 2 cores); log: $log" >&2
start=$(date +%s)
if ! GOBIN="$tmp" GOFLAGS=-mod=mod go install "$MINIO_MODULE@$MINIO_VERSION" >"$log" 2>&1; then
  echo "minio.sh: error: go install $MINIO_MODULE@$MINIO_VERSION failed; last lines of $log:" >&2
  tail -n 15 "$log" >&2
  exit 1
fi
mkdir -p "$dir"
mv "$tmp/minio" "$dir/minio"
echo "minio.sh: built $dir/minio in $(($(date +%s) - start)) s" >&2
echo "$dir/minio"
