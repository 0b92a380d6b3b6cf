"""Model profiles: what the planner and the launcher need to know about one model.

Profiles are YAML data (`serving/catalog/profiles/*.yaml`); users add or override them with a
folder of their own (`--profiles DIR` or `SERVING_PROFILES_DIR`). A user file with the same
`name` as a built-in profile replaces it.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from serving.catalog.errors import CatalogError

Precision = Literal["bf16", "fp8"]
# Parts of the model an FP8 checkpoint may keep in 16 bits (serving/catalog/modules.py).
Bf16Module = Literal["embeddings", "lm_head", "attention", "first_layer", "last_layer"]
KvCacheDtype = Literal["auto", "fp8"]
Runtime = Literal["cuda", "cpu"]

# Enough for a Hugging Face checkpoint: weights as safetensors only (never .bin/.pth duplicates).
DEFAULT_PATTERNS = ("*.safetensors", "*.json", "tokenizer*", "*.jinja")
BYTES_PER_PARAM: dict[Precision, int] = {"bf16": 2, "fp8": 1}


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Architecture(_Frozen):
    """Numbers from the model's config.json; the planner's arithmetic uses nothing else."""

    family: str
    layers: int = Field(gt=0)
    attention_heads: int = Field(gt=0)
    kv_heads: int = Field(gt=0)
    head_dim: int = Field(gt=0)
    hidden_size: int = Field(gt=0)
    vocab_size: int = Field(gt=0)
    params_total_b: float = Field(gt=0, description="all parameters, billions")
    params_active_b: float = Field(gt=0, description="parameters read per token (MoE: fewer)")
    intermediate_size: int | None = Field(
        default=None, gt=0, description="MLP width (per expert for MoE); None: derived from params"
    )
    tie_word_embeddings: bool = Field(
        default=False, description="the LM head shares the embedding matrix"
    )
    experts: int | None = None
    experts_active: int | None = None


class Weights(_Frozen):
    """Where one precision's weights come from, and how the checkpoint stores them."""

    repo: str = Field(min_length=3)
    revision: str = Field(min_length=1, description="commit to pin; 'main' means not pinned yet")
    quantization: str | None = Field(
        default=None,
        description="vLLM --quantization for online quantization (None: the checkpoint as is)",
    )
    quant_method: str | None = Field(
        default=None,
        description="quantization_config.quant_method in the checkpoint's config.json (None: "
        "not quantized); vLLM detects it by itself, so it is data for the planner and the checks",
    )
    allow_deprecated_quantization: bool = Field(
        default=False,
        description="pass --allow-deprecated-quantization (vLLM refuses a deprecated method "
        "without it)",
    )
    bf16_modules: tuple[Bf16Module, ...] = Field(
        default=("embeddings", "lm_head"),
        description="FP8 weights only: the parts that stay in 16 bits",
    )
    patterns: tuple[str, ...] = DEFAULT_PATTERNS

    @property
    def quantized(self) -> bool:
        return self.quantization is not None or self.quant_method is not None

    @property
    def pinned(self) -> bool:
        return self.revision not in {"main", "master", "HEAD"}


class EngineOptions(_Frozen):
    """vLLM options specific to the model."""

    runtime: Runtime = "cuda"
    module: str = Field(
        default="vllm.entrypoints.openai.api_server",
        description="Python module that starts the OpenAI-compatible server",
    )
    tokenizer_mode: str | None = None
    config_format: str | None = None
    load_format: str | None = None
    tool_call_parser: str | None = None
    chat_template: str | None = None
    enforce_eager: bool = False
    gpu_memory_utilization: float = Field(default=0.90, gt=0.1, le=0.98)
    max_num_seqs: int | None = Field(
        default=None, gt=0, description="--max-num-seqs (None: vLLM's default for the GPU)"
    )
    max_num_batched_tokens: int | None = Field(
        default=None, gt=0, description="--max-num-batched-tokens (None: vLLM's default)"
    )
    extra_args: tuple[str, ...] = ()
    env: dict[str, str] = Field(default_factory=dict)


class Profile(_Frozen):
    """One deployable model."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9.-]*$")
    display_name: str
    served_model_name: str
    gated: bool = False
    source: Literal["hub", "embedded"] = "hub"
    architecture: Architecture
    native_context: int = Field(gt=0)
    default_context: int = Field(gt=0)
    precision: Precision = Field(description="recommended weight precision")
    kv_cache_dtype: KvCacheDtype = "auto"
    weights: dict[Precision, Weights]
    engine: EngineOptions = EngineOptions()
    pitfalls: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _consistent(self) -> Profile:
        if self.precision not in self.weights:
            raise ValueError(f"no weights listed for the recommended precision {self.precision}")
        if self.default_context > self.native_context:
            raise ValueError("default_context exceeds native_context")
        fp8 = self.weights.get("fp8")
        if fp8 is not None and not fp8.quantized:
            raise ValueError("fp8 weights need quantization (online) or quant_method (checkpoint)")
        return self

    def weights_for(self, precision: Precision) -> Weights:
        try:
            return self.weights[precision]
        except KeyError:
            have = ", ".join(self.weights)
            msg = f"{self.name} has no {precision} weights (available: {have})"
            raise CatalogError(msg) from None


def _load_file(path: Path | str, text: str) -> Profile:
    try:
        return Profile.model_validate(yaml.safe_load(text))
    except (yaml.YAMLError, ValidationError) as exc:
        raise CatalogError(f"invalid profile {path}: {exc}") from exc


def load_profiles(extra_dir: Path | None = None) -> dict[str, Profile]:
    """All profiles by name: the built-in ones, then those in `extra_dir` (which win)."""
    found: dict[str, Profile] = {}
    builtin = resources.files("serving.catalog").joinpath("profiles")
    for entry in sorted(builtin.iterdir(), key=lambda e: e.name):
        if entry.name.endswith((".yaml", ".yml")):
            profile = _load_file(entry.name, entry.read_text())
            found[profile.name] = profile
    if extra_dir is not None:
        if not extra_dir.is_dir():
            raise CatalogError(f"profiles folder {extra_dir} does not exist")
        for path in sorted([*extra_dir.glob("*.yaml"), *extra_dir.glob("*.yml")]):
            profile = _load_file(path, path.read_text())
            found[profile.name] = profile
    return found


def get_profile(name: str, extra_dir: Path | None = None) -> Profile:
    profiles = load_profiles(extra_dir)
    if name in profiles:
        return profiles[name]
    known = ", ".join(sorted(profiles))
    raise CatalogError(f"unknown model profile {name!r}; known profiles: {known}")
