"""model.yaml of the llmapi route: the LLM() arguments a spec implies, and what the route refuses.

Everything the spec asks for that this route cannot do is refused with a one-line :class:`GatingError` instead of
being silently dropped.
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from ... import versions
from ...errors import GatingError
from ...spec import KvCacheDtype, Precision, Spec, SpeculativeMethod
from ..guided import enabled as guided_enabled
from .lora import llm_args as lora_args

#: Top-level LLM() arguments (TorchLlmArgs + BaseLlmArgs, TensorRT-LLM 1.x) that tritongen knows. LLM() rejects
#: unknown arguments (its pydantic models use extra="forbid"), so validate flags anything else in model.yaml.
KNOWN_LLM_ARGS: frozenset[str] = frozenset({
    "model", "tokenizer", "tokenizer_mode", "skip_tokenizer_init", "trust_remote_code", "tensor_parallel_size",
    "dtype", "revision", "tokenizer_revision", "pipeline_parallel_size", "context_parallel_size", "gpus_per_node",
    "moe_cluster_parallel_size", "moe_tensor_parallel_size", "moe_expert_parallel_size", "enable_attention_dp",
    "cp_config", "load_format", "fail_fast_on_attention_window_too_large", "enable_lora", "lora_config",
    "kv_cache_config", "enable_chunked_prefill", "guided_decoding_backend", "iter_stats_max_iterations",
    "request_stats_max_iterations", "peft_cache_config", "scheduler_config", "cache_transceiver_config",
    "speculative_config", "max_batch_size", "max_input_len", "max_seq_len", "max_beam_width", "max_num_tokens",
    "gather_generation_logits", "num_postprocess_workers", "postprocess_tokenizer_dir", "reasoning_parser",
    "backend", "garbage_collection_gen0_threshold", "cuda_graph_config", "disable_overlap_scheduler", "moe_config",
    "attn_backend", "enable_mixed_sampler", "enable_trtllm_sampler", "sampler_type", "enable_iter_perf_stats",
    "enable_iter_req_stats", "print_iter_log", "torch_compile_config", "enable_autotuner",
    "enable_layerwise_nvtx_marker", "enable_min_latency", "stream_interval", "force_dynamic_quantization",
    "allreduce_strategy", "checkpoint_loader", "checkpoint_format", "connector_config", "batch_wait_timeout_ms",
    "kv_connector_config", "return_perf_metrics", "otlp_traces_endpoint", "disable_flashinfer_sampling",
})
#: Keys of kv_cache_config (KvCacheConfig, TensorRT-LLM 1.x).
KNOWN_KV_CACHE_KEYS: frozenset[str] = frozenset({
    "enable_block_reuse", "max_tokens", "max_attention_window", "sink_token_length", "free_gpu_memory_fraction",
    "host_cache_size", "onboard_blocks", "cross_kv_cache_fraction", "secondary_offload_min_priority",
    "event_buffer_max_size", "enable_partial_reuse", "copy_on_partial_reuse", "use_uvm", "dtype",
    "attention_dp_events_gather_period_ms", "max_gpu_total_bytes", "mamba_ssm_cache_dtype", "tokens_per_block",
})
#: kv_cache_config.dtype values the PyTorch backend takes.
KV_CACHE_DTYPES: frozenset[str] = frozenset({"auto", "fp8", "nvfp4"})
#: speculative_config.decoding_type values and whether the PyTorch backend supports them (supports_backend()).
DECODING_TYPES: dict[str, bool] = {
    "Eagle": True, "Eagle3": True, "DraftTarget": True, "NGram": True, "MTP": True, "AUTO": True,
    "UserProvided": True, "Medusa": False, "Lookahead": False,
}
#: Keys of model.yaml's triton_config that the upstream model reads.
TRITON_CONFIG_KEYS: frozenset[str] = frozenset({"max_batch_size", "decoupled", "cancellation_check_period_ms"})
#: Keys that upstream model.py reads from model.yaml itself (not passed to LLM()).
MODEL_YAML_EXTRA_KEYS: frozenset[str] = frozenset({"triton_config", "logits_post_processors"})

#: Pre-quantized checkpoint formats the PyTorch backend loads, with the quant_algo names ModelOpt writes to
#: hf_quant_config.json (or a Hugging Face config.json quantization_config announces).
PREQUANTIZED: dict[Precision, tuple[str, ...]] = {
    Precision.fp8: ("FP8", "FP8_BLOCK_SCALES", "FP8_PER_CHANNEL_PER_TOKEN"),
    Precision.nvfp4: ("NVFP4",),
    Precision.int4_awq: ("W4A16_AWQ",),
    Precision.w4a8_awq: ("W4A8_AWQ",),
}
_TORCH_DTYPE = {"fp16": "float16", "bf16": "bfloat16"}
_CAPACITY_POLICY = {"guaranteed_no_evict": "GUARANTEED_NO_EVICT", "max_utilization": "MAX_UTILIZATION"}
#: A small Eagle3 draft length (the upstream Triton tutorial uses 3-4); the engine route's 63 is a tree size.
DEFAULT_EAGLE_DRAFT_LEN = 3


def model_ref(spec: Spec) -> str:
    """What model.yaml's ``model`` points at: the checkpoint folder if given, else the Hugging Face id (the LLM
    API downloads it), else the cache folder tritongen would use."""
    if spec.model.checkpoint_dir is not None:
        return str(spec.model.checkpoint_dir)
    if spec.model.hf_id:
        return spec.model.hf_id
    return str(spec.checkpoint_dir)


def tokenizer_ref(spec: Spec) -> str:
    if spec.model.tokenizer_dir is not None:
        return str(spec.model.tokenizer_dir)
    return model_ref(spec)


def checkpoint_quant_algo(checkpoint: Path) -> str | None:
    """The quantization a local checkpoint announces: ModelOpt's hf_quant_config.json ``quantization.quant_algo``,
    else config.json ``quantization_config.quant_method`` (upper-cased), else None (not quantized)."""
    hf_quant = checkpoint / "hf_quant_config.json"
    if hf_quant.is_file():
        try:
            data = json.loads(hf_quant.read_text())
        except (OSError, json.JSONDecodeError):
            return "UNREADABLE"
        algo = (data.get("quantization") or {}).get("quant_algo")
        return str(algo).upper() if algo else None
    cfg = checkpoint / "config.json"
    if cfg.is_file():
        try:
            data = json.loads(cfg.read_text())
        except (OSError, json.JSONDecodeError):
            return None
        method = (data.get("quantization_config") or {}).get("quant_method")
        return str(method).upper() if method else None
    return None


def check_supported(spec: Spec, image: str) -> None:
    """Refuse what the llmapi route cannot serve in ``image``, one line per problem (GatingError)."""
    versions.check_image_supports(image, "llmapi")
    problems: list[str] = []
    fmt = spec.precision.format
    if fmt not in (Precision.fp16, Precision.bf16) and fmt not in PREQUANTIZED:
        problems.append(f"precision.format: {fmt.value} is quantized at engine build time; the llmapi route loads "
                        f"pre-quantized checkpoints only ({', '.join(p.value for p in PREQUANTIZED)}, e.g. exported "
                        "by TensorRT Model Optimizer) or fp16/bf16")
    if fmt in PREQUANTIZED and spec.model.checkpoint_dir is not None and Path(spec.model.checkpoint_dir).is_dir():
        algo = checkpoint_quant_algo(Path(spec.model.checkpoint_dir))
        if algo not in PREQUANTIZED[fmt]:
            found = f"quantization {algo}" if algo else "no quantization (no hf_quant_config.json)"
            problems.append(f"precision.format: {fmt.value} needs a checkpoint pre-quantized to "
                            f"{'/'.join(PREQUANTIZED[fmt])}, but {spec.model.checkpoint_dir} has {found}; export "
                            "one with TensorRT Model Optimizer (hf_ptq.py --export_fmt hf)")
    kv = spec.precision.resolved_kv_dtype
    if kv is KvCacheDtype.int8:
        problems.append("precision.kv_cache_dtype: int8 KV cache is a TensorRT-engine feature; the PyTorch backend "
                        "takes auto (model dtype) or fp8")
    elif kv.value not in ("fp8", spec.precision.resolved_dtype.value):
        problems.append(f"precision.kv_cache_dtype: {kv.value} differs from the model dtype "
                        f"{spec.precision.resolved_dtype.value}; the PyTorch backend keeps the KV cache in the model "
                        "dtype (auto) or fp8")
    method = spec.decoding.speculative.method
    if method in (SpeculativeMethod.medusa, SpeculativeMethod.lookahead):
        problems.append(f"decoding.speculative.method: {method.value} is not supported by TensorRT-LLM's PyTorch "
                        "backend (MedusaDecodingConfig/LookaheadDecodingConfig.supports_backend exclude it); use "
                        "eagle (Eagle3 draft checkpoint) on the llmapi route, or the engine route")
    if method is SpeculativeMethod.eagle and spec.decoding.speculative.heads_dir is None:
        problems.append("decoding.speculative.heads_dir: eagle on the llmapi route needs the Eagle3 draft "
                        "checkpoint (speculative_model_dir), e.g. yuhuili/EAGLE3-LLaMA3.1-Instruct-8B")
    if spec.limits.max_beam_width > 1:
        problems.append(f"limits.max_beam_width: {spec.limits.max_beam_width}; the llmapi Triton model has no beam "
                        "search input; use 1 (or the engine route)")
    if spec.decoding.gather_context_logits or spec.decoding.gather_generation_logits:
        problems.append("decoding.gather_context_logits/gather_generation_logits: the llmapi Triton model returns "
                        "no logits; set them to false (or use the engine route)")
    if spec.decoding.mode.value not in ("auto", "top_k", "top_p", "top_k_top_p", spec.resolved_decoding_mode.value):
        problems.append(f"decoding.mode: {spec.decoding.mode.value} does not apply to the llmapi route; use auto")
    if problems:
        raise GatingError("\n".join(problems), hint="see docs/migration-llmapi.md for what the llmapi route takes")


def llm_args(spec: Spec) -> dict:
    """The LLM() keyword arguments (model.yaml without triton_config) the spec implies."""
    par, lim, kv, sched = spec.parallelism, spec.limits, spec.kv_cache, spec.scheduling
    args: dict = {"model": model_ref(spec)}
    if spec.model.tokenizer_dir is not None:
        args["tokenizer"] = str(spec.model.tokenizer_dir)
    args["backend"] = "pytorch"
    args["tensor_parallel_size"] = par.tp
    args["pipeline_parallel_size"] = par.pp
    if spec.model.num_experts:
        args["moe_expert_parallel_size"] = par.ep
        args["moe_tensor_parallel_size"] = par.tp // par.ep
    args["dtype"] = _TORCH_DTYPE[spec.precision.resolved_dtype.value]
    args["max_batch_size"] = lim.max_batch_size
    args["max_num_tokens"] = lim.max_num_tokens
    args["max_input_len"] = lim.max_input_len
    args["max_seq_len"] = lim.max_seq_len
    kv_cfg: dict = {
        "free_gpu_memory_fraction": kv.free_gpu_mem_fraction,
        "enable_block_reuse": kv.enable_reuse,
        "dtype": "fp8" if spec.precision.resolved_kv_dtype is KvCacheDtype.fp8 else "auto",
    }
    if kv.max_tokens is not None:
        kv_cfg["max_tokens"] = kv.max_tokens
    if kv.host_memory_bytes:
        kv_cfg["host_cache_size"] = kv.host_memory_bytes
    args["kv_cache_config"] = kv_cfg
    args["enable_chunked_prefill"] = sched.enable_chunked_context
    args["scheduler_config"] = {"capacity_scheduler_policy": _CAPACITY_POLICY[sched.batch_scheduler_policy.value]}
    if spec.serving.stream_interval > 1:
        args["stream_interval"] = spec.serving.stream_interval  # LLM API: a streamed output every N iterations
    spec_dec = spec.decoding.speculative
    if spec_dec.method is SpeculativeMethod.eagle:
        eagle: dict = {
            "decoding_type": "Eagle",
            "max_draft_len": spec_dec.max_draft_len or DEFAULT_EAGLE_DRAFT_LEN,
            "speculative_model_dir": str(spec_dec.heads_dir),
        }
        if spec_dec.eagle_choices:
            eagle["eagle_choices"] = [list(c) for c in spec_dec.eagle_choices]
        args["speculative_config"] = eagle
    if spec.model.trust_remote_code:
        args["trust_remote_code"] = True
    if guided_enabled(spec):
        args["guided_decoding_backend"] = "xgrammar"
    args.update(lora_args(spec))
    return args


def triton_config(spec: Spec) -> dict:
    """model.yaml's triton_config: upstream's model does not batch requests itself (max_batch_size 0; the LLM API
    batches in flight); decoupled follows serving.streaming."""
    return {"max_batch_size": 0, "decoupled": spec.serving.streaming}


def yaml_notes(spec: Spec) -> list[str]:
    """Comment lines for model.yaml: what the operator must provide that the file cannot say."""
    notes = []
    fmt = spec.precision.format
    if fmt in PREQUANTIZED:
        notes.append(f"precision {fmt.value}: the checkpoint must be pre-quantized ({'/'.join(PREQUANTIZED[fmt])} in "
                     "its hf_quant_config.json); TensorRT-LLM reads the quantization from the checkpoint.")
    if spec.parallelism.world_size > 1:
        notes.append(f"tp x pp = {spec.parallelism.world_size}: the LLM API starts one worker per GPU itself "
                     "(tritonserver runs as a single process).")
    if spec.parallelism.gpu_ids is not None:
        notes.append(f"GPUs {spec.parallelism.gpu_ids}: model.py sets CUDA_VISIBLE_DEVICES before TensorRT-LLM loads.")
    return notes


def model_yaml(spec: Spec) -> tuple[str, str]:
    """(LLM arguments, triton_config) as YAML text, keys in a fixed order (deterministic output)."""
    dump = lambda data: yaml.safe_dump(data, sort_keys=False, default_flow_style=False, width=100)  # noqa: E731
    return dump(llm_args(spec)).rstrip("\n"), dump({"triton_config": triton_config(spec)}).rstrip("\n")
