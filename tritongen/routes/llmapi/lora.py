"""LoRA adapters (spec ``lora``) on the llmapi route: the LLM loads them (model.yaml ``lora_config``, and
``peft_cache_config`` for the cache sizes), and a request's ``lora_name`` travels from the front to the llmapi
model, whose tritongen wrapper turns it into the LLM API's ``LoRARequest(name, id, path)``
(templates/llmapi/tensorrt_llm/1/lora_request.py).

Keys from TensorRT-LLM's docs/source/features/lora.md (LoraConfig: lora_dir, max_lora_rank, max_loras,
max_cpu_loras, lora_target_modules; PeftCacheConfig: host_cache_size, device_cache_percent) and
tensorrt_llm/executor/request.py (LoRARequest). Rendered and render-tested only: no TensorRT-LLM runs here.
"""

from __future__ import annotations

import json

from ... import contract
from ...contract import Tensor
from ...spec import Spec

#: The llmapi model's extra input (declared only with adapters; upstream's model ignores it, the wrapper reads it).
LLMAPI_LORA_NAME = Tensor("lora_name", "TYPE_STRING", (1,), optional=True)


def llm_args(spec: Spec) -> dict:
    """model.yaml's LoRA keys (none without adapters)."""
    lora = spec.lora
    if not lora.enabled:
        return {}
    n = len(lora.adapters)
    out: dict = {"lora_config": {
        "lora_dir": [str(p) for p in lora.adapters.values()],
        "max_lora_rank": lora.max_rank,
        "max_loras": n,  # every adapter fits on the GPU at once
        "max_cpu_loras": n,
        "lora_target_modules": lora.resolved_target_modules,
    }}
    cache: dict = {}
    if lora.cache.host_memory_bytes is not None:
        cache["host_cache_size"] = lora.cache.host_memory_bytes
    if lora.cache.gpu_memory_fraction is not None:
        cache["device_cache_percent"] = lora.cache.gpu_memory_fraction
    if cache:
        out["peft_cache_config"] = cache
    return out


def extend_context(spec: Spec, ctx: dict) -> None:
    """The llmapi templates' LoRA additions; always sets ``llmapi_lora_inputs`` (the front's template names it)."""
    ctx["llmapi_lora_inputs"] = ()
    if not spec.lora.enabled:
        return
    ctx["llmapi_lora_inputs"] = (contract.LORA_NAME,)
    ctx["llmapi_inputs"] = (*ctx["llmapi_inputs"], LLMAPI_LORA_NAME)
    tables = ctx["llmapi_tables"]
    tables["client_to_llmapi"] = {**tables["client_to_llmapi"], "lora_name": "lora_name"}
    tables["llmapi_dtypes"] = {**tables["llmapi_dtypes"], "lora_name": "object"}
    # The front labels its LLM metrics with the adapter (llm_metrics.adapter_names).
    ctx["llmapi_front_params"] = {**ctx["llmapi_front_params"], "lora_adapters": json.dumps(spec.lora.task_ids,
                                                                                            sort_keys=True)}
    ctx["llmapi_llm_params"] = {**ctx["llmapi_llm_params"], "tritongen_lora_adapters": json.dumps(
        {name: [spec.lora.task_ids[name], str(path)] for name, path in spec.lora.adapters.items()}, sort_keys=True)}
