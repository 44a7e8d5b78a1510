"""The llmapi route's tensors: upstream's llmapi Triton model (its inputs and outputs) and how the front maps
the ensemble client contract onto them. Facts and their sources: docs/reference/llmapi.md."""

from __future__ import annotations

from ... import contract
from ...contract import Tensor

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
    # tritongen's: read by its model.py (templates/llmapi/lib/llmapi_guided.py), upstream's model ignores them.
    _opt("guided_decoding_guide_type", "TYPE_STRING"),
    _opt("guided_decoding_guide", "TYPE_STRING"),
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
    # The request timings and speculative statistics: the same tensors as the engine backend's.
    *(t for t in contract.LLM_OUTPUTS if t.name in (
        "arrival_time_ns", "first_scheduled_time_ns", "first_token_time_ns", "last_token_time_ns", "acceptance_rate",
        "total_accepted_draft_tokens", "total_draft_tokens")),
)

#: Client-contract input -> llmapi input the front passes it to (kept equal to the front's copy by a test).
CLIENT_TO_LLMAPI: dict[str, str] = {
    "stream": "streaming",
    "stop_words": "sampling_param_stop",
    **{name: f"sampling_param_{name}" for name in ("temperature", "top_k", "top_p", "seed", "presence_penalty",
                                                   "frequency_penalty", "return_perf_metrics")},
    "guided_decoding_guide_type": "guided_decoding_guide_type",
    "guided_decoding_guide": "guided_decoding_guide",
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
#: The value of an unsupported client input that changes nothing ("ignore": never matters; others: any value does).
UNSUPPORTED_NEUTRAL: dict[str, object] = {
    "length_penalty": "ignore", "repetition_penalty": 1.0, "min_tokens": 1, "return_log_probs": False,
    "return_context_logits": False, "return_generation_logits": False,
}

_NUMPY = {"TYPE_STRING": "object", "TYPE_BOOL": "bool", "TYPE_INT32": "int32", "TYPE_INT64": "int64", "TYPE_UINT64": "uint64",
          "TYPE_FP32": "float32"}


def front_tables() -> dict[str, object]:
    """The tables the front (templates/llmapi/ensemble/1/model.py) reads, rendered into its contract_tables.py."""
    forwarded = {*CLIENT_TO_LLMAPI.values(), "sampling_param_max_tokens"} - {"streaming", "sampling_param_stop"}
    client_outputs = {t.name: t.dtype for t in contract.CLIENT_OUTPUTS}
    return {
        "client_to_llmapi": CLIENT_TO_LLMAPI,
        "llmapi_dtypes": {t.name: _NUMPY[t.dtype] for t in LLMAPI_INPUTS if t.name in forwarded},
        "front_handled": FRONT_HANDLED,
        "unsupported": {name: UNSUPPORTED_NEUTRAL.get(name) for name in UNSUPPORTED_CLIENT_INPUTS},
        "passthrough": {name: _NUMPY[client_outputs[name]] for name in PASSTHROUGH_OUTPUTS},
    }
