"""What a route is: the one protocol the renderer, the validator and the runtimes talk to, and its manifest.

A route is a way to run the model (engine, cpu, llmapi). Which files its repository has is data, in
``templates/<route>/manifest.yaml``; what fills them, what it refuses, how its repositories are checked and what
a runtime must know to launch them is the route's code. The renderer and the validator know no route by name.

A manifest::

    include: common/manifest.yaml            # optional: models shared with other routes
    models:
      tensorrt_llm:                          # model role; the folder is serving.model_prefix + role
        when: draft_target                   # optional: rendered only when the route's condition holds
        context: draft                       # optional: rendered with the draft model's context
        render: {config.pbtxt: engine/tensorrt_llm/config.pbtxt.j2}   # destination: template (Jinja)
        copy: {1/model.py: cpu/tensorrt_llm/1/model.py}               # destination: file copied as it is
        lib: [common/lib/textcodec.py]       # helpers put next to model.py (a .j2 one is rendered)
        empty: ["1"]                         # folders Triton needs even when empty

Template paths are relative to the route's template folders (:attr:`Route.template_dirs`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import yaml

from ..errors import TritongenError
from ..repo.report import RepoCheck
from ..resolve import Deployment

_MODEL_KEYS = {"when", "context", "render", "copy", "lib", "empty"}


def templates_root() -> Path:
    """The templates folder: packaged copy when installed as a wheel, else the source tree's ``templates/``."""
    packaged = Path(__file__).parent.parent / "_templates"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parent.parent.parent / "templates"


@dataclass(frozen=True)
class Item:
    """One file of a repository."""

    src: str  #: path under the route's template folders
    dst: str  #: path under the repository, first component the model role
    #: "draft": rendered with the draft model's context (draft-target speculative decoding).
    role: str = "target"

    @property
    def rendered(self) -> bool:
        """Rendered with Jinja (``*.j2``) rather than copied as it is."""
        return self.src.endswith(".j2")


@dataclass(frozen=True)
class Layout:
    """The files and empty folders of one repository, from the manifest and the spec's conditions."""

    items: tuple[Item, ...]
    empty_dirs: tuple[str, ...]


class Route(Protocol):
    """A way to run the model. Implementations subclass :class:`BaseRoute`; routes/cpu.py is a small one."""

    #: The spec's ``route`` value this route serves.
    name: str

    @property
    def template_dirs(self) -> list[Path]:
        """Where its templates (and its manifest, ``<name>/manifest.yaml``) are looked up; first match wins."""

    def check(self, deployment: Deployment) -> None:
        """Refuse (GatingError) what the route cannot serve, before anything is built or rendered."""

    def prepare(self, deployment: Deployment, *, build: bool, echo: Callable[[str], None],
                warn: Callable[[str], None]) -> Deployment:
        """Make what the repository will point at (a checkpoint, an engine: only when ``build``), and return the
        deployment to render, which may know more than before (e.g. the built engine's folder)."""

    def layout(self, deployment: Deployment) -> Layout:
        """The files of this deployment's repository (:class:`BaseRoute` reads them from its manifest)."""

    def conditions(self, deployment: Deployment) -> dict[str, bool]:
        """The switches its manifest's ``when:`` names (e.g. ``bls``, ``draft_target``)."""

    def context(self, deployment: Deployment) -> dict:
        """Everything its templates may use."""

    def draft_context(self, deployment: Deployment) -> dict:
        """The context of the models its manifest marks ``context: draft``."""

    def check_repo(self, check: RepoCheck) -> None:
        """Its own validation rules, on top of the generic ones (repo/validate.py): problems go to ``check.add``."""

    def launch_facts(self, spec: dict) -> dict:
        """What a runtime must know to launch its repositories, from the lock file's spec (may be empty)."""


class BaseRoute:
    """Defaults for a route: templates under templates/, no extra checks, conditions, rules or launch facts."""

    name = ""

    @property
    def template_dirs(self) -> list[Path]:
        return [templates_root()]

    def check(self, deployment: Deployment) -> None:
        return None

    def prepare(self, deployment: Deployment, *, build: bool, echo: Callable[[str], None],
                warn: Callable[[str], None]) -> Deployment:
        return deployment

    def conditions(self, deployment: Deployment) -> dict[str, bool]:
        return {}

    def context(self, deployment: Deployment) -> dict:
        return {"spec": deployment.spec, "names": deployment.names}

    def draft_context(self, deployment: Deployment) -> dict:
        raise TritongenError(f"route {self.name}: its manifest asks for a draft context, which it does not have")

    def check_repo(self, check: RepoCheck) -> None:
        return None

    def launch_facts(self, spec: dict) -> dict:
        return {}

    #: Its manifest, under its template folders (default: ``<name>/manifest.yaml``).
    manifest_path = ""

    def manifest(self) -> dict:
        """The route's manifest with its includes merged in (the included models first)."""
        return load_manifest(self.template_dirs, self.manifest_path or f"{self.name}/manifest.yaml")

    def layout(self, deployment: Deployment) -> Layout:
        """The files of this deployment's repository."""
        return layout(self.manifest(), self.conditions(deployment), self.name)


def spec_gpu_ids(spec: dict) -> list[int]:
    """The GPUs a lock file's spec uses: parallelism.gpu_ids, else the first tp x pp."""
    par = spec.get("parallelism") or {}
    tp, pp = int(par.get("tp") or 1), int(par.get("pp") or 1)
    return [int(g) for g in par["gpu_ids"]] if par.get("gpu_ids") else list(range(tp * pp))


def find_template(dirs: list[Path], rel: str) -> Path:
    """The first of ``dirs`` that has ``rel``."""
    for d in dirs:
        if (d / rel).is_file():
            return d / rel
    raise TritongenError(f"template {rel}: not found in {', '.join(str(d) for d in dirs)}")


def load_manifest(dirs: list[Path], rel: str) -> dict:
    """The manifest at ``rel`` (looked up in ``dirs``), its ``include`` merged in: ``{"models": {...}}``."""
    path = find_template(dirs, rel)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise TritongenError(f"manifest {rel}: not valid YAML ({exc})") from None
    models: dict = {}
    if data.get("include"):
        models.update(load_manifest(dirs, data["include"])["models"])
    models.update(data.get("models") or {})
    return {"models": models}


def layout(manifest: dict, conditions: dict[str, bool], route: str) -> Layout:
    """Evaluate a manifest: every model whose condition holds, with its files and empty folders."""
    items: list[Item] = []
    empty: list[str] = []
    for model, entry in manifest["models"].items():
        unknown = set(entry) - _MODEL_KEYS
        if unknown:
            raise TritongenError(f"manifest of route {route}: {model}: unknown key(s) {', '.join(sorted(unknown))}")
        when = entry.get("when")
        if when is not None:
            if when not in conditions:
                raise TritongenError(f"manifest of route {route}: {model}: unknown condition {when!r}")
            if not conditions[when]:
                continue
        role = entry.get("context", "target")
        for dst, src in (entry.get("render") or {}).items():
            items.append(Item(src, f"{model}/{dst}", role))
        for dst, src in (entry.get("copy") or {}).items():
            items.append(Item(src, f"{model}/{dst}", role))
        for src in entry.get("lib") or ():
            items.append(Item(src, f"{model}/1/{Path(src).name.removesuffix('.j2')}", role))
        empty += [f"{model}/{d}" for d in entry.get("empty") or ()]
    return Layout(tuple(items), tuple(empty))
