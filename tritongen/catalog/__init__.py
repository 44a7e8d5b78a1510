"""Data that changes with upstream releases lives here as YAML, not in code.

- ``models/<name>.yaml``: partial specs for known models (shape facts, default precision and limits)
- ``containers.yaml``: NGC container tag <-> TensorRT-LLM version <-> supported routes
- ``gpus.yaml``: GPU facts for gating and sizing
- ``trtllm_flags.yaml`` / ``trtllm_tools.yaml`` / ``convert_scripts.yaml``: the build tools' interface
"""

from __future__ import annotations

import difflib
import functools
import json
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from ..errors import CatalogError

_ROOT = Path(str(resources.files(__package__)))


def data_path(name: str) -> Path:
    return _ROOT / name


@functools.cache
def load(name: str) -> Any:
    """Load ``<name>`` (a YAML file in this folder); cached for the life of the process."""
    path = _ROOT / name
    try:
        return yaml.safe_load(path.read_text())
    except OSError as exc:
        raise CatalogError(f"catalogue file missing: {path}") from exc
    except yaml.YAMLError as exc:
        raise CatalogError(f"catalogue file {path} is not valid YAML: {exc}") from exc


@functools.cache
def model_names() -> tuple[str, ...]:
    return tuple(sorted(p.stem for p in (_ROOT / "models").glob("*.yaml")))


def model_entry(name: str) -> dict:
    """The catalogue entry for ``name`` (a partial spec dict); a one-line error with suggestions if unknown."""
    if name not in model_names():
        close = difflib.get_close_matches(name, model_names(), n=3)
        hint = f"did you mean {', '.join(close)}?" if close else "see `tritongen models`"
        raise CatalogError(
            f"unknown model {name!r}; known: {', '.join(model_names())} (or give --checkpoint DIR)", hint=hint
        )
    entry = load(f"models/{name}.yaml")
    if not isinstance(entry, dict) or "model" not in entry:
        raise CatalogError(f"catalogue entry models/{name}.yaml has no 'model' section")
    return entry


def model_info_from_checkpoint(checkpoint_dir: Path) -> dict:
    """Read a Hugging Face checkpoint's config.json into ``model`` spec fields (shape facts only)."""
    cfg_path = Path(checkpoint_dir) / "config.json"
    try:
        cfg = json.loads(cfg_path.read_text())
    except OSError as exc:
        raise CatalogError(f"{cfg_path}: cannot read the checkpoint's config.json ({exc.strerror})") from exc
    except json.JSONDecodeError as exc:
        raise CatalogError(f"{cfg_path}: not valid JSON ({exc})") from exc
    # Multimodal / nested configs keep the language model under text_config.
    text = cfg.get("text_config") if isinstance(cfg.get("text_config"), dict) else cfg
    archs = cfg.get("architectures") or []
    heads = text.get("num_attention_heads")
    hidden = text.get("hidden_size")
    info: dict[str, Any] = {
        "architecture": archs[0] if archs else None,
        "num_layers": text.get("num_hidden_layers"),
        "hidden_size": hidden,
        "num_heads": heads,
        "num_kv_heads": text.get("num_key_value_heads") or heads,
        "head_dim": text.get("head_dim") or (hidden // heads if hidden and heads else None),
        "intermediate_size": text.get("intermediate_size"),
        "vocab_size": text.get("vocab_size"),
        "context_length": text.get("max_position_embeddings"),
        "num_experts": text.get("num_local_experts") or text.get("num_experts") or 0,
        "experts_per_token": text.get("num_experts_per_tok") or 0,
    }
    info = {k: v for k, v in info.items() if v is not None}
    if "num_params" not in info:
        estimate = estimate_params(info, tied=bool(text.get("tie_word_embeddings", False)))
        if estimate:
            info["num_params"] = float(estimate)
    return info


def estimate_params(info: dict, *, tied: bool = False) -> int | None:
    """Parameter count of a Llama-style decoder from its shapes (attention + gated MLP + embeddings)."""
    try:
        layers, hidden, heads = info["num_layers"], info["hidden_size"], info["num_heads"]
        kv, vocab, inter = info["num_kv_heads"], info["vocab_size"], info["intermediate_size"]
    except KeyError:
        return None
    head_dim = info.get("head_dim") or hidden // heads
    experts = max(1, info.get("num_experts") or 0)
    attn = hidden * head_dim * (heads + 2 * kv) + heads * head_dim * hidden
    mlp = 3 * hidden * inter * experts + (hidden * experts if experts > 1 else 0)
    norms = 2 * hidden
    embed = vocab * hidden * (1 if tied else 2)
    return layers * (attn + mlp + norms) + embed + hidden
