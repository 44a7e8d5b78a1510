"""Build a repository from a spec, the one way both ``tritongen repo`` and ``tritongen demo`` do it:
resolve -> [tiny model | engine build] -> render -> validate (once) -> swap into place."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from . import routes
from .errors import UsageError
from .names import show_path
from .render import write
from .repo.validate import Report
from .resolve import Deployment, resolve
from .spec import Route, Spec


@dataclass(frozen=True)
class BuiltRepo:
    """What a build wrote: where, for which deployment, and what validating it found (no errors, by then)."""

    #: The folder as asked for (not made absolute), for messages.
    out_dir: Path
    path: Path
    deployment: Deployment
    report: Report

    @property
    def models(self) -> list[str]:
        """The models of the repository, sorted."""
        return sorted(self.report.models)


def _quiet(message: str) -> None:
    return None


def build_repo(spec: Spec, out_dir: Path | Callable[[Spec], Path], *, force: bool = False, no_build: bool = False,
               echo: Callable[[str], None] = _quiet, warn: Callable[[str], None] = _quiet,
               on_render: Callable[[], None] | None = None) -> BuiltRepo:
    """Make everything the spec's repository needs, then render and validate it into ``out_dir`` (or the folder
    ``out_dir(spec)`` names, asked once the route has accepted the spec).

    ``echo`` gets progress lines (the tiny model, the engine build), ``warn`` warnings; ``on_render`` is called
    just before rendering. An engine that is not built is built first, unless ``no_build``.
    """
    deployment = resolve(spec)
    routes.for_spec(spec).check(deployment)
    if callable(out_dir):
        out_dir = out_dir(spec)
    if spec.route is Route.engine and spec.engine.dir is not None:
        check_engine_dir(Path(spec.engine.dir), no_build, warn)
        if spec._from_engine:
            taken = ", ".join(f"{k}={v}" for k, v in spec._from_engine.items())
            echo(f"from the engine's config.json: {taken}")
    if spec.route is Route.cpu:
        from .tiny import ensure_model

        ensure_model(spec, echo=echo)
    if spec.route is Route.engine and spec.engine.dir is None and not no_build:
        from .engine import workflow

        deployment = resolve(workflow.ensure_engine(spec, echo=echo))
    if on_render is not None:
        on_render()
    path, report = write(deployment, out_dir, force=force)
    return BuiltRepo(out_dir, path, deployment, report)


def check_engine_dir(engine_dir: Path, no_build: bool, warn: Callable[[str], None] = _quiet) -> None:
    """A prebuilt engine that is not there is an error, not a repository that cannot load (unless the engine is
    to be built later: ``no_build``, which only warns)."""
    if engine_dir.joinpath("config.json").is_file():
        return
    what = "does not exist" if not engine_dir.exists() else "has no config.json (not a trtllm-build output)"
    if no_build:
        warn(f"warning: --engine-dir {show_path(engine_dir)} {what}; rendering anyway (--no-build)")
        return
    raise UsageError(f"--engine-dir {show_path(engine_dir)} {what}",
                     hint="point it at the folder trtllm-build wrote (config.json + rank*.engine), or pass "
                          "--no-build to render for an engine built later")
