"""Plan an engine build from a spec: which engines (the draft first for draft-target), for which GPU and
image, and their steps (:mod:`.steps`) as exact commands.

Every step is an argument list for a tool inside the pinned NGC ``tritonserver:<tag>-trtllm-python-py3`` image
(run through ``docker run``) or, with ``--local``, the same tool on this host.

Nothing here runs anything except ``nvidia-smi`` (through :mod:`.gating`) to find the GPU.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from .. import proc, versions
from ..errors import GatingError
from ..resolve import draft_spec
from ..runtime.container import ContainerRun, Mount, docker_run_args
from ..spec import Spec, SpeculativeMethod
from . import cache, gating
from . import lora as lora_steps
from .combinations import check_combination, version_warnings
from .gating import GpuTarget
from .steps import (
    C_CHECKPOINT,
    C_HEADS,
    C_WORK,
    ENGINE_SUBDIR,
    Step,
    StepPaths,
    build_step,
    checkpoint_step,
    download_step,
    image_examples_prefix,
)

SHM_SIZE = "16g"


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
    def in_container(self) -> bool:
        """The steps run in the image through docker (else on this host: ``--local``)."""
        return self.runner == "docker"

    @property
    def engine_out(self) -> Path:
        return self.work / ENGINE_SUBDIR

    def container_name(self, step: Step) -> str:
        return f"tritongen-build-{self.entry.name}-{step.name}"

    def env(self, step: Step) -> dict[str, str]:
        """Environment for a --local step: the GPUs the spec asks for (docker mode uses --gpus instead)."""
        if self.in_container or not step.gpus:
            return {}
        return {"CUDA_VISIBLE_DEVICES": ",".join(str(g) for g in self.gpu_ids)}

    def shown(self, step: Step) -> str:
        """The command as a shell line, exactly as run (a --local step's environment as a prefix)."""
        prefix = "".join(f"{k}={v} " for k, v in self.env(step).items())
        return prefix + proc.format_command(self.argv(step))

    def argv(self, step: Step) -> list[str]:
        """The full command for ``step``: ``docker run ... IMAGE tool...`` or the tool itself (``--local``)."""
        if not self.in_container:
            return step.tool_argv()
        run = ContainerRun(name=self.container_name(step), image=self.image, command=step.tool_argv(),
                           mounts=step.mounts, gpus=self.gpu_ids if step.gpus else [], shm_size=SHM_SIZE,
                           user=self.user, env={"HOME": C_WORK, "HF_HOME": f"{C_WORK}/.hf"},
                           pass_env=step.pass_env, workdir=C_WORK, remove=True, short_flags=True)
        return docker_run_args(run)


@dataclass
class BuildPlan:
    engines: list[EnginePlan]

    @property
    def target(self) -> EnginePlan:
        return self.engines[-1]



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
    check_combination(spec, role)
    image, version = versions.resolve_container(spec)
    if not version:
        raise GatingError(f"container.image {image}: unknown TensorRT-LLM version (tag not in the version matrix)",
                          hint="set container.trtllm_version to the version inside the image")
    material = cache.key_material(spec, gpu=gpu, trtllm_version=version, role=role)
    entry = cache.engines_root() / cache.entry_name(spec, material)
    work = Path(work) if work else cache.tmp_root() / entry.name
    warnings = version_warnings(version)
    sd = spec.decoding.speculative
    uses_heads = sd.heads_dir is not None and sd.method in (SpeculativeMethod.medusa, SpeculativeMethod.eagle)

    if runner == "local":
        if examples_dir is None:
            examples = "$TRTLLM_EXAMPLES"
            warnings.append("--local: give --examples-dir (TensorRT-LLM's examples/ checkout matching the installed "
                            "version); the plan shows it as $TRTLLM_EXAMPLES")
        else:
            examples = str(Path(examples_dir).absolute()).rstrip("/")
        paths = StepPaths(checkpoint=str(spec.checkpoint_dir), work=str(work), examples=examples,
                       heads=str(sd.heads_dir) if uses_heads else None)
    else:
        examples = image_examples_prefix(version)
        paths = StepPaths(checkpoint=C_CHECKPOINT, work=C_WORK, examples=examples, heads=C_HEADS if uses_heads else None)

    steps: list[Step] = []
    ckpt_mount = Mount(spec.checkpoint_dir, C_CHECKPOINT, readonly=True)
    work_mount = Mount(work, C_WORK, readonly=False)
    heads_mounts = [Mount(Path(sd.heads_dir), C_HEADS, readonly=True)] if uses_heads else []

    download = download_step(spec, runner, work_mount)
    if download is not None:
        steps.append(download)
    convert = checkpoint_step(spec, paths, version)
    convert.mounts = [ckpt_mount, *heads_mounts, work_mount]
    steps.append(convert)
    build = build_step(spec, paths, role=role, draft_of=draft_of)
    build.mounts = [work_mount]
    steps.append(build)
    lora_steps.extend_plan(spec, role, runner == "local", paths, work_mount, build, steps)
    return EnginePlan(role=role, spec=spec, gpu=gpu, image=image, trtllm_version=version, runner=runner,
                      material=material, entry=entry, work=work, steps=steps,
                      gpu_ids=spec.parallelism.resolved_gpu_ids, user=user, warnings=warnings)



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
        lines.append(f"#   TensorRT-LLM {ep.trtllm_version} in {ep.image}" if ep.in_container
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
            if ep.in_container:
                for m in step.mounts:
                    lines.append(f"  mount: {m.source} -> {m.target} ({'ro' if m.readonly else 'rw'})")
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
