"""The llmapi front's tensor mappings, rendered by tritongen from tritongen/routes/llmapi/tensors.py (regenerate,
don't edit). Dtypes are numpy dtype names."""

#: client input -> llmapi input.
CLIENT_TO_LLMAPI = {
    "stream": "streaming",
    "stop_words": "sampling_param_stop",
    "temperature": "sampling_param_temperature",
    "top_k": "sampling_param_top_k",
    "top_p": "sampling_param_top_p",
    "seed": "sampling_param_seed",
    "presence_penalty": "sampling_param_presence_penalty",
    "frequency_penalty": "sampling_param_frequency_penalty",
    "return_perf_metrics": "sampling_param_return_perf_metrics",
    "guided_decoding_guide_type": "guided_decoding_guide_type",
    "guided_decoding_guide": "guided_decoding_guide",
}
#: llmapi input -> numpy dtype of its one value.
LLMAPI_DTYPES = {
    "sampling_param_temperature": "float32",
    "sampling_param_top_k": "int32",
    "sampling_param_top_p": "float32",
    "sampling_param_frequency_penalty": "float32",
    "sampling_param_presence_penalty": "float32",
    "sampling_param_max_tokens": "int32",
    "sampling_param_seed": "uint64",
    "sampling_param_return_perf_metrics": "bool",
    "guided_decoding_guide_type": "object",
    "guided_decoding_guide": "object",
}
#: client inputs the front handles itself.
FRONT_HANDLED = (
    "text_input",
    "max_tokens",
    "apply_chat_template",
    "exclude_input_in_output",
    "return_num_input_tokens",
    "return_num_output_tokens",
    "num_return_sequences",
    "beam_width",
)
#: client inputs the llmapi model cannot honour, with the value that means "not used" (None: any value is a use).
UNSUPPORTED = {
    "bad_words": None,
    "end_id": None,
    "pad_id": None,
    "length_penalty": "ignore",
    "repetition_penalty": 1.0,
    "min_tokens": 1,
    "return_log_probs": False,
    "return_context_logits": False,
    "return_generation_logits": False,
    "embedding_bias_words": None,
    "embedding_bias_weights": None,
    "lora_task_id": None,
    "lora_weights": None,
    "lora_config": None,
}
#: llmapi outputs passed to the client under the same name, with the client contract's dtype.
PASSTHROUGH = {
    "kv_cache_alloc_new_blocks": "int32",
    "kv_cache_alloc_total_blocks": "int32",
    "arrival_time_ns": "int64",
    "first_scheduled_time_ns": "int64",
    "first_token_time_ns": "int64",
    "last_token_time_ns": "int64",
    "acceptance_rate": "float32",
    "total_accepted_draft_tokens": "int32",
    "total_draft_tokens": "int32",
}
