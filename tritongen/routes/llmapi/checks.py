"""Validation rules of llmapi repositories (run by ``tritongen validate`` through the route): model.yaml against
the LLM() arguments of the pinned TensorRT-LLM, triton_config against config.pbtxt, tensorrt_llm's tensors
against upstream's contract, and the front's wiring onto them."""

from __future__ import annotations

from pathlib import Path

import yaml

from ... import contract
from .lora import LLMAPI_LORA_NAME
from .model_yaml import (
    DECODING_TYPES,
    KNOWN_KV_CACHE_KEYS,
    KNOWN_LLM_ARGS,
    KV_CACHE_DTYPES,
    MODEL_YAML_EXTRA_KEYS,
    TRITON_CONFIG_KEYS,
)
from .tensors import CLIENT_TO_LLMAPI, FRONT_MODEL, LLM_MODEL, LLMAPI_INPUTS, LLMAPI_OUTPUTS

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
    # lora_name: read by tritongen's wrapper model.py (lora_request.py), not by upstream's model.
    for kind, declared, contract_tensors in (("input", cfg.input, (*LLMAPI_INPUTS, LLMAPI_LORA_NAME)),
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
