"""The tensor contracts tritongen emits, as data.

``LLM_INPUTS``/``LLM_OUTPUTS`` are the ``tensorrt_llm`` model's contract - the one the TensorRT-LLM C++
backend reads (taken from the backend's inflight_batcher_llm/tensorrt_llm/config.pbtxt, TensorRT-LLM 1.2) for
text generation. The cpu route's python model renders from the same list, so it cannot drift from the real
backend. ``CLIENT_INPUTS``/``CLIENT_OUTPUTS`` are the ensemble's client contract (what tensorrtllm_backend
clients, Triton's generate endpoint and benchmark tools send), shared by the ensemble and tensorrt_llm_bls.

Multimodal, encoder-decoder and disaggregated-serving tensors are left out: tritongen serves decoder-only
text models (``decoder_input_ids``/``decoder_input_lengths`` are declared all the same, because the reference
clients forward preprocessing's DECODER_INPUT_ID to tensorrt_llm; a decoder-only engine ignores them).
``logits`` marks tensors whose dtype follows ``serving.logits_dtype``.

Older TensorRT-LLM backends read other names (``random_seed``, ``min_length``) and lack some tensors: the
per-version differences are data, in ``catalog/trtllm_contract.yaml``; ``llm_contract(version)`` applies them,
and the ``*_for(version)`` functions give the tensors and mappings a repository for that version renders.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from dataclasses import replace as dc_replace


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
    Tensor("decoder_input_ids", "TYPE_INT32", (-1,), optional=True, ragged=True, doc="encoder-decoder only"),
    _scalar("decoder_input_lengths", "TYPE_INT32"),
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
    # input with an empty response and no error. max_tokens stays INT32, the reference's dtype: Triton checks
    # dtypes strictly, so INT64 here would refuse every request of tensorrtllm_backend's own clients. The cost:
    # over HTTP generate, Triton cuts a JSON number beyond INT32 to 32 bits before any model sees it, so the
    # models' message for a value below 1 says so (textcodec.max_tokens_problem).
    _client("text_input", "TYPE_STRING", doc="the prompt (or chat messages as JSON, see apply_chat_template); required"),
    _client("max_tokens", "TYPE_INT32", doc="tokens to generate at most; required"),
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
    _client("min_tokens", "TYPE_INT32", doc="suppress the end id until this many tokens (alias: min_length)"),
    _client("presence_penalty", "TYPE_FP32"),
    _client("frequency_penalty", "TYPE_FP32"),
    _client("seed", "TYPE_UINT64", doc="sampling seed (alias: random_seed)"),
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


def passthrough_outputs(groups, trtllm_version: str | None = None) -> tuple[str, ...]:
    """The tensorrt_llm outputs passed to the client for these output groups, in contract order (client
    names), leaving out those the given TensorRT-LLM release never produces."""
    names = {name for g in groups for name in OUTPUT_GROUPS[str(getattr(g, "value", g))]}
    absent = llm_contract(trtllm_version).absent if trtllm_version else frozenset()
    return tuple(n for n in PASSTHROUGH_OUTPUTS if n in names and n not in absent)


def client_outputs(groups, trtllm_version: str | None = None) -> tuple[Tensor, ...]:
    """The client contract's outputs for these output groups: text_output first, then the groups' outputs."""
    keep = set(passthrough_outputs(groups, trtllm_version))
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
    "presence_penalty": "presence_penalty",
    "frequency_penalty": "frequency_penalty",
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
    "seed": "SEED",
    "random_seed": "RANDOM_SEED",
    "min_tokens": "MIN_TOKENS",
    "min_length": "MIN_LENGTH",
}

PRE_INPUTS: tuple[Tensor, ...] = (
    Tensor("QUERY", "TYPE_STRING", (1,), optional=True),
    Tensor("REQUEST_OUTPUT_LEN", "TYPE_INT32", (1,), optional=True),
    Tensor("BAD_WORDS_DICT", "TYPE_STRING", (-1,), optional=True),
    Tensor("STOP_WORDS_DICT", "TYPE_STRING", (-1,), optional=True),
    Tensor("EMBEDDING_BIAS_WORDS", "TYPE_STRING", (-1,), optional=True),
    Tensor("EMBEDDING_BIAS_WEIGHTS", "TYPE_FP32", (-1,), optional=True),
    Tensor("END_ID", "TYPE_INT32", (1,), optional=True),
    Tensor("PAD_ID", "TYPE_INT32", (1,), optional=True),
    Tensor("APPLY_CHAT_TEMPLATE", "TYPE_BOOL", (1,), optional=True),
    Tensor("SEED", "TYPE_UINT64", (1,), optional=True),
    Tensor("RANDOM_SEED", "TYPE_UINT64", (1,), optional=True),
    Tensor("MIN_TOKENS", "TYPE_INT32", (1,), optional=True),
    Tensor("MIN_LENGTH", "TYPE_INT32", (1,), optional=True),
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
    # Only in responses whose request sent seed/random_seed (min_tokens/min_length): Triton's ensemble then
    # leaves the tensorrt_llm input unset, so the engine keeps its own default.
    Tensor("OUT_SEED", "TYPE_UINT64", (1,)),
    Tensor("OUT_MIN_TOKENS", "TYPE_INT32", (1,)),
    # The reference preprocessing's encoder-decoder outputs, for clients that call preprocessing themselves
    # (tensorrtllm_backend's end_to_end_test.py); the ensemble does not map them.
    Tensor("DECODER_INPUT_ID", "TYPE_INT32", (-1,)),
    Tensor("REQUEST_DECODER_INPUT_LEN", "TYPE_INT32", (1,)),
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
    "OUT_SEED": "seed",
    "OUT_MIN_TOKENS": "min_tokens",
}

#: Older names a client may send for a client input (alias -> contract name): clients written for the
#: tensorrtllm_backend of TensorRT-LLM <= 0.19 send these. Preprocessing reconciles each pair.
CLIENT_ALIASES: dict[str, str] = {"random_seed": "seed", "min_length": "min_tokens"}

#: The same aliases on the cpu engine's own tensorrt_llm contract (a client may address it directly).
LLM_ALIASES: dict[str, str] = {"random_seed": "seed", "min_length": "min_tokens"}


# -- the contract per TensorRT-LLM version (data: catalog/trtllm_contract.yaml) ------------------------------


@dataclass(frozen=True)
class LLMContract:
    """The tensorrt_llm contract of one TensorRT-LLM release, in that release's names."""

    version: str  #: the TensorRT-LLM version asked for (the newest row's when none was given)
    row: str  #: the data row it falls in, e.g. "0.19" or "0.16-0.18"
    inputs: tuple[Tensor, ...]
    outputs: tuple[Tensor, ...]
    #: contract (newest) name -> this release's name, for the tensors it names differently
    renames: dict[str, str]
    #: contract names this release lacks (inputs and outputs)
    absent: frozenset[str]
    source: str
    confidence: str

    def name(self, newest: str) -> str | None:
        """This release's name for the newest contract's tensor ``newest`` (None: the release lacks it)."""
        if newest in self.absent:
            return None
        return self.renames.get(newest, newest)

    @property
    def input_names(self) -> frozenset[str]:
        return frozenset(t.name for t in self.inputs)

    @property
    def output_names(self) -> frozenset[str]:
        return frozenset(t.name for t in self.outputs)


def _release_key(version: str) -> tuple[int, int]:
    import re

    m = re.match(r"\s*(\d+)\.(\d+)", str(version))
    if not m:
        raise ValueError(f"{version!r} is not a TensorRT-LLM version")
    return int(m.group(1)), int(m.group(2))


def _rows() -> list[dict]:
    from . import catalog

    return catalog.load("trtllm_contract.yaml")["rows"]


def _row_label(row: dict) -> str:
    start, until = row["from"], row.get("until")
    if until is None:
        return f">={start}"
    nxt = _release_key(start)
    return str(start) if _release_key(until) == (nxt[0], nxt[1] + 1) else f">={start},<{until}"


def llm_contract(trtllm_version: str | None = None) -> LLMContract:
    """The tensorrt_llm contract of TensorRT-LLM ``trtllm_version`` ("0.19.0", "1.2.1", "1.0.3.2510"; None:
    the newest). A version older than the data's first row is refused: tritongen supports no such container."""
    rows = _rows()
    version = str(trtllm_version) if trtllm_version else str(rows[-1]["from"])
    key = _release_key(version)
    row = next((r for r in rows if _release_key(r["from"]) <= key
                and (r.get("until") is None or key < _release_key(r["until"]))), None)
    if row is None:
        raise ValueError(f"TensorRT-LLM {version} is older than any contract tritongen knows "
                         f"(first: {rows[0]['from']}); use a container with TensorRT-LLM {rows[0]['from']} or later")
    return _contract_of(version, _row_label(row), row)


def _contract_of(version: str, label: str, row: dict) -> LLMContract:
    renames = dict(row.get("renames") or {})
    absent = frozenset(row.get("absent_inputs") or ()) | frozenset(row.get("absent_outputs") or ())

    def pick(tensors):
        return tuple(dc_replace(t, name=renames.get(t.name, t.name)) for t in tensors if t.name not in absent)

    return LLMContract(version=version, row=label, inputs=pick(LLM_INPUTS), outputs=pick(LLM_OUTPUTS),
                       renames=renames, absent=absent, source=str(row.get("source", "")),
                       confidence=str(row.get("confidence", "")))


def newest_names() -> dict[str, str]:
    """Every name any known release uses for a tensorrt_llm contract tensor -> the contract's (newest) name."""
    out = {t.name: t.name for t in LLM_INPUTS + LLM_OUTPUTS}
    for row in _rows():
        for new, old in (row.get("renames") or {}).items():
            out[old] = new
    return out


def llm_inputs(trtllm_version: str | None = None) -> tuple[Tensor, ...]:
    return llm_contract(trtllm_version).inputs


def llm_outputs(trtllm_version: str | None = None) -> tuple[Tensor, ...]:
    return llm_contract(trtllm_version).outputs


def cpu_llm_inputs() -> tuple[Tensor, ...]:
    """The cpu engine's inputs: the newest contract, with each old name next to its new one, so clients of
    either generation of tensorrtllm_backend can address it directly."""
    out: list[Tensor] = []
    for t in LLM_INPUTS:
        out.append(t)
        out += [dc_replace(t, name=alias) for alias, name in LLM_ALIASES.items() if name == t.name]
    return tuple(out)


def client_inputs_for(trtllm_version: str | None = None) -> tuple[Tensor, ...]:
    """The ensemble's (and tensorrt_llm_bls') inputs for this release: the contract's, without those feeding
    a tensorrt_llm input the release lacks, with each alias next to its contract name."""
    c = llm_contract(trtllm_version)
    out: list[Tensor] = []
    for t in CLIENT_INPUTS:
        target = CLIENT_TO_LLM.get(t.name)
        if target is not None and c.name(target) is None:
            continue
        out.append(t)
        out += [dc_replace(t, name=alias, doc=f"older name of {t.name}")
                for alias, name in CLIENT_ALIASES.items() if name == t.name]
    return tuple(out)


def client_to_llm_for(trtllm_version: str | None = None) -> dict[str, str]:
    """Client input -> this release's tensorrt_llm input, for the straight pass-throughs it has."""
    c = llm_contract(trtllm_version)
    return {client: c.name(llm) for client, llm in CLIENT_TO_LLM.items() if c.name(llm) is not None}


def pre_to_llm_for(trtllm_version: str | None = None) -> dict[str, str]:
    """Preprocessing output -> this release's tensorrt_llm input."""
    c = llm_contract(trtllm_version)
    return {pre: c.name(llm) for pre, llm in PRE_TO_LLM.items() if c.name(llm) is not None}


def unavailable_outputs(groups, trtllm_version: str | None = None) -> dict[str, tuple[str, ...]]:
    """Output group -> its outputs this release's backend never produces (groups missing nothing left out)."""
    c = llm_contract(trtllm_version)
    out = {}
    for g in groups:
        name = str(getattr(g, "value", g))
        lacking = tuple(n for n in OUTPUT_GROUPS[name] if n in c.absent)
        if lacking:
            out[name] = lacking
    return out


#: Ragged: Triton's dynamic batcher must then not compare shapes, so it no longer wakes its thread on every
#: streamed token (see templates/common/postprocessing/config.pbtxt.j2); the python backend gets each request
#: separately anyway.
POST_INPUTS: tuple[Tensor, ...] = (
    Tensor("TOKENS_BATCH", "TYPE_INT32", (-1, -1), ragged=True),
    # Optional: the cpu route's ensemble leaves it out (its engine never pads; one tensor less per token).
    Tensor("SEQUENCE_LENGTH", "TYPE_INT32", (-1,), optional=True, ragged=True),
)
POST_OUTPUTS: tuple[Tensor, ...] = (Tensor("OUTPUT", "TYPE_STRING", (-1,)),)


def resolve_dtype(tensor: Tensor, logits_dtype: str) -> str:
    return logits_dtype if tensor.dtype == "logits" else tensor.dtype


# -- tritongen extensions: exact streamed text through the ensemble -------------------------------------------
# Postprocessing must tell streams apart and see each one end, to decode incrementally and flush the last chunk.
# The client's request id cannot tell them apart (often empty, or "1" for every client), and Triton (2.51)
# refuses an ensemble step fed from two streams, so a key made by preprocessing can never reach postprocessing
# alongside the decoupled engine's tokens. Only the engine knows both a request's identity and its end: the
# cpu route's engine sends these with every response (the TensorRT-LLM C++ backend cannot).

#: The extra output of the cpu route's tensorrt_llm model: one small tensor, because every tensor a streamed
#: response carries through the ensemble costs Triton and the python stubs CPU per token (about 30 us each on 2
#: cores, measured with benchmarks/pipeline.py; three of them were a third of the pipeline's cost).
STREAM_OUTPUTS: tuple[Tensor, ...] = (
    Tensor("stream_state", "TYPE_INT64", (-1,), doc="[key, final]: the sequence's key (unique inside the server) "
           "and 1 on its last response (which may carry no new tokens); with the LLM metrics the first and last "
           "responses add [arrival_ns, scheduled_ns, prompt tokens, finish code, LoRA task id] (STATE_STATS)"),
)

#: The postprocessing input it feeds. Optional: the engine route's ensemble does not map it. Ragged like
#: POST_INPUTS, so the dynamic batcher still needs no equal shapes.
STREAM_POST_INPUTS: tuple[Tensor, ...] = (
    Tensor("STREAM_STATE", "TYPE_INT64", (-1,), optional=True, ragged=True),
)

#: tensorrt_llm output -> postprocessing input.
STREAM_TO_POST: dict[str, str] = {"stream_state": "STREAM_STATE"}

# -- tritongen extensions: request timings for the LLM metrics (serving.metrics.enabled, cpu route) -----------
# Postprocessing reports a request's TTFT, inter-token and end-to-end times when its first and last tokens leave
# the ensemble (templates/common/lib/llm_metrics.py). The arrival time is taken by preprocessing and, since no
# ensemble step may be fed from two streams, rides through the cpu engine, which adds its scheduling time, the
# prompt length and the finish reason.

#: Preprocessing output: time.time_ns() when the request reached the ensemble.
ARRIVAL_OUTPUT = Tensor("ARRIVAL_NS", "TYPE_INT64", (1,))
#: The cpu engine's input it feeds.
ARRIVAL_INPUT = Tensor("tritongen_arrival_ns", "TYPE_INT64", (1,), optional=True)
#: stream_state's fields after [key, final] on a sequence's first and last responses (with the LLM metrics):
#: finish code 0 running, 1 stop, 2 length, 3 cancelled.
STATE_STATS: tuple[str, ...] = ("arrival_ns", "scheduled_ns", "prompt_tokens", "finish", "lora_task_id")


# -- tritongen extensions: the most likely tokens at each step (cpu route, with the log_probs outputs) ---------
# OpenAI's top_logprobs. TensorRT-LLM's backend returns the chosen token's log-prob only; the cpu route's engine
# has the whole distribution at hand and also returns the k most likely tokens with their log-probs. The client
# asks with top_logprobs (0: none), which the ensemble passes to the engine, and gets both outputs back.

#: Client input, and the cpu engine's input of the same name.
TOP_LOGPROBS_INPUT = Tensor("top_logprobs", "TYPE_INT32", (1,), optional=True,
                            doc="tritongen, cpu route: also return the k most likely tokens of each step")
#: The cpu engine's outputs, passed to the client under the same names: per generated token, k (text, log-prob).
TOP_LOGPROBS_OUTPUTS: tuple[Tensor, ...] = (
    Tensor("top_tokens", "TYPE_STRING", (-1, -1), doc="[tokens, k] the most likely tokens' text"),
    Tensor("top_log_probs", "TYPE_FP32", (-1, -1), doc="[tokens, k] their log-probs"),
)


# -- the stop request ------------------------------------------------------------------------------------------
# A client that abandons a stream sends the stop model a `stop` for the request id (see clients/contract_io.py).

#: The inputs of a `stop` to the llmapi route's tensorrt_llm model: two of its inputs (its whole contract is in
#: llmapi.py). That model does not batch (max_batch_size 0), so these dims are the full shapes.
LLMAPI_STOP_INPUTS: tuple[Tensor, ...] = (
    Tensor("text_input", "TYPE_STRING", (-1,)),
    Tensor("stop", "TYPE_BOOL", (1,), optional=True),
)


# -- tritongen extensions: LoRA adapters by name (spec lora.adapters; tritongen/routes/lora.py) ---------------
#: The ensemble's (and tensorrt_llm_bls') input naming an adapter, declared only by repositories with adapters;
#: preprocessing turns it into tensorrt_llm's lora_task_id. Empty, or the base model's name: no adapter.
LORA_NAME = Tensor("lora_name", "TYPE_STRING", (1,), optional=True,
                   doc="tritongen: LoRA adapter by name (spec lora.adapters); empty: the base model")
