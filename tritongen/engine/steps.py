"""The steps of an engine build, download -> convert or quantize -> trtllm-build, as exact tool commands.

Each tool flag carries the spec field it comes from (``Arg.source``), so a build explains itself and tests can
check every flag against the recorded command-line interface of the pinned TensorRT-LLM version
(catalog/trtllm_flags.yaml, trtllm_tools.yaml, convert_scripts.yaml).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from .. import catalog
from ..errors import GatingError
from ..runtime.container import Mount
from ..spec import KvCacheDtype, Precision, Spec, SpeculativeMethod
from . import cache

# Paths inside the build container.
C_CHECKPOINT = "/checkpoint"
C_HEADS = "/heads"
C_WORK = "/work"

TLLM_CHECKPOINT = "tllm_checkpoint"
ENGINE_SUBDIR = "engine"

_DTYPE = {"fp16": "float16", "bf16": "bfloat16"}
#: precision.format -> quantize.py --qformat (ModelOpt post-training quantization).
_QFORMAT = {
    Precision.fp8: "fp8",
    Precision.int4_awq: "int4_awq",
    Precision.w4a8_awq: "w4a8_awq",
    Precision.nvfp4: "nvfp4",
    Precision.int8_wo: "int8_wo",
    Precision.int4_wo: "int4_wo",
    Precision.fp16: "full_prec",
    Precision.bf16: "full_prec",
}
#: Formats that can only be produced by quantize.py (calibrated).
_NEEDS_QUANTIZE = (Precision.fp8, Precision.int4_awq, Precision.w4a8_awq, Precision.nvfp4)
#: Formats whose FP8 context FMHA trtllm-build keeps (builder.py: FP8, W4A8_AWQ, NVFP4 on SM >= 89).
FP8_FMHA_FORMATS = (Precision.fp8, Precision.w4a8_awq, Precision.nvfp4)
_WEIGHT_ONLY = {Precision.int8_wo: "int8", Precision.int4_wo: "int4", Precision.int4_gptq: "int4_gptq"}
_SPEC_MODE = {
    SpeculativeMethod.draft_target: "draft_tokens_external",
    SpeculativeMethod.medusa: "medusa",
    SpeculativeMethod.eagle: "eagle",
    SpeculativeMethod.lookahead: "lookahead_decoding",
}



@dataclass(frozen=True)
class Arg:
    """One flag of a tool command and the spec field(s) it is derived from."""

    flag: str
    value: str | None  #: None for a store_true switch
    source: str

    def tokens(self) -> list[str]:
        return [self.flag] if self.value is None else [self.flag, self.value]


@dataclass
class Step:
    name: str  #: download | convert | quantize | build
    tool: str  #: hf-download | convert:<family> | quantize | trtllm-build (what the flag checks look up)
    title: str
    program: list[str]
    args: list[Arg]
    mounts: list[Mount]
    gpus: bool = True
    pass_env: tuple[str, ...] = ()
    #: (from, to): host-side rename after the step succeeded (download into a .partial dir, then rename).
    finish: tuple[Path, Path] | None = None

    def tool_argv(self) -> list[str]:
        out = list(self.program)
        for a in self.args:
            out += a.tokens()
        return out



# -- paths -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StepPaths:
    checkpoint: str
    heads: str | None
    work: str
    examples: str

    def out(self) -> str:
        return f"{self.work}/{TLLM_CHECKPOINT}"

    def engine(self) -> str:
        return f"{self.work}/{ENGINE_SUBDIR}"


def _version_tuple(version: str) -> tuple[int, ...]:
    nums = re.findall(r"\d+", version)
    return tuple(int(n) for n in nums[:3])


def _convert_layout(version: str) -> str:
    """examples/ layout of the TensorRT-LLM release (convert_scripts.yaml `layouts`)."""
    v = _version_tuple(version)
    if v >= (1, 3):
        raise GatingError(f"TensorRT-LLM {version} has no trtllm-build/convert_checkpoint.py (the TensorRT-engine "
                          "flow ends with 1.2.x)", hint="use container.image 26.07 or older for the engine route")
    if v < (0, 9):
        raise GatingError(f"TensorRT-LLM {version} is older than tritongen supports (0.10+)")
    return "flat" if v < (0, 20) else "models_core"


def image_examples_prefix(version: str) -> str:
    """Where the image keeps TensorRT-LLM's examples/ (convert_scripts.yaml `image_examples_prefix`)."""
    if _version_tuple(version) >= (0, 19):
        return "/app/examples"
    raise GatingError(f"tritongen does not know where images with TensorRT-LLM {version} keep convert_checkpoint.py "
                      "(only 25.05+ images are mapped)",
                      hint="use container.image 25.06 or newer, or --local with --examples-dir")


def family_of(spec: Spec) -> tuple[str, dict]:
    arch = spec.model.architecture
    table = catalog.load("convert_scripts.yaml")["architectures"]
    row = table.get(arch)
    if row is None:
        known = ", ".join(a for a in table if a != "MedusaForCausalLM")
        raise GatingError(f"model.architecture {arch}: no TensorRT-LLM converter is recorded for it (known: {known})",
                          hint="add it to tritongen/catalog/convert_scripts.yaml with its source, or use the llmapi route")
    return row["family"], row


def _convert_script(examples: str, family: str, version: str) -> str:
    layouts = catalog.load("convert_scripts.yaml")["layouts"]
    template = layouts[_convert_layout(version)]["template"]
    return f"{examples}/{template.removeprefix('examples/').format(family=family)}"


def _shared_script(examples: str, name: str) -> str:
    rel = catalog.load("convert_scripts.yaml")["layouts"]["shared"][name]
    return f"{examples}/{rel.removeprefix('examples/')}"



# -- the steps -------------------------------------------------------------------------------------------


def needs_paged_ctx(spec: Spec, role: str) -> bool:
    return cache.needs_paged_context_fmha(spec, role=role)


def uses_quantize(spec: Spec) -> bool:
    """quantize.py (ModelOpt calibration) produces the checkpoint; else convert_checkpoint.py."""
    fmt = spec.precision.format
    kv = spec.precision.resolved_kv_dtype
    if spec.decoding.speculative.method is SpeculativeMethod.eagle:
        return False
    if fmt in _NEEDS_QUANTIZE:
        return True
    if fmt in (Precision.w8a8_sq, Precision.int4_gptq):
        return False
    return kv in (KvCacheDtype.fp8, KvCacheDtype.int8)


def download_step(spec: Spec, runner: str, work_mount: Mount) -> Step | None:
    ckpt = spec.checkpoint_dir
    if (ckpt / "config.json").is_file():
        return None
    if not spec.model.hf_id:
        raise GatingError(f"model.checkpoint_dir {ckpt} has no config.json and model.hf_id is not set, so there is "
                          "nothing to download", hint="give --checkpoint DIR with a Hugging Face checkpoint")
    partial = ckpt.with_name(ckpt.name + ".partial")
    local_dir = str(partial) if runner == "local" else C_CHECKPOINT
    return Step(
        name="download",
        tool="hf-download",
        title=f"{spec.model.hf_id} from Hugging Face (HF_TOKEN is passed through from the environment, never shown)",
        program=["hf", "download", spec.model.hf_id],
        args=[Arg("--local-dir", local_dir, "model.checkpoint_dir")],
        mounts=[Mount(partial, C_CHECKPOINT, readonly=False), work_mount],
        gpus=False,
        pass_env=("HF_TOKEN",),
        finish=(partial, ckpt),
    )


def checkpoint_step(spec: Spec, paths: StepPaths, version: str) -> Step:
    method = spec.decoding.speculative.method
    if method is SpeculativeMethod.eagle:
        return _eagle_step(spec, paths)
    if uses_quantize(spec):
        return _quantize_step(spec, paths)
    if method is SpeculativeMethod.medusa:
        return _medusa_step(spec, paths)
    return _convert_step(spec, paths, version)


def _dtype_arg(spec: Spec) -> Arg:
    return Arg("--dtype", _DTYPE[spec.precision.resolved_dtype.value], "precision.dtype")


def _parallel_args(spec: Spec, *, workers: bool = True) -> list[Arg]:
    par = spec.parallelism
    args = [Arg("--tp_size", str(par.tp), "parallelism.tp"), Arg("--pp_size", str(par.pp), "parallelism.pp")]
    if workers and par.world_size > 1:
        args.append(Arg("--workers", str(par.world_size), "parallelism.tp x parallelism.pp"))
    return args


def _convert_step(spec: Spec, paths: StepPaths, version: str) -> Step:
    family, _ = family_of(spec)
    fmt = spec.precision.format
    kv = spec.precision.resolved_kv_dtype
    par = spec.parallelism
    script = _convert_script(paths.examples, family, version)
    if family == "gemma":
        args = [
            Arg("--ckpt-type", "hf", "model.checkpoint_dir (a Hugging Face checkpoint)"),
            Arg("--model-dir", paths.checkpoint, "model.checkpoint_dir"),
            Arg("--output-model-dir", paths.out(), "tritongen (work dir)"),
            _dtype_arg(spec),
            Arg("--world-size", str(par.tp), "parallelism.tp"),
        ]
    else:
        args = [
            Arg("--model_dir", paths.checkpoint, "model.checkpoint_dir"),
            Arg("--output_dir", paths.out(), "tritongen (work dir)"),
            _dtype_arg(spec),
            *_parallel_args(spec),
        ]
        if par.ep > 1:
            args += [Arg("--moe_tp_size", str(par.tp // par.ep), "parallelism.tp / parallelism.ep"),
                     Arg("--moe_ep_size", str(par.ep), "parallelism.ep")]
    what = fmt.value
    if fmt in _WEIGHT_ONLY:
        args += [Arg("--use_weight_only", None, "precision.format"),
                 Arg("--weight_only_precision", _WEIGHT_ONLY[fmt], "precision.format")]
        if fmt is Precision.int4_gptq:
            args += [Arg("--per_group", None, "precision.format"),
                     Arg("--group_size", str(spec.precision.awq_block_size), "precision.awq_block_size")]
        what = {"int8": "INT8 weight-only", "int4": "INT4 weight-only",
                "int4_gptq": "INT4 GPTQ (pre-quantized)"}[_WEIGHT_ONLY[fmt]]
    elif fmt is Precision.w8a8_sq:
        args += [Arg("--smoothquant", _num(spec.precision.smoothquant_alpha), "precision.smoothquant_alpha"),
                 Arg("--per_channel", None, "precision.format"),
                 Arg("--per_token", None, "precision.format")]
        what = f"INT8 SmoothQuant (alpha {_num(spec.precision.smoothquant_alpha)})"
    else:
        what = _DTYPE.get(fmt.value, fmt.value)
    if kv is KvCacheDtype.int8:
        args.append(Arg("--int8_kv_cache", None, "precision.kv_cache_dtype"))
        what += ", INT8 KV cache"
    return Step(name="convert", tool=f"convert:{family}", title=f"{family} convert_checkpoint.py: {what}, "
                f"tp={par.tp} pp={par.pp}" + (f" ep={par.ep}" if par.ep > 1 else ""),
                program=["python3", script], args=args, mounts=[])


def _num(value: float) -> str:
    return f"{value:g}"


def _quantize_step(spec: Spec, paths: StepPaths) -> Step:
    fmt = spec.precision.format
    kv = spec.precision.resolved_kv_dtype
    qformat = _QFORMAT[fmt]
    args = [
        Arg("--model_dir", paths.checkpoint, "model.checkpoint_dir"),
        Arg("--output_dir", paths.out(), "tritongen (work dir)"),
        _dtype_arg(spec),
        Arg("--qformat", qformat, "precision.format"),
    ]
    if kv in (KvCacheDtype.fp8, KvCacheDtype.int8):
        args.append(Arg("--kv_cache_dtype", kv.value, "precision.kv_cache_dtype"))
    args.append(Arg("--calib_size", str(spec.precision.calib_size), "precision.calib_size"))
    if fmt in (Precision.int4_awq, Precision.w4a8_awq):
        args.append(Arg("--awq_block_size", str(spec.precision.awq_block_size), "precision.awq_block_size"))
    args += _parallel_args(spec, workers=False)
    sd = spec.decoding.speculative
    if sd.method is SpeculativeMethod.medusa:
        args += [Arg("--medusa_model_dir", paths.heads, "decoding.speculative.heads_dir"),
                 Arg("--num_medusa_heads", str(sd.num_medusa_heads), "decoding.speculative.num_medusa_heads"),
                 Arg("--max_draft_len", str(spec.resolved_max_draft_len), "decoding.speculative.max_draft_len")]
    label = {"full_prec": "weights unquantized"}.get(qformat, f"{qformat} weights")
    kv_label = f", {kv.value.upper()} KV cache" if kv in (KvCacheDtype.fp8, KvCacheDtype.int8) else ""
    return Step(name="quantize", tool="quantize",
                title=f"quantize.py (ModelOpt): {label}{kv_label}, {spec.precision.calib_size} calibration samples",
                program=["python3", _shared_script(paths.examples, "quantize")], args=args, mounts=[],
                pass_env=("HF_TOKEN",))


def _with_heads_args(spec: Spec, paths: StepPaths, heads_flag: str) -> list[Arg]:
    """The arguments the medusa and eagle converters open with: base model, heads checkpoint, output, dtype."""
    return [
        Arg("--model_dir", paths.checkpoint, "model.checkpoint_dir"),
        Arg(heads_flag, paths.heads, "decoding.speculative.heads_dir"),
        Arg("--output_dir", paths.out(), "tritongen (work dir)"),
        _dtype_arg(spec),
    ]


def _medusa_step(spec: Spec, paths: StepPaths) -> Step:
    sd = spec.decoding.speculative
    fmt = spec.precision.format
    args = [
        *_with_heads_args(spec, paths, "--medusa_model_dir"),
        Arg("--num_medusa_heads", str(sd.num_medusa_heads), "decoding.speculative.num_medusa_heads"),
        Arg("--max_medusa_token_len", str(spec.resolved_max_draft_len), "decoding.speculative.max_draft_len"),
        *_parallel_args(spec),
    ]
    if fmt in (Precision.int8_wo, Precision.int4_wo):
        args += [Arg("--use_weight_only", None, "precision.format"),
                 Arg("--weight_only_precision", _WEIGHT_ONLY[fmt], "precision.format")]
    return Step(name="convert", tool="convert:medusa",
                title=f"medusa convert_checkpoint.py: base model + {sd.num_medusa_heads} Medusa heads, {fmt.value}",
                program=["python3", _shared_script(paths.examples, "medusa")], args=args, mounts=[])


def _eagle_step(spec: Spec, paths: StepPaths) -> Step:
    args = [
        *_with_heads_args(spec, paths, "--eagle_model_dir"),
        Arg("--max_draft_len", str(spec.resolved_max_draft_len), "decoding.speculative.max_draft_len"),
        *_parallel_args(spec),
    ]
    return Step(name="convert", tool="convert:eagle",
                title=f"eagle convert_checkpoint.py: base model + EAGLE draft network, {spec.precision.format.value}",
                program=["python3", _shared_script(paths.examples, "eagle")], args=args, mounts=[])


def build_step(spec: Spec, paths: StepPaths, *, role: str, draft_of: Spec | None) -> Step:
    fmt = spec.precision.format
    kv = spec.precision.resolved_kv_dtype
    lim, kvc, dec = spec.limits, spec.kv_cache, spec.decoding
    sd = dec.speculative
    args = [
        Arg("--checkpoint_dir", paths.out(), "tritongen (previous step's output)"),
        Arg("--output_dir", paths.engine(), "tritongen (work dir)"),
        Arg("--gemm_plugin", "nvfp4" if fmt is Precision.nvfp4 else "auto", "precision.format"),
        Arg("--gpt_attention_plugin", "auto", "route (in-flight batching needs the attention plugin)"),
        Arg("--max_batch_size", str(lim.max_batch_size), "limits.max_batch_size"),
        Arg("--max_input_len", str(lim.max_input_len), "limits.max_input_len"),
        Arg("--max_seq_len", str(lim.max_seq_len), "limits.max_seq_len"),
        Arg("--max_num_tokens", str(lim.max_num_tokens), "limits.max_num_tokens"),
        Arg("--max_beam_width", str(lim.max_beam_width), "limits.max_beam_width"),
        Arg("--kv_cache_type", "paged" if kvc.paged else "continuous", "kv_cache.paged"),
        Arg("--tokens_per_block", str(kvc.tokens_per_block), "kv_cache.tokens_per_block"),
    ]
    paged_ctx = needs_paged_ctx(spec, role)
    why = ("decoding.speculative.method (draft-target)" if role == "draft" else
           "kv_cache.enable_reuse, scheduling.enable_chunked_context, decoding.speculative.method")
    args.append(Arg("--use_paged_context_fmha", "enable" if paged_ctx else "disable", why))
    if fmt in FP8_FMHA_FORMATS and kv is KvCacheDtype.fp8:
        args.append(Arg("--use_fp8_context_fmha", "enable", "precision.format, precision.kv_cache_dtype"))
    if dec.gather_context_logits:
        args.append(Arg("--gather_context_logits", None, "decoding.gather_context_logits"))
    if dec.gather_generation_logits:
        source = ("decoding.speculative.acceptance_threshold (of the target)" if role == "draft"
                  else "decoding.gather_generation_logits")
        args.append(Arg("--gather_generation_logits", None, source))
    elif sd.method is SpeculativeMethod.draft_target and sd.acceptance_threshold is not None:
        args.append(Arg("--gather_generation_logits", None, "decoding.speculative.acceptance_threshold"))
    if sd.method in _SPEC_MODE and role != "draft":
        args += [Arg("--speculative_decoding_mode", _SPEC_MODE[sd.method], "decoding.speculative.method"),
                 Arg("--max_draft_len", str(spec.resolved_max_draft_len), "decoding.speculative.max_draft_len")]
    multiple_profiles = getattr(spec.engine, "multiple_profiles", None)
    if multiple_profiles is not None:
        args.append(Arg("--multiple_profiles", "enable" if multiple_profiles else "disable",
                        "engine.multiple_profiles"))
    if spec.parallelism.world_size > 1:
        args.append(Arg("--workers", str(spec.parallelism.world_size), "parallelism.tp x parallelism.pp"))
    ranks = spec.parallelism.world_size
    mode = f", {_SPEC_MODE[sd.method]}" if sd.method in _SPEC_MODE and role != "draft" else ""
    return Step(name="build", tool="trtllm-build",
                title=f"trtllm-build: {ranks} rank engine{'s' if ranks > 1 else ''}{mode}",
                program=["trtllm-build"], args=args, mounts=[])

