"""Read the ``config.json`` that ``trtllm-build`` writes next to the engines.

Format (TensorRT-LLM >= 0.9, unchanged in its essentials through 1.2): top-level ``version`` (the TensorRT-LLM
version that built it), ``pretrained_config`` (architecture, dtype, shapes, ``mapping`` with world/tp/pp sizes,
``quantization`` with ``quant_algo``/``kv_cache_quant_algo``) and ``build_config`` (limits, speculative
decoding, gather-logits switches and ``plugin_config``). See docs/reference/trtllm-engine-config.md for the
source of each field. Older layouts (a ``builder_config`` section, pre-0.9) are reported as unsupported.

tritongen adds a ``tritongen.json`` beside engines it builds (GPU architecture, spec key) because config.json
does not record which GPU the engine was built for.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BUILD_INFO_NAME = "tritongen.json"


class EngineConfigError(ValueError):
    pass


@dataclass
class EngineConfig:
    path: Path
    version: str | None
    architecture: str | None
    dtype: str | None
    world_size: int
    tp_size: int
    pp_size: int
    moe_ep_size: int
    max_batch_size: int | None
    max_input_len: int | None
    max_seq_len: int | None
    max_num_tokens: int | None
    max_beam_width: int | None
    max_draft_len: int
    speculative_decoding_mode: str | None
    gather_context_logits: bool
    gather_generation_logits: bool
    paged_kv_cache: bool | None
    use_paged_context_fmha: bool | None
    tokens_per_block: int | None
    quant_algo: str | None
    kv_cache_quant_algo: str | None
    vocab_size: int | None
    num_layers: int | None
    #: tritongen's own build record (gpu, sm, spec key), when tritongen built the engine.
    build_info: dict[str, Any] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def gpu_arch(self) -> str | None:
        return self.build_info.get("gpu_arch")


def _bool(value: Any) -> bool | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value.lower() in ("enable", "true", "1", "yes")
    return bool(value)


def load(engine_dir: Path) -> EngineConfig:
    """Parse ``engine_dir/config.json``; raises :class:`EngineConfigError` with a one-line reason."""
    path = Path(engine_dir) / "config.json"
    try:
        raw = json.loads(path.read_text())
    except OSError as exc:
        raise EngineConfigError(f"{path}: cannot read ({exc.strerror})") from exc
    except json.JSONDecodeError as exc:
        raise EngineConfigError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from exc
    if not isinstance(raw, dict):
        raise EngineConfigError(f"{path}: expected a JSON object")
    if "builder_config" in raw and "build_config" not in raw:
        raise EngineConfigError(f"{path}: pre-0.9 engine layout (builder_config); rebuild with trtllm-build")
    pre = raw.get("pretrained_config")
    build = raw.get("build_config")
    if not isinstance(pre, dict) or not isinstance(build, dict):
        raise EngineConfigError(f"{path}: missing pretrained_config/build_config; not a trtllm-build engine dir")
    mapping = pre.get("mapping") or {}
    quant = pre.get("quantization") or {}
    plugin = build.get("plugin_config") or {}
    tp = int(mapping.get("tp_size") or 1)
    pp = int(mapping.get("pp_size") or 1)
    # gather_*_logits moved around between releases; accept either place.
    gather_ctx = build.get("gather_context_logits", plugin.get("gather_context_logits"))
    gather_gen = build.get("gather_generation_logits", plugin.get("gather_generation_logits"))
    if build.get("gather_all_token_logits"):
        gather_ctx = gather_gen = True
    info_path = Path(engine_dir) / BUILD_INFO_NAME
    build_info: dict[str, Any] = {}
    if info_path.is_file():
        try:
            build_info = json.loads(info_path.read_text())
        except (OSError, json.JSONDecodeError):
            build_info = {}
    spec_mode = build.get("speculative_decoding_mode")
    return EngineConfig(
        path=path,
        version=str(raw["version"]) if raw.get("version") is not None else None,
        architecture=pre.get("architecture"),
        dtype=pre.get("dtype"),
        world_size=int(mapping.get("world_size") or tp * pp),
        tp_size=tp,
        pp_size=pp,
        moe_ep_size=int(mapping.get("moe_ep_size") or 1),
        max_batch_size=_int(build.get("max_batch_size")),
        max_input_len=_int(build.get("max_input_len")),
        max_seq_len=_int(build.get("max_seq_len")),
        max_num_tokens=_int(build.get("max_num_tokens")),
        max_beam_width=_int(build.get("max_beam_width")),
        max_draft_len=_int(build.get("max_draft_len")) or 0,
        speculative_decoding_mode=_spec_mode_name(spec_mode),
        gather_context_logits=bool(_bool(gather_ctx)),
        gather_generation_logits=bool(_bool(gather_gen)),
        paged_kv_cache=_paged(build, plugin),
        use_paged_context_fmha=_bool(plugin.get("use_paged_context_fmha")),
        tokens_per_block=_int(plugin.get("tokens_per_block")),
        quant_algo=quant.get("quant_algo"),
        kv_cache_quant_algo=quant.get("kv_cache_quant_algo"),
        vocab_size=_int(pre.get("vocab_size")),
        num_layers=_int(pre.get("num_hidden_layers")),
        build_info=build_info,
        raw=raw,
    )


def _int(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _paged(build: dict, plugin: dict) -> bool | None:
    # 0.12+ records kv_cache_type (PAGED/CONTINUOUS/DISABLED) in build_config; earlier builds a plugin flag.
    kv_type = build.get("kv_cache_type")
    if isinstance(kv_type, str):
        return kv_type.upper() == "PAGED"
    return _bool(plugin.get("paged_kv_cache"))


# Speculative decoding mode as written by trtllm-build (an enum name or int flag) -> our method name.
_SPEC_MODES = {
    "draft_tokens_external": "draft_target",
    "medusa": "medusa",
    "eagle": "eagle",
    "lookahead_decoding": "lookahead",
    "explicit_draft_tokens": "explicit_draft_tokens",
    "none": None,
}
_SPEC_MODE_FLAGS = {1: None, 2: "draft_target", 4: "medusa", 8: "lookahead", 16: "explicit_draft_tokens", 32: "eagle"}


def _spec_mode_name(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, int):
        return _SPEC_MODE_FLAGS.get(value)
    text = str(value).lower().replace("speculativedecodingmode.", "")
    return _SPEC_MODES.get(text, text)


#: spec precision.format -> the quant_algo values trtllm-build records for it (None: not quantized).
QUANT_ALGO_BY_PRECISION = {
    "fp16": (None,),
    "bf16": (None,),
    "fp8": ("FP8",),
    "int8_wo": ("W8A16",),
    "int4_wo": ("W4A16",),
    "int4_awq": ("W4A16_AWQ",),
    "int4_gptq": ("W4A16_GPTQ",),
    "w4a8_awq": ("W4A8_AWQ",),
    "w8a8_sq": ("W8A8_SQ_PER_CHANNEL", "W8A8_SQ_PER_CHANNEL_PER_TOKEN_PLUGIN", "W8A8_SQ_PER_TENSOR_PLUGIN",
                "W8A8_SQ_PER_CHANNEL_PER_TENSOR_PLUGIN", "W8A8_SQ_PER_TENSOR_PER_TOKEN_PLUGIN"),
    "nvfp4": ("NVFP4",),
}
_DTYPES = {"float16": "fp16", "bfloat16": "bf16"}
_KV_QUANT = {None: "auto", "FP8": "fp8", "INT8": "int8"}


def spec_values(cfg: EngineConfig) -> dict[str, Any]:
    """The spec fields a built engine fixed at build time, as dotted keys (only those config.json records).

    A prebuilt engine is the ground truth for these: ``spec.load_spec`` takes them for every field the user did
    not set, so an engine built with other limits than the catalogue's is adopted rather than refused.
    """
    dtype = _DTYPES.get(str(cfg.dtype))
    values: dict[str, Any] = {
        "limits.max_batch_size": cfg.max_batch_size,
        "limits.max_input_len": cfg.max_input_len,
        "limits.max_seq_len": cfg.max_seq_len,
        "limits.max_num_tokens": cfg.max_num_tokens,
        "limits.max_beam_width": cfg.max_beam_width,
        "parallelism.tp": cfg.tp_size,
        "parallelism.pp": cfg.pp_size,
        "parallelism.ep": cfg.moe_ep_size,
        "decoding.gather_context_logits": cfg.gather_context_logits,
        "decoding.gather_generation_logits": cfg.gather_generation_logits,
        "precision.dtype": dtype,
    }
    if cfg.quant_algo is None:
        values["precision.format"] = dtype
    else:
        values["precision.format"] = next((p for p, algos in QUANT_ALGO_BY_PRECISION.items()
                                           if cfg.quant_algo in algos), None)
    values["precision.kv_cache_dtype"] = _KV_QUANT.get(cfg.kv_cache_quant_algo)
    return {k: v for k, v in values.items() if v is not None}


def engine_identity(engine_dir: Path) -> dict | None:
    """What the lock file records about an engine: where, which build, a digest of its config."""
    path = Path(engine_dir) / "config.json"
    if not path.is_file():
        return {"dir": str(engine_dir), "present": False}
    try:
        cfg = load(engine_dir)
    except EngineConfigError as exc:
        return {"dir": str(engine_dir), "present": True, "error": str(exc)}
    return {
        "dir": str(engine_dir),
        "present": True,
        "config_sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "trtllm_version": cfg.version,
        "gpu_arch": cfg.gpu_arch,
        "architecture": cfg.architecture,
        "dtype": cfg.dtype,
        "quant_algo": cfg.quant_algo,
        "world_size": cfg.world_size,
        "max_batch_size": cfg.max_batch_size,
        "max_seq_len": cfg.max_seq_len,
    }
