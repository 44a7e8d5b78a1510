"""The ways tritongen runs a server, behind one small interface, and the registry that picks one.

A server record names the runtime that started it (``ServerRecord.launcher``); ``stop``, ``status`` and
``logs`` ask the registry for that runtime instead of guessing from the record.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from ..repo.inspect import inspect_repo
from . import docker, local, mpi, state
from .command import ServeOptions
from .dynamo import DynamoRuntime
from .launch import LaunchLayout, choose_layout
from .state import ServerRecord


@dataclass
class ContainerOptions:
    """How the serving container is run (``--docker`` only)."""

    image: str | None = None
    run_as: str | None = None
    network: str = "bridge"
    shm_size: str = docker.DEFAULT_SHM
    gpus: list[int] | None = None
    read_only_root: bool = False
    memlock: str = "unlimited"


@dataclass
class LaunchRequest:
    """One server to start: its name, repositories and endpoints, and how to report progress."""

    name: str
    repos: list[Path]
    options: ServeOptions
    #: The layout already chosen for these repositories (None: the runtime chooses it from ``launch_mode``).
    layout: LaunchLayout | None = None
    launch_mode: str = "auto"
    container: ContainerOptions = field(default_factory=ContainerOptions)
    timeout: float = 300.0
    echo: Callable[[str], None] = lambda m: None
    tty: bool = False
    #: Records of the servers that are running (named when one of them holds a port that is taken).
    owners: list[ServerRecord] = field(default_factory=list)


class Runtime(Protocol):
    """Starts servers one way, and stops, watches and reads the servers it started."""

    def start(self, request: LaunchRequest) -> ServerRecord: ...

    def stop(self, record: ServerRecord) -> bool:
        """Stop the server and forget it; True when it was still running."""

    def running(self, record: ServerRecord) -> bool: ...

    def logs(self, record: ServerRecord, lines: int) -> str: ...

    def missing_stubs(self, record: ServerRecord) -> list[str]:
        """Models whose python-backend process has died while the server still answers ready."""


class LocalRuntime:
    """tritonserver on this machine, one process."""

    def start(self, request: LaunchRequest) -> ServerRecord:
        return local.start(request.name, request.repos, request.options, timeout=request.timeout,
                           echo=request.echo, tty=request.tty, owners=request.owners)

    def stop(self, record: ServerRecord) -> bool:
        return local.stop(record)

    def running(self, record: ServerRecord) -> bool:
        return local.running(record)

    def logs(self, record: ServerRecord, lines: int) -> str:
        return local.logs(record, lines)

    def missing_stubs(self, record: ServerRecord) -> list[str]:
        return local.missing_stubs(record)


class MpiRuntime(LocalRuntime):
    """tritonserver on this machine under mpirun (leader, orchestrator, LLM API); watched like a local one."""

    def start(self, request: LaunchRequest) -> ServerRecord:
        layout = request.layout or _layout_of(request)
        return mpi.start(request.name, request.repos, request.options, layout, timeout=request.timeout,
                         echo=request.echo, tty=request.tty, owners=request.owners)

    def stop(self, record: ServerRecord) -> bool:
        return mpi.stop(record)


class DockerRuntime:
    """tritonserver in the pinned NGC container."""

    def start(self, request: LaunchRequest) -> ServerRecord:
        c = request.container
        return docker.start(request.name, request.repos, request.options, image=c.image, timeout=request.timeout,
                            echo=request.echo, tty=request.tty, run_as=c.run_as, owners=request.owners,
                            launch_mode=request.launch_mode, network=c.network, shm_size=c.shm_size,
                            gpus=c.gpus, read_only_root=c.read_only_root, memlock=c.memlock)

    def stop(self, record: ServerRecord) -> bool:
        return docker.stop(record)

    def running(self, record: ServerRecord) -> bool:
        return docker.running(record)

    def logs(self, record: ServerRecord, lines: int) -> str:
        return docker.logs(record, lines=lines)

    def missing_stubs(self, record: ServerRecord) -> list[str]:
        return []  # counted for servers on this machine only: a container's stubs have the container's paths


#: "dynamo": a local Dynamo graph (broker + frontend + workers as one process group; tritongen dynamo up).
RUNTIMES: dict[str, Runtime] = {"local": LocalRuntime(), "mpi": MpiRuntime(), "docker": DockerRuntime(),
                                "dynamo": DynamoRuntime()}


def _layout_of(request: LaunchRequest) -> LaunchLayout:
    return choose_layout([inspect_repo(r) for r in request.repos], request.launch_mode)


def runtime_of(record: ServerRecord) -> Runtime:
    """The runtime that started the server a record describes."""
    return RUNTIMES[record.launcher]


def record_alive(record: ServerRecord) -> bool:
    """Whether the server a record describes is still running, whichever runtime started it."""
    return runtime_of(record).running(record)


def running_servers() -> list[ServerRecord]:
    """Records of every server that is running (the owners of ports in use)."""
    return [r for r in state.load_all() if record_alive(r)]
