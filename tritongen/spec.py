"""The deployment spec: one typed, strict description of what to build and serve.

Sources merge in a fixed order, later wins: catalogue entry < YAML file (``--spec``) < command-line options and
``--set key=value``. Every field is documented with ``description`` so that the README's spec reference can be
generated from this module (``tritongen spec --reference``). Unknown keys are errors (``extra="forbid"``), and
each invalid value is reported on its own line naming the field and what is allowed.
"""

from __future__ import annotations

import copy
import enum
import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationError,
    field_validator,
    model_validator,
)

from .errors import SpecError
from .names import MAX_PATH, NAME_CHARS, name_problem, safe_name_from, shorten, show_path


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, use_enum_values=False)


class Route(str, enum.Enum):
    """How the model is executed."""

    engine = "engine"  #: TensorRT engines built by trtllm-build, served by the tensorrtllm C++ backend
    llmapi = "llmapi"  #: TensorRT-LLM's PyTorch LLM-API Triton model (model.yaml), no build step
    cpu = "cpu"  #: reference engine in the python backend (PyTorch, or the mock), same tensor contract


class Precision(str, enum.Enum):
    """Weight (and, where it applies, activation) format of the engine."""

    fp16 = "fp16"
    bf16 = "bf16"
    fp8 = "fp8"  #: FP8 weights and activations (Ada, Hopper, Blackwell)
    int8_wo = "int8_wo"  #: INT8 weight-only
    int4_wo = "int4_wo"  #: INT4 weight-only (round-to-nearest)
    int4_awq = "int4_awq"  #: INT4 AWQ (activation-aware, group-wise)
    int4_gptq = "int4_gptq"  #: INT4 GPTQ (pre-quantized checkpoint)
    w4a8_awq = "w4a8_awq"  #: INT4 AWQ weights with FP8 activations (Ada, Hopper)
    w8a8_sq = "w8a8_sq"  #: INT8 SmoothQuant weights and activations
    nvfp4 = "nvfp4"  #: NVFP4 weights and activations (Blackwell)


class ComputeDtype(str, enum.Enum):
    """Dtype of the non-quantized parts (activations, embeddings, norms)."""

    fp16 = "fp16"
    bf16 = "bf16"


class KvCacheDtype(str, enum.Enum):
    auto = "auto"  #: same as precision.dtype
    fp16 = "fp16"
    bf16 = "bf16"
    fp8 = "fp8"
    int8 = "int8"


class BatchSchedulerPolicy(str, enum.Enum):
    max_utilization = "max_utilization"
    guaranteed_no_evict = "guaranteed_no_evict"


class BatchingStrategy(str, enum.Enum):
    """The tensorrt_llm model's ``gpt_model_type`` parameter."""

    inflight_fused_batching = "inflight_fused_batching"
    inflight_batching = "inflight_batching"


class DecodingMode(str, enum.Enum):
    """The tensorrt_llm model's ``decoding_mode`` parameter; ``auto`` derives it from the other settings."""

    auto = "auto"
    top_k = "top_k"
    top_p = "top_p"
    top_k_top_p = "top_k_top_p"
    beam_search = "beam_search"
    medusa = "medusa"
    eagle = "eagle"
    lookahead = "lookahead"
    explicit_draft_tokens = "explicit_draft_tokens"


class SpeculativeMethod(str, enum.Enum):
    none = "none"
    draft_target = "draft_target"  #: a small draft model proposes tokens, the target verifies (BLS drives it)
    medusa = "medusa"
    eagle = "eagle"
    lookahead = "lookahead"


class LogitsDataType(str, enum.Enum):
    """Named like Triton's ``DataType`` enum in model_config.proto."""

    TYPE_FP32 = "TYPE_FP32"
    TYPE_FP16 = "TYPE_FP16"


class OutputGroup(str, enum.Enum):
    """Optional client outputs in groups; tritongen.contract.OUTPUT_GROUPS lists each group's tensors."""

    log_probs = "log_probs"
    logits = "logits"
    indices = "indices"
    perf_metrics = "perf_metrics"
    speculative = "speculative"
    token_counts = "token_counts"


class OutputSet(str, enum.Enum):
    auto = "auto"  #: log_probs, indices, token_counts (+ logits, speculative when configured); llmapi: all
    all = "all"  #: every optional output of the reference contract


class CpuEngineKind(str, enum.Enum):
    torch = "torch"  #: runs the Hugging Face checkpoint with PyTorch
    mock = "mock"  #: MOCK engine: deterministic token ids at a fixed pace, no model (load tests)


class CpuDevice(str, enum.Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


class TorchDtype(str, enum.Enum):
    auto = "auto"
    float32 = "float32"
    float16 = "float16"
    bfloat16 = "bfloat16"


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


def _safe_name(value: str) -> str:
    problem = name_problem(value)
    if problem:
        raise ValueError(problem)
    return value


def _path_value(value: Any) -> Any:
    # Checked before pydantic makes a Path: a too long path or a NUL byte fails later as an OSError/ValueError
    # deep in a file system call ("File name too long", "embedded null byte").
    if isinstance(value, (str, os.PathLike)):
        text = os.fspath(value)
        if len(text) > MAX_PATH:
            raise ValueError(f"{shorten(text)} is longer than {MAX_PATH} characters")
        if "\x00" in text:
            raise ValueError(f"{shorten(text)} holds a NUL byte")
    return value


#: A name that becomes a file or folder name (tritongen.names): [A-Za-z0-9._-], at most 255 characters.
SafeName = Annotated[StrictStr, AfterValidator(_safe_name)]
#: A file system path of at most 4096 characters.
PathField = Annotated[Path, BeforeValidator(_path_value)]


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
            raise ValueError(_CROSS_MARK + "\n".join(problems))
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
        if method in _SPEC_DECODING_MODE:
            return _SPEC_DECODING_MODE[method]
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

_SPEC_DECODING_MODE = {
    SpeculativeMethod.medusa: DecodingMode.medusa,
    SpeculativeMethod.eagle: DecodingMode.eagle,
    SpeculativeMethod.lookahead: DecodingMode.lookahead,
    # draft_target runs the target with externally supplied draft tokens; sampling stays top_k_top_p.
    SpeculativeMethod.draft_target: DecodingMode.top_k_top_p,
}
_DEFAULT_DRAFT_LEN = {
    SpeculativeMethod.draft_target: 4,
    SpeculativeMethod.medusa: 63,
    SpeculativeMethod.eagle: 63,
}
_CROSS_MARK = "\x00cross\x00"


def cross_check(spec: Spec) -> list[str]:
    """Relations between fields that each field alone cannot express; one line per problem."""
    p: list[str] = []
    m, lim, par, kv = spec.model, spec.limits, spec.parallelism, spec.kv_cache
    dec, spec_dec = spec.decoding, spec.decoding.speculative

    if par.gpu_ids is not None and len(par.gpu_ids) != par.world_size:
        p.append(f"parallelism.gpu_ids: {len(par.gpu_ids)} GPU id(s) {par.gpu_ids} but tp x pp = "
                 f"{par.tp} x {par.pp} = {par.world_size}; give exactly {par.world_size} id(s)")
    if par.gpu_ids is not None and len(set(par.gpu_ids)) != len(par.gpu_ids):
        p.append(f"parallelism.gpu_ids: {par.gpu_ids} repeats a GPU; each rank needs its own GPU")
    if par.ep > 1 and m.num_experts == 0:
        p.append(f"parallelism.ep: {par.ep} but {m.name} is a dense model (model.num_experts=0); use ep=1")
    if par.tp % par.ep:
        p.append(f"parallelism.ep: {par.ep} must divide parallelism.tp={par.tp} (expert parallelism splits the "
                 "tensor-parallel group)")
    if m.num_heads % par.tp:
        p.append(f"parallelism.tp: {par.tp} does not divide model.num_heads={m.num_heads}; choose a divisor")
    if par.pp > m.num_layers:
        p.append(f"parallelism.pp: {par.pp} exceeds model.num_layers={m.num_layers}")
    if m.experts_per_token > m.num_experts:
        p.append(f"model.experts_per_token: {m.experts_per_token} exceeds model.num_experts={m.num_experts}")
    if m.num_heads % m.num_kv_heads:
        p.append(f"model.num_kv_heads: {m.num_kv_heads} must divide model.num_heads={m.num_heads}")

    if lim.max_input_len >= lim.max_seq_len:
        p.append(f"limits.max_input_len: {lim.max_input_len} must be below limits.max_seq_len={lim.max_seq_len} "
                 "(room is needed for generated tokens)")
    if lim.max_seq_len > m.context_length:
        p.append(f"limits.max_seq_len: {lim.max_seq_len} exceeds the model's context length {m.context_length}")
    if not spec.scheduling.enable_chunked_context and lim.max_num_tokens < lim.max_input_len:
        p.append(f"limits.max_num_tokens: {lim.max_num_tokens} is below limits.max_input_len={lim.max_input_len}; "
                 "a full prompt must fit one step unless scheduling.enable_chunked_context=true")
    if kv.tokens_per_block & (kv.tokens_per_block - 1):
        p.append(f"kv_cache.tokens_per_block: {kv.tokens_per_block} must be a power of two (e.g. 32, 64)")
    if kv.enable_reuse and not kv.paged:
        p.append("kv_cache.enable_reuse: needs kv_cache.paged=true")
    if spec.scheduling.enable_chunked_context and not kv.paged:
        p.append("scheduling.enable_chunked_context: needs kv_cache.paged=true")
    if spec.route is not Route.cpu and not kv.paged:
        p.append("kv_cache.paged: in-flight batching needs a paged KV cache; set kv_cache.paged=true")

    mode = dec.mode
    if mode is DecodingMode.beam_search and lim.max_beam_width == 1:
        p.append("decoding.mode: beam_search needs limits.max_beam_width > 1")
    if mode in (DecodingMode.top_k, DecodingMode.top_p, DecodingMode.top_k_top_p) and lim.max_beam_width > 1:
        p.append(f"decoding.mode: {mode.value} cannot run with limits.max_beam_width={lim.max_beam_width}; "
                 "use beam_search or auto")
    if spec_dec.method is not SpeculativeMethod.none:
        if lim.max_beam_width > 1:
            p.append(f"decoding.speculative.method: {spec_dec.method.value} does not support beam search "
                     f"(limits.max_beam_width={lim.max_beam_width}); set max_beam_width=1")
        expected = _SPEC_DECODING_MODE[spec_dec.method]
        if mode is not DecodingMode.auto and mode is not expected:
            p.append(f"decoding.mode: {mode.value} does not match decoding.speculative.method="
                     f"{spec_dec.method.value} (expects {expected.value} or auto)")
        if spec_dec.method is SpeculativeMethod.draft_target and not spec_dec.draft_model:
            p.append("decoding.speculative.draft_model: draft_target needs the draft model's catalogue name")
        if spec_dec.method is SpeculativeMethod.draft_target and not spec.serving.bls:
            p.append("serving.bls: draft_target decoding is driven by tensorrt_llm_bls; set serving.bls=true")
        if spec_dec.method in (SpeculativeMethod.medusa, SpeculativeMethod.eagle) and spec.route is Route.engine \
                and spec_dec.heads_dir is None and spec.engine.dir is None:
            p.append(f"decoding.speculative.heads_dir: {spec_dec.method.value} needs the checkpoint with its "
                     "extra heads (or a prebuilt engine.dir)")
    elif mode in (DecodingMode.medusa, DecodingMode.eagle, DecodingMode.lookahead, DecodingMode.explicit_draft_tokens):
        p.append(f"decoding.mode: {mode.value} needs an engine built for it; set "
                 "decoding.speculative.method accordingly")

    if spec.serving.streaming and spec.serving.postprocessing_instances > 1:
        p.append(f"serving.postprocessing_instances: {spec.serving.postprocessing_instances} with streaming; "
                 "streamed text is decoded incrementally per request inside one postprocessing process, "
                 "so it must be 1 (it batches; raise serving.max_queue_delay_us for throughput)")
    if len({spec.serving.http_port, spec.serving.grpc_port, spec.serving.metrics_port}) < 3:
        p.append("serving.http_port/grpc_port/metrics_port: the three ports must differ")

    if spec.route is Route.cpu:
        if spec.precision.format not in (Precision.fp16, Precision.bf16):
            p.append(f"precision.format: {spec.precision.format.value} applies to the engine/llmapi routes; the "
                     "cpu route runs the checkpoint with PyTorch (set cpu.dtype instead)")
        if par.world_size > 1:
            p.append("parallelism.tp/pp: the cpu route runs on one device; use tp=1 pp=1")
        if spec_dec.method not in (SpeculativeMethod.none, SpeculativeMethod.draft_target):
            p.append(f"decoding.speculative.method: {spec_dec.method.value} needs a TensorRT-LLM engine; the cpu "
                     "route does draft_target only (the reference engine verifies draft tokens)")
    if spec.route is Route.llmapi and spec.decoding.speculative.method is SpeculativeMethod.draft_target:
        p.append("decoding.speculative.method: draft_target runs on the engine route; llmapi takes eagle, "
                 "medusa or lookahead")
    return p


# -- loading and merging ---------------------------------------------------------------------------------


def cache_dir() -> Path:
    """Where tiny models, engines and server logs live; the one rule for the CLI and Make alike:

    ``$TRITONGEN_CACHE`` when set; else ``<checkout>/.cache`` when the CLI runs inside a tritongen checkout (the
    current folder or one above it, see ``project_root``), so that ``make demo`` and a plain ``tritongen repo tiny``
    there share one tiny model and one engine cache; else ``~/.cache/tritongen`` (``$XDG_CACHE_HOME``).
    """
    env = os.environ.get("TRITONGEN_CACHE")
    if env:
        return Path(env).expanduser().resolve()
    root = project_root()
    if root is not None:
        return root / ".cache"
    return user_cache_dir()


def user_cache_dir() -> Path:
    """~/.cache/tritongen (or $XDG_CACHE_HOME/tritongen): the cache outside any checkout."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "tritongen"


def project_root(start: Path | None = None) -> Path | None:
    """The tritongen checkout ``start`` (default: the current folder) is in: the nearest folder at or above it
    holding a Makefile and a pyproject.toml whose project name is tritongen. None outside a checkout."""
    try:
        here = Path(start or Path.cwd()).resolve()
    except OSError:  # the current folder was removed
        return None
    for folder in (here, *here.parents):
        try:
            if not (folder / "Makefile").is_file():
                continue
            text = (folder / "pyproject.toml").read_text()
        except (OSError, UnicodeDecodeError):
            continue
        if re.search(r'(?m)^name\s*=\s*"tritongen"\s*$', text):
            return folder
    return None


def deep_merge(base: dict, override: dict) -> dict:
    """Recursive dict merge; ``override`` wins; lists and scalars are replaced, not merged."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def parse_set(assignment: str) -> tuple[list[str], Any]:
    """Parse ``a.b.c=value``; the value is read as a YAML scalar/flow value (``true``, ``64``, ``[0,1]``)."""
    if "=" not in assignment:
        raise SpecError([f"--set {assignment!r}: expected key=value, e.g. limits.max_batch_size=32"])
    key, _, raw = assignment.partition("=")
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise SpecError([f"--set {assignment!r}: empty key"])
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key.split("."), value


def apply_sets(data: dict, assignments: list[str]) -> dict:
    """Apply ``--set`` assignments to a spec dict, checking each key against the spec's fields."""
    out = copy.deepcopy(data)
    for assignment in assignments:
        path, value = parse_set(assignment)
        if path == ["precision"] and not isinstance(value, dict):
            path = ["precision", "format"]  # the shorthand the --precision option also is
        _check_path(path, assignment)
        node = out
        for part in path[:-1]:
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node = node[part]
        node[path[-1]] = value
    return out


def _check_path(path: list[str], assignment: str) -> None:
    model: type[BaseModel] = Spec
    for i, part in enumerate(path):
        fields = model.model_fields
        if part not in fields:
            where = ".".join(path[:i]) or "the spec"
            guess = _did_you_mean(path[: i + 1])
            raise SpecError([f"--set {assignment}: unknown field {'.'.join(path[: i + 1])!r}"
                             f"{guess or ';'} fields of {where}: {', '.join(fields)}"])
        annotation = fields[part].annotation
        sub = _submodel(annotation)
        if i < len(path) - 1 and sub is None:
            raise SpecError([f"--set {assignment}: {'.'.join(path[: i + 1])} is a value, not a section"])
        model = sub or model


def _submodel(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            return arg
    return None


def load_yaml_file(path: Path) -> dict:
    """Read a YAML mapping, with a one-line error for missing files or bad YAML."""
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise SpecError([f"{show_path(path)}: cannot read spec file ({exc.strerror})"]) from None
    except ValueError as exc:  # a NUL byte in the path
        raise SpecError([f"{show_path(path)}: cannot read spec file ({exc})"]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark else ""
        raise SpecError([f"{show_path(path)}{where}: not valid YAML ({getattr(exc, 'problem', exc)})"]) from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise SpecError([f"{show_path(path)}: a spec file must be a YAML mapping, got {type(data).__name__}"])
    return data


def build_spec(data: dict, *, source: str = "spec") -> Spec:
    """Validate a merged spec dict; every problem becomes one line ``field: what is wrong (allowed: ...)``."""
    try:
        return Spec.model_validate(data)
    except ValidationError as exc:
        raise SpecError(format_validation_error(exc), hint=f"see `tritongen spec --reference` ({source})") from None


def format_validation_error(exc: ValidationError) -> list[str]:
    lines: list[str] = []
    for err in exc.errors(include_url=False):
        msg = err.get("msg", "")
        if _CROSS_MARK in msg:
            lines.extend(msg.split(_CROSS_MARK, 1)[1].splitlines())
            continue
        loc = "".join(f"[{x}]" if isinstance(x, int) else f".{x}" for x in err.get("loc", ())).lstrip(".")
        if err.get("type") == "extra_forbidden":
            guess = _did_you_mean(list(err.get("loc", ())))
            lines.append(f"{loc}: unknown field{guess or ';'} check the spelling (`tritongen spec --reference` "
                         "lists every field)")
            continue
        lines.append(f"{loc or 'spec'}: {_describe(err)}")
    return lines


def _did_you_mean(loc: list) -> str:
    """'; did you mean X?' for an unknown field, from the fields of the section it is in ('' when nothing close)."""
    import difflib

    model: type[BaseModel] | None = Spec
    for part in loc[:-1]:
        field = model.model_fields.get(str(part)) if model else None
        model = _submodel(field.annotation) if field else None
    if model is None or not loc:
        return ""
    close = difflib.get_close_matches(str(loc[-1]), list(model.model_fields), n=1, cutoff=0.6)
    return f"; did you mean {close[0]}?" if close else ""  # the caller's next words follow


def _describe(err: dict) -> str:
    kind = err.get("type", "")
    value = err.get("input")
    ctx = err.get("ctx") or {}
    shown = shorten(value) if not isinstance(value, dict) else "a mapping"
    if isinstance(value, bool):
        shown = "true" if value else "false"
    if kind == "extra_forbidden":
        return "unknown field (check the spelling; `tritongen spec --reference` lists every field)"
    if kind == "missing":
        return "required field is missing"
    if kind == "enum":
        return f"{shown} is not allowed; allowed: {ctx.get('expected', '').replace(' or ', ', ')}"
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        op = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<", "less_than_equal": "<="}[kind]
        bound = next(iter(ctx.values()), "?")
        return f"{shown} must be {op} {bound}"
    if kind in ("string_too_long", "too_long"):
        limit = ctx.get("max_length", "?")
        return f"{shown} is longer than {limit} {'characters' if kind == 'string_too_long' else 'items'}"
    if kind == "string_pattern_mismatch":
        return f"{shown} does not match {ctx.get('pattern', '?')}"
    if kind.endswith("_parsing") or kind.endswith("_type"):
        expected = kind.split("_")[0]
        return f"{shown} is not a valid {expected}"
    if kind == "value_error":  # a validator's own message, already one line
        return str(ctx.get("error", err.get("msg", "invalid")))
    return f"{shown}: {err.get('msg', 'invalid')}"


def dump_spec(spec: Spec) -> dict:
    """A plain, YAML-friendly dict of the spec (enums as values, paths as strings)."""
    return spec.model_dump(mode="json")


def load_spec(
    model: str | None = None,
    *,
    spec_file: Path | list[Path] | None = None,
    options: dict[str, Any] | None = None,
    sets: list[str] | None = None,
) -> Spec:
    """Resolve a deployment spec: catalogue entry < ``spec_file`` (one, or several merged in order, e.g. a spec
    then a plan from `tritongen plan --write-spec`) < ``options`` (CLI flags, as dotted keys) < ``sets``
    (``--set key=value``). ``model`` is a catalogue name, or any name when the checkpoint is given (its
    config.json then supplies the shape facts)."""
    from . import catalog

    files = [spec_file] if isinstance(spec_file, (str, Path)) else list(spec_file or [])
    file_data: dict = {}
    for path in files:
        file_data = deep_merge(file_data, load_yaml_file(Path(path)))
    spec_file = files[-1] if files else None
    cli_data = apply_sets({}, [f"{k}={_yaml_scalar(v)}" for k, v in (options or {}).items() if v is not None])
    cli_data = apply_sets(cli_data, sets or [])
    if model is not None and name_problem(model):
        raise SpecError([f"model: {name_problem(model)}"], hint="see `tritongen models` for the catalogue's names")
    name = model or (file_data.get("model") or {}).get("name") or (cli_data.get("model") or {}).get("name")
    checkpoint = ((cli_data.get("model") or {}).get("checkpoint_dir")
                  or (file_data.get("model") or {}).get("checkpoint_dir"))
    if checkpoint is not None:
        try:
            _path_value(checkpoint)
        except ValueError as exc:
            raise SpecError([f"model.checkpoint_dir: {exc}"]) from None
    if name is not None and name_problem(name):
        # Before the catalogue lookup and the file system see it (a 10 MB name, a path).
        raise SpecError([f"model.name: {name_problem(name)}"])
    if not name:
        if checkpoint:
            # A folder name may hold anything (spaces, '+'); the model name becomes cache folder names.
            name = safe_name_from(Path(str(checkpoint)).name)
        else:
            raise SpecError(["model: give a catalogue model name (see `tritongen models`), a spec file with "
                             "model.name, or --checkpoint DIR"])
    base: dict = {}
    if name in catalog.model_names():
        base = catalog.model_entry(name)
    elif not checkpoint and not (file_data.get("model") or {}).get("architecture"):
        catalog.model_entry(name)  # raises the unknown-model error with suggestions
    merged = deep_merge(deep_merge(base, file_data), cli_data)
    # The positional MODEL is a command-line value, so it names the model over the catalogue and file.
    merged.setdefault("model", {})["name"] = model or merged["model"].get("name") or name
    if checkpoint and Path(str(checkpoint)).joinpath("config.json").is_file():
        facts = catalog.model_info_from_checkpoint(Path(str(checkpoint)))
        # Facts from the checkpoint fill what the catalogue/spec did not say; an explicit value still wins.
        explicit = deep_merge(file_data.get("model") or {}, cli_data.get("model") or {})
        for key, value in facts.items():
            if key not in explicit:
                merged["model"][key] = value
    adopted = _adopt_engine(merged, explicit=_dotted_keys(deep_merge(file_data, cli_data)))
    spec = build_spec(merged, source=str(spec_file) if spec_file else "catalogue + options")
    spec._from_engine = adopted
    return spec


def _dotted_keys(data: dict, prefix: str = "") -> set[str]:
    """Every key of a nested mapping as a dotted path, sections included (``limits``, ``limits.max_seq_len``)."""
    keys = set()
    for key, value in data.items():
        keys.add(prefix + str(key))
        if isinstance(value, dict):
            keys |= _dotted_keys(value, f"{prefix}{key}.")
    return keys


def _adopt_engine(merged: dict, *, explicit: set[str]) -> dict[str, Any]:
    """A prebuilt engine (``engine.dir``) fixes its limits, parallelism, precision and gathered logits: take
    them from its config.json into ``merged`` for every field the user did not set (the catalogue's values are
    only defaults). An explicit value that disagrees is left for validation to report. Returns what was taken."""
    engine_dir = (merged.get("engine") or {}).get("dir")
    if not engine_dir or str(merged.get("route", Route.engine.value)) != Route.engine.value:
        return {}
    try:
        if not Path(str(engine_dir), "config.json").is_file():
            return {}  # the repo command refuses a missing engine; `spec` and `plan` may describe one to build
    except (OSError, ValueError):
        return {}
    from . import engine_config

    try:
        cfg = engine_config.load(Path(str(engine_dir)))
    except engine_config.EngineConfigError as exc:
        raise SpecError([f"engine.dir: {exc}"], hint="point --engine-dir at a trtllm-build output") from None
    adopted = {}
    for key, value in engine_config.spec_values(cfg).items():
        if key in explicit:
            continue
        node = merged
        *sections, leaf = key.split(".")
        for section in sections:
            node = node.setdefault(section, {})
        node[leaf] = value
        adopted[key] = value
    return adopted


def _yaml_scalar(value: Any) -> str:
    """Render a CLI option value so that parse_set reads back the same value."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(str(v) for v in value) + "]"
    if isinstance(value, Path):
        return yaml.safe_dump(str(value), default_style='"').strip()
    if isinstance(value, str):
        return yaml.safe_dump(value, default_style='"').strip()
    return str(value)
