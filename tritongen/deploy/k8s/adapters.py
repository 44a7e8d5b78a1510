"""The one place this package reaches into modules that the layout change (issue 12) is moving.

Everything else under ``tritongen.deploy.k8s`` imports only ``tritongen.spec``, ``catalog``, ``versions``,
``errors``, ``names``, ``gpus`` and the planner's shapes. Written against the pre-issue-12 layout (render.py,
serve/), repointed here after the layout change landed; only the imports inside these functions changed:

* :func:`render_repository`: the model repository for a spec, rendered into a folder (resolve ->
  render.tree.render_into + repo.lock.write_lock, whose lock file records the spec the manifests were made from);
* :func:`serving_launch`: the serving command exactly as ``tritongen serve --docker`` builds it
  (repo.inspect.inspect_repo -> runtime.docker.container_plan), for a repository mounted at ``repo_path``;
* :func:`engine_build`: the engine cache entry name, its key material and the download / convert / quantize /
  trtllm-build argument lists inside the pinned image (engine.plan.plan_build with the docker runner, whose
  container paths are /checkpoint and /work).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass
class Launch:
    command: list[str]
    env: dict[str, str]
    mode: str  #: single | leader | orchestrator
    ranks: int
    trtllm_models: list[str]


@dataclass
class BuildStep:
    name: str  #: download | convert | quantize | build ...
    title: str
    argv: list[str]
    uses_gpus: bool
    sources: list[tuple[str, str]]  #: (flag, the spec field(s) its value comes from)


@dataclass
class EngineBuild:
    entry: str  #: cache entry folder name (model-precision-tpNppM-<key>)
    material: dict
    image: str
    trtllm_version: str
    steps: list[BuildStep]
    checkpoint_mount: str  #: where the steps expect the Hugging Face checkpoint
    work_mount: str  #: where the steps write (tllm_checkpoint/, engine/)
    engine_subdir: str  #: the built engine, under work_mount


def render_repository(spec, dest: Path) -> None:
    """Render the spec's model repository (and its lock file) into the existing folder ``dest``."""
    from ...render.tree import render_into
    from ...repo.lock import write_lock
    from ...resolve import resolve

    deployment = resolve(spec)
    render_into(deployment, dest)
    write_lock(deployment, dest)


def serving_launch(repo_dir: Path, repo_path: str, *, image: str, http_port: int, grpc_port: int,
                   metrics_port: int) -> Launch:
    """The command ``tritongen serve --docker`` runs for the repository in ``repo_dir``, as if it were mounted
    at ``repo_path`` inside the container, listening on the container's addresses (a pod's own network)."""
    from ...repo.inspect import inspect_repo
    from ...runtime import docker
    from ...runtime.command import ServeOptions

    info = inspect_repo(repo_dir)
    info.path = Path(repo_path)
    info.referenced_paths = []  # they live on the cache volume, not on this machine
    opts = ServeOptions(host="0.0.0.0", http_port=http_port, grpc_port=grpc_port, metrics_port=metrics_port)
    plan = docker.container_plan("k8s", [info], opts, image=image, mounts=[], missing_ok=True)
    return Launch(command=list(plan.command), env=dict(plan.env), mode=plan.launch.mode, ranks=plan.launch.ranks,
                  trtllm_models=list(plan.launch.trtllm_models))


def engine_build(spec) -> EngineBuild:
    """What ``tritongen engine --gpu <engine.gpu>`` would run for ``spec`` in the image (no GPU detection:
    the GPU is the one the spec names, since the build runs on the cluster's nodes, not here)."""
    from ...engine import gating
    from ...engine import plan as engine_plan

    target = gating.resolve(spec, detect_gpus=False)
    bplan = engine_plan.plan_build(spec, gpu=target, runner="docker")
    ep = bplan.target
    steps = [BuildStep(s.name, s.title, s.tool_argv(), s.gpus, [(a.flag, a.source) for a in s.args])
             for s in ep.steps]
    return EngineBuild(entry=ep.entry.name, material=dict(ep.material), image=ep.image,
                       trtllm_version=ep.trtllm_version, steps=steps, checkpoint_mount=engine_plan.C_CHECKPOINT,
                       work_mount=engine_plan.C_WORK, engine_subdir=engine_plan.ENGINE_SUBDIR)
