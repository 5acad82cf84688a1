#!/usr/bin/env bash
# promtool, Prometheus' rule checker and PromQL test runner (manifests/monitoring rules, the guardrail
# template tests). It ships in the same Debian package `prometheus` the local cluster runs
# (e2e/localcluster installs it too), so it is taken from there: on PATH already, or apt-get installed.
# Prints promtool's path on stdout; idempotent.
set -euo pipefail

if found="$(command -v promtool)"; then
  echo "$found"
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "promtool.sh: error: promtool is not on PATH and apt-get is missing: install Prometheus' promtool" >&2
  exit 1
fi
sudo=""
if [ "$(id -u)" != 0 ]; then
  sudo="sudo"
fi
echo "promtool.sh: installing the Debian package prometheus (for promtool)" >&2
if ! out="$(DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends prometheus 2>&1)"; then
  $sudo apt-get update >/dev/null 2>&1 || true
  if ! out="$(DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends prometheus 2>&1)"; then
    echo "promtool.sh: error: apt-get install prometheus failed:" >&2
    echo "$out" | tail -n 10 >&2
    exit 1
  fi
fi
command -v promtool
