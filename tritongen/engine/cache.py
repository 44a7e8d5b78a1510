"""The engine cache: one directory per distinct engine, keyed by everything that changes the binary.

``<cache>/engines/<model>-<precision>-tp<T>pp<P>-<key12>/`` holds ``config.json``, ``rank*.engine`` and
``tritongen.json`` (the build record: full key material, GPU architecture, TensorRT-LLM version). An entry is
only ever created by renaming a finished build into place, so a failed build leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from ..spec import Spec, cache_dir


def engines_root() -> Path:
    return cache_dir() / "engines"


def key_material(spec: Spec, *, gpu_arch: str | None = None, trtllm_version: str | None = None) -> dict[str, Any]:
    """The inputs that change the engine binary. Serving-only settings (ports, instance counts, streaming,
    KV-cache memory fraction, scheduler policy) are deliberately absent: they do not need a rebuild."""
    from .. import versions

    m, lim, kv, dec = spec.model, spec.limits, spec.kv_cache, spec.decoding
    _, default_version = versions.resolve_container(spec)
    return {
        "checkpoint": _checkpoint_identity(spec),
        "architecture": m.architecture,
        "precision": spec.precision.format.value,
        "dtype": spec.precision.resolved_dtype.value,
        "kv_cache_dtype": spec.precision.resolved_kv_dtype.value,
        "calib_size": spec.precision.calib_size if _calibrated(spec) else None,
        "awq_block_size": spec.precision.awq_block_size if "awq" in spec.precision.format.value or
        spec.precision.format.value == "int4_gptq" else None,
        "tp": spec.parallelism.tp,
        "pp": spec.parallelism.pp,
        "ep": spec.parallelism.ep,
        "max_batch_size": lim.max_batch_size,
        "max_input_len": lim.max_input_len,
        "max_seq_len": lim.max_seq_len,
        "max_num_tokens": lim.max_num_tokens,
        "max_beam_width": lim.max_beam_width,
        "paged_kv_cache": kv.paged,
        "tokens_per_block": kv.tokens_per_block,
        "paged_context_fmha": needs_paged_context_fmha(spec),
        "gather_context_logits": dec.gather_context_logits,
        "gather_generation_logits": dec.gather_generation_logits,
        "speculative": dec.speculative.method.value,
        "max_draft_len": spec.resolved_max_draft_len,
        "speculative_heads": str(dec.speculative.heads_dir) if dec.speculative.heads_dir else None,
        "trtllm_version": trtllm_version or default_version,
        "gpu_arch": gpu_arch or spec.engine.gpu,
    }


def _calibrated(spec: Spec) -> bool:
    return spec.precision.format.value in ("fp8", "int4_awq", "w4a8_awq", "w8a8_sq", "nvfp4") or \
        spec.precision.resolved_kv_dtype.value in ("fp8", "int8")


def needs_paged_context_fmha(spec: Spec) -> bool:
    """KV-cache reuse and chunked context both need paged context FMHA in the engine."""
    return spec.kv_cache.paged and (spec.kv_cache.enable_reuse or spec.scheduling.enable_chunked_context)


def _checkpoint_identity(spec: Spec) -> str:
    """The HF id plus a digest of the checkpoint's config.json (cheap; weights are not hashed)."""
    ident = spec.model.hf_id or spec.model.name
    cfg = spec.checkpoint_dir / "config.json"
    if cfg.is_file():
        ident += "@" + hashlib.sha256(cfg.read_bytes()).hexdigest()[:16]
    return ident


def cache_key(material: dict[str, Any]) -> str:
    blob = json.dumps(material, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def entry_name(spec: Spec, material: dict[str, Any]) -> str:
    return (f"{spec.model.name}-{spec.precision.format.value}-tp{spec.parallelism.tp}pp{spec.parallelism.pp}"
            f"-{cache_key(material)}")


def entry_dir(spec: Spec, *, gpu_arch: str | None = None, trtllm_version: str | None = None) -> Path:
    """The cache directory this spec's engine lives (or will live) in."""
    material = key_material(spec, gpu_arch=gpu_arch, trtllm_version=trtllm_version)
    return engines_root() / entry_name(spec, material)
