"""The spec's ``lora`` section: Hugging Face PEFT LoRA adapters a deployment serves, chosen per request by name.

Every adapter gets a task id (1, 2, ... in the order the spec lists them): the TensorRT-LLM backend keys its
LoRA cache by that id, preprocessing maps a request's ``lora_name`` to it, and the cpu engine finds the adapter
by it. The adapters' own ``adapter_config.json`` is read while the spec is validated, so a folder that is no
PEFT LoRA adapter, or whose rank or target modules the build does not cover, is a one-line spec error.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    model_validator,
)

from ..names import shorten, show_path
from .fields import PathField, SafeName
from .rules import CROSS_MARK

#: Hugging Face (PEFT) module names -> TensorRT-LLM's LoRA module names (tensorrt_llm/lora_manager.py,
#: hf_modules_to_trtllm_modules: gate_proj is mlp_h_to_4h and up_proj mlp_gate in TensorRT-LLM's naming).
HF_TO_TRTLLM = {
    "q_proj": "attn_q", "k_proj": "attn_k", "v_proj": "attn_v", "o_proj": "attn_dense",
    "gate_proj": "mlp_h_to_4h", "up_proj": "mlp_gate", "down_proj": "mlp_4h_to_h",
}
TRTLLM_MODULES = tuple(HF_TO_TRTLLM.values())
#: The name a request sends for "no adapter" (as vLLM: the base model's own name also means none).
BASE = ""


PositiveInt = Annotated[StrictInt, Field(gt=0)]


def _not_bool(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError(f"{str(value).lower()} is a boolean, not a number")
    return value


Float = Annotated[float, BeforeValidator(_not_bool)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class LoraCache(_Strict):
    """The TensorRT-LLM backend's LoRA (PEFT) cache: parameters of the tensorrt_llm model (engine route)."""

    optimal_adapter_size: PositiveInt | None = Field(
        None, description="lora_cache_optimal_adapter_size: adapter size (rank x modules x layers pages) the cache "
        "is tuned for; null: the backend's default (8).")
    max_adapter_size: PositiveInt | None = Field(
        None, description="lora_cache_max_adapter_size: largest adapter the cache holds; null: the backend's "
        "default (64).")
    gpu_memory_fraction: Float | None = Field(
        None, gt=0, le=1, description="lora_cache_gpu_memory_fraction: share of GPU memory left after the engine "
        "loads that the device LoRA cache takes; null: the backend's default.")
    host_memory_bytes: StrictInt | None = Field(
        None, gt=0, description="lora_cache_host_memory_bytes: host LoRA cache size; null: the backend's default.")
    prefetch: StrictBool = Field(
        True, description="Load every adapter into the cache when the server starts (lora_prefetch_dir, the "
        "adapters converted at build time), so requests need only the adapter's name.")


class LoraSpec(_Strict):
    adapters: dict[SafeName, PathField] = Field(
        default_factory=dict, max_length=1024, description="Adapter name -> Hugging Face PEFT LoRA adapter folder "
        "(adapter_config.json + adapter_model.safetensors). A request chooses one with lora_name (OpenAI: model).")
    max_rank: PositiveInt = Field(64, description="Highest adapter rank the engine supports "
                                  "(trtllm-build --max_lora_rank); every adapter's r must be at most this.")
    target_modules: list[StrictStr] | None = Field(
        None, max_length=16, description="TensorRT-LLM LoRA modules the engine gets (trtllm-build "
        "--lora_target_modules: attn_q, attn_k, attn_v, attn_dense, mlp_h_to_4h, mlp_4h_to_h, mlp_gate); null: "
        "those the adapters adapt.")
    cache: LoraCache = Field(default_factory=LoraCache, description="The backend's LoRA cache (engine route).")

    @model_validator(mode="after")
    def _adapters_fit(self) -> LoraSpec:
        problems = []
        for module in self.target_modules or ():
            if module not in TRTLLM_MODULES:
                problems.append(f"lora.target_modules: {module!r} is not a TensorRT-LLM LoRA module; use "
                                f"{', '.join(TRTLLM_MODULES)}")
        for name, folder in self.adapters.items():
            problem = _adapter_problem(folder, self.max_rank, self.target_modules)
            if problem:
                problems.append(f"lora.adapters.{name}: {problem}")
        if problems:
            # Marked like cross_check's lines: shown as they are, one line each, already naming their field.
            raise ValueError(CROSS_MARK + "\n".join(problems))
        return self

    @property
    def enabled(self) -> bool:
        return bool(self.adapters)

    @property
    def task_ids(self) -> dict[str, int]:
        """Adapter name -> its task id (1, 2, ... in spec order; 0 would read as "no adapter" to some clients)."""
        return {name: i for i, name in enumerate(self.adapters, start=1)}

    @property
    def resolved_target_modules(self) -> list[str]:
        """The modules the engine is built with: the spec's, else the union of the adapters' (TensorRT-LLM order)."""
        if self.target_modules:
            return list(self.target_modules)
        used = set()
        for folder in self.adapters.values():
            used |= {HF_TO_TRTLLM[m] for m in adapter_config(folder)["target_modules"]}
        return [m for m in TRTLLM_MODULES if m in used]

    def build_identity(self) -> dict:
        """What of this section changes an engine built with it (the engine cache key): rank, modules, and each
        adapter's config and weight files' names and sizes (weights not read)."""
        adapters = {}
        for name, folder in self.adapters.items():
            digest = hashlib.sha256((Path(folder) / "adapter_config.json").read_bytes())
            for weight in sorted(p for p in Path(folder).iterdir() if p.name.startswith("adapter_model")):
                digest.update(f"\0{weight.name}\0{weight.stat().st_size}".encode())
            adapters[name] = digest.hexdigest()[:16]
        return {"max_rank": self.max_rank, "target_modules": self.resolved_target_modules, "adapters": adapters}


def adapter_config(folder: Path) -> dict:
    """An adapter's adapter_config.json, with target_modules as a list (PEFT may store a regex string)."""
    data = json.loads((Path(folder) / "adapter_config.json").read_text(encoding="utf-8"))
    modules = data.get("target_modules") or []
    data["target_modules"] = [modules] if isinstance(modules, str) else list(modules)
    return data


def _adapter_problem(folder: Path, max_rank: int, targets: list[str] | None) -> str | None:
    shown = show_path(folder)
    if not Path(folder).is_dir():
        return f"{shown} does not exist (a Hugging Face PEFT adapter folder is expected)"
    if not (Path(folder) / "adapter_config.json").is_file():
        return f"{shown} has no adapter_config.json: not a PEFT adapter folder"
    try:
        config = adapter_config(folder)
    except (OSError, ValueError) as exc:
        return f"{shown}/adapter_config.json cannot be read: {shorten(exc, 120)}"
    if str(config.get("peft_type", "")).upper() != "LORA":
        return f"{shown} is a {config.get('peft_type')!r} adapter; only LORA adapters are served"
    if not any((Path(folder) / f).is_file() for f in ("adapter_model.safetensors", "adapter_model.bin")):
        return f"{shown} has no adapter_model.safetensors (or .bin): the adapter's weights are missing"
    rank = config.get("r")
    if not isinstance(rank, int) or isinstance(rank, bool) or rank < 1:
        return f"{shown}: adapter_config.json r={rank!r} is not a rank"
    if rank > max_rank:
        return f"rank {rank} exceeds lora.max_rank={max_rank}; raise lora.max_rank to at least {rank}"
    ranks = config.get("rank_pattern") or {}
    if ranks and max(ranks.values()) > max_rank:
        return f"rank_pattern reaches rank {max(ranks.values())}, over lora.max_rank={max_rank}"
    unknown = [m for m in config["target_modules"] if m not in HF_TO_TRTLLM]
    if unknown:
        return (f"adapts {', '.join(unknown)}, which TensorRT-LLM's LoRA cannot target (it maps "
                f"{', '.join(HF_TO_TRTLLM)})")
    if targets:
        missing = [m for m in config["target_modules"] if HF_TO_TRTLLM[m] not in targets]
        if missing:
            return (f"adapts {', '.join(missing)} but lora.target_modules lacks "
                    f"{', '.join(HF_TO_TRTLLM[m] for m in missing)}")
    return None
