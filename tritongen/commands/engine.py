"""``tritongen engine``: build the TensorRT-LLM engine(s) for a spec, show the plan, or list the engine cache."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..cli import resolve, spec_options


@click.command("engine")
@click.argument("model", required=False)
@spec_options
@click.option("--dry-run", is_flag=True, help="Print every step's exact command and mounts, and run nothing.")
@click.option("--local", is_flag=True, help="Run the same commands on this host (TensorRT-LLM installed here) "
              "instead of in the NGC container.")
@click.option("--examples-dir", type=click.Path(file_okay=False, path_type=Path), envvar="TRTLLM_EXAMPLES_DIR",
              help="--local: TensorRT-LLM's examples/ directory for convert_checkpoint.py and quantize.py "
              "(env TRTLLM_EXAMPLES_DIR).")
@click.option("--force", is_flag=True, help="Rebuild even when the engine is cached (replaces the entry at the end).")
@click.option("--quiet", "-q", is_flag=True, help="Show the step lines only (tool output still goes to the logs).")
@click.option("--list", "list_cache", is_flag=True, help="List the engine cache (optionally only MODEL's engines).")
@click.option("--json", "as_json", is_flag=True, help="With --list: machine-readable output.")
def command(model, dry_run, local, examples_dir, force, quiet, list_cache, as_json, **kwargs) -> None:
    """Build the TensorRT-LLM engine for MODEL: convert (or quantize) the checkpoint, then trtllm-build.

    The steps run in the pinned NGC tritonserver:<tag>-trtllm-python-py3 image through docker (or on this host
    with --local), into a temporary directory that is renamed into the engine cache when every step succeeded.
    The same inputs build once: a second run says so and does nothing; a changed input builds a new engine beside
    the old one. The target GPU is detected with nvidia-smi, or given with --gpu (needed for --dry-run on a
    machine without a GPU).
    """
    err = lambda m: click.echo(m, err=True)  # noqa: E731
    if list_cache:
        _list(model, as_json)
        return
    from ..engine import plan as planner
    from ..engine import run

    spec = resolve(model, kwargs)
    bplan = planner.plan_build(spec, runner="local" if local else "docker", examples_dir=examples_dir,
                               user=None if local else planner.default_user())
    if dry_run:
        click.echo(planner.format_plan(bplan), nl=False)
        return
    entries = run.execute(bplan, echo=err, stream=not quiet, force=force)
    target = entries[-1]
    click.echo(str(target))
    if any(not ep.cached for ep in bplan.engines) or force:
        err(f"next: tritongen repo {model or spec.model.name} (with the same options)")


def _list(model: str | None, as_json: bool) -> None:
    from ..engine import cache

    rows = []
    for entry, info in cache.iter_entries():
        if model and info.get("model") != model and info.get("spec_name") != model:
            continue
        spec = info.get("spec") or {}
        limits = spec.get("limits") or {}
        rows.append({
            "engine": str(entry),
            "name": entry.name,
            "model": info.get("model"),
            "spec": info.get("spec_name"),
            "role": info.get("role", "engine"),
            "precision": info.get("precision"),
            "kv_cache_dtype": info.get("kv_cache_dtype"),
            "tp": info.get("tp"),
            "pp": info.get("pp"),
            "gpu": info.get("gpu"),
            "gpu_arch": info.get("gpu_arch"),
            "gpu_sm": info.get("gpu_sm"),
            "trtllm_version": info.get("trtllm_version"),
            "built_at": info.get("built_at"),
            "size_bytes": cache.dir_size(entry),
            "limits": {k: limits.get(k) for k in ("max_batch_size", "max_input_len", "max_seq_len", "max_num_tokens")},
            "speculative": ((spec.get("decoding") or {}).get("speculative") or {}).get("method", "none"),
        })
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        where = f" for {model}" if model else ""
        click.echo(f"no engines cached{where} in {cache.engines_root()}")
        return
    click.echo(f"{'ENGINE':<44} {'SPEC':<14} {'PREC/KV':<13} {'TPxPP':<6} {'GPU':<20} {'TRT-LLM':<8} "
               f"{'SIZE':>8}  {'BUILT':<20} LIMITS (batch/input/seq/tokens)")
    for r in rows:
        spec_label = r["spec"] if r["role"] in ("engine", "target") else f"{r['spec']} ({r['role']})"
        lim = r["limits"]
        prec = f"{r['precision']}/{r['kv_cache_dtype']}"
        gpu = f"{r['gpu'] or '?'} SM {r['gpu_sm']}"
        extra = f" {r['speculative']}" if r["speculative"] != "none" else ""
        click.echo(f"{r['name']:<44} {spec_label or '?':<14} {prec:<13} {r['tp']}x{r['pp']:<4} {gpu:<20} "
                   f"{r['trtllm_version'] or '?':<8} {_size(r['size_bytes']):>8}  {r['built_at'] or '?':<20} "
                   f"{lim['max_batch_size']}/{lim['max_input_len']}/{lim['max_seq_len']}/{lim['max_num_tokens']}{extra}")
    click.echo(f"({len(rows)} engine(s) in {cache.engines_root()})")


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f}{unit}" if unit == "B" else f"{n:.1f}{unit}"
        n /= 1024
    return f"{n:.1f}GB"
