#!/usr/bin/env bash
# The peers of bench/vs_peers.py (not CI, not e2e/setup.sh): Flagger and Argo Rollouts, plus Argo's
# Gateway API traffic-router plugin, built once from their Go modules into
# ${MODELDEPLOY_CACHE:-~/.cache/modeldeploy}/peers-<name>-<version>/ (like the control plane), each
# next to the CRDs of its own module source. Idempotent: a cached build is reused.
#
#   bash bench/peers/build.sh flagger            # Flagger v1.44.0 (go install from the module proxy)
#   bash bench/peers/build.sh argo-rollouts      # Argo Rollouts v1.10.2 via bench/peers/argo-rollouts/go.mod
#   bash bench/peers/build.sh gatewayapi-plugin SRC_DIR
#       # rollouts-plugin-trafficrouter-gatewayapi v0.15.0. The module proxy refuses this module, so
#       # SRC_DIR is a checkout of the v0.15.0 tag of its public repository
#       # (github.com/argoproj-labs/rollouts-plugin-trafficrouter-gatewayapi, e.g.
#       # `git clone --branch v0.15.0 --depth 1 <that repository> SRC_DIR`); its dependencies come
#       # from the module proxy. The script checks the module path and never fetches the source itself.
#
# Prints the build directory on stdout. Cold builds: ~5-15 min each on 2 busy cores; Argo Rollouts
# v1.10.2 needs Go >= 1.26.10 (GOTOOLCHAIN fetches that toolchain from the module proxy).
set -euo pipefail

FLAGGER_VERSION=v1.44.0
ARGO_ROLLOUTS_VERSION=v1.10.2
ARGO_GO_TOOLCHAIN=go1.26.10
GATEWAYAPI_PLUGIN_VERSION=v0.15.0
GATEWAYAPI_PLUGIN_MODULE=github.com/argoproj-labs/rollouts-plugin-trafficrouter-gatewayapi

here="$(cd "$(dirname "$0")" && pwd)"
cache="${MODELDEPLOY_CACHE:-$HOME/.cache/modeldeploy}"

die() { echo "build.sh: error: $*" >&2; exit 1; }
command -v go >/dev/null 2>&1 || die "go is not on PATH"

# build NAME VERSION BINARY COMMAND...: runs COMMAND with $out (a temp dir) to fill, moves it to the cache.
build() {
  local name="$1" version="$2" binary="$3"
  shift 3
  local dir="$cache/peers-$name-$version"
  if [ -x "$dir/$binary" ]; then
    echo "$dir"
    return 0
  fi
  mkdir -p "$cache"
  local log="$cache/build-peers-$name-$version.log"
  out="$(mktemp -d "$cache/peers-$name-build-XXXXXX")"
  echo "build.sh: building $name $version (first time only); log: $log" >&2
  local start
  start=$(date +%s)
  if ! "$@" >"$log" 2>&1; then
    echo "build.sh: error: building $name $version failed; last lines of $log:" >&2
    tail -n 15 "$log" >&2
    rm -rf "$out"
    exit 1
  fi
  [ -x "$out/$binary" ] || { rm -rf "$out"; die "$name: no $binary after the build (see $log)"; }
  rm -rf "$dir"
  mv "$out" "$dir"
  echo "build.sh: built $dir in $(($(date +%s) - start)) s" >&2
  echo "$dir"
}

# module_dir MODULE@VERSION [toolchain]: the module's source directory in the Go module cache.
module_dir() {
  local d
  d="$(GOTOOLCHAIN="${2:-local}" GOFLAGS=-mod=mod go mod download -json "$1" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')"
  [ -n "$d" ] || die "go mod download $1 gave no source directory"
  echo "$d"
}

build_flagger() {
  GOBIN="$out" GOFLAGS=-mod=mod go install "github.com/fluxcd/flagger/cmd/flagger@$FLAGGER_VERSION"
  cp "$(module_dir "github.com/fluxcd/flagger@$FLAGGER_VERSION")/artifacts/flagger/crd.yaml" "$out/crd.yaml"
  cp -r "$(module_dir "github.com/fluxcd/flagger@$FLAGGER_VERSION")/artifacts/flagger" "$out/manifests"
  chmod -R u+w "$out"
}

build_argo_rollouts() {
  # The wrapper module requires argo-rollouts and copies its replace lines (a `go install mod@version`
  # refuses modules with replace directives).
  (cd "$here/argo-rollouts" &&
    GOTOOLCHAIN="$ARGO_GO_TOOLCHAIN" GOFLAGS=-mod=mod go build -o "$out/rollouts-controller" \
      github.com/argoproj/argo-rollouts/cmd/rollouts-controller)
  local src
  src="$(cd "$here/argo-rollouts" && module_dir "github.com/argoproj/argo-rollouts@$ARGO_ROLLOUTS_VERSION" "$ARGO_GO_TOOLCHAIN")"
  cp -r "$src/manifests" "$out/manifests"
  chmod -R u+w "$out"
}

build_gatewayapi_plugin() {
  local src="$1"
  [ -f "$src/go.mod" ] || die "$src has no go.mod (expected a checkout of $GATEWAYAPI_PLUGIN_MODULE $GATEWAYAPI_PLUGIN_VERSION)"
  grep -q "^module $GATEWAYAPI_PLUGIN_MODULE\$" "$src/go.mod" || die "$src/go.mod is not module $GATEWAYAPI_PLUGIN_MODULE"
  # Built in a copy: the checkout stays untouched.
  cp -r "$src" "$out/src"
  (cd "$out/src" && CGO_ENABLED=0 GOFLAGS=-mod=mod go build -o "$out/gatewayapi-plugin" .)
  rm -rf "$out/src"
}

case "${1:-}" in
  flagger) build flagger "$FLAGGER_VERSION" flagger build_flagger ;;
  argo-rollouts) build argo-rollouts "$ARGO_ROLLOUTS_VERSION" rollouts-controller build_argo_rollouts ;;
  gatewayapi-plugin)
    [ -n "${2:-}" ] || die "usage: build.sh gatewayapi-plugin SRC_DIR (a checkout of $GATEWAYAPI_PLUGIN_MODULE $GATEWAYAPI_PLUGIN_VERSION)"
    build gatewayapi-plugin "$GATEWAYAPI_PLUGIN_VERSION" gatewayapi-plugin build_gatewayapi_plugin "$(cd "$2" && pwd)"
    ;;
  *) die "usage: build.sh flagger | argo-rollouts | gatewayapi-plugin SRC_DIR" ;;
esac
