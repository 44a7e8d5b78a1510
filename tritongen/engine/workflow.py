"""Glue between `tritongen repo` and the engine cache: find the engine for a spec, or build it first."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from ..errors import TritongenError
from ..spec import SpeculativeMethod
from . import cache, gating

Echo = Callable[[str], None]


def _with_dir(spec, entry: Path, draft: Path | None = None):
    update = {"dir": entry}
    # engine.draft_dir (requested spec field) carries the draft engine of draft-target to the renderer.
    if draft is not None and "draft_dir" in type(spec.engine).model_fields:
        update["draft_dir"] = draft
    return spec.model_copy(update={"engine": spec.engine.model_copy(update=update)})


def _what(spec) -> str:
    par = spec.parallelism
    return f"{spec.model.name} ({spec.precision.format.value}, tp={par.tp} pp={par.pp})"


def ensure_engine(spec, *, echo: Echo = lambda m: None):
    """Return ``spec`` with ``engine.dir`` pointing at its cached engine, building it (and, for draft-target,
    the draft engine) when none is cached. Where nothing can be built (no GPU, no docker) this fails with one
    line and a hint rather than rendering a repository that points at nothing."""
    gpu = gating.resolve(spec)
    if gpu is None or not gpu.detected:
        found = _cached(spec, gpu)
        if found is not None and _draft_ready(spec):
            info = cache.read_build_info(found) or {}
            echo(f"using cached engine {found} (built for {info.get('gpu', '?')}, SM {info.get('gpu_sm', '?')})")
            return _with_dir(spec, found, draft_engine_dir(spec))
        raise TritongenError(
            f"no engine for {_what(spec)} in the cache, and no GPU here to build one (nvidia-smi not found)",
            hint=f"build it on the GPU host with `tritongen engine {spec.model.name} ...`, pass --engine-dir DIR, "
                 "or render anyway with --no-build")
    from . import plan, run

    bplan = plan.plan_build(spec, gpu=gpu, user=plan.default_user())
    if all(ep.cached for ep in bplan.engines):
        echo(f"using cached engine {bplan.target.entry}")
        return _with_dir(spec, bplan.target.entry, bplan.engines[0].entry if len(bplan.engines) > 1 else None)
    if shutil.which("docker") is None:
        raise TritongenError(
            f"no engine for {_what(spec)} in the cache, and docker is not installed to build one",
            hint=f"install Docker + the NVIDIA Container Toolkit, build with `tritongen engine {spec.model.name} "
                 "--local` where TensorRT-LLM is installed, pass --engine-dir DIR, or render with --no-build")
    echo(f"no engine for {_what(spec)} in the cache: building it first (see `tritongen engine --dry-run`)")
    entries = run.execute(bplan, echo=echo)
    return _with_dir(spec, entries[-1], entries[0] if len(entries) > 1 else None)


def _cached(spec, gpu) -> Path | None:
    if gpu is not None:
        entry = cache.entry_dir(spec, gpu=gpu)
        return entry if cache.is_complete(entry) else None
    return cache.find_matching(spec)


def _draft_ready(spec) -> bool:
    if spec.decoding.speculative.method is not SpeculativeMethod.draft_target:
        return True
    return draft_engine_dir(spec) is not None


def draft_engine_dir(spec) -> Path | None:
    """The cached draft engine of a draft-target spec (None when not built, or not draft-target).

    For the repository's ``tensorrt_llm_draft`` model: its ``gpt_model_path``."""
    if spec.decoding.speculative.method is not SpeculativeMethod.draft_target:
        return None
    from ..resolve import draft_spec

    draft = draft_spec(spec)
    entry = cache.entry_dir(draft, role="draft")
    return entry if cache.is_complete(entry) else None
