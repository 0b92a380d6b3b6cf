"""The GPU catalog: memory, bandwidth and FP8 support of the cards the planner knows.

The data lives in `gpus.yaml` beside this module; this module gives it types and looks cards up
by catalog id or by the name `nvidia-smi` prints.
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from serving.catalog.errors import CatalogError

Interconnect = Literal["nvlink", "pcie"]
GIB = 1 << 30


class Gpu(BaseModel):
    """One GPU model."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[a-z0-9-]+$")
    name: str
    memory_mib: int = Field(gt=0, description="memory.total as nvidia-smi reports it")
    torch_total_gib: float = Field(
        gt=0, description="the total PyTorch reports (what gpu_memory_utilization multiplies)"
    )
    bandwidth_tbps: float = Field(gt=0, description="memory bandwidth, TB/s (10^12 bytes/s)")
    fp8: bool = Field(description="native FP8 tensor cores (Hopper/Ada)")
    interconnect: Interconnect
    max_per_node: int = Field(gt=0)
    match: tuple[str, ...] = ()

    @property
    def memory_gib(self) -> float:
        return self.memory_mib / 1024

    @property
    def memory_bytes(self) -> int:
        return self.memory_mib << 20

    @property
    def usable_bytes(self) -> int:
        """What vLLM sees as the card's total: gpu_memory_utilization is a share of this."""
        return int(self.torch_total_gib * GIB)


@cache
def _catalog() -> tuple[Gpu, ...]:
    # Read-only and immutable (frozen models in a tuple), so caching it is not shared state.
    text = resources.files("serving.catalog").joinpath("gpus.yaml").read_text()
    return tuple(TypeAdapter(list[Gpu]).validate_python(yaml.safe_load(text)))


def all_gpus() -> tuple[Gpu, ...]:
    return _catalog()


def get_gpu(gpu_id: str) -> Gpu:
    """Look a card up by catalog id (`h100-sxm`); `h100` is accepted as the SXM part."""
    wanted = gpu_id.strip().lower()
    aliases = {"h100": "h100-sxm", "a100": "a100-80gb"}
    wanted = aliases.get(wanted, wanted)
    for gpu in _catalog():
        if gpu.id == wanted:
            return gpu
    known = ", ".join(g.id for g in _catalog())
    raise CatalogError(f"unknown GPU {gpu_id!r}; known GPUs: {known}")


def match_gpu(nvidia_smi_name: str) -> Gpu | None:
    """The catalog card whose `match` phrases appear (as whole words) in an nvidia-smi name."""
    # GPU feature discovery labels spell the name with dashes: NVIDIA-H100-80GB-HBM3.
    name = nvidia_smi_name.strip().lower().replace("-", " ")
    for gpu in _catalog():
        for phrase in gpu.match:
            wanted = re.escape(phrase.replace("-", " "))
            if re.search(rf"(?<![a-z0-9]){wanted}(?![a-z0-9])", name):
                return gpu
    return None
