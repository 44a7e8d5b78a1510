"""The llmapi route: TensorRT-LLM's LLM-API (PyTorch) Triton model, configured by ``model.yaml``, behind a front
that speaks the ensemble client contract.

Repository layout (everything but the lock file is rendered from ``templates/llmapi``)::

    ensemble/config.pbtxt          python model named "ensemble": text_input, max_tokens, stream, ... -> text_output
    ensemble/1/model.py            the front (ours): maps the client contract onto the llmapi model's inputs
    ensemble/1/textcodec.py        shared tokenizer helpers (chat template, parameters)
    tensorrt_llm/config.pbtxt      upstream's llmapi tensor contract (text_input, sampling_param_*, ...)
    tensorrt_llm/1/model.yaml      LLM() arguments the spec implies + triton_config
    tensorrt_llm/1/model.py        ours: loads the implementation that ships in the NGC container

Facts about the upstream model (its files, inputs, outputs, model.yaml keys) and where they come from are recorded
in docs/reference/llmapi.md. Everything the spec asks for that this route cannot do is refused here with a
one-line :class:`GatingError` instead of being silently dropped.
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from . import contract, versions
from .contract import Tensor
from .errors import GatingError
from .render import Item
from .spec import KvCacheDtype, Precision, Spec, SpeculativeMethod

#: Where NVIDIA's llmapi Triton model lives inside nvcr.io/nvidia/tritonserver:<tag>-trtllm-python-py3.
CONTAINER_IMPL_DIR = "/app/all_models/llmapi/tensorrt_llm/1"
#: Environment variable the rendered tensorrt_llm/1/model.py reads to load the implementation from elsewhere.
IMPL_ENV = "TRITONGEN_LLMAPI_IMPL_DIR"
#: The llmapi model's name in the repository (as upstream names it) and the front's (what clients call).
LLM_MODEL = "tensorrt_llm"
FRONT_MODEL = "ensemble"


def _opt(name: str, dtype: str, dims: tuple[int, ...] = (1,)) -> Tensor:
    return Tensor(name, dtype, dims, optional=True)


#: Inputs of TensorRT-LLM's triton_backend/all_models/llmapi/tensorrt_llm/config.pbtxt (release 1.x). Newer
#: upstream revisions add optional inputs (image_url, lora_*); those are left out so that the same config
#: loads with every release that has the route. Upstream's max_batch_size is 0, so dims are full shapes.
LLMAPI_INPUTS: tuple[Tensor, ...] = (
    Tensor("text_input", "TYPE_STRING", (-1,), doc="the prompt (one string)"),
    _opt("streaming", "TYPE_BOOL"),
    _opt("sampling_param_best_of", "TYPE_INT32"),
    _opt("sampling_param_temperature", "TYPE_FP32"),
    _opt("sampling_param_top_k", "TYPE_INT32"),
    _opt("sampling_param_top_p", "TYPE_FP32"),
    _opt("sampling_param_frequency_penalty", "TYPE_FP32"),
    _opt("sampling_param_presence_penalty", "TYPE_FP32"),
    _opt("sampling_param_max_tokens", "TYPE_INT32"),
    _opt("sampling_param_stop", "TYPE_STRING", (-1,)),
    _opt("sampling_param_seed", "TYPE_UINT64"),
    _opt("sampling_param_exclude_input_from_output", "TYPE_BOOL"),
    _opt("sampling_param_return_perf_metrics", "TYPE_BOOL"),
    _opt("return_finish_reason", "TYPE_BOOL"),
    _opt("return_stop_reason", "TYPE_BOOL"),
    _opt("return_cumulative_logprob", "TYPE_BOOL"),
    _opt("stop", "TYPE_BOOL"),
)

#: Outputs of the same config.pbtxt (fields of the LLM API's RequestOutput).
LLMAPI_OUTPUTS: tuple[Tensor, ...] = (
    Tensor("text_output", "TYPE_STRING", (-1,)),
    Tensor("finish_reason", "TYPE_STRING", (-1,)),
    Tensor("stop_reason", "TYPE_STRING", (-1,)),
    Tensor("cumulative_logprob", "TYPE_FP32", (-1,)),
    Tensor("kv_cache_reused_block", "TYPE_INT32", (-1,)),
    Tensor("kv_cache_missed_block", "TYPE_INT32", (-1,)),
    Tensor("kv_cache_alloc_new_blocks", "TYPE_INT32", (-1,)),
    Tensor("kv_cache_alloc_total_blocks", "TYPE_INT32", (-1,)),
    Tensor("kv_cache_hit_rate", "TYPE_FP32", (-1,)),
    Tensor("arrival_time_ns", "TYPE_INT64", (1,)),
    Tensor("first_scheduled_time_ns", "TYPE_INT64", (1,)),
    Tensor("first_token_time_ns", "TYPE_INT64", (1,)),
    Tensor("last_token_time_ns", "TYPE_INT64", (1,)),
    Tensor("acceptance_rate", "TYPE_FP32", (1,)),
    Tensor("total_accepted_draft_tokens", "TYPE_INT32", (1,)),
    Tensor("total_draft_tokens", "TYPE_INT32", (1,)),
)

#: Client-contract input -> llmapi input the front passes it to (kept equal to the front's copy by a test).
CLIENT_TO_LLMAPI: dict[str, str] = {
    "stream": "streaming",
    "stop_words": "sampling_param_stop",
    "temperature": "sampling_param_temperature",
    "top_k": "sampling_param_top_k",
    "top_p": "sampling_param_top_p",
    "seed": "sampling_param_seed",
    "presence_penalty": "sampling_param_presence_penalty",
    "frequency_penalty": "sampling_param_frequency_penalty",
    "return_perf_metrics": "sampling_param_return_perf_metrics",
}
#: Client inputs the front handles itself (not forwarded one to one).
FRONT_HANDLED: tuple[str, ...] = (
    "text_input", "max_tokens", "apply_chat_template", "exclude_input_in_output", "return_num_input_tokens",
    "return_num_output_tokens", "num_return_sequences", "beam_width",
)
#: Client inputs the llmapi model has no input for: the front refuses a request that sets them.
UNSUPPORTED_CLIENT_INPUTS: tuple[str, ...] = tuple(
    t.name for t in contract.CLIENT_INPUTS if t.name not in CLIENT_TO_LLMAPI and t.name not in FRONT_HANDLED
)
#: llmapi outputs the front forwards to the client under the same name (perf metrics, speculative stats).
PASSTHROUGH_OUTPUTS: tuple[str, ...] = (
    "kv_cache_alloc_new_blocks", "kv_cache_alloc_total_blocks", "arrival_time_ns", "first_scheduled_time_ns",
    "first_token_time_ns", "last_token_time_ns", "acceptance_rate", "total_accepted_draft_tokens",
    "total_draft_tokens",
)

# -- model.yaml ------------------------------------------------------------------------------------------

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


def check_supported(spec: Spec) -> None:
    """Refuse what the llmapi route cannot serve, one line per problem (GatingError)."""
    versions.check_route_supported(spec)
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


def _param(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def llm_parameters(spec: Spec) -> dict[str, str]:
    """The tensorrt_llm model's config.pbtxt parameters (read by our model.py, ignored by upstream's)."""
    _, trtllm = versions.resolve_container(spec)
    params: dict[str, object] = {"tritongen_trtllm_version": trtllm or ""}
    if spec.parallelism.gpu_ids is not None:
        params["tritongen_gpu_ids"] = ",".join(str(g) for g in spec.parallelism.gpu_ids)
    return {k: _param(v) for k, v in params.items()}


def front_parameters(spec: Spec) -> dict[str, str]:
    sv = spec.serving
    params: dict[str, object] = {
        "tokenizer_dir": tokenizer_ref(spec),
        "trust_remote_code": spec.model.trust_remote_code,
        "llm_model": spec.serving.model_prefix + LLM_MODEL,
        "llm_decoupled": sv.streaming,
        "exclude_input_in_output": sv.exclude_input_in_output,
        "max_input_len": spec.limits.max_input_len,
        "max_seq_len": spec.limits.max_seq_len,
        "max_prompt_bytes": sv.max_prompt_bytes,
    }
    return {k: _param(v) for k, v in params.items()}


# -- hooks called by render.py ---------------------------------------------------------------------------


def plan(spec: Spec) -> list[Item]:
    """The files of an llmapi repository: (template, destination) pairs."""
    check_supported(spec)
    return [
        Item("llmapi/ensemble/config.pbtxt.j2", f"{FRONT_MODEL}/config.pbtxt"),
        Item("llmapi/ensemble/1/model.py", f"{FRONT_MODEL}/1/model.py"),
        Item("common/lib/textcodec.py", f"{FRONT_MODEL}/1/textcodec.py"),
        Item("llmapi/tensorrt_llm/config.pbtxt.j2", f"{LLM_MODEL}/config.pbtxt"),
        Item("llmapi/tensorrt_llm/1/model.yaml.j2", f"{LLM_MODEL}/1/model.yaml"),
        Item("llmapi/tensorrt_llm/1/model.py", f"{LLM_MODEL}/1/model.py"),
    ]


def empty_dirs(spec: Spec) -> list[str]:
    """Every llmapi model has files in its version folder; nothing to create empty."""
    return []


def context(spec: Spec) -> dict:
    """Template variables for the llmapi templates (added to render.context())."""
    llm_yaml, triton_yaml = model_yaml(spec)
    image, trtllm = versions.resolve_container(spec)
    return {
        "llmapi_inputs": LLMAPI_INPUTS,
        "llmapi_outputs": LLMAPI_OUTPUTS,
        "llmapi_llm_yaml": llm_yaml,
        "llmapi_triton_yaml": triton_yaml,
        "llmapi_notes": yaml_notes(spec),
        "llmapi_llm_params": llm_parameters(spec),
        "llmapi_front_params": front_parameters(spec),
        "llmapi_image": image,
        "llmapi_trtllm": trtllm or "unknown",
        "llmapi_impl_dir": CONTAINER_IMPL_DIR,
    }


# -- validation (called by validate.validate_repo for llmapi repositories) -------------------------------

#: Arguments of the TensorRT backend's TrtLlmArgs that the PyTorch LLM() rejects.
TRT_ONLY_ARGS: frozenset[str] = frozenset({
    "quant_config", "calib_config", "enable_build_cache", "workspace", "fast_build", "auto_parallel",
    "auto_parallel_world_size", "embedding_parallel_mode", "extended_runtime_perf_knob_config", "batching_type",
    "normalize_log_probs", "enable_prompt_adapter", "max_prompt_adapter_token", "enable_tqdm",
})
_DTYPE_NAMES = {"auto", "float16", "bfloat16", "float32", "fp16", "bf16", "half"}


def is_llmapi_repo(repo: Path, models: dict, lock: dict | None, prefix: str = "") -> bool:
    cfg = models.get(prefix + LLM_MODEL)
    if cfg is None or cfg.backend != "python":
        return False
    return (lock or {}).get("route") == "llmapi" or (repo / (prefix + LLM_MODEL) / "1" / "model.yaml").is_file()


def check_repo(repo: Path, models: dict, lock: dict | None, prefix: str = "") -> list[tuple[Path, str, str, str, str]]:
    """Problems of an llmapi repository as (path, field, message, fix, severity): model.yaml against the LLM()
    arguments of the pinned TensorRT-LLM, triton_config against config.pbtxt, tensorrt_llm's tensors against
    upstream's contract, and the front's wiring onto them."""
    out: list[tuple[Path, str, str, str, str]] = []

    def add(path: Path, fld: str, message: str, fix: str = "", severity: str = "error") -> None:
        out.append((path, fld, message, fix, severity))

    cfg = models[prefix + LLM_MODEL]
    cfg_path = repo / (prefix + LLM_MODEL) / "config.pbtxt"
    yaml_path = repo / (prefix + LLM_MODEL) / "1" / "model.yaml"
    data = _load_model_yaml(yaml_path, add)
    if data is not None:
        _check_llm_args(yaml_path, data, add)
        _check_triton_config(yaml_path, cfg_path, cfg, data, add)
    _check_llmapi_tensors(cfg_path, cfg, add)
    front = models.get(prefix + FRONT_MODEL)
    if front is not None and front.backend == "python":
        _check_front(repo, front, cfg, data, add, prefix)
    return out


def _load_model_yaml(path: Path, add) -> dict | None:
    if not path.is_file():
        add(path, "model.yaml", "missing; the llmapi model reads its LLM() arguments and triton_config from it",
            "regenerate with `tritongen repo MODEL --route llmapi`")
        return None
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else "yaml"
        add(path, where, f"not valid YAML ({getattr(exc, 'problem', exc)})", "fix the syntax or regenerate")
        return None
    if not isinstance(data, dict):
        add(path, "model.yaml", f"must be a mapping of LLM() arguments, got {type(data).__name__}", "regenerate")
        return None
    return data


def _check_llm_args(path: Path, data: dict, add) -> None:
    model = data.get("model")
    if not isinstance(model, str) or not model:
        add(path, "model", "missing; LLM() needs the checkpoint folder or Hugging Face id",
            "set model.checkpoint_dir (or model.hf_id) in the spec")
    elif model.startswith("/"):
        local = Path(model)
        if not local.exists():
            add(path, "model", f"{model} is not on this machine; it must exist where tritonserver runs",
                "mount the checkpoint there (same path) or point model.checkpoint_dir at it", "warning")
        elif not (local / "config.json").is_file():
            add(path, "model", f"{model} has no config.json; it is not a Hugging Face checkpoint",
                "point model.checkpoint_dir at the folder with config.json and the weights")
    for key in data:
        if key in KNOWN_LLM_ARGS or key in MODEL_YAML_EXTRA_KEYS:
            continue
        if key in TRT_ONLY_ARGS:
            hint = ("the quantization is read from the pre-quantized checkpoint" if key == "quant_config"
                    else "it belongs to the TensorRT-engine LLM API")
            add(path, key, f"not an argument of the PyTorch LLM() (TorchLlmArgs); {hint}", "remove it")
        else:
            add(path, key, "not an LLM() argument tritongen knows for TensorRT-LLM 1.x; LLM() refuses unknown "
                "arguments (extra=forbid)", "check the spelling against tensorrt_llm/llmapi/llm_args.py", "warning")
    backend = data.get("backend")
    if backend is not None and backend not in ("pytorch", "_autodeploy"):
        add(path, "backend", f"{backend!r}; the llmapi Triton model runs the PyTorch backend from TensorRT-LLM 1.0",
            "set backend: pytorch (engines from trtllm-build are served by the engine route)")
    for key in ("tensor_parallel_size", "pipeline_parallel_size", "moe_expert_parallel_size",
                "moe_tensor_parallel_size", "max_batch_size", "max_num_tokens", "max_input_len", "max_seq_len",
                "max_beam_width"):
        value = data.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            add(path, key, f"{value!r} must be a positive integer", "regenerate from the spec")
    if isinstance(data.get("max_input_len"), int) and isinstance(data.get("max_seq_len"), int) \
            and data["max_input_len"] >= data["max_seq_len"]:
        add(path, "max_input_len", f"{data['max_input_len']} is not below max_seq_len {data['max_seq_len']}",
            "leave room for generated tokens")
    dtype = data.get("dtype")
    if dtype is not None and dtype not in _DTYPE_NAMES:
        add(path, "dtype", f"{dtype!r} is not a model dtype", "use auto, float16 or bfloat16")
    kv = data.get("kv_cache_config")
    if kv is not None:
        if not isinstance(kv, dict):
            add(path, "kv_cache_config", "must be a mapping", "regenerate")
        else:
            for key in kv:
                if key not in KNOWN_KV_CACHE_KEYS:
                    add(path, f"kv_cache_config.{key}", "not a KvCacheConfig field tritongen knows",
                        "check the spelling", "warning")
            frac = kv.get("free_gpu_memory_fraction")
            if frac is not None and (isinstance(frac, bool) or not isinstance(frac, (int, float))
                                     or not 0 < frac <= 1):
                add(path, "kv_cache_config.free_gpu_memory_fraction", f"{frac!r} is not in (0, 1]", "use e.g. 0.9")
            kv_dtype = kv.get("dtype")
            if kv_dtype is not None and kv_dtype not in KV_CACHE_DTYPES:
                add(path, "kv_cache_config.dtype", f"{kv_dtype!r}; the PyTorch backend takes "
                    f"{', '.join(sorted(KV_CACHE_DTYPES))}", "use auto or fp8")
    spec_cfg = data.get("speculative_config")
    if spec_cfg is not None:
        kind = spec_cfg.get("decoding_type") if isinstance(spec_cfg, dict) else None
        if kind not in DECODING_TYPES:
            add(path, "speculative_config.decoding_type", f"{kind!r} is not a decoding type",
                f"use one of {', '.join(k for k, ok in DECODING_TYPES.items() if ok)}")
        elif not DECODING_TYPES[kind]:
            add(path, "speculative_config.decoding_type", f"{kind} is not supported by the PyTorch backend",
                "use Eagle (Eagle3 draft model) or DraftTarget, or serve an engine on the engine route")
        elif kind in ("Eagle", "Eagle3", "DraftTarget") and not (
                spec_cfg.get("speculative_model_dir") or spec_cfg.get("speculative_model")):
            add(path, "speculative_config.speculative_model_dir", f"{kind} needs the draft checkpoint",
                "set decoding.speculative.heads_dir")


def _check_triton_config(path: Path, cfg_path: Path, cfg, data: dict, add) -> None:
    tc = data.get("triton_config")
    if not isinstance(tc, dict):
        add(path, "triton_config", "missing; the llmapi model's auto_complete_config reads max_batch_size and "
            "decoupled from it", "regenerate")
        return
    for key in tc:
        if key not in TRITON_CONFIG_KEYS:
            add(path, f"triton_config.{key}", "not read by the llmapi model", "remove it", "warning")
    mbs, decoupled = tc.get("max_batch_size"), tc.get("decoupled")
    if isinstance(mbs, bool) or not isinstance(mbs, int) or mbs < 0:
        add(path, "triton_config.max_batch_size", f"{mbs!r} must be an integer >= 0", "use 0 (the model does not "
            "batch requests; the LLM API batches in flight)")
    elif cfg.max_batch_size > mbs:
        add(cfg_path, "max_batch_size", f"{cfg.max_batch_size} but model.yaml's triton_config says {mbs}; the python "
            "backend refuses a larger config.pbtxt value in auto-complete", "make them equal (regenerate)")
    if not isinstance(decoupled, bool):
        add(path, "triton_config.decoupled", f"{decoupled!r} must be true or false", "regenerate")
    elif cfg.HasField("model_transaction_policy") and cfg.model_transaction_policy.decoupled != decoupled:
        add(cfg_path, "model_transaction_policy.decoupled", f"{str(cfg.model_transaction_policy.decoupled).lower()} "
            f"but model.yaml's triton_config.decoupled is {str(decoupled).lower()}; the python backend refuses to "
            "change it in auto-complete", "make them equal (regenerate)")
    if cfg.max_batch_size == 0 and mbs and isinstance(mbs, int) and mbs > 0:
        add(path, "triton_config.max_batch_size", f"{mbs}: upstream's model handles one prompt per request",
            "use 0", "warning")


def _dtype_name(value: int) -> str:
    from tritonclient.grpc import model_config_pb2

    return model_config_pb2.DataType.Name(value)


def _check_llmapi_tensors(cfg_path: Path, cfg, add) -> None:
    for kind, declared, contract_tensors in (("input", cfg.input, LLMAPI_INPUTS),
                                             ("output", cfg.output, LLMAPI_OUTPUTS)):
        known = {t.name: t for t in contract_tensors}
        names = set()
        for t in declared:
            names.add(t.name)
            want = known.get(t.name)
            if want is None:
                add(cfg_path, f"{kind} {t.name}", f"not part of the llmapi model's contract; it never "
                    f"{'reads' if kind == 'input' else 'writes'} it", "remove it (regenerate)")
                continue
            if _dtype_name(t.data_type) != want.dtype:
                add(cfg_path, f"{kind} {t.name}", f"{_dtype_name(t.data_type)} but the llmapi model uses {want.dtype}",
                    "regenerate")
            if tuple(t.dims) != want.dims:
                add(cfg_path, f"{kind} {t.name}", f"dims {list(t.dims)} but the llmapi model uses {list(want.dims)}",
                    "regenerate")
            if kind == "input" and t.name == "text_input" and t.optional:
                add(cfg_path, "input text_input", "must not be optional", "regenerate")
        required = "text_input" if kind == "input" else "text_output"
        if required not in names:
            add(cfg_path, f"{kind} {required}", "missing", "regenerate")


def _check_front(repo: Path, front, llm_cfg, data: dict | None, add, prefix: str = "") -> None:
    llm_model = prefix + LLM_MODEL
    path = repo / (prefix + FRONT_MODEL) / "config.pbtxt"
    params = {k: v.string_value for k, v in front.parameters.items()}
    target = params.get("llm_model", llm_model)
    if target != llm_model:
        add(path, "parameters.llm_model", f"{target!r} but the llmapi model is {llm_model!r}", "regenerate")
    client = {t.name: t for t in front.input}
    missing = [t.name for t in contract.CLIENT_INPUTS if t.name not in client]
    if missing:
        add(path, "input", f"the client contract's {', '.join(missing)} missing", "regenerate")
    llm_inputs = {t.name: t for t in llm_cfg.input}
    for client_name, llm_name in CLIENT_TO_LLMAPI.items():
        src, dst = client.get(client_name), llm_inputs.get(llm_name)
        if src is None:
            continue
        if dst is None:
            add(repo / llm_model / "config.pbtxt", f"input {llm_name}", f"missing, but the front passes the client's "
                f"{client_name} to it", "regenerate")
        elif src.data_type != dst.data_type:
            add(path, f"input {client_name}", f"{_dtype_name(src.data_type)} but {llm_model}.{llm_name} is "
                f"{_dtype_name(dst.data_type)}", "regenerate")
    if "stop" not in llm_inputs:
        add(repo / llm_model / "config.pbtxt", "input stop", "missing; the front stops cancelled requests through it",
            "regenerate", "warning")
    tc = (data or {}).get("triton_config") if isinstance(data, dict) else None
    llm_decoupled = tc.get("decoupled") if isinstance(tc, dict) else None
    declared = params.get("llm_decoupled")
    if isinstance(llm_decoupled, bool) and declared is not None and (declared == "true") != llm_decoupled:
        add(path, "parameters.llm_decoupled", f"{declared} but {llm_model} is "
            f"{'decoupled' if llm_decoupled else 'not decoupled'}", "regenerate")
    if front.model_transaction_policy.decoupled and llm_decoupled is False:
        add(path, "model_transaction_policy.decoupled", f"the front streams but {llm_model} is not decoupled",
            "regenerate with one serving.streaming value")
