"""The deployment spec's shape: one strict, typed description of what to build and serve.

Every field is documented with ``description``, so that the README's spec reference is generated from here
(``tritongen spec --reference``). Unknown keys are errors (``extra="forbid"``); the rules between fields are in
``rules.py`` and run as part of validation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    StrictBool,
    StrictInt,
    StrictStr,
    field_validator,
    model_validator,
)

from ..names import NAME_CHARS
from ..paths import cache_dir
from .choices import (
    SPECULATIVE_DECODING_MODE,
    BatchingStrategy,
    BatchSchedulerPolicy,
    ComputeDtype,
    CpuDevice,
    CpuEngineKind,
    DecodingMode,
    GuidedDecoding,
    KvCacheDtype,
    LogitsDataType,
    OutputGroup,
    OutputSet,
    Precision,
    Route,
    SpeculativeMethod,
    TorchDtype,
)
from .fields import PathField, SafeName
from .lora import LoraSpec
from .rules import CROSS_MARK, cross_check


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, use_enum_values=False)


PositiveInt = Annotated[StrictInt, Field(gt=0)]


def _not_bool(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError(f"{str(value).lower()} is a boolean, not a number")
    return value


#: Numbers and booleans do not mix: a YAML `true` is not 1 (StrictInt, StrictBool). A float also takes an int and
#: a numeric string, since YAML 1.1 reads `2.05e5` (no dot before the exponent sign) as a string.
Float = Annotated[float, BeforeValidator(_not_bool)]
#: Short identifiers (model ids, image references, GPU names, hosts).
ShortStr = Annotated[StrictStr, Field(max_length=1024)]
#: Free text (descriptions).
Text = Annotated[StrictStr, Field(max_length=64 * 1024)]


class ModelInfo(StrictModel):
    """What the model is and where its files are. Catalogue entries fill the shape facts."""

    name: SafeName = Field(description="Catalogue key or your own short name; default repository name.")
    hf_id: ShortStr | None = Field(None, description="Hugging Face model id the checkpoint comes from.")
    checkpoint_dir: PathField | None = Field(
        None, description="Local Hugging Face checkpoint directory (config.json + weights). Default: "
        "<cache>/models/<name> (downloaded there by the engine build when missing).")
    tokenizer_dir: PathField | None = Field(None, description="Tokenizer directory; default: checkpoint_dir.")
    architecture: ShortStr = Field(description="Hugging Face architecture class, e.g. LlamaForCausalLM.")
    num_layers: PositiveInt = Field(description="Transformer layers (num_hidden_layers).")
    hidden_size: PositiveInt = Field(description="Model width.")
    num_heads: PositiveInt = Field(description="Attention heads.")
    num_kv_heads: PositiveInt = Field(description="Key/value heads (< num_heads for GQA).")
    head_dim: PositiveInt | None = Field(None, description="Per-head width; default hidden_size / num_heads.")
    intermediate_size: PositiveInt | None = Field(None, description="MLP width (per expert for MoE).")
    vocab_size: PositiveInt = Field(description="Vocabulary size.")
    num_params: Float = Field(gt=0, description="Total parameter count (all experts for MoE).")
    context_length: PositiveInt = Field(description="Longest context the model supports (max_position_embeddings).")
    num_experts: StrictInt = Field(0, ge=0, description="MoE experts per layer (0 = dense).")
    experts_per_token: StrictInt = Field(0, ge=0, description="MoE experts active per token.")
    trust_remote_code: StrictBool = Field(False, description="Allow the checkpoint's own Python code to run when "
                                    "loading the tokenizer/model. Off unless asked: it executes downloaded code.")
    description: Text = Field("", description="One line shown by `tritongen models`.")

    @property
    def resolved_head_dim(self) -> int:
        return self.head_dim or self.hidden_size // self.num_heads

    @property
    def family(self) -> str:
        """Short architecture family (llama, mistral, mixtral, qwen2, gemma, phi3...)."""
        arch = self.architecture
        for suffix in ("ForCausalLM", "LMHeadModel", "ForConditionalGeneration"):
            arch = arch.removesuffix(suffix)
        return arch.lower()


class PrecisionSpec(StrictModel):
    format: Precision = Field(Precision.bf16, description="Weight/activation format of the engine.")
    dtype: ComputeDtype | None = Field(None, description="Dtype of non-quantized tensors; default: format "
                                       "when it is fp16/bf16, else bf16.")
    kv_cache_dtype: KvCacheDtype = Field(KvCacheDtype.auto, description="KV-cache element type.")
    calib_size: PositiveInt = Field(512, description="Calibration samples for quantize.py (fp8, awq, sq, nvfp4).")
    awq_block_size: PositiveInt = Field(128, description="Group size for INT4 AWQ / GPTQ.")
    smoothquant_alpha: Float = Field(0.5, ge=0, le=1, description="SmoothQuant migration strength.")

    @property
    def resolved_dtype(self) -> ComputeDtype:
        if self.dtype is not None:
            return self.dtype
        if self.format in (Precision.fp16, Precision.bf16):
            return ComputeDtype(self.format.value)
        return ComputeDtype.bf16

    @property
    def resolved_kv_dtype(self) -> KvCacheDtype:
        if self.kv_cache_dtype is KvCacheDtype.auto:
            return KvCacheDtype(self.resolved_dtype.value)
        return self.kv_cache_dtype


class Parallelism(StrictModel):
    tp: PositiveInt = Field(1, description="Tensor-parallel size.")
    pp: PositiveInt = Field(1, description="Pipeline-parallel size.")
    ep: PositiveInt = Field(1, description="Expert-parallel size for MoE models (divides tp).")
    gpu_ids: list[Annotated[StrictInt, Field(ge=0)]] | None = Field(
        None, max_length=1024, description="GPU indices to run on; default 0..tp*pp-1. Its length must equal tp*pp.")

    @property
    def world_size(self) -> int:
        return self.tp * self.pp

    @property
    def resolved_gpu_ids(self) -> list[int]:
        return list(self.gpu_ids) if self.gpu_ids is not None else list(range(self.world_size))


class Limits(StrictModel):
    max_batch_size: PositiveInt = Field(64, le=4096, description="Largest in-flight batch (engine and Triton).")
    max_input_len: PositiveInt = Field(2048, description="Longest prompt in tokens.")
    max_seq_len: PositiveInt = Field(4096, description="Longest prompt + generated tokens.")
    max_num_tokens: PositiveInt = Field(8192, description="Most tokens processed in one engine step (all requests).")
    max_beam_width: PositiveInt = Field(1, le=64, description="Beam width the engine supports (1 = no beam search).")


class KvCacheSpec(StrictModel):
    paged: StrictBool = Field(True, description="Paged KV cache (required for in-flight batching).")
    tokens_per_block: PositiveInt = Field(32, description="Tokens per KV-cache block (power of two).")
    enable_reuse: StrictBool = Field(False, description="Reuse KV blocks across requests sharing a prefix "
                               "(needs paged context FMHA in the engine).")
    free_gpu_mem_fraction: Float = Field(0.9, gt=0, le=1, description="Share of free GPU memory given to the KV cache.")
    max_tokens: PositiveInt | None = Field(None, description="Cap on tokens held in the paged KV cache.")
    host_memory_bytes: StrictInt = Field(0, ge=0, description="Host memory for offloaded KV blocks (0 = none).")


class Scheduling(StrictModel):
    batch_scheduler_policy: BatchSchedulerPolicy = Field(
        BatchSchedulerPolicy.guaranteed_no_evict, description="How requests are admitted to the running batch.")
    enable_chunked_context: StrictBool = Field(False, description="Split long prompts into chunks across steps "
                                         "(needs paged context FMHA).")
    batching_strategy: BatchingStrategy = Field(BatchingStrategy.inflight_fused_batching,
                                                description="The tensorrt_llm model's gpt_model_type.")


class Lookahead(StrictModel):
    window_size: PositiveInt = Field(4, description="Lookahead window (W).")
    ngram_size: PositiveInt = Field(3, description="N-gram size (N).")
    verification_set_size: PositiveInt = Field(4, description="Verification set size (G).")


class Speculative(StrictModel):
    method: SpeculativeMethod = Field(SpeculativeMethod.none, description="Speculative decoding method.")
    max_draft_len: StrictInt = Field(0, ge=0, description="Most draft tokens per step (0 = method default).")
    draft_model: SafeName | None = Field(None, description="draft_target: catalogue name of the draft model.")
    heads_dir: PathField | None = Field(None, description="medusa/eagle: checkpoint with the extra heads.")
    num_medusa_heads: PositiveInt = Field(4, description="medusa: number of heads.")
    medusa_choices: list[list[StrictInt]] | None = Field(None, max_length=4096, description="medusa: tree of choices (default: the "
                                                   "engine's).")
    eagle_choices: list[list[StrictInt]] | None = Field(None, max_length=4096, description="eagle: tree of choices.")
    lookahead: Lookahead = Field(default_factory=Lookahead, description="lookahead: (W, N, G).")
    acceptance_threshold: Float | None = Field(None, gt=0, le=1, description="draft_target: probability "
                                               "threshold to accept a draft token (None = exact match).")


class Decoding(StrictModel):
    mode: DecodingMode = Field(DecodingMode.auto, description="decoding_mode; auto: beam_search when "
                               "max_beam_width > 1, the speculative method's mode, else top_k_top_p.")
    speculative: Speculative = Field(default_factory=Speculative, description="Speculative decoding.")
    gather_context_logits: StrictBool = Field(False, description="Build the engine to return context logits.")
    gather_generation_logits: StrictBool = Field(False, description="Build the engine to return generation logits.")


class MetricsSpec(StrictModel):
    enabled: StrictBool = Field(True, description="LLM metrics (TTFT, inter-token, e2e and queue histograms, token "
                                "and finish-reason counters, in flight) from the python-backend models on Triton's "
                                "metrics port; README \"Monitoring\".")
    triton_latency_summaries: StrictBool = Field(False, description="Also Triton's own per-model latency summaries "
                                                 "(p50/p90/p95/p99: tritonserver --metrics-config "
                                                 "summary_latencies=true; Triton 2.51 has no latency histograms).")
    ttft_p99_slo_s: Float = Field(2.0, gt=0, description="TTFT p99 above which the rendered alert rules fire (s).")
    max_error_ratio: Float = Field(0.05, gt=0, le=1, description="Share of failed requests above which the "
                                           "rendered alert rules fire.")


class Serving(StrictModel):
    streaming: StrictBool = Field(True, description="Stream tokens as they are made (decoupled models).")
    bls: StrictBool = Field(False, description="Also add tensorrt_llm_bls: one python model doing pre -> LLM -> post "
                      "(needed for draft_target; exact streamed text for any client).")
    preprocessing_instances: PositiveInt = Field(1, description="Preprocessing model instances.")
    postprocessing_instances: PositiveInt = Field(1, description="Postprocessing model instances (1 when "
                                                  "streaming: it keeps each stream's decoder state).")
    bls_instances: PositiveInt = Field(1, description="tensorrt_llm_bls instances.")
    max_queue_delay_us: StrictInt = Field(0, ge=0, description="Dynamic batcher: longest wait to fill a batch "
                                    "(preprocessing, tensorrt_llm).")
    postprocessing_queue_delay_us: StrictInt = Field(
        1000, ge=0, description="Postprocessing's dynamic batcher wait. Postprocessing runs once per streamed "
        "token; waiting up to 1 ms for more tokens gathers bigger batches and cuts the pipeline's CPU per token "
        "under load, at the cost of at most that much extra latency per token (0 for single-stream latency).")
    stream_interval: StrictInt = Field(
        1, ge=1, le=1024, description="Streaming: send a response every N new tokens instead of every token (the "
        "first token always at once, so TTFT is unchanged), as trtllm-serve and vLLM offer. Every streamed response "
        "costs the ensemble a postprocessing call and a response of its own: 4 cuts that cost about 4x, at the price "
        "of text arriving in chunks of N tokens. cpu route: the reference engine; llmapi: the LLM API's "
        "stream_interval; the engine route's TensorRT-LLM backend streams every token (1 only).")
    stream_interval_ms: float = Field(
        0, ge=0, le=10_000, description="With stream_interval > 1 (cpu route): also send what is held once this "
        "many milliseconds have passed since the stream's last response, so a slow engine does not hold text "
        "back (0 = by token count only).")
    max_queue_size: StrictInt = Field(0, ge=0, description="Dynamic batcher: queued requests before rejecting (0 = no cap).")
    optional_outputs: OutputSet | list[OutputGroup] = Field(
        OutputSet.auto, description="Outputs the client contract carries besides text_output: `auto`, `all`, or a "
        "list of groups (log_probs, logits, indices, perf_metrics, speculative, token_counts). Triton's ensemble "
        "spends CPU on every streamed token for each output it carries, sent or not; `auto` carries log_probs, "
        "indices and token_counts, plus logits when the engine gathers them and speculative with speculative "
        "decoding (llmapi: all). perf_metrics (KV-cache and timing figures) is opt-in: "
        "`[log_probs, indices, token_counts, perf_metrics]` or `all`.")
    max_prompt_bytes: StrictInt | Literal["auto"] = Field(
        0, description="Largest prompt (text_input, in bytes) a request may send; a longer one is refused before "
        "it is tokenized. 0 or `auto`: derived, max_input_len x the most bytes one token of the tokenizer stands "
        "for (plus the chat template's own text with apply_chat_template); an explicit value lower than that wins.")
    exclude_input_in_output: StrictBool = Field(True, description="Return only generated text, not the prompt.")
    logits_dtype: LogitsDataType = Field(LogitsDataType.TYPE_FP32, description="Dtype of returned logits.")
    normalize_log_probs: StrictBool = Field(True, description="Normalize returned log probabilities.")
    guided_decoding: GuidedDecoding = Field(
        GuidedDecoding.none, description="Structured output (JSON schema, json_object, regex, EBNF per request; README "
        "\"Structured output\"): xgrammar sets the backend's guided_decoding_backend (engine: plus the "
        "tokenizer-info file it reads, written at render; llmapi: model.yaml; cpu: xgrammar's CPU matcher).")
    skip_special_tokens: StrictBool = Field(True, description="Drop special tokens from returned text.")
    add_special_tokens: StrictBool = Field(True, description="Let the tokenizer add BOS/EOS when encoding prompts.")
    model_prefix: StrictStr = Field("", pattern=rf"^[{NAME_CHARS}]{{0,48}}$", description="Prefix for every model name "
                              "(e.g. `llama-` gives llama-ensemble, llama-tensorrt_llm, ...): lets several "
                              "repositories share one server; clients then call <prefix>ensemble.")
    @field_validator("max_prompt_bytes")
    @classmethod
    def _prompt_bytes(cls, value):
        if value == "auto":
            return 0
        if value < 0:
            raise ValueError(f"{value} is not allowed; use 0 or auto (derived) or a positive number of bytes")
        return value

    @field_validator("optional_outputs", mode="before")
    @classmethod
    def _one_line_output_error(cls, value):
        # Without this, pydantic reports each arm of the union separately (two confusing lines).
        groups = [g.value for g in OutputGroup]
        allowed = f"use auto, all, or a list of groups: {', '.join(groups)}"
        if isinstance(value, list):
            for group in value:
                if str(getattr(group, "value", group)) not in groups:
                    raise ValueError(f"{group!r} is not a group; {allowed}")
            return value
        if isinstance(value, str) and str(getattr(value, "value", value)) in [s.value for s in OutputSet]:
            return value
        raise ValueError(f"{value!r} is not allowed; {allowed}")

    host: ShortStr = Field("127.0.0.1", description="Address the server binds to (0.0.0.0 exposes it to the network).")
    http_port: StrictInt = Field(8000, ge=1, le=65535, description="HTTP/REST port.")
    grpc_port: StrictInt = Field(8001, ge=1, le=65535, description="gRPC port.")
    metrics_port: StrictInt = Field(8002, ge=1, le=65535, description="Prometheus metrics port.")
    metrics: MetricsSpec = Field(default_factory=MetricsSpec)


class Container(StrictModel):
    image: ShortStr | None = Field(None, description="Serving/build image; default: the newest NGC "
                              "tritonserver:<tag>-trtllm-python-py3 that supports the route.")
    trtllm_version: ShortStr | None = Field(None, description="TensorRT-LLM version in the image; default: from "
                                       "the version matrix for the image's tag.")


class EngineSpec(StrictModel):
    dir: PathField | None = Field(None, description="Prebuilt engine directory (config.json + rank*.engine); "
                             "default: the engine cache entry for this spec.")
    gpu: ShortStr | None = Field(None, description="GPU the engine is built for (catalogue name, e.g. h100); "
                            "default: detected with nvidia-smi.")
    multiple_profiles: StrictBool | None = Field(None, description="trtllm-build --multiple_profiles (faster across "
                                           "batch sizes, longer build); null: TensorRT-LLM's default.")
    draft_dir: PathField | None = Field(None, description="draft_target: prebuilt draft engine; default: the engine "
                                   "cache entry of the draft model (`tritongen engine` builds it).")


class CpuSpec(StrictModel):
    engine: CpuEngineKind = Field(CpuEngineKind.torch, description="torch: run the checkpoint; mock: "
                                  "deterministic fake tokens (clearly a MOCK, for load tests).")
    device: CpuDevice = Field(CpuDevice.auto, description="Where PyTorch runs (auto: CUDA when available).")
    dtype: TorchDtype = Field(TorchDtype.auto, description="PyTorch dtype (auto: float32 on CPU, float16 on CUDA).")
    mock_step_ms: Float = Field(0.0, ge=0, description="mock: delay per decode step in milliseconds.")
    mock_echo: StrictBool = Field(False, description="mock: stream the prompt's own tokens back (cycling) instead of "
                            "vocabulary tokens; tests streamed text on any language.")
    instances: PositiveInt = Field(1, description="Python-backend instances of the reference engine.")
    threads: PositiveInt | None = Field(None, description="torch: intra-op CPU threads (null: all cores but one, "
                                        "which is left to Triton and the pre/postprocessing stages).")


class Spec(StrictModel):
    """A whole deployment."""

    name: SafeName | None = Field(None, description="Repository name (repos/<name>); default: model.name.")
    route: Route = Field(Route.engine, description="engine | llmapi | cpu.")
    model: ModelInfo
    precision: PrecisionSpec = Field(default_factory=PrecisionSpec)
    parallelism: Parallelism = Field(default_factory=Parallelism)
    limits: Limits = Field(default_factory=Limits)
    kv_cache: KvCacheSpec = Field(default_factory=KvCacheSpec)
    scheduling: Scheduling = Field(default_factory=Scheduling)
    decoding: Decoding = Field(default_factory=Decoding)
    serving: Serving = Field(default_factory=Serving)
    container: Container = Field(default_factory=Container)
    engine: EngineSpec = Field(default_factory=EngineSpec)
    cpu: CpuSpec = Field(default_factory=CpuSpec)
    lora: LoraSpec = Field(default_factory=LoraSpec, description="LoRA adapters chosen per request (README "
                           "\"LoRA adapters\").")
    #: Fields load_spec took from the prebuilt engine's config.json (dotted key -> value), for messages.
    _from_engine: dict = PrivateAttr(default_factory=dict)

    @field_validator("precision", mode="before")
    @classmethod
    def _precision_shorthand(cls, value):
        # `precision: fp8` means precision.format, as --precision and --set precision=fp8 do.
        return {"format": value} if isinstance(value, str) else value

    @model_validator(mode="after")
    def _cross_checks(self) -> Spec:
        problems = cross_check(self)
        if problems:
            raise ValueError(CROSS_MARK + "\n".join(problems))
        return self

    # -- derived values used by templates and the engine planner --------------------------------------

    @property
    def repo_name(self) -> str:
        return self.name or self.model.name

    @property
    def model_names(self) -> dict[str, str]:
        """Each model's name in the repository: its role with ``serving.model_prefix`` in front."""
        prefix = self.serving.model_prefix
        return {role: prefix + role for role in MODEL_ROLES}

    @property
    def resolved_output_groups(self) -> tuple[OutputGroup, ...]:
        """The optional output groups the client contract carries, in contract order."""
        chosen = self.serving.optional_outputs
        if chosen is OutputSet.all or (chosen is OutputSet.auto and self.route is Route.llmapi):
            # llmapi's front is a python model: outputs it carries cost nothing per token there.
            return tuple(OutputGroup)
        if chosen is OutputSet.auto:
            chosen = [OutputGroup.log_probs, OutputGroup.indices, OutputGroup.token_counts]
            if self.route is Route.engine and (self.decoding.gather_context_logits
                                               or self.decoding.gather_generation_logits):
                chosen.append(OutputGroup.logits)
            if self.decoding.speculative.method is not SpeculativeMethod.none:
                chosen.append(OutputGroup.speculative)
        return tuple(g for g in OutputGroup if g in chosen)

    @property
    def resolved_decoding_mode(self) -> DecodingMode:
        if self.decoding.mode is not DecodingMode.auto:
            return self.decoding.mode
        method = self.decoding.speculative.method
        if method in SPECULATIVE_DECODING_MODE:
            return SPECULATIVE_DECODING_MODE[method]
        if self.limits.max_beam_width > 1:
            return DecodingMode.beam_search
        return DecodingMode.top_k_top_p

    @property
    def resolved_max_draft_len(self) -> int:
        spec = self.decoding.speculative
        if spec.method is SpeculativeMethod.none:
            return 0
        if spec.max_draft_len:
            return spec.max_draft_len
        if spec.method is SpeculativeMethod.lookahead:
            # TensorRT-LLM's formula for the draft length a (W, N, G) lookahead config needs.
            w, n, g = spec.lookahead.window_size, spec.lookahead.ngram_size, spec.lookahead.verification_set_size
            return (w + g) * (n - 1) - 1
        return _DEFAULT_DRAFT_LEN[spec.method]

    @property
    def tokenizer_dir(self) -> Path:
        return Path(self.model.tokenizer_dir or self.checkpoint_dir)

    @property
    def checkpoint_dir(self) -> Path:
        if self.model.checkpoint_dir is not None:
            return Path(self.model.checkpoint_dir)
        return cache_dir() / "models" / self.model.name


#: The models a repository may hold, by role (their names without serving.model_prefix).
MODEL_ROLES = ("ensemble", "preprocessing", "tensorrt_llm", "postprocessing", "tensorrt_llm_bls",
               "tensorrt_llm_draft")

_DEFAULT_DRAFT_LEN = {
    SpeculativeMethod.draft_target: 4,
    SpeculativeMethod.medusa: 63,
    SpeculativeMethod.eagle: 63,
}


def submodel(annotation: Any) -> type[BaseModel] | None:
    """The section model a field's annotation holds (``Limits`` for ``Limits | None``), None for a value."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            return arg
    return None
