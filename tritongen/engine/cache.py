"""The engine cache: one directory per distinct engine, keyed by everything that changes the binary.

``<cache>/engines/<model>-<precision>-tp<T>pp<P>-<key12>/`` holds ``config.json``, ``rank*.engine`` and
``tritongen.json`` (the build record: full key material, GPU architecture and SM, TensorRT-LLM version, the
spec it was built for and the commands that built it). An entry is only ever created by renaming a finished
build into place (builds run in ``<cache>/engines/.tmp/``), so a failed build leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from ..engine_config import BUILD_INFO_NAME
from ..paths import cache_dir
from ..spec import Precision, Spec, SpeculativeMethod

#: Bumped whenever the planner changes the commands it emits for the same spec (old entries then miss).
PLAN_RECIPE = 1

_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf")
_GPU_FIELDS = ("gpu_arch", "gpu_sm")


def engines_root() -> Path:
    return cache_dir() / "engines"


def tmp_root() -> Path:
    """Where builds run before being renamed into place (same filesystem as the entries)."""
    return engines_root() / ".tmp"


def _calibrated(spec: Spec) -> bool:
    return spec.precision.format.value in ("fp8", "int4_awq", "w4a8_awq", "w8a8_sq", "nvfp4") or \
        spec.precision.resolved_kv_dtype.value in ("fp8", "int8")


def needs_paged_context_fmha(spec: Spec, *, role: str = "engine") -> bool:
    """KV-cache reuse, chunked context, EAGLE and both engines of draft-target need paged context FMHA."""
    if not spec.kv_cache.paged:
        return False
    method = spec.decoding.speculative.method
    return (spec.kv_cache.enable_reuse or spec.scheduling.enable_chunked_context or role == "draft"
            or method in (SpeculativeMethod.draft_target, SpeculativeMethod.eagle))


def key_material(spec: Spec, *, gpu: Any = None, trtllm_version: str | None = None,
                 role: str = "engine") -> dict[str, Any]:
    """The inputs that change the engine binary. Serving-only settings (ports, instance counts, streaming,
    KV-cache memory fraction, scheduler policy) are deliberately absent: they do not need a rebuild.

    ``gpu`` is a :class:`~tritongen.engine.gating.GpuTarget`, a GPU/architecture name, or None (unknown)."""
    from .. import versions

    m, lim, kv, dec, prec = spec.model, spec.limits, spec.kv_cache, spec.decoding, spec.precision
    image, default_version = versions.resolve_container(spec)
    fmt = prec.format
    spec_dec = dec.speculative
    arch, sm = _gpu_fields(gpu if gpu is not None else spec.engine.gpu)
    if role == "engine" and spec_dec.method is SpeculativeMethod.draft_target:
        role = "target"  # the same entry whether asked for by the planner or by the renderer
    material = {
        "recipe": PLAN_RECIPE,
        "role": role,
        "checkpoint": checkpoint_identity(spec.checkpoint_dir, spec.model.hf_id or spec.model.name),
        "architecture": m.architecture,
        "precision": fmt.value,
        "dtype": prec.resolved_dtype.value,
        "kv_cache_dtype": prec.resolved_kv_dtype.value,
        "calib_size": prec.calib_size if _calibrated(spec) else None,
        "awq_block_size": prec.awq_block_size if fmt in (Precision.int4_awq, Precision.w4a8_awq,
                                                         Precision.int4_gptq) else None,
        "smoothquant_alpha": prec.smoothquant_alpha if fmt is Precision.w8a8_sq else None,
        "tp": spec.parallelism.tp,
        "pp": spec.parallelism.pp,
        "ep": spec.parallelism.ep,
        "max_batch_size": lim.max_batch_size,
        "max_input_len": lim.max_input_len,
        "max_seq_len": lim.max_seq_len,
        "max_num_tokens": lim.max_num_tokens,
        "max_beam_width": lim.max_beam_width,
        "paged_kv_cache": kv.paged,
        "tokens_per_block": kv.tokens_per_block,
        "paged_context_fmha": needs_paged_context_fmha(spec, role=role),
        "gather_context_logits": dec.gather_context_logits,
        "gather_generation_logits": dec.gather_generation_logits,
        "speculative": spec_dec.method.value,
        "max_draft_len": spec.resolved_max_draft_len,
        "acceptance_logits": (spec_dec.method is SpeculativeMethod.draft_target
                              and spec_dec.acceptance_threshold is not None),
        "num_medusa_heads": spec_dec.num_medusa_heads if spec_dec.method is SpeculativeMethod.medusa else None,
        "speculative_heads": (checkpoint_identity(Path(spec_dec.heads_dir), Path(spec_dec.heads_dir).name)
                              if spec_dec.heads_dir and spec_dec.method in (SpeculativeMethod.medusa,
                                                                            SpeculativeMethod.eagle) else None),
        "trtllm_version": trtllm_version or default_version,
        "tensorrt": _tensorrt_of(image),
        "gpu_arch": arch,
        "gpu_sm": sm,
    }
    if spec.lora.enabled and role != "draft":  # only then: engines without LoRA keep their keys
        material["lora"] = spec.lora.build_identity()
    return material


def _tensorrt_of(image: str) -> str | None:
    """TensorRT version of an NGC image (engine plans are specific to it), from the version matrix."""
    from .. import catalog, versions

    tag = versions.tag_of(image)
    row = (catalog.load("containers.yaml").get("containers") or {}).get(tag) if tag else None
    return str(row["tensorrt"]) if row and row.get("tensorrt") else None


def _gpu_fields(gpu: Any) -> tuple[str | None, str | None]:
    if gpu is None:
        return None, None
    if hasattr(gpu, "arch") and hasattr(gpu, "sm"):
        return gpu.arch, gpu.sm
    from .. import gpus

    name = str(gpu)
    found = gpus.lookup(name)
    if found is not None:
        return found[1]["arch"], str(found[1]["sm"])
    arch = gpus.arch_of(name)
    return arch, None


def checkpoint_identity(path: Path, label: str) -> str:
    """``label`` plus a digest of the checkpoint's config.json and its weight files' names and sizes (cheap:
    weights are not read). A missing checkpoint (to be downloaded) is identified by its label alone."""
    path = Path(path)
    cfg = path / "config.json"
    if not cfg.is_file():
        return label
    digest = hashlib.sha256(cfg.read_bytes())
    for weight in sorted(p for p in path.iterdir() if p.is_file() and p.suffix in _WEIGHT_SUFFIXES):
        digest.update(f"\0{weight.name}\0{weight.stat().st_size}".encode())
    return f"{label}@{digest.hexdigest()[:16]}"


def cache_key(material: dict[str, Any]) -> str:
    blob = json.dumps(material, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def entry_name(spec: Spec, material: dict[str, Any]) -> str:
    return (f"{spec.model.name}-{spec.precision.format.value}-tp{spec.parallelism.tp}pp{spec.parallelism.pp}"
            f"-{cache_key(material)}")


def is_complete(entry: Path) -> bool:
    return (entry / "config.json").is_file() and (entry / BUILD_INFO_NAME).is_file()


def entry_dir(spec: Spec, *, gpu: Any = None, trtllm_version: str | None = None, role: str = "engine",
              detect_gpus: bool = True) -> Path:
    """The cache directory this spec's engine lives (or will live) in.

    The GPU is resolved the way `tritongen engine` resolves it (``gpu``, else ``engine.gpu``, else nvidia-smi),
    so a repository rendered for a spec points at the directory the build produces. With no GPU known (a
    machine without nvidia-smi), an existing entry that matches everything but the GPU is used; failing that the
    path names an entry for an unknown GPU (which does not exist: validation then warns)."""
    if gpu is None and not spec.engine.gpu:
        from . import gating

        try:
            gpu = gating.resolve(spec, detect_gpus=detect_gpus)
        except Exception:  # noqa: BLE001 - a GPU-count problem is reported by the build, not by rendering
            gpu = None
        if gpu is None:
            found = find_matching(spec, trtllm_version=trtllm_version, role=role)
            if found is not None:
                return found
    material = key_material(spec, gpu=gpu, trtllm_version=trtllm_version, role=role)
    return engines_root() / entry_name(spec, material)


def find_matching(spec: Spec, *, trtllm_version: str | None = None, role: str = "engine") -> Path | None:
    """The newest complete entry built for this spec on any GPU (used when the GPU is unknown)."""
    wanted = {k: v for k, v in key_material(spec, trtllm_version=trtllm_version, role=role).items()
              if k not in _GPU_FIELDS}
    best: tuple[str, Path] | None = None
    for entry, info in iter_entries():
        material = info.get("key_material") or {}
        if {k: v for k, v in material.items() if k not in _GPU_FIELDS} == wanted:
            stamp = str(info.get("built_at", ""))
            if best is None or stamp > best[0]:
                best = (stamp, entry)
    return best[1] if best else None


def read_build_info(entry: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((entry / BUILD_INFO_NAME).read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def iter_entries():
    """(entry dir, build record) for every complete entry, sorted by name."""
    root = engines_root()
    if not root.is_dir():
        return
    for entry in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if not (entry / "config.json").is_file():
            continue
        info = read_build_info(entry)
        if info is not None:
            yield entry, info


def dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())
