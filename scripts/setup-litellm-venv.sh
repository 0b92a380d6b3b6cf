#!/usr/bin/env bash
# Create .venv-litellm/ with the LiteLLM proxy, the peer in the proxy matrix benchmark
# (`make bench-matrix`, scripts/bench/matrix.py). LiteLLM lives in its own virtualenv, never in
# .venv: its pinned dependencies clash with vLLM's. httptools gives its uvicorn the same HTTP
# parser as the gateway (uvloop already comes with litellm[proxy]), so the comparison is like
# for like.
set -euo pipefail
python=${1:-python3}
venv=${2:-.venv-litellm}
litellm_version=1.108.7
httptools_version=0.9.0

if [ ! -x "$venv/bin/python" ]; then
  echo "==> creating $venv"
  "$python" -m venv "$venv"
fi
echo "==> upgrading pip"
"$venv/bin/python" -m pip install -q -U pip
echo "==> installing litellm[proxy]==$litellm_version (a minute or two the first time)"
"$venv/bin/python" -m pip install -q "litellm[proxy]==$litellm_version" "httptools==$httptools_version"
echo "==> $venv ready: .venv/bin/python scripts/bench/matrix.py --litellm-venv $venv"
