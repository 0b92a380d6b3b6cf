#!/usr/bin/env bash
# System packages the test suite needs beyond the venv, installed quietly and only when missing
# (idempotent; safe to call from .ci/run on every build):
#   docker-compose   tests/deploy validates deploy/compose.yaml with `docker-compose config`
#   redis-server     tests of state shared across replicas start a throwaway server on 127.0.0.1
# helm and kubectl come from `make tools` (scripts/fetch-helm.sh), not from here.
set -euo pipefail

missing=()
command -v docker-compose >/dev/null 2>&1 || missing+=(docker-compose)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)

if [ ${#missing[@]} -eq 0 ]; then
  echo "==> system test dependencies present"
  exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  if ! command -v sudo >/dev/null 2>&1; then
    echo "error: need root or sudo to install: ${missing[*]}" >&2
    exit 1
  fi
  sudo="sudo"
fi

echo "==> installing ${missing[*]} (apt)"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "==> installed: ${missing[*]}"
