"""One ``docker run``, described once: the serving container (:mod:`.docker`) and every engine build step
(:mod:`tritongen.engine.plan`) are written as a :class:`ContainerRun` and turned into a command line here.

It imports nothing but the standard library, so the engine build (a lower layer) may use it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

#: ``--ulimit`` values NVIDIA runs its containers with: unlimited locked memory (TensorRT-LLM backend README)
#: and a 64 MiB stack (Triton's examples, NVIDIA DeepLearningExamples ``triton/scripts/launch_server.sh``).
ULIMITS = {"memlock": "-1", "stack": "67108864"}


@dataclass(frozen=True)
class Mount:
    """A host path bind-mounted into a container."""

    source: str | Path  #: the path on the host
    target: str  #: the path inside the container
    readonly: bool = True

    def volume(self) -> str:
        """As ``-v`` takes it."""
        return f"{self.source}:{self.target}" + (":ro" if self.readonly else "")

    def bind(self) -> str:
        """As ``--mount`` takes it."""
        return f"type=bind,source={self.source},target={self.target}" + (",readonly" if self.readonly else "")


@dataclass(kw_only=True)
class ContainerRun:
    """A container to ``docker run``: its image and command, and what the host gives it."""

    name: str
    image: str
    command: list[str]
    mounts: list[Mount]
    gpus: list[int] = field(default_factory=list)
    shm_size: str
    ulimits: dict[str, str] = field(default_factory=lambda: dict(ULIMITS))
    env: dict[str, str] = field(default_factory=dict)
    #: Variables docker copies from its own environment: their values never appear on the command line.
    pass_env: tuple[str, ...] = ()
    user: str | None = None
    detach: bool = False
    remove: bool = False
    init: bool = False
    network: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    #: (host address, host port, container port)
    ports: list[tuple[str, int, int]] = field(default_factory=list)
    no_new_privileges: bool = False
    read_only_root: bool = False
    tmpfs: list[str] = field(default_factory=list)
    workdir: str | None = None
    #: ``-e`` and ``-v`` (which creates a missing source directory) instead of ``--env`` and ``--mount``
    #: (which refuses one): the engine build's recorded commands are written that way.
    short_flags: bool = False


def docker_run_args(run: ContainerRun, *, docker: str = "docker") -> list[str]:
    """The ``docker run`` command line for ``run`` (argument list, no shell)."""
    argv = [docker, "run"]
    if run.detach:
        argv.append("--detach")
    if run.remove:
        argv.append("--rm")
    argv += ["--name", run.name]
    if run.init:
        argv.append("--init")
    if run.network:
        argv += ["--network", run.network]
    for key, value in run.labels.items():
        argv += ["--label", f"{key}={value}"]
    for host, hport, cport in run.ports:
        argv += ["--publish", f"{host}:{hport}:{cport}"]
    if run.gpus:
        # The value is CSV-parsed by the docker CLI: several devices need the inner double quotes.
        argv += ["--gpus", '"device=' + ",".join(str(g) for g in run.gpus) + '"']
    argv += ["--shm-size", run.shm_size]
    for key, value in run.ulimits.items():
        argv += ["--ulimit", f"{key}={value}"]
    if run.no_new_privileges:
        argv += ["--security-opt", "no-new-privileges"]
    if run.read_only_root:
        argv.append("--read-only")
    for spec in run.tmpfs:
        argv += ["--tmpfs", spec]
    if run.user:
        argv += ["--user", run.user]
    env_flag = "-e" if run.short_flags else "--env"
    for key, value in run.env.items():
        argv += [env_flag, f"{key}={value}"]
    for name in run.pass_env:
        argv += [env_flag, name]
    for m in run.mounts:
        argv += ["-v", m.volume()] if run.short_flags else ["--mount", m.bind()]
    if run.workdir:
        argv += ["-w", run.workdir]
    argv.append(run.image)
    return argv + list(run.command)


def visible_gpus(ids: list[int]) -> list[int]:
    """Host GPUs to expose so that the ids written in the configs stay valid inside the container.

    ``--gpus device=2,3`` renumbers those GPUs 0 and 1 inside the container; a repository rendered for
    gpu_ids [2, 3] says 2,3. Ids 0..n-1 are exposed as they are; otherwise 0..max(id) are exposed, so that
    each id names the same GPU inside as outside (the models still use only their own).
    """
    if not ids:
        return []
    ids = sorted(set(ids))
    return ids if ids == list(range(len(ids))) else list(range(max(ids) + 1))
