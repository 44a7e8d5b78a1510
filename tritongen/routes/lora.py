"""LoRA adapters per request (spec ``lora``) in the repositories of the engine and cpu routes.

A client names an adapter with the optional ``lora_name`` input (or sends its ``lora_task_id``, as
tensorrtllm_backend's clients do). Preprocessing maps the name to the adapter's task id (``lora_adapters``
parameter) and refuses an unknown one; its ``OUT_LORA_TASK_ID`` output feeds tensorrt_llm's ``lora_task_id``.
A request without either leaves that output, and so tensorrt_llm's input, unset: the base model.

Only repositories with adapters change: without ``lora.adapters`` the ensemble passes ``lora_task_id`` straight
through, as the reference repository does.
"""

from __future__ import annotations

import json
from pathlib import PurePosixPath

from .. import contract
from ..contract import Tensor
from ..engine.lora import TASKS_SUBDIR
from ..errors import GatingError
from ..spec import Route, Spec

#: The client input naming an adapter (an empty string, or the base model's name: no adapter).
LORA_NAME = contract.LORA_NAME
#: Preprocessing's inputs and output.
PRE_INPUTS = (
    Tensor("LORA_NAME", "TYPE_STRING", (1,), optional=True),
    Tensor("LORA_TASK_ID", "TYPE_UINT64", (1,), optional=True),
)
PRE_OUTPUT = Tensor("OUT_LORA_TASK_ID", "TYPE_UINT64", (1,))
CLIENT_TO_PRE = {"lora_name": "LORA_NAME", "lora_task_id": "LORA_TASK_ID"}
PRE_TO_LLM = {"OUT_LORA_TASK_ID": "lora_task_id"}
#: Engine route without prefetching: preprocessing also sends an adapter's weights and config (the build's
#: converted .npy) with its first request, and passes on what a client sends itself.
WEIGHT_PRE_INPUTS = (
    Tensor("LORA_WEIGHTS", "TYPE_FP16", (-1, -1), optional=True, ragged=True),
    Tensor("LORA_CONFIG", "TYPE_INT32", (-1, 3), optional=True, ragged=True),
)
WEIGHT_PRE_OUTPUTS = (Tensor("OUT_LORA_WEIGHTS", "TYPE_FP16", (-1, -1)), Tensor("OUT_LORA_CONFIG", "TYPE_INT32", (-1, 3)))
WEIGHT_CLIENT_TO_PRE = {"lora_weights": "LORA_WEIGHTS", "lora_config": "LORA_CONFIG"}
WEIGHT_PRE_TO_LLM = {"OUT_LORA_WEIGHTS": "lora_weights", "OUT_LORA_CONFIG": "lora_config"}



def enabled(spec: Spec) -> bool:
    return spec.route in (Route.engine, Route.cpu) and spec.lora.enabled


def sends_weights(spec: Spec) -> bool:
    """Whether preprocessing sends the adapters' weights (engine route, lora.cache.prefetch false)."""
    return enabled(spec) and spec.route is Route.engine and not spec.lora.cache.prefetch


def pre_parameter(spec: Spec) -> str:
    """Preprocessing's ``lora_adapters``: JSON {name: task id}; the base model's name maps to no adapter."""
    return json.dumps(spec.lora.task_ids, sort_keys=True)


def cpu_parameter(spec: Spec) -> str:
    """The cpu engine's ``lora_adapters``: JSON {"<task id>": [name, folder]} (lora.py next to its model.py)."""
    return json.dumps({str(i): [name, str(spec.lora.adapters[name])] for name, i in spec.lora.task_ids.items()},
                      sort_keys=True)


def engine_parameters(spec: Spec, engine_dir) -> dict[str, object]:
    """The tensorrt_llm model's LoRA cache parameters, as the TensorRT-LLM backend reads them
    (tensorrtllm_backend inflight_batcher_llm/src/model_instance_state.cc, getPeftCacheConfigFromParams; the same
    five names in all_models/inflight_batcher_llm/tensorrt_llm/config.pbtxt). Unset ones keep the backend's."""
    cache = spec.lora.cache
    values: dict[str, object] = {}
    for param, value in (("lora_cache_optimal_adapter_size", cache.optimal_adapter_size),
                         ("lora_cache_max_adapter_size", cache.max_adapter_size),
                         ("lora_cache_gpu_memory_fraction", cache.gpu_memory_fraction),
                         ("lora_cache_host_memory_bytes", cache.host_memory_bytes)):
        if value is not None:
            values[param] = value
    if cache.prefetch:
        # Where the engine build converted the adapters (<engine>/lora_tasks/<task id>/model.lora_*.npy).
        values["lora_prefetch_dir"] = str(PurePosixPath(str(engine_dir)) / TASKS_SUBDIR)
    return values


def extend_context(spec: Spec, ctx: dict) -> None:
    """Add the LoRA tensors and mappings to a shared-model template context (no-op without adapters). Always
    sets ``lora_pre_inputs``/``lora_pre_outputs`` and ``bls_tables`` (the templates name them)."""
    tables = {"client_to_pre": dict(contract.CLIENT_TO_PRE), "pre_to_llm": dict(contract.PRE_TO_LLM),
              "client_to_llm": dict(contract.CLIENT_TO_LLM)}
    ctx["lora_pre_inputs"], ctx["lora_pre_outputs"] = (), ()
    ctx["bls_tables"] = tables
    if not enabled(spec):
        return
    if spec.decoding.speculative.method.value == "draft_target":
        # tensorrt_llm_bls sends each request's inputs to the draft model too, which has no adapters.
        raise GatingError("lora.adapters: draft-target speculative decoding runs the draft model on every request, "
                          "and the draft has no LoRA adapters",
                          hint="drop lora.adapters or decoding.speculative.method=draft_target")
    llm = ctx["llm_contract"]
    target = llm.name("lora_task_id")
    ctx["lora_pre_inputs"], ctx["lora_pre_outputs"] = PRE_INPUTS, (PRE_OUTPUT,)
    # The task id now comes from preprocessing: a second source for the same tensorrt_llm input would be an
    # ensemble error, so the client's lora_task_id goes to preprocessing too.
    ctx["client_inputs"] = (*ctx["client_inputs"], LORA_NAME)
    ctx["client_to_pre"] = {**ctx["client_to_pre"], **CLIENT_TO_PRE}
    ctx["client_to_llm"] = {k: v for k, v in ctx["client_to_llm"].items() if k != "lora_task_id"}
    ctx["pre_to_llm"] = {**ctx["pre_to_llm"], "OUT_LORA_TASK_ID": target}
    tables["client_to_pre"].update(CLIENT_TO_PRE)
    tables["pre_to_llm"].update(PRE_TO_LLM)
    tables["client_to_llm"].pop("lora_task_id", None)
    ctx["pre_params"] = {**ctx["pre_params"], "lora_adapters": pre_parameter(spec),
                         "model_name": spec.model.name}
    # Postprocessing and the BLS label their LLM metrics with the adapter (llm_metrics.adapter_names).
    ctx["post_params"] = {**ctx["post_params"], "lora_adapters": pre_parameter(spec)}
    ctx["bls_params"] = {**ctx["bls_params"], "lora_adapters": pre_parameter(spec)}
    if not sends_weights(spec):
        return
    if spec.precision.resolved_dtype.value != "fp16":
        raise GatingError(f"lora.cache.prefetch: false sends the adapters' weights with requests, and the backend's "
                          f"lora_weights input is FP16, but this engine is {spec.precision.resolved_dtype.value}",
                          hint="keep lora.cache.prefetch true (the default), or build with precision.dtype fp16")
    engine_dir = ctx["llm_params"].get("gpt_model_path", "")
    ctx["lora_pre_inputs"] = (*PRE_INPUTS, *WEIGHT_PRE_INPUTS)
    ctx["lora_pre_outputs"] = (PRE_OUTPUT, *WEIGHT_PRE_OUTPUTS)
    ctx["client_to_pre"] = {**ctx["client_to_pre"], **WEIGHT_CLIENT_TO_PRE}
    ctx["client_to_llm"] = {k: v for k, v in ctx["client_to_llm"].items() if k not in WEIGHT_CLIENT_TO_PRE}
    ctx["pre_to_llm"] = {**ctx["pre_to_llm"], **{pre: llm.name(t) for pre, t in WEIGHT_PRE_TO_LLM.items()}}
    tables["client_to_pre"].update(WEIGHT_CLIENT_TO_PRE)
    tables["pre_to_llm"].update(WEIGHT_PRE_TO_LLM)
    for name in WEIGHT_CLIENT_TO_PRE:
        tables["client_to_llm"].pop(name, None)
    ctx["pre_params"]["lora_weights_dir"] = str(PurePosixPath(engine_dir) / TASKS_SUBDIR)


def check_engine(ctx, path, eng, spec: dict) -> None:
    """`validate` on the engine route: a spec with adapters needs an engine built with the LoRA plugin and a
    max_lora_rank that covers lora.max_rank (config.json build_config.plugin_config.lora_plugin and
    build_config.lora_config, docs/reference/trtllm-engine-config.md)."""
    lora = spec.get("lora") or {}
    if not lora.get("adapters"):
        return
    build = eng.raw.get("build_config") or {}
    plugin = (build.get("plugin_config") or {}).get("lora_plugin")
    if plugin in (None, "disable"):
        ctx.add(path, "parameters.lora_prefetch_dir", f"the spec serves LoRA adapters but engine {eng.path} was "
                "built without the LoRA plugin", "rebuild it with `tritongen engine` (it adds --lora_plugin), or "
                "drop lora.adapters")
        return
    rank = (build.get("lora_config") or {}).get("max_lora_rank")
    want = int(lora.get("max_rank") or 64)
    if isinstance(rank, int) and rank < want:
        ctx.add(path, "lora.max_rank", f"{want} exceeds the engine's max_lora_rank {rank}",
                f"set lora.max_rank<={rank} (with adapters of that rank) or rebuild the engine")
