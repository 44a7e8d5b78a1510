"""Which GPU an engine is built for, and whether the spec can be built for it at all.

TensorRT engines are compiled for the GPU they are built on, so the target GPU is either detected with
``nvidia-smi`` or named with ``--gpu`` (``engine.gpu``). Precision support per architecture is data
(catalog/precision_support.yaml, with sources); an impossible combination fails here, before any command runs,
naming the GPU and what it supports.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass

from .. import catalog, gpus
from ..errors import GatingError


@dataclass(frozen=True)
class DetectedGpu:
    index: int
    name: str
    sm: str | None
    memory_mb: int | None


@dataclass(frozen=True)
class GpuTarget:
    """The GPU an engine is built for."""

    key: str | None  #: catalogue key (``h100-sxm``), None when the catalogue does not know the GPU
    name: str  #: display name (``NVIDIA H100 SXM5 80GB`` or what nvidia-smi says)
    arch: str  #: ampere | ada | hopper | blackwell
    sm: str  #: compute capability, e.g. ``9.0``
    source: str  #: ``given`` (--gpu / engine.gpu) or ``nvidia-smi``
    detected: tuple[DetectedGpu, ...] = ()  #: every GPU nvidia-smi listed (empty when not detected)

    @property
    def arch_label(self) -> str:
        return _support()["architectures"][self.arch].get("label", self.arch)

    @property
    def label(self) -> str:
        short = self.key or self.name
        return f"{short} ({self.arch_label}, SM {self.sm})"


def _support() -> dict:
    return catalog.load("precision_support.yaml")


def arch_for_sm(sm: str) -> str | None:
    """Architecture family of a compute capability such as ``8.6`` (None for pre-Ampere or unknown)."""
    for arch, row in _support()["architectures"].items():
        if sm in row.get("sm", []):
            return arch
    try:
        major, minor = (int(x) for x in sm.split(".")[:2])
    except ValueError:
        return None
    if major == 8:
        return "ada" if minor >= 9 else "ampere"
    if major == 9:
        return "hopper"
    if major in (10, 11, 12):
        return "blackwell"
    return None


def requirement(key: str) -> str:
    """Why a precision (``fp8``) or KV dtype (``kv_fp8``) is limited to some architectures, from the data."""
    return _support().get("requirements", {}).get(key, "not available on this architecture")


def supported(arch: str) -> tuple[list[str], list[str]]:
    """(precisions, KV-cache dtypes) the architecture supports in the engine flow."""
    row = _support()["architectures"][arch]
    return list(row["precisions"]), list(row["kv_cache_dtypes"])


# -- detection -------------------------------------------------------------------------------------------

_DETECT_CACHE: dict[str, tuple[DetectedGpu, ...] | None] = {}


def detect() -> tuple[DetectedGpu, ...] | None:
    """GPUs listed by nvidia-smi, or None when nvidia-smi is missing or fails. Cached per PATH."""
    path_env = os.environ.get("PATH", "")
    if path_env in _DETECT_CACHE:
        return _DETECT_CACHE[path_env]
    result = _detect_uncached()
    _DETECT_CACHE[path_env] = result
    return result


def clear_detect_cache() -> None:
    _DETECT_CACHE.clear()


def _detect_uncached() -> tuple[DetectedGpu, ...] | None:
    from .. import proc

    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    rc, out = proc.run([exe, "--query-gpu=index,name,compute_cap,memory.total", "--format=csv,noheader,nounits"],
                       what="nvidia-smi", check=False, tail_lines=64)
    if rc != 0:
        return None
    found = []
    for line in out.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) < 3 or not parts[0].isdigit():
            continue
        sm = parts[2] if parts[2] and parts[2][0].isdigit() else None
        mem = int(parts[3]) if len(parts) > 3 and parts[3].isdigit() else None
        found.append(DetectedGpu(index=int(parts[0]), name=parts[1], sm=sm, memory_mb=mem))
    return tuple(found) or None


def _target_from_name(name: str, *, source: str, sm_hint: str | None = None,
                      detected: tuple[DetectedGpu, ...] = ()) -> GpuTarget:
    found = gpus.lookup(name)
    if found is not None:
        key, facts = found
        return GpuTarget(key=key, name=facts.get("name", name), arch=facts["arch"], sm=str(facts["sm"]),
                         source=source, detected=detected)
    if sm_hint is None:
        gpus.get(name)  # raises the unknown-GPU catalogue error listing the known ones
    arch = arch_for_sm(sm_hint)
    if arch is None:
        raise GatingError(f"GPU {name} (SM {sm_hint}) is older than Ampere; TensorRT-LLM engines need SM 8.0 or newer")
    return GpuTarget(key=None, name=name, arch=arch, sm=sm_hint, source=source, detected=detected)


def resolve(spec, *, detect_gpus: bool = True) -> GpuTarget | None:
    """The GPU the spec's engine is for: ``engine.gpu`` when given, else the detected GPUs the spec uses.

    Returns None when no GPU is given and none can be detected. Raises GatingError when the GPUs the spec asks
    for (``parallelism.gpu_ids`` / tp x pp) are not all present, or differ in kind.
    """
    detected = detect() if detect_gpus else None
    if not detected:
        return _target_from_name(spec.engine.gpu, source="given") if spec.engine.gpu else None
    wanted = spec.parallelism.resolved_gpu_ids
    by_index = {g.index: g for g in detected}
    missing = [i for i in wanted if i not in by_index]
    if missing:
        raise GatingError(
            f"parallelism: tp x pp = {spec.parallelism.tp} x {spec.parallelism.pp} needs GPU(s) {wanted} but "
            f"nvidia-smi lists {len(detected)} GPU(s) ({', '.join(str(g.index) for g in detected)})",
            hint="lower --tp/--pp, pick existing GPUs with --gpus, or build on a host with more GPUs")
    used = [by_index[i] for i in wanted]
    kinds = sorted({(g.name, g.sm) for g in used})
    if len(kinds) > 1:
        raise GatingError(f"parallelism.gpu_ids {wanted}: the GPUs differ ({'; '.join(k[0] for k in kinds)}); "
                          "one engine is built for one GPU type", hint="pick GPUs of one kind with --gpus")
    if spec.engine.gpu:
        return _target_from_name(spec.engine.gpu, source="given", detected=tuple(used))
    first = used[0]
    return _target_from_name(first.name, source="nvidia-smi", sm_hint=first.sm, detected=tuple(used))


def require(spec) -> GpuTarget:
    """Like :func:`resolve` but a missing GPU is an error with the way out."""
    target = resolve(spec)
    if target is None:
        known = ", ".join(gpus.table())
        raise GatingError("no GPU to build for: none given and nvidia-smi is not available here",
                          hint=f"name the target GPU with --gpu (known: {known}) or run on the GPU host")
    return target


# -- gating ----------------------------------------------------------------------------------------------


def check_precision(spec, gpu: GpuTarget) -> None:
    """Refuse a precision or KV-cache dtype the GPU cannot build/run, naming what it supports."""
    precisions, kv_dtypes = supported(gpu.arch)
    fmt = spec.precision.format.value
    kv = spec.precision.resolved_kv_dtype.value
    offer = (f"{gpu.arch_label} supports precisions {', '.join(precisions)} and KV-cache dtypes "
             f"{', '.join(kv_dtypes)}")
    if fmt not in precisions:
        why = requirement(fmt)
        raise GatingError(f"precision.format={fmt} cannot be built for {gpu.label}: {why}. {offer}",
                          hint=_hint(gpu, fmt))
    if kv not in kv_dtypes:
        why = requirement(f"kv_{kv}")
        raise GatingError(f"precision.kv_cache_dtype={kv} cannot be built for {gpu.label}: {why}. {offer}",
                          hint="pick another --kv-dtype (auto = the compute dtype)")


def _hint(gpu: GpuTarget, fmt: str) -> str:
    newer = [a for a, row in _support()["architectures"].items() if fmt in row["precisions"]]
    where = "/".join(_support()["architectures"][a].get("label", a) for a in newer)
    return (f"choose one of the supported precisions with --precision, or target a GPU that has it "
            f"({where}; --gpu NAME)" if where else "choose one of the supported precisions with --precision")


def check_host_matches(target: GpuTarget) -> None:
    """A build runs on this host's GPU: refuse when --gpu names a different architecture than the one here."""
    if target.source != "given" or not target.detected:
        return
    here = target.detected[0]
    here_sm = here.sm or (gpus.lookup(here.name) or (None, {}))[1].get("sm")
    if here_sm and str(here_sm) != target.sm:
        raise GatingError(
            f"engine.gpu={target.key or target.name} is SM {target.sm} but this host's GPU is {here.name} "
            f"(SM {here_sm}); trtllm-build compiles for the GPU it runs on",
            hint="drop --gpu to build for this host's GPU, or build on the target GPU (use --dry-run to see the plan)")
