"""Build a repository from a spec, the one way both ``tritongen repo`` and ``tritongen demo`` do it:
resolve -> the route prepares (tiny model, engine build) -> render -> validate (once) -> swap into place."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from . import routes
from .render import write
from .repo.validate import Report
from .resolve import Deployment, resolve
from .spec import Spec


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
    just before rendering. What the route needs built (an engine) is built first, unless ``no_build``.
    """
    deployment = resolve(spec)
    route = routes.for_spec(spec)
    route.check(deployment)
    if callable(out_dir):
        out_dir = out_dir(spec)
    deployment = route.prepare(deployment, build=not no_build, echo=echo, warn=warn)
    if on_render is not None:
        on_render()
    path, report = write(deployment, out_dir, force=force)
    return BuiltRepo(out_dir, path, deployment, report)
