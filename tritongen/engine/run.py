"""Run an engine plan: each step streamed with a step/progress display, into a work directory that is renamed
into the cache only when every step succeeded.

A failing step raises :class:`CommandFailed` naming the step with the tail of its output; the full output of
every step is kept under ``<cache>/logs/engine/<entry>/``. The work directory is removed on failure or
interruption, so the cache never holds a half-written engine.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from .. import __version__, proc
from ..engine_config import BUILD_INFO_NAME
from ..errors import CommandFailed, MissingDependency, TritongenError
from ..paths import cache_dir
from ..spec import dump_spec
from . import cache, gating
from .plan import BuildPlan, EnginePlan
from .steps import Step

Echo = Callable[[str], None]


def logs_dir(entry_name: str) -> Path:
    return cache_dir() / "logs" / "engine" / entry_name


def check_runner(ep: EnginePlan) -> None:
    """The tools this plan needs must exist here (docker, or trtllm-build for --local)."""
    if ep.in_container:
        if shutil.which("docker") is None:
            raise MissingDependency("docker is not installed (or not on PATH); the engine build runs in "
                                    f"{ep.image}", hint="install Docker with the NVIDIA Container Toolkit, or build "
                                    "with --local where TensorRT-LLM is installed")
        return
    if shutil.which("trtllm-build") is None:
        raise MissingDependency("--local: trtllm-build is not on PATH (TensorRT-LLM is not installed here)",
                                hint="drop --local to build in the NGC container")
    if ep.steps and any(s.program[:1] == ["python3"] and s.program[1].startswith("$TRTLLM_EXAMPLES")
                        for s in ep.steps):
        raise MissingDependency("--local needs TensorRT-LLM's examples/ directory (convert_checkpoint.py, "
                                "quantize.py)", hint="pass --examples-dir DIR or set TRTLLM_EXAMPLES_DIR")


def execute(bplan: BuildPlan, *, echo: Echo, stream: bool = True, force: bool = False) -> list[Path]:
    """Build every engine of the plan that is not cached yet; returns the entries (draft first)."""
    out = []
    for ep in bplan.engines:
        if ep.cached and not force:
            echo(f"{_role(ep)}{ep.spec.model.name} {ep.spec.precision.format.value}: already built for "
                 f"{ep.gpu.label}, nothing to do: {ep.entry}")
            out.append(ep.entry)
            continue
        out.append(build_engine(ep, echo=echo, stream=stream, force=force))
    return out


def _role(ep: EnginePlan) -> str:
    return "" if ep.role == "engine" else f"{ep.role} engine: "


def _check_inputs(ep: EnginePlan) -> None:
    sd = ep.spec.decoding.speculative
    if sd.heads_dir is not None and sd.method.value in ("medusa", "eagle") \
            and not (Path(sd.heads_dir) / "config.json").is_file():
        raise TritongenError(f"decoding.speculative.heads_dir {sd.heads_dir}: no config.json there",
                             hint=f"download the {sd.method.value} heads checkpoint first")


@contextlib.contextmanager
def _build_lock(entry_name: str):
    import fcntl

    lock_dir = cache.tmp_root()
    lock_dir.mkdir(parents=True, exist_ok=True)
    path = lock_dir / f"{entry_name}.lock"
    with open(path, "w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise TritongenError(f"another `tritongen engine` is building {entry_name} right now",
                                 hint="wait for it to finish; the second run will then find it cached") from None
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def build_engine(ep: EnginePlan, *, echo: Echo, stream: bool = True, force: bool = False) -> Path:
    check_runner(ep)
    if not ep.gpu.detected:
        raise gating.GatingError(f"no NVIDIA GPU visible on this host (nvidia-smi not found); the engine for "
                                 f"{ep.gpu.label} must be built on a GPU of that architecture",
                                 hint="run the same command on the GPU host, or look at the plan with --dry-run")
    gating.check_host_matches(ep.gpu)
    _check_inputs(ep)
    with _build_lock(ep.entry.name):
        if cache.is_complete(ep.entry) and not force:  # built by a concurrent run meanwhile
            echo(f"{_role(ep)}already built: {ep.entry}")
            return ep.entry
        return _build_locked(ep, echo=echo, stream=stream, force=force)


def _build_locked(ep: EnginePlan, *, echo: Echo, stream: bool, force: bool) -> Path:
    work = ep.work
    if work.exists():
        shutil.rmtree(work)  # leftovers of an interrupted build of the same entry
    work.mkdir(parents=True)
    os.chmod(work, 0o755)
    logs = logs_dir(ep.entry.name)
    logs.mkdir(parents=True, exist_ok=True)
    total = len(ep.steps)
    echo(f"building {_role(ep)}{ep.spec.model.name} {ep.spec.precision.format.value} for {ep.gpu.label} "
         f"({total} steps, TensorRT-LLM {ep.trtllm_version}" + (f", {ep.image})" if ep.in_container else
                                                               ", --local)"))
    started = time.monotonic()
    try:
        for i, step in enumerate(ep.steps, 1):
            _run_step(ep, step, i, total, logs, echo=echo, stream=stream)
        entry = _finish(ep, echo=echo, force=force)
    except BaseException:
        _cleanup(ep)
        raise
    echo(f"engine ready in {_elapsed(time.monotonic() - started)}: {entry}")
    return entry


def _run_step(ep: EnginePlan, step: Step, i: int, total: int, logs: Path, *, echo: Echo, stream: bool) -> None:
    label = f"[{i}/{total}] {step.name}"
    echo(f"{label}: {step.title}")
    if step.finish is not None:
        partial = step.finish[0]
        partial.mkdir(parents=True, exist_ok=True)  # docker would create a missing mount source as root
    log_path = logs / f"{i}-{step.name}.log"
    argv = ep.argv(step)
    t0 = time.monotonic()
    lines = 0
    with open(log_path, "w") as log:
        log.write(f"$ {ep.shown(step)}\n")

        def on_line(line: str) -> None:
            nonlocal lines
            lines += 1
            log.write(line + "\n")
            if stream:
                echo(f"  {step.name} | {line}")

        try:
            # --local: run in the work dir (trtllm-build writes its timing cache to the current directory).
            rc, tail = proc.run(argv, what=f"{step.name} step", on_line=on_line, check=False,
                                env=ep.env(step) or None, cwd=None if ep.in_container else ep.work)
        except KeyboardInterrupt:
            _stop_container(ep, step)
            raise
    if rc != 0:
        _stop_container(ep, step)
        raise CommandFailed(
            f"engine build failed at step {i}/{total} ({step.name}: {step.title}) with exit code {rc}",
            returncode=rc, tail=tail,
            hint=f"full output: {log_path}; nothing was written to the engine cache")
    if step.finish is not None:
        src, dst = step.finish
        if not (src / "config.json").is_file():
            raise CommandFailed(f"step {i}/{total} ({step.name}) finished but {src} has no config.json",
                                tail=tail, hint=f"full output: {log_path}")
        if dst.exists():
            shutil.rmtree(dst)
        os.replace(src, dst)
    echo(f"{label}: done in {_elapsed(time.monotonic() - t0)}")


def _stop_container(ep: EnginePlan, step: Step) -> None:
    """`docker run` without a TTY leaves the container running when the client dies; remove it by name."""
    if not ep.in_container or shutil.which("docker") is None:
        return
    try:
        proc.run(["docker", "rm", "-f", ep.container_name(step)], what="docker rm", check=False)
    except TritongenError:
        pass


def _cleanup(ep: EnginePlan) -> None:
    shutil.rmtree(ep.work, ignore_errors=True)


def _finish(ep: EnginePlan, *, echo: Echo, force: bool) -> Path:
    """Check the engine, write the build record, and rename it into the cache."""
    out = ep.engine_out
    world = ep.spec.parallelism.world_size
    ranks = sorted(p.name for p in out.glob("rank*.engine")) if out.is_dir() else []
    if not (out / "config.json").is_file() or len(ranks) != world:
        raise CommandFailed(f"trtllm-build finished but {out} holds {'no' if not (out / 'config.json').is_file() else 'a'}"
                            f" config.json and {len(ranks)} of {world} rank engine(s)",
                            hint="see the build step's log; nothing was written to the engine cache")
    try:
        built_version = json.loads((out / "config.json").read_text()).get("version")
    except (OSError, json.JSONDecodeError):
        built_version = None
    # The checkpoint may have been downloaded by this run: its identity (part of the key) is known only now.
    material = cache.key_material(ep.spec, gpu=ep.gpu, trtllm_version=ep.trtllm_version, role=ep.role)
    entry = cache.engines_root() / cache.entry_name(ep.spec, material)
    if built_version and str(built_version) != ep.trtllm_version:
        echo(f"warning: the image built TensorRT-LLM {built_version} engines; the version matrix says "
             f"{ep.trtllm_version} (recorded as built)")
    info = build_record(ep, material, built_version=built_version)
    (out / BUILD_INFO_NAME).write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
    for path in [out, *out.rglob("*")]:
        with contextlib.suppress(OSError):
            os.chmod(path, 0o755 if path.is_dir() else 0o644)
    if entry.exists():
        if cache.is_complete(entry) and not force:
            echo(f"an identical engine appeared meanwhile; keeping {entry}")
            return entry
        trash = cache.tmp_root() / f"{entry.name}.old-{os.getpid()}"
        os.replace(entry, trash)
        os.replace(out, entry)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        os.replace(out, entry)
    shutil.rmtree(ep.work, ignore_errors=True)
    return entry


def build_record(ep: EnginePlan, material: dict, *, built_version: str | None) -> dict:
    """tritongen.json: what this engine is, what it was built for and how."""
    spec = ep.spec
    return {
        "tritongen_version": __version__,
        "built_at": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "role": ep.role,
        "model": spec.model.name,
        "spec_name": spec.repo_name,
        "precision": spec.precision.format.value,
        "kv_cache_dtype": spec.precision.resolved_kv_dtype.value,
        "tp": spec.parallelism.tp,
        "pp": spec.parallelism.pp,
        "ep": spec.parallelism.ep,
        "world_size": spec.parallelism.world_size,
        "gpu": ep.gpu.key or ep.gpu.name,
        "gpu_name": ep.gpu.name,
        "gpu_arch": ep.gpu.arch,
        "gpu_sm": ep.gpu.sm,
        "trtllm_version": str(built_version or ep.trtllm_version),
        "image": ep.image if ep.in_container else None,
        "runner": ep.runner,
        "key": cache.cache_key(material),
        "key_material": material,
        "spec": dump_spec(spec),
        "commands": [ep.shown(s) for s in ep.steps],
    }


def _elapsed(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, secs = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"
