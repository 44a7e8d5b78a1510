"""The engine build's LoRA part (spec ``lora``): trtllm-build's LoRA plugin flags and one conversion step per
adapter, planned with the other build steps so that ``tritongen engine --dry-run`` shows them.

- trtllm-build gets ``--lora_plugin auto --lora_dir <adapters> --lora_ckpt_source hf --max_lora_rank R
  --lora_target_modules ...`` (catalog/trtllm_flags.yaml, TensorRT-LLM 1.2.1).
- ``examples/hf_lora_convert.py`` turns each Hugging Face adapter into the C++ runtime's tensors, written to
  ``<engine>/lora_tasks/<task id>/`` - the layout the backend's ``lora_prefetch_dir`` loads at start-up
  (PeftCacheManager::prefetchLoraWeights: one folder per task id, named by the id). trtllm-build's own copy of
  the adapters goes to ``<engine>/lora/<i>``, hence the other folder name.

The draft engine of draft-target decoding gets no LoRA: the adapters belong to the target model.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..runtime.container import Mount
from ..spec import Spec
from .steps import Arg, Step, StepPaths, _shared_script

#: Where each adapter is mounted in the build container (read-only): /lora/<name>.
C_LORA = "/lora"
#: The engine's folder of converted adapters (the tensorrt_llm model's lora_prefetch_dir).
TASKS_SUBDIR = "lora_tasks"
#: precision.dtype -> hf_lora_convert.py --storage-type (the adapter tensors match the engine's dtype).
_STORAGE = {"fp16": "float16", "bf16": "bfloat16"}


@dataclass(frozen=True)
class ListArg(Arg):
    """A flag with several values (argparse nargs="+"): given once, all values after it."""

    rest: tuple[str, ...] = ()

    def tokens(self) -> list[str]:
        return [self.flag, str(self.value), *self.rest]


def applies(spec: Spec, role: str) -> bool:
    return spec.lora.enabled and role != "draft"


def adapter_paths(spec: Spec, local: bool) -> dict[str, str]:
    """Adapter name -> its folder as the build tools see it (the host path with --local, else its mount)."""
    return {name: str(folder) if local else f"{C_LORA}/{name}" for name, folder in spec.lora.adapters.items()}


def mounts(spec: Spec) -> list[Mount]:
    return [Mount(Path(folder), f"{C_LORA}/{name}", readonly=True) for name, folder in spec.lora.adapters.items()]


def build_args(spec: Spec, dirs: dict[str, str]) -> list[Arg]:
    """trtllm-build's LoRA flags. --lora_dir lets the builder read each adapter's config; the explicit rank and
    modules make the engine take any adapter within them, also ones converted later (sent with lora_weights)."""
    lora = spec.lora
    names = list(dirs)
    modules = lora.resolved_target_modules
    return [
        Arg("--lora_plugin", "auto", "lora.adapters"),
        ListArg("--lora_dir", dirs[names[0]], "lora.adapters", rest=tuple(dirs[n] for n in names[1:])),
        Arg("--lora_ckpt_source", "hf", "lora.adapters"),
        Arg("--max_lora_rank", str(lora.max_rank), "lora.max_rank"),
        ListArg("--lora_target_modules", modules[0], "lora.target_modules" if lora.target_modules else
                "lora.target_modules (null: the modules the adapters adapt)", rest=tuple(modules[1:])),
    ]


def convert_steps(spec: Spec, paths: StepPaths, dirs: dict[str, str]) -> list[Step]:
    """One hf_lora_convert.py run per adapter, into <engine>/lora_tasks/<task id> (after trtllm-build, which
    creates the engine folder)."""
    dtype = _STORAGE[spec.precision.resolved_dtype.value]
    script = _shared_script(paths.examples, "hf_lora_convert")
    steps = []
    for name, task_id in spec.lora.task_ids.items():
        steps.append(Step(
            name="lora", tool="hf_lora_convert", title=f"hf_lora_convert.py: adapter {name} -> task id {task_id}",
            program=["python3", script],
            args=[Arg("--in-file", dirs[name], f"lora.adapters.{name}"),
                  Arg("--out-dir", f"{paths.engine()}/{TASKS_SUBDIR}/{task_id}", "tritongen (task id: order in "
                      "lora.adapters)"),
                  Arg("--storage-type", dtype, "precision.dtype")],
            # gpus: importing tensorrt_llm (the script does) needs the CUDA driver the GPU runtime mounts.
            mounts=[]))
    return steps


def extend_plan(spec: Spec, role: str, local: bool, paths: StepPaths, work_mount: Mount, build: Step,
                steps: list[Step]) -> None:
    """Add the LoRA flags to ``build`` and the conversion steps after it (no-op without adapters)."""
    if not applies(spec, role):
        return
    dirs = adapter_paths(spec, local)
    adapter_mounts = [] if local else mounts(spec)
    build.args += build_args(spec, dirs)
    build.mounts = [*build.mounts, *adapter_mounts]
    for step, mount in zip(convert_steps(spec, paths, dirs), adapter_mounts or [None] * len(dirs)):
        step.mounts = [mount, work_mount] if mount else [work_mount]
        steps.append(step)
