"""Plan an engine build from a spec: download -> convert or quantize -> trtllm-build, as exact commands.

Every step is an argument list for a tool inside the pinned NGC ``tritonserver:<tag>-trtllm-python-py3`` image
(run through ``docker run``) or, with ``--local``, the same tool on this host. Each tool flag carries the spec
field it comes from (``Arg.source``), so a plan explains itself and tests can check every flag against the
recorded command-line interface of the pinned TensorRT-LLM version (catalog/trtllm_flags.yaml,
trtllm_tools.yaml, convert_scripts.yaml).

Nothing here runs anything except ``nvidia-smi`` (through :mod:`.gating`) to find the GPU.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from .. import catalog, proc, versions
from ..errors import GatingError
from ..resolve import draft_spec
from ..spec import KvCacheDtype, Precision, Spec, SpeculativeMethod
from . import cache, gating
from .gating import GpuTarget

# Paths inside the build container.
C_CHECKPOINT = "/checkpoint"
C_HEADS = "/heads"
C_WORK = "/work"
SHM_SIZE = "16g"
#: docker options TensorRT-LLM's docs use for builds: unlimited locked memory and a 64 MiB stack.
ULIMITS = ("memlock=-1", "stack=67108864")

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
_FP8_FMHA_FORMATS = (Precision.fp8, Precision.w4a8_awq, Precision.nvfp4)
_WEIGHT_ONLY = {Precision.int8_wo: "int8", Precision.int4_wo: "int4", Precision.int4_gptq: "int4_gptq"}
_SPEC_MODE = {
    SpeculativeMethod.draft_target: "draft_tokens_external",
    SpeculativeMethod.medusa: "medusa",
    SpeculativeMethod.eagle: "eagle",
    SpeculativeMethod.lookahead: "lookahead_decoding",
}


@dataclass(frozen=True)
class Mount:
    host: Path
    container: str
    readonly: bool

    def volume(self) -> str:
        return f"{self.host}:{self.container}" + (":ro" if self.readonly else "")


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


@dataclass
class EnginePlan:
    role: str  #: engine | draft | target
    spec: Spec
    gpu: GpuTarget
    image: str
    trtllm_version: str
    runner: str  #: docker | local
    material: dict
    entry: Path
    work: Path
    steps: list[Step]
    gpu_ids: list[int]
    user: str | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def cached(self) -> bool:
        return cache.is_complete(self.entry)

    @property
    def engine_out(self) -> Path:
        return self.work / ENGINE_SUBDIR

    def container_name(self, step: Step) -> str:
        return f"tritongen-build-{self.entry.name}-{step.name}"

    def env(self, step: Step) -> dict[str, str]:
        """Environment for a --local step: the GPUs the spec asks for (docker mode uses --gpus instead)."""
        if self.runner != "local" or not step.gpus:
            return {}
        return {"CUDA_VISIBLE_DEVICES": ",".join(str(g) for g in self.gpu_ids)}

    def shown(self, step: Step) -> str:
        """The command as a shell line, exactly as run (a --local step's environment as a prefix)."""
        prefix = "".join(f"{k}={v} " for k, v in self.env(step).items())
        return prefix + proc.format_command(self.argv(step))

    def argv(self, step: Step) -> list[str]:
        """The full command for ``step``: ``docker run ... IMAGE tool...`` or the tool itself (``--local``)."""
        if self.runner == "local":
            return step.tool_argv()
        out = ["docker", "run", "--rm", "--name", self.container_name(step)]
        if step.gpus:
            out += ["--gpus", '"device=' + ",".join(str(g) for g in self.gpu_ids) + '"']
        out += ["--shm-size", SHM_SIZE]
        for limit in ULIMITS:
            out += ["--ulimit", limit]
        if self.user:
            out += ["--user", self.user]
        out += ["-e", f"HOME={C_WORK}", "-e", f"HF_HOME={C_WORK}/.hf"]
        for name in step.pass_env:
            out += ["-e", name]  # value taken from the environment by docker; never on the command line
        for m in step.mounts:
            out += ["-v", m.volume()]
        out += ["-w", C_WORK, self.image]
        return out + step.tool_argv()


@dataclass
class BuildPlan:
    engines: list[EnginePlan]

    @property
    def target(self) -> EnginePlan:
        return self.engines[-1]


# -- paths -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Paths:
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


def _image_examples_prefix(version: str) -> str:
    """Where the image keeps TensorRT-LLM's examples/ (convert_scripts.yaml `image_examples_prefix`)."""
    if _version_tuple(version) >= (0, 19):
        return "/app/examples"
    raise GatingError(f"tritongen does not know where images with TensorRT-LLM {version} keep convert_checkpoint.py "
                      "(only 25.05+ images are mapped)",
                      hint="use container.image 25.06 or newer, or --local with --examples-dir")


def _family(spec: Spec) -> tuple[str, dict]:
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


# -- planning --------------------------------------------------------------------------------------------


def plan_build(spec: Spec, *, gpu: GpuTarget | None = None, runner: str = "docker", examples_dir: Path | None = None,
               user: str | None = None, work: Path | None = None) -> BuildPlan:
    """Plan every engine the spec needs (the draft first for draft-target), gated for ``gpu``."""
    versions.check_route_supported(spec)
    if spec.route.value != "engine":
        raise GatingError(f"route {spec.route.value!r} has no engine to build; `tritongen engine` is for route engine",
                          hint="drop --route, or use `tritongen repo` directly for the llmapi/cpu routes")
    if spec.engine.dir is not None:
        raise GatingError(f"engine.dir is set ({spec.engine.dir}): that names a prebuilt engine, there is nothing "
                          "to build", hint="drop --engine-dir; `tritongen engine` builds into the engine cache")
    gpu = gpu or gating.require(spec)
    engines = []
    if spec.decoding.speculative.method is SpeculativeMethod.draft_target:
        draft = draft_spec(spec)
        engines.append(plan_engine(draft, gpu=gpu, role="draft", runner=runner, examples_dir=examples_dir,
                                   user=user, draft_of=spec))
        engines.append(plan_engine(spec, gpu=gpu, role="target", runner=runner, examples_dir=examples_dir,
                                   user=user, work=work))
    else:
        engines.append(plan_engine(spec, gpu=gpu, role="engine", runner=runner, examples_dir=examples_dir,
                                   user=user, work=work))
    return BuildPlan(engines)


def plan_engine(spec: Spec, *, gpu: GpuTarget, role: str = "engine", runner: str = "docker",
                examples_dir: Path | None = None, user: str | None = None, work: Path | None = None,
                draft_of: Spec | None = None) -> EnginePlan:
    gating.check_precision(spec, gpu)
    _check_combination(spec, role)
    image, version = versions.resolve_container(spec)
    if not version:
        raise GatingError(f"container.image {image}: unknown TensorRT-LLM version (tag not in the version matrix)",
                          hint="set container.trtllm_version to the version inside the image")
    material = cache.key_material(spec, gpu=gpu, trtllm_version=version, role=role)
    entry = cache.engines_root() / cache.entry_name(spec, material)
    work = Path(work) if work else cache.tmp_root() / entry.name
    warnings = _version_warnings(version)
    sd = spec.decoding.speculative
    uses_heads = sd.heads_dir is not None and sd.method in (SpeculativeMethod.medusa, SpeculativeMethod.eagle)

    if runner == "local":
        if examples_dir is None:
            examples = "$TRTLLM_EXAMPLES"
            warnings.append("--local: give --examples-dir (TensorRT-LLM's examples/ checkout matching the installed "
                            "version); the plan shows it as $TRTLLM_EXAMPLES")
        else:
            examples = str(Path(examples_dir).absolute()).rstrip("/")
        paths = _Paths(checkpoint=str(spec.checkpoint_dir), work=str(work), examples=examples,
                       heads=str(sd.heads_dir) if uses_heads else None)
    else:
        examples = _image_examples_prefix(version)
        paths = _Paths(checkpoint=C_CHECKPOINT, work=C_WORK, examples=examples, heads=C_HEADS if uses_heads else None)

    steps: list[Step] = []
    ckpt_mount = Mount(spec.checkpoint_dir, C_CHECKPOINT, readonly=True)
    work_mount = Mount(work, C_WORK, readonly=False)
    heads_mounts = [Mount(Path(sd.heads_dir), C_HEADS, readonly=True)] if uses_heads else []

    download = _download_step(spec, runner, work_mount)
    if download is not None:
        steps.append(download)
    convert = _checkpoint_step(spec, paths, version)
    convert.mounts = [ckpt_mount, *heads_mounts, work_mount]
    steps.append(convert)
    build = _build_step(spec, paths, role=role, draft_of=draft_of)
    build.mounts = [work_mount]
    steps.append(build)
    return EnginePlan(role=role, spec=spec, gpu=gpu, image=image, trtllm_version=version, runner=runner,
                      material=material, entry=entry, work=work, steps=steps,
                      gpu_ids=spec.parallelism.resolved_gpu_ids, user=user, warnings=warnings)


def _version_warnings(version: str) -> list[str]:
    recorded = str(catalog.load("trtllm_flags.yaml").get("version"))
    if versions.same_release(version, recorded):
        return []
    return [f"the flags tritongen emits are recorded for TensorRT-LLM {recorded} (trtllm_flags.yaml); this image "
            f"has {version}: check them against `trtllm-build --help` in the image"]


def _check_combination(spec: Spec, role: str) -> None:
    """Combinations the tools reject (or tritongen does not plan), found before anything runs."""
    fmt = spec.precision.format
    kv = spec.precision.resolved_kv_dtype
    sd = spec.decoding.speculative
    method = sd.method
    family, _ = _family(spec)
    par = spec.parallelism
    draft_len = spec.resolved_max_draft_len
    if spec.decoding.gather_context_logits and draft_len > 0:
        raise GatingError("decoding.gather_context_logits cannot be combined with speculative decoding "
                          f"(max_draft_len {draft_len}): trtllm-build rejects it",
                          hint="turn gather_context_logits off, or drop decoding.speculative.method")
    if par.ep > 1 and _uses_quantize(spec):
        raise GatingError(f"parallelism.ep={par.ep} with precision {fmt.value}/KV {kv.value}: quantize.py has no "
                          "expert-parallel option", hint="use ep=1 (experts split by tensor parallelism), or a "
                          "convert-time precision (bf16, fp16, int8_wo, int4_wo)")
    if family in ("gemma", "phi") and par.pp > 1:
        raise GatingError(f"parallelism.pp={par.pp}: the {family} converter does not support pipeline parallelism",
                          hint="use tp only (pp=1)")
    if fmt is Precision.w8a8_sq and family not in ("llama", "qwen", "gpt", "gemma"):
        raise GatingError(f"precision.format=w8a8_sq: the {family} converter has no SmoothQuant option")
    if fmt is Precision.w8a8_sq and kv is KvCacheDtype.fp8:
        raise GatingError("precision w8a8_sq with an FP8 KV cache is not planned by tritongen "
                          "(SmoothQuant runs through convert_checkpoint.py, which cannot calibrate FP8 KV)",
                          hint="use --kv-dtype int8 or auto with SmoothQuant")
    if fmt is Precision.int4_gptq:
        if family not in ("llama", "qwen"):
            raise GatingError(f"precision.format=int4_gptq: the {family} converter has no GPTQ option")
        if kv is KvCacheDtype.fp8:
            raise GatingError("precision int4_gptq with an FP8 KV cache is not planned by tritongen (GPTQ loads a "
                              "pre-quantized checkpoint through convert_checkpoint.py, which cannot calibrate FP8 KV)",
                              hint="use --kv-dtype int8 or auto with GPTQ")
    if kv in (KvCacheDtype.int8,) and (spec.kv_cache.enable_reuse or spec.scheduling.enable_chunked_context
                                       or method in (SpeculativeMethod.draft_target, SpeculativeMethod.eagle)):
        raise GatingError("precision.kv_cache_dtype=int8 cannot be used with paged context FMHA, which KV-cache reuse, "
                          "chunked context, EAGLE and draft-target need (trtllm-build turns it off for INT8 KV)",
                          hint="use --kv-dtype fp8 (Ada+) or auto, or turn kv_cache.enable_reuse / chunked context off")
    if kv is KvCacheDtype.fp8 and fmt not in _FP8_FMHA_FORMATS and needs_paged_ctx(spec, role):
        raise GatingError(f"an FP8 KV cache with precision {fmt.value} disables paged context FMHA in trtllm-build "
                          "(it needs FP8 context FMHA, i.e. fp8/w4a8_awq/nvfp4 weights), but KV-cache reuse, "
                          "chunked context or the speculative method need it",
                          hint="use --precision fp8 with --kv-dtype fp8, or keep the KV cache in fp16/bf16")
    if method is SpeculativeMethod.medusa:
        if fmt not in (Precision.fp16, Precision.bf16, Precision.int8_wo, Precision.int4_wo, Precision.fp8):
            raise GatingError(f"medusa with precision {fmt.value} is not planned (medusa's converter takes fp16/bf16 "
                              "and int8/int4 weight-only; fp8 goes through quantize.py)")
        if family != "llama":
            raise GatingError(f"medusa: TensorRT-LLM's medusa converter handles Llama-family base models, not {family}")
    if method is SpeculativeMethod.eagle:
        if fmt not in (Precision.fp16, Precision.bf16) or kv not in (KvCacheDtype.fp16, KvCacheDtype.bf16):
            raise GatingError(f"eagle supports fp16/bf16 only (examples/eagle README support matrix), not "
                              f"{fmt.value} with KV {kv.value}")
        if par.pp > 1:
            raise GatingError("eagle does not support pipeline parallelism (examples/eagle/convert_checkpoint.py "
                              "asserts pp_size == 1)", hint="use tp only")
        if spec.limits.max_batch_size > 512 or draft_len > 256:
            raise GatingError(f"eagle: trtllm-build requires max_batch_size <= 512 and max_draft_len <= 256 (got "
                              f"{spec.limits.max_batch_size} and {draft_len})")
        if family != "llama":
            raise GatingError(f"eagle: TensorRT-LLM's EAGLE converter handles Llama-family base models, not {family}")
    if method in (SpeculativeMethod.medusa, SpeculativeMethod.eagle) and sd.heads_dir is None:
        raise GatingError(f"decoding.speculative.heads_dir: {method.value} needs the checkpoint with its heads")


def needs_paged_ctx(spec: Spec, role: str) -> bool:
    return cache.needs_paged_context_fmha(spec, role=role)


def _uses_quantize(spec: Spec) -> bool:
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


def _download_step(spec: Spec, runner: str, work_mount: Mount) -> Step | None:
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


def _checkpoint_step(spec: Spec, paths: _Paths, version: str) -> Step:
    method = spec.decoding.speculative.method
    if method is SpeculativeMethod.eagle:
        return _eagle_step(spec, paths)
    if _uses_quantize(spec):
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


def _convert_step(spec: Spec, paths: _Paths, version: str) -> Step:
    family, _ = _family(spec)
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


def _quantize_step(spec: Spec, paths: _Paths) -> Step:
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


def _medusa_step(spec: Spec, paths: _Paths) -> Step:
    sd = spec.decoding.speculative
    fmt = spec.precision.format
    args = [
        Arg("--model_dir", paths.checkpoint, "model.checkpoint_dir"),
        Arg("--medusa_model_dir", paths.heads, "decoding.speculative.heads_dir"),
        Arg("--output_dir", paths.out(), "tritongen (work dir)"),
        _dtype_arg(spec),
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


def _eagle_step(spec: Spec, paths: _Paths) -> Step:
    args = [
        Arg("--model_dir", paths.checkpoint, "model.checkpoint_dir"),
        Arg("--eagle_model_dir", paths.heads, "decoding.speculative.heads_dir"),
        Arg("--output_dir", paths.out(), "tritongen (work dir)"),
        _dtype_arg(spec),
        Arg("--max_draft_len", str(spec.resolved_max_draft_len), "decoding.speculative.max_draft_len"),
        *_parallel_args(spec),
    ]
    return Step(name="convert", tool="convert:eagle",
                title=f"eagle convert_checkpoint.py: base model + EAGLE draft network, {spec.precision.format.value}",
                program=["python3", _shared_script(paths.examples, "eagle")], args=args, mounts=[])


def _build_step(spec: Spec, paths: _Paths, *, role: str, draft_of: Spec | None) -> Step:
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
    if fmt in _FP8_FMHA_FORMATS and kv is KvCacheDtype.fp8:
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


# -- showing a plan --------------------------------------------------------------------------------------


def describe_precision(spec: Spec) -> str:
    fmt = spec.precision.format.value
    kv = spec.precision.resolved_kv_dtype.value
    return f"{fmt} (KV {kv})"


def format_plan(bplan: BuildPlan) -> str:
    """The dry-run text: per engine its image, entry and work dir, then per step the mounts, the exact command
    and where each tool flag comes from."""
    lines: list[str] = []
    n = len(bplan.engines)
    for i, ep in enumerate(bplan.engines, 1):
        spec = ep.spec
        par = spec.parallelism
        head = f"engine {i}/{n} ({ep.role})" if n > 1 else "engine"
        lines.append(f"# {head}: {spec.model.name}, {describe_precision(spec)}, tp={par.tp} pp={par.pp}"
                     + (f" ep={par.ep}" if par.ep > 1 else "") + f", for {ep.gpu.label}, GPUs {ep.gpu_ids}")
        lines.append(f"#   TensorRT-LLM {ep.trtllm_version} in {ep.image}" if ep.runner == "docker"
                     else f"#   TensorRT-LLM {ep.trtllm_version} on this host (--local)")
        state = "cached: nothing to do" if ep.cached else "not built yet"
        if not ep.cached and ep.steps and ep.steps[0].name == "download":
            state += "; the final name is set after the download: the checkpoint's config.json is part of the key"
        lines.append(f"#   engine: {ep.entry} ({state})")
        for w in ep.warnings:
            lines.append(f"#   warning: {w}")
        if ep.cached:
            lines.append("")
            continue
        lines.append(f"#   work:   {ep.work} (renamed to the engine dir when every step succeeded)")
        lines.append("")
        for j, step in enumerate(ep.steps, 1):
            lines.append(f"[{j}/{len(ep.steps)}] {step.name}: {step.title}")
            if ep.runner == "docker":
                for m in step.mounts:
                    lines.append(f"  mount: {m.host} -> {m.container} ({'ro' if m.readonly else 'rw'})")
            lines.append(f"  $ {ep.shown(step)}")
            for a in step.args:
                shown = " ".join(a.tokens())
                lines.append(f"    {shown:<50} <- {a.source}")
            if step.finish:
                lines.append(f"  then: rename {step.finish[0]} -> {step.finish[1]}")
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def default_user() -> str | None:
    """uid:gid for ``docker run --user`` so the files the build writes belong to the caller."""
    if hasattr(os, "getuid"):
        return f"{os.getuid()}:{os.getgid()}"
    return None
