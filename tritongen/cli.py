"""The ``tritongen`` command line.

Only click and the stdlib are imported at module level: ``tritongen --help`` must stay fast and must never load
torch or transformers. Each command imports what it needs when it runs. Every ``TritongenError`` is printed here
(one place) and becomes the process exit code; nothing that fails exits 0.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

from .errors import SpecError, TritongenError

EPILOG = """\b
Typical flow:
  tritongen models                         # what the catalogue knows
  tritongen repo tiny                      # cpu route: runs anywhere
  tritongen serve repos/tiny && tritongen infer "Hello"
  tritongen engine llama3-8b --precision fp8 --dry-run
  tritongen repo llama3-8b --engine-dir /engines/llama3-8b
"""


def _print_error(exc: TritongenError) -> None:
    lines = str(exc).splitlines() or [""]
    err = lambda text: click.echo(text, err=True)  # noqa: E731
    if len(lines) == 1:
        err(click.style(f"tritongen: {exc.label}: ", fg="red", bold=True) + lines[0])
    else:
        err(click.style(f"tritongen: {exc.label}:", fg="red", bold=True))
        for line in lines:
            err(f"  {line}")
    if exc.detail:
        err(click.style("  --- output tail ---", dim=True))
        for line in exc.detail.splitlines()[-40:]:
            err(f"  | {line}")
    if exc.hint:
        err(click.style("  hint: ", fg="yellow") + exc.hint)


def _escaped_error(exc: Exception) -> TritongenError:
    from .names import show_path

    if isinstance(exc, OSError):
        where = f"{show_path(exc.filename)}: " if exc.filename else ""
        err = TritongenError(f"{where}{exc.strerror or exc}", hint="TRITONGEN_DEBUG=1 shows where it happened")
        err.label = "system error"
        return err
    err = TritongenError(show_path(f"{type(exc).__name__}: {exc}".splitlines()[0], 500),
                         hint="this is a tritongen bug; TRITONGEN_DEBUG=1 shows the traceback")
    err.label = "internal error"
    return err


#: Commands that live in their own module, imported only when used (or listed by --help). Each module keeps
#: its top-level imports light (click and the stdlib) and exports ``command``.
LAZY_COMMANDS = {
    "tiny": "tritongen.commands.tiny",
    "engine": "tritongen.commands.engine",
    "serve": "tritongen.commands.serve:serve",
    "stop": "tritongen.commands.serve:stop",
    "status": "tritongen.commands.serve:status",
    "logs": "tritongen.commands.serve:logs",
    "infer": "tritongen.commands.infer",
    "demo": "tritongen.commands.demo",
    "plan": "tritongen.commands.plan",
    "bench": "tritongen.commands.bench",
    "openai": "tritongen.commands.openai",
    "k8s": "tritongen.commands.k8s",
    "metrics": "tritongen.commands.metrics",
    "monitoring": "tritongen.commands.monitoring",
    "dynamo": "tritongen.commands.dynamo",
}


class TritongenGroup(click.Group):
    """Turns TritongenError into its message and exit code, both under CliRunner and the console script."""

    def get_command(self, ctx, name):
        if name in self.commands:
            return self.commands[name]
        target = LAZY_COMMANDS.get(name)
        if target is None:
            return None
        module_name, _, attr = target.partition(":")
        import importlib

        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:
                return None
            raise
        return getattr(module, attr or "command")

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except TritongenError as exc:
            _print_error(exc)
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("tritongen: interrupted", err=True)
            ctx.exit(130)
        except (OSError, ValueError) as exc:
            # What escaped every command's own checks: one line, not a traceback (which can repeat a huge input
            # several times). TRITONGEN_DEBUG=1 shows the traceback.
            if os.environ.get("TRITONGEN_DEBUG"):
                raise
            _print_error(_escaped_error(exc))
            ctx.exit(1 if isinstance(exc, OSError) else 70)

    def list_commands(self, ctx):
        names = list(self.commands) + list(LAZY_COMMANDS)
        return [n for n in names if self.get_command(ctx, n) is not None]


@click.group(cls=TritongenGroup, epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"],
                                                                  "max_content_width": 110})
@click.version_option(package_name="tritongen", prog_name="tritongen")
def cli() -> None:
    """Turn one deployment spec into a validated NVIDIA Triton model repository for TensorRT-LLM, build its
    engines, serve it and query it.

    A spec is resolved from the model catalogue, then a YAML file (--spec), then command-line options and
    --set KEY=VALUE (later wins). `tritongen spec --reference` documents every field.
    """


# -- shared spec options ---------------------------------------------------------------------------------

#: CLI option -> dotted spec field. Each option means what `--set FIELD=VALUE` would, but its typed value is
#: merged as it is (spec.apply_options), not rendered as text and read back.
SPEC_OPTION_FIELDS = {
    "route": "route",
    "precision": "precision.format",
    "kv_dtype": "precision.kv_cache_dtype",
    "tp": "parallelism.tp",
    "pp": "parallelism.pp",
    "ep": "parallelism.ep",
    "gpus": "parallelism.gpu_ids",
    "max_batch_size": "limits.max_batch_size",
    "checkpoint": "model.checkpoint_dir",
    "tokenizer": "model.tokenizer_dir",
    "engine_dir": "engine.dir",
    "gpu": "engine.gpu",
    "image": "container.image",
    "name": "name",
    "cpu_engine": "cpu.engine",
    "streaming": "serving.streaming",
}


def spec_options(func):
    """The options every spec-taking command shares (repo, engine, spec, plan)."""
    opts = [
        click.option("--spec", "spec_file", type=click.Path(dir_okay=False, path_type=Path),
                     help="YAML spec file; overrides the catalogue entry."),
        click.option("--plan", "plan_file", type=click.Path(dir_okay=False, path_type=Path),
                     help="Plan from `tritongen plan --write-spec FILE`; applied after --spec."),
        click.option("--set", "sets", multiple=True, metavar="FIELD=VALUE",
                     help="Set any spec field, e.g. --set limits.max_batch_size=32 (repeatable; wins over all)."),
        click.option("--route", help="engine | llmapi | cpu."),
        click.option("--precision", help="fp16 bf16 fp8 int8_wo int4_wo int4_awq int4_gptq w4a8_awq w8a8_sq nvfp4."),
        click.option("--kv-dtype", help="KV-cache dtype: auto fp16 bf16 fp8 int8."),
        click.option("--tp", type=int, help="Tensor-parallel size."),
        click.option("--pp", type=int, help="Pipeline-parallel size."),
        click.option("--ep", type=int, help="Expert-parallel size (MoE)."),
        click.option("--gpus", help="GPU ids to use, e.g. 0,1 (one per rank)."),
        click.option("--gpu", help="GPU the engine targets, e.g. h100 (default: detected by nvidia-smi)."),
        click.option("--max-batch-size", type=int, help="Largest in-flight batch."),
        click.option("--checkpoint", type=click.Path(file_okay=False, path_type=Path),
                     help="Local Hugging Face checkpoint directory."),
        click.option("--tokenizer", type=click.Path(file_okay=False, path_type=Path),
                     help="Tokenizer directory (default: the checkpoint)."),
        click.option("--engine-dir", type=click.Path(file_okay=False, path_type=Path),
                     help="Prebuilt engine directory (skips the engine cache)."),
        click.option("--image", envvar="TRITON_IMAGE", help="Container image (env TRITON_IMAGE)."),
        click.option("--name", help="Repository name (default: the model name)."),
        click.option("--cpu-engine", help="cpu route: torch | mock (the MOCK emits fake tokens)."),
        click.option("--streaming/--no-streaming", default=None, help="Decoupled streaming models (default on)."),
    ]
    for opt in reversed(opts):
        func = opt(func)
    return func


def _gpu_list(value: str | None):
    if value is None:
        return None
    try:
        return [int(x) for x in str(value).replace(" ", "").split(",") if x != ""]
    except ValueError:
        raise SpecError([f"--gpus {value!r}: expected comma-separated GPU indices, e.g. 0,1"]) from None


def resolve(model: str | None, kwargs: dict):
    """Build the spec from the positional model and the shared options (popped from ``kwargs``)."""
    from .spec import load_spec

    options = {}
    for opt, fld in SPEC_OPTION_FIELDS.items():
        value = kwargs.pop(opt, None)
        if opt == "gpus":
            value = _gpu_list(value)
        if isinstance(value, Path):
            value = value.expanduser().absolute()
        if value is not None:
            options[fld] = value
    files = [f for f in (kwargs.pop("spec_file", None), kwargs.pop("plan_file", None)) if f is not None]
    return load_spec(model, spec_file=files, options=options, sets=list(kwargs.pop("sets", ()) or ()))


def default_repo_dir(spec) -> Path:
    """repos/<name>; the name is a safe name (spec.SafeName), and a link cannot lead it out of repos/ either."""
    from .names import inside

    return inside(Path("repos") / spec.repo_name, Path("repos"), "--name")


def _echo_problems(problems, *, quiet_warnings: bool = False) -> None:
    for p in problems:
        if p.severity == "warning":
            if not quiet_warnings:
                click.echo(click.style(str(p), fg="yellow"), err=True)
        else:
            click.echo(click.style(str(p), fg="red"), err=True)


# -- models / spec ---------------------------------------------------------------------------------------


@cli.command("models")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def models_cmd(as_json: bool) -> None:
    """List the model catalogue (name, size, architecture, default route and limits)."""
    from . import catalog

    rows = []
    for name in catalog.model_names():
        entry = catalog.model_entry(name)
        m = entry["model"]
        rows.append({
            "name": name,
            "params": float(m["num_params"]),
            "architecture": m["architecture"],
            "route": entry.get("route", "engine"),
            "precision": (entry.get("precision") or {}).get("format", "bf16"),
            "context": m["context_length"],
            "hf_id": m.get("hf_id") or "-",
            "description": m.get("description", ""),
        })
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    header = f"{'MODEL':<14}{'PARAMS':>9}  {'ARCHITECTURE':<20}{'ROUTE':<8}{'PREC':<6}{'CONTEXT':>8}  DESCRIPTION"
    click.echo(header)
    for r in rows:
        n = r["params"]
        params = f"{n / 1e9:.2f}B" if n >= 1e8 else f"{n / 1e6:.2f}M"
        click.echo(f"{r['name']:<14}{params:>9}  {r['architecture']:<20}{r['route']:<8}{r['precision']:<6}"
                   f"{r['context']:>8}  {r['description']}")


@cli.command("spec")
@click.argument("model", required=False)
@spec_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of YAML.")
@click.option("--reference", is_flag=True, help="Print the reference of every spec field (Markdown) and exit.")
def spec_cmd(model, as_json, reference, **kwargs) -> None:
    """Show the resolved spec for MODEL (catalogue < --spec file < options < --set)."""
    if reference:
        from .spec.reference import reference_markdown

        click.echo(reference_markdown(), nl=False)
        return
    import yaml

    from .spec import dump_spec

    spec = resolve(model, kwargs)
    data = dump_spec(spec)
    click.echo(json.dumps(data, indent=2) if as_json else yaml.safe_dump(data, sort_keys=False), nl=not as_json)


# -- repo / validate -------------------------------------------------------------------------------------


@cli.command("repo")
@click.argument("model", required=False)
@spec_options
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              help="Repository directory (default: repos/<name>).")
@click.option("--force", is_flag=True, help="Replace the directory even if tritongen did not create it.")
@click.option("--no-build", is_flag=True, help="engine route: render even if the engine is not built yet (or "
              "--engine-dir is not there yet).")
def repo_cmd(model, out, force, no_build, **kwargs) -> None:
    """Render and validate the Triton model repository for MODEL into repos/<name>.

    The tree is written atomically: rendered into a temporary directory, validated, then moved into place. A
    directory tritongen did not write (or one edited since) is never replaced without --force.
    """
    from .pipeline import build_repo

    spec = resolve(model, kwargs)
    built = build_repo(spec, out or default_repo_dir, force=force, no_build=no_build,
                       echo=lambda m: click.echo(m, err=True),
                       warn=lambda m: click.echo(click.style(m, fg="yellow"), err=True))
    _echo_problems(built.report.warnings)
    click.echo(f"wrote {built.out_dir} ({built.deployment.route.value} route: {', '.join(built.models)})")
    click.echo(f"next: tritongen serve {built.out_dir}")


@cli.command("validate")
@click.argument("repo", type=click.Path(path_type=Path))
@click.option("--engine-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Check against this engine instead of the tensorrt_llm gpt_model_path.")
@click.option("--gpu", help="Serving GPU, to check the engine was built for its architecture.")
@click.option("--strict", is_flag=True, help="Treat warnings as errors.")
def validate_cmd(repo, engine_dir, gpu, strict) -> None:
    """Check REPO the way tritonserver and the TensorRT-LLM backend will when loading it.

    Parses every config.pbtxt with Triton's ModelConfig protobuf, checks the ensemble wiring, looks for
    unrendered placeholders and, when the engine's config.json is reachable, cross-checks it. One line per
    problem; exit code 4 when there are errors.
    """
    from .errors import ValidationFailed
    from .repo.validate import validate_repo

    report = validate_repo(repo, engine_dir=engine_dir, gpu_arch=gpu)
    _echo_problems(report.problems)
    bad = report.errors + (report.warnings if strict else [])
    if bad:
        raise ValidationFailed([f"{len(report.errors)} error(s), {len(report.warnings)} warning(s) in {repo}"])
    engine = f"; engine {report.engine.path.parent} checked" if report.engine else ""
    click.echo(f"{repo}: valid ({len(report.models)} models, {len(report.warnings)} warning(s){engine})")


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    cli.main(args=argv, prog_name="tritongen")


if __name__ == "__main__":  # pragma: no cover
    main(sys.argv[1:])
