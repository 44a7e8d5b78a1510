"""Run a launch under ``mpirun`` on this machine: leader mode (one tritonserver per rank), the orchestrator,
and the LLM-API route (:mod:`.launch` decides which and writes the command lines).

The tritonserver is the one :mod:`.local` finds (on PATH, e.g. inside the NGC container, or the pytriton wheel).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from .. import proc
from ..errors import MissingDependency
from . import local
from .command import ServeOptions
from .launch import LaunchLayout, check_ranks, launch_argv, rank_argvs
from .state import ServerRecord


def start(
    name: str,
    repos: list[Path],
    opts: ServeOptions,
    layout: LaunchLayout,
    *,
    timeout: float = 300.0,
    echo: Callable[[str], None] = lambda m: None,
    tty: bool = False,
    owners: list[ServerRecord] | None = None,
    mpirun: str | None = None,
) -> ServerRecord:
    """Start the launch under mpirun on this machine (tritonserver on PATH, e.g. inside the NGC container).

    mpirun aborts the whole job when a rank exits abnormally, so a rank that dies ends the launch; the log
    (each line tagged with its rank) says which one and why.
    """
    if not shutil.which(mpirun or "mpirun"):
        raise MissingDependency(f"{layout.mode} mode needs mpirun (Open MPI) on PATH",
                                hint="run inside the NGC container, install openmpi-bin, or use --docker")
    # By name, not by absolute path: Open MPI treats /usr/bin/mpirun like `--prefix /usr` and puts /usr/bin
    # and /usr/lib first on every rank's PATH / LD_LIBRARY_PATH, which swaps the python backend's interpreter.
    mpirun = mpirun or "mpirun"
    install, log = local.prepare(name, opts, owners=owners or [])
    paths = [str(Path(r).resolve()) for r in repos]
    argv = launch_argv(layout, rank_argvs(paths, opts, layout, binary=install.binary,
                                          backend_dir=install.backend_dir), mpirun=mpirun)
    env = {**install.env, **layout.env}
    child = proc.start(argv, log_path=log, env=env)
    record = ServerRecord(
        name=name, repo=paths[0], runtime="local", launcher="mpi", host=opts.host, http_port=opts.http_port,
        grpc_port=opts.grpc_port, metrics_port=opts.metrics_port, log=str(log), pid=child.pid, command=argv,
        extra={"source": install.source, "repos": paths, "model_control": opts.model_control,
               "launch_mode": layout.mode, "ranks": layout.ranks},
    )

    def all_ranks_running() -> None:
        servers = [p for p in _session_members(child.pid) if _is_tritonserver(p)]
        check_ranks(name, layout, len(servers), detail=proc.tail_file(log))

    return local.supervise(record, child, log, timeout=timeout, echo=echo, tty=tty,
                           abort=lambda: stop(record, timeout=10), check=all_ranks_running)


def _is_tritonserver(pid: int) -> bool:
    try:
        argv0 = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0", 1)[0].decode()
    except OSError:
        return False
    return argv0.rsplit("/", 1)[-1] == "tritonserver"


def _session_members(sid: int) -> list[int]:
    """Live processes in session ``sid`` (mpirun's ranks get their own process groups, but stay in its
    session; exited ones waiting to be reaped are left out)."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == sid:
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if len(fields) > 3 and fields[3] == str(sid) and proc.pid_alive(int(entry.name)):  # state ppid pgrp sid
            out.append(int(entry.name))
    return out


def stop(record: ServerRecord, *, timeout: float = 30.0) -> bool:
    """Stop an mpirun launch: mpirun forwards SIGTERM to every rank; any rank left after it is stopped too."""
    was = bool(record.pid) and proc.stop_pid(record.pid, timeout=timeout)
    if record.pid:
        for pid in _session_members(record.pid):
            proc.stop_pid(pid, timeout=5)
    record.remove()
    return was
