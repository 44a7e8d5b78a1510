"""The tensor contracts tritongen emits, as data.

``LLM_INPUTS``/``LLM_OUTPUTS`` are the ``tensorrt_llm`` model's contract - the one the TensorRT-LLM C++
backend reads (taken from the backend's inflight_batcher_llm/tensorrt_llm/config.pbtxt, TensorRT-LLM 1.2) for
text generation. The cpu route's python model renders from the same list, so it cannot drift from the real
backend. ``CLIENT_INPUTS``/``CLIENT_OUTPUTS`` are the ensemble's client contract (what tensorrtllm_backend
clients, Triton's generate endpoint and benchmark tools send), shared by the ensemble and tensorrt_llm_bls.

Multimodal, encoder-decoder and disaggregated-serving tensors are left out: tritongen serves decoder-only
text models. ``logits`` marks tensors whose dtype follows ``serving.logits_dtype``.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Tensor:
    name: str
    dtype: str  # a Triton DataType enum name, or "logits" for serving.logits_dtype
    dims: tuple[int, ...]
    optional: bool = False
    #: Reshape to a scalar per batch item (the C++ backend reads these as scalars).
    scalar: bool = False
    ragged: bool = False
    doc: str = field(default="", compare=False)


def _scalar(name: str, dtype: str, doc: str = "") -> Tensor:
    return Tensor(name, dtype, (1,), optional=True, scalar=True, doc=doc)


LLM_INPUTS: tuple[Tensor, ...] = (
    Tensor("input_ids", "TYPE_INT32", (-1,), optional=True, ragged=True, doc="prompt token ids"),
    Tensor("input_lengths", "TYPE_INT32", (1,), scalar=True, doc="prompt length"),
    Tensor("request_output_len", "TYPE_INT32", (1,), scalar=True, doc="tokens to generate at most"),
    _scalar("num_return_sequences", "TYPE_INT32"),
    Tensor("draft_input_ids", "TYPE_INT32", (-1,), optional=True, ragged=True, doc="draft tokens (draft_target)"),
    Tensor("draft_logits", "logits", (-1, -1), optional=True, ragged=True),
    _scalar("draft_acceptance_threshold", "TYPE_FP32"),
    _scalar("end_id", "TYPE_INT32", "token that ends generation"),
    _scalar("pad_id", "TYPE_INT32"),
    Tensor("stop_words_list", "TYPE_INT32", (2, -1), optional=True, ragged=True, doc="[ids; end offsets]"),
    Tensor("bad_words_list", "TYPE_INT32", (2, -1), optional=True, ragged=True, doc="[ids; end offsets]"),
    Tensor("embedding_bias", "TYPE_FP32", (-1,), optional=True, ragged=True),
    _scalar("beam_width", "TYPE_INT32"),
    _scalar("temperature", "TYPE_FP32"),
    _scalar("runtime_top_k", "TYPE_INT32"),
    _scalar("runtime_top_p", "TYPE_FP32"),
    _scalar("runtime_top_p_min", "TYPE_FP32"),
    _scalar("runtime_top_p_decay", "TYPE_FP32"),
    _scalar("runtime_top_p_reset_ids", "TYPE_INT32"),
    _scalar("len_penalty", "TYPE_FP32"),
    _scalar("early_stopping", "TYPE_BOOL"),
    _scalar("repetition_penalty", "TYPE_FP32"),
    _scalar("min_tokens", "TYPE_INT32"),
    _scalar("beam_search_diversity_rate", "TYPE_FP32"),
    _scalar("presence_penalty", "TYPE_FP32"),
    _scalar("frequency_penalty", "TYPE_FP32"),
    _scalar("seed", "TYPE_UINT64"),
    _scalar("return_log_probs", "TYPE_BOOL"),
    _scalar("return_context_logits", "TYPE_BOOL"),
    _scalar("return_generation_logits", "TYPE_BOOL"),
    _scalar("return_perf_metrics", "TYPE_BOOL"),
    _scalar("return_num_input_tokens", "TYPE_BOOL"),
    _scalar("return_num_output_tokens", "TYPE_BOOL"),
    _scalar("exclude_input_in_output", "TYPE_BOOL"),
    _scalar("stop", "TYPE_BOOL"),
    _scalar("streaming", "TYPE_BOOL"),
    Tensor("prompt_embedding_table", "TYPE_FP16", (-1, -1), optional=True, ragged=True),
    _scalar("prompt_vocab_size", "TYPE_INT32"),
    _scalar("lora_task_id", "TYPE_UINT64"),
    Tensor("lora_weights", "TYPE_FP16", (-1, -1), optional=True, ragged=True),
    Tensor("lora_config", "TYPE_INT32", (-1, 3), optional=True, ragged=True),
    Tensor("guided_decoding_guide_type", "TYPE_STRING", (1,), optional=True, ragged=True),
    Tensor("guided_decoding_guide", "TYPE_STRING", (1,), optional=True, ragged=True),
    Tensor("lookahead_window_size", "TYPE_INT32", (1,), optional=True, ragged=True),
    Tensor("lookahead_ngram_size", "TYPE_INT32", (1,), optional=True, ragged=True),
    Tensor("lookahead_verification_set_size", "TYPE_INT32", (1,), optional=True, ragged=True),
)

LLM_OUTPUTS: tuple[Tensor, ...] = (
    Tensor("output_ids", "TYPE_INT32", (-1, -1)),
    Tensor("sequence_length", "TYPE_INT32", (-1,)),
    Tensor("cum_log_probs", "TYPE_FP32", (-1,)),
    Tensor("output_log_probs", "TYPE_FP32", (-1, -1)),
    Tensor("context_logits", "logits", (-1, -1)),
    Tensor("generation_logits", "logits", (-1, -1, -1)),
    Tensor("batch_index", "TYPE_INT32", (1,)),
    Tensor("sequence_index", "TYPE_INT32", (1,)),
    Tensor("kv_cache_alloc_new_blocks", "TYPE_INT32", (1,)),
    Tensor("kv_cache_reused_blocks", "TYPE_INT32", (1,)),
    Tensor("kv_cache_alloc_total_blocks", "TYPE_INT32", (1,)),
    Tensor("arrival_time_ns", "TYPE_INT64", (1,)),
    Tensor("first_scheduled_time_ns", "TYPE_INT64", (1,)),
    Tensor("first_token_time_ns", "TYPE_INT64", (1,)),
    Tensor("last_token_time_ns", "TYPE_INT64", (1,)),
    Tensor("acceptance_rate", "TYPE_FP32", (1,)),
    Tensor("total_accepted_draft_tokens", "TYPE_INT32", (1,)),
    Tensor("total_draft_tokens", "TYPE_INT32", (1,)),
    Tensor("num_input_tokens", "TYPE_INT32", (1,)),
    Tensor("num_output_tokens", "TYPE_INT32", (1,)),
)

#: Outputs of the tensorrt_llm step that the ensemble passes straight to the client (all but the token ids).
PASSTHROUGH_OUTPUTS: tuple[str, ...] = tuple(t.name for t in LLM_OUTPUTS if t.name not in ("output_ids", "sequence_length"))


def _client(name: str, dtype: str, dims: tuple[int, ...] = (1,), doc: str = "") -> Tensor:
    return Tensor(name, dtype, dims, optional=True, doc=doc)


#: Client contract inputs, with the tensorrt_llm input each maps to when it is a straight pass-through.
CLIENT_INPUTS: tuple[Tensor, ...] = (
    # text_input and max_tokens are required, but declared optional: preprocessing (or the BLS, the llmapi front)
    # refuses a request without them by name. Triton's ensemble answers a gRPC stream that lacks a required
    # input with an empty response and no error. max_tokens is INT64 so that a value beyond INT32 is refused as
    # too large: Triton's HTTP generate endpoint would truncate it to INT32 (2**40 arrived as 0).
    _client("text_input", "TYPE_STRING", doc="the prompt (or chat messages as JSON, see apply_chat_template); required"),
    _client("max_tokens", "TYPE_INT64", doc="tokens to generate at most; required"),
    _client("num_return_sequences", "TYPE_INT32"),
    _client("bad_words", "TYPE_STRING", (-1,), "strings that must not be generated"),
    _client("stop_words", "TYPE_STRING", (-1,), "strings that end generation"),
    _client("exclude_input_in_output", "TYPE_BOOL"),
    _client("end_id", "TYPE_INT32"),
    _client("pad_id", "TYPE_INT32"),
    _client("top_k", "TYPE_INT32"),
    _client("top_p", "TYPE_FP32"),
    _client("temperature", "TYPE_FP32"),
    _client("length_penalty", "TYPE_FP32"),
    _client("repetition_penalty", "TYPE_FP32"),
    _client("min_tokens", "TYPE_INT32"),
    _client("presence_penalty", "TYPE_FP32"),
    _client("frequency_penalty", "TYPE_FP32"),
    _client("seed", "TYPE_UINT64"),
    _client("return_log_probs", "TYPE_BOOL"),
    _client("return_context_logits", "TYPE_BOOL"),
    _client("return_generation_logits", "TYPE_BOOL"),
    _client("return_perf_metrics", "TYPE_BOOL"),
    _client("return_num_input_tokens", "TYPE_BOOL"),
    _client("return_num_output_tokens", "TYPE_BOOL"),
    _client("beam_width", "TYPE_INT32"),
    _client("stream", "TYPE_BOOL"),
    _client("apply_chat_template", "TYPE_BOOL", doc="tritongen: format text_input with the model's chat "
            "template (text_input is a user message, or a JSON list of {role, content} messages)"),
    _client("embedding_bias_words", "TYPE_STRING", (-1,)),
    _client("embedding_bias_weights", "TYPE_FP32", (-1,)),
    _client("lora_task_id", "TYPE_UINT64"),
    Tensor("lora_weights", "TYPE_FP16", (-1, -1), optional=True, ragged=True),
    Tensor("lora_config", "TYPE_INT32", (-1, 3), optional=True, ragged=True),
    Tensor("guided_decoding_guide_type", "TYPE_STRING", (1,), optional=True, ragged=True),
    Tensor("guided_decoding_guide", "TYPE_STRING", (1,), optional=True, ragged=True),
)

CLIENT_OUTPUTS: tuple[Tensor, ...] = (
    Tensor("text_output", "TYPE_STRING", (-1,), doc="generated text (a chunk of it when streaming)"),
    *(t for t in LLM_OUTPUTS if t.name in PASSTHROUGH_OUTPUTS),
)

#: The optional client outputs in groups (``serving.optional_outputs`` picks the groups a repository carries).
#: Each group is the outputs one request flag (or feature) fills.
OUTPUT_GROUPS: dict[str, tuple[str, ...]] = {
    "log_probs": ("cum_log_probs", "output_log_probs"),  # return_log_probs
    "logits": ("context_logits", "generation_logits"),  # return_context_logits / return_generation_logits
    "indices": ("batch_index", "sequence_index"),  # num_return_sequences > 1, beams
    "perf_metrics": (  # return_perf_metrics: KV-cache and timing figures
        "kv_cache_alloc_new_blocks", "kv_cache_reused_blocks", "kv_cache_alloc_total_blocks", "arrival_time_ns",
        "first_scheduled_time_ns", "first_token_time_ns", "last_token_time_ns",
    ),
    "speculative": ("acceptance_rate", "total_accepted_draft_tokens", "total_draft_tokens"),  # return_perf_metrics
    "token_counts": ("num_input_tokens", "num_output_tokens"),  # return_num_input_tokens / _output_tokens
}


def passthrough_outputs(groups) -> tuple[str, ...]:
    """The tensorrt_llm outputs passed to the client for these output groups, in contract order."""
    names = {name for g in groups for name in OUTPUT_GROUPS[str(getattr(g, "value", g))]}
    return tuple(n for n in PASSTHROUGH_OUTPUTS if n in names)


def client_outputs(groups) -> tuple[Tensor, ...]:
    """The client contract's outputs for these output groups: text_output first, then the groups' outputs."""
    keep = set(passthrough_outputs(groups))
    return tuple(t for t in CLIENT_OUTPUTS if t.name == "text_output" or t.name in keep)

#: Client input -> tensorrt_llm input, for inputs the ensemble passes straight through.
CLIENT_TO_LLM: dict[str, str] = {
    "num_return_sequences": "num_return_sequences",
    "exclude_input_in_output": "exclude_input_in_output",
    "top_k": "runtime_top_k",
    "top_p": "runtime_top_p",
    "temperature": "temperature",
    "length_penalty": "len_penalty",
    "repetition_penalty": "repetition_penalty",
    "min_tokens": "min_tokens",
    "presence_penalty": "presence_penalty",
    "frequency_penalty": "frequency_penalty",
    "seed": "seed",
    "return_log_probs": "return_log_probs",
    "return_context_logits": "return_context_logits",
    "return_generation_logits": "return_generation_logits",
    "return_perf_metrics": "return_perf_metrics",
    "return_num_input_tokens": "return_num_input_tokens",
    "return_num_output_tokens": "return_num_output_tokens",
    "beam_width": "beam_width",
    "stream": "streaming",
    "lora_task_id": "lora_task_id",
    "lora_weights": "lora_weights",
    "lora_config": "lora_config",
    "guided_decoding_guide_type": "guided_decoding_guide_type",
    "guided_decoding_guide": "guided_decoding_guide",
}

#: Client inputs consumed by preprocessing (client name -> preprocessing input name).
CLIENT_TO_PRE: dict[str, str] = {
    "text_input": "QUERY",
    "max_tokens": "REQUEST_OUTPUT_LEN",
    "bad_words": "BAD_WORDS_DICT",
    "stop_words": "STOP_WORDS_DICT",
    "embedding_bias_words": "EMBEDDING_BIAS_WORDS",
    "embedding_bias_weights": "EMBEDDING_BIAS_WEIGHTS",
    "end_id": "END_ID",
    "pad_id": "PAD_ID",
    "apply_chat_template": "APPLY_CHAT_TEMPLATE",
}

PRE_INPUTS: tuple[Tensor, ...] = (
    Tensor("QUERY", "TYPE_STRING", (1,), optional=True),
    Tensor("REQUEST_OUTPUT_LEN", "TYPE_INT64", (1,), optional=True),
    Tensor("BAD_WORDS_DICT", "TYPE_STRING", (-1,), optional=True),
    Tensor("STOP_WORDS_DICT", "TYPE_STRING", (-1,), optional=True),
    Tensor("EMBEDDING_BIAS_WORDS", "TYPE_STRING", (-1,), optional=True),
    Tensor("EMBEDDING_BIAS_WEIGHTS", "TYPE_FP32", (-1,), optional=True),
    Tensor("END_ID", "TYPE_INT32", (1,), optional=True),
    Tensor("PAD_ID", "TYPE_INT32", (1,), optional=True),
    Tensor("APPLY_CHAT_TEMPLATE", "TYPE_BOOL", (1,), optional=True),
)

PRE_OUTPUTS: tuple[Tensor, ...] = (
    Tensor("INPUT_ID", "TYPE_INT32", (-1,)),
    Tensor("REQUEST_INPUT_LEN", "TYPE_INT32", (1,)),
    Tensor("REQUEST_OUTPUT_LEN", "TYPE_INT32", (1,)),
    Tensor("BAD_WORDS_IDS", "TYPE_INT32", (2, -1)),
    Tensor("STOP_WORDS_IDS", "TYPE_INT32", (2, -1)),
    Tensor("EMBEDDING_BIAS", "TYPE_FP32", (-1,)),
    Tensor("OUT_END_ID", "TYPE_INT32", (1,)),
    Tensor("OUT_PAD_ID", "TYPE_INT32", (1,)),
)

#: Preprocessing output -> tensorrt_llm input.
PRE_TO_LLM: dict[str, str] = {
    "INPUT_ID": "input_ids",
    "REQUEST_INPUT_LEN": "input_lengths",
    "REQUEST_OUTPUT_LEN": "request_output_len",
    "BAD_WORDS_IDS": "bad_words_list",
    "STOP_WORDS_IDS": "stop_words_list",
    "EMBEDDING_BIAS": "embedding_bias",
    "OUT_END_ID": "end_id",
    "OUT_PAD_ID": "pad_id",
}

#: Ragged: Triton's dynamic batcher must then not compare shapes, so it no longer wakes its thread on every
#: streamed token (see templates/common/postprocessing/config.pbtxt.j2); the python backend gets each request
#: separately anyway.
POST_INPUTS: tuple[Tensor, ...] = (
    Tensor("TOKENS_BATCH", "TYPE_INT32", (-1, -1), ragged=True),
    Tensor("SEQUENCE_LENGTH", "TYPE_INT32", (-1,), ragged=True),
)
POST_OUTPUTS: tuple[Tensor, ...] = (Tensor("OUTPUT", "TYPE_STRING", (-1,)),)


def resolve_dtype(tensor: Tensor, logits_dtype: str) -> str:
    return logits_dtype if tensor.dtype == "logits" else tensor.dtype
