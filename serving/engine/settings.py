"""Environment the engine package reads, parsed in one place.

| variable            | used for                                                        |
|---------------------|-----------------------------------------------------------------|
| `SERVING_CACHE_DIR` | root of the model cache (default `$XDG_CACHE_HOME/serving`)     |
| `XDG_CACHE_HOME`    | base cache folder when `SERVING_CACHE_DIR` is unset (`~/.cache`) |
| `HF_TOKEN`          | token for gated Hugging Face repos (Llama)                      |
| `HF_HUB_OFFLINE`    | `1`: fetch nothing, use only the local Hugging Face cache       |
| `VLLM_API_KEY`      | passed to the engine through its environment, never its argv    |
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

_TRUE = {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class EngineSettings:
    cache_dir: Path
    hf_token: str | None
    hf_offline: bool
    vllm_api_key: str | None

    @property
    def models_dir(self) -> Path:
        return self.cache_dir / "models"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> EngineSettings:
        env = os.environ if environ is None else environ
        return cls(
            cache_dir=_cache_dir(env),
            hf_token=env.get("HF_TOKEN") or None,
            hf_offline=env.get("HF_HUB_OFFLINE", "").strip().lower() in _TRUE,
            vllm_api_key=env.get("VLLM_API_KEY") or None,
        )


def _cache_dir(env: Mapping[str, str]) -> Path:
    explicit = env.get("SERVING_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    xdg = env.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "serving"
