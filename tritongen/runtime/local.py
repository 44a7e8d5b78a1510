"""Run tritonserver on this machine: the one on PATH, else the one in the nvidia-pytriton wheel.

The wheel ships Triton 2.51 with the python backend. Its backend stub runs the first ``python3`` on PATH and
loads the first ``libpython`` the loader finds, so tritongen puts this interpreter's ``bin`` and ``LIBDIR``
first; models then import numpy, torch and transformers from the same environment as tritongen.
"""


from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .. import proc
from ..errors import MissingDependency
from ..paths import cache_dir
from .command import ServeOptions, tritonserver_args
from .startup import check_ports, wait_ready
from .state import ServerRecord, run_dir


@dataclass
class Installation:
    binary: str
    backend_dir: str | None
    env: dict[str, str]
    source: str  # "PATH" or "nvidia-pytriton"


def find_installation() -> Installation:
    """Locate a tritonserver binary and the environment it needs."""
    on_path = shutil.which("tritonserver")
    if on_path:
        backends = "/opt/tritonserver/backends" if Path("/opt/tritonserver/backends").is_dir() else None
        return Installation(on_path, backends, {}, "PATH")
    try:
        import pytriton  # noqa: F401
    except ImportError:
        raise MissingDependency(
            "no tritonserver on PATH and the nvidia-pytriton wheel is not installed",
            hint="pip install 'tritongen[local-server]' (nvidia-pytriton==0.7.0 ships tritonserver 2.51), or run "
                 "inside the NGC container, or use --docker",
        ) from None
    root = Path(pytriton.__file__).parent / "tritonserver"
    binary = root / "bin" / "tritonserver"
    libs = Path(pytriton.__file__).parent.parent / "nvidia_pytriton.libs"
    if not binary.is_file():
        raise MissingDependency(f"nvidia-pytriton is installed but {binary} is missing")
    backend_dir = _pytriton_backend_dir(root)
    libdir = sysconfig.get_config_var("LIBDIR") or ""
    env = {
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
        "LD_LIBRARY_PATH": os.pathsep.join(p for p in (libdir, str(libs), os.environ.get("LD_LIBRARY_PATH", "")) if p),
    }
    return Installation(str(binary), str(backend_dir), env, "nvidia-pytriton")


def _pytriton_backend_dir(root: Path) -> Path:
    """A backend folder with the python backend and the stub built for this interpreter (made once)."""
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    stub = root / "python_backend_stubs" / version / "triton_python_backend_stub"
    if not stub.is_file():
        raise MissingDependency(f"nvidia-pytriton has no python backend stub for Python {version}")
    dest = cache_dir() / "triton" / f"backends-py{version}"
    marker = dest / ".complete"
    if marker.is_file() and marker.read_text() == str(root):
        return dest
    tmp = dest.with_name(dest.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(root / "backends" / "python", tmp / "python")
    shutil.copy2(stub, tmp / "python" / "triton_python_backend_stub")
    (tmp / ".complete").write_text(str(root))
    shutil.rmtree(dest, ignore_errors=True)
    os.rename(tmp, dest)
    return dest



def prepare(name: str, opts: ServeOptions, *, owners: list[ServerRecord]) -> tuple[Installation, Path]:
    """Before a server starts on this machine: find tritonserver, check the ports, start an empty log, and
    give the python backend's shared-memory regions a prefix of this server's own."""
    install = find_installation()
    check_ports(opts, owners=owners)
    log = run_dir() / f"{name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text("")
    opts.shm_prefix = opts.shm_prefix or f"tritongen_{name}_{os.getpid()}_"
    return install, log


def supervise(record: ServerRecord, child: subprocess.Popen, log: Path, *, timeout: float,
              echo: Callable[[str], None], tty: bool, abort: Callable[[], object],
              check: Callable[[], None] = lambda: None) -> ServerRecord:
    """Record a started server and wait until it is ready (then ``check`` it); on any failure ``abort`` it."""
    record.save()
    try:
        wait_ready(record, alive=lambda: child.poll() is None, log_tail=lambda: proc.tail_file(log),
                   timeout=timeout, echo=echo, tty=tty)
        check()
    except BaseException:
        abort()
        raise
    return record


def start(
    name: str,
    repos: list[Path],
    opts: ServeOptions,
    *,
    timeout: float = 300.0,
    echo: Callable[[str], None] = lambda m: None,
    tty: bool = False,
    owners: list[ServerRecord] | None = None,
) -> ServerRecord:
    """Start tritonserver on the given repositories and wait until it is ready.

    ``owners``: records of the servers that are running, to name the one holding a port that is taken.
    """
    install, log = prepare(name, opts, owners=owners or [])
    paths = [str(Path(r).resolve()) for r in repos]
    argv = tritonserver_args(paths, opts, binary=install.binary, backend_dir=install.backend_dir)
    child = proc.start(argv, log_path=log, env=install.env)
    record = ServerRecord(
        name=name, repo=paths[0], runtime="local", launcher="local", host=opts.host, http_port=opts.http_port,
        grpc_port=opts.grpc_port, metrics_port=opts.metrics_port, log=str(log), pid=child.pid,
        command=argv, extra={"source": install.source, "repos": paths, "model_control": opts.model_control},
    )

    def abort() -> None:
        proc.stop_pid(child.pid, timeout=10)
        record.remove()

    return supervise(record, child, log, timeout=timeout, echo=echo, tty=tty, abort=abort)


def stop(record: ServerRecord, *, timeout: float | None = None) -> bool:
    """Terminate the server's process group, wait, then kill. True when something was running.

    The default wait is the server's own --exit-timeout-secs plus 5 s: under streaming load Triton 2.51 logs
    "Exit timeout expired. Exiting immediately." and then does not exit (the ensemble's in-flight streams
    never finish once it refuses new internal requests), so waiting longer only delays the kill.
    """
    if timeout is None:
        timeout = _exit_timeout(record) + 5.0
    was_running = bool(record.pid) and proc.stop_pid(record.pid, timeout=timeout)
    record.remove()
    return was_running


def _exit_timeout(record: ServerRecord) -> float:
    for arg in record.command or []:
        if arg.startswith("--exit-timeout-secs="):
            try:
                return float(arg.split("=", 1)[1])
            except ValueError:
                break
    return 25.0


def running(record: ServerRecord) -> bool:
    return bool(record.pid) and proc.pid_alive(record.pid)


#: The process Triton's python backend starts per model instance (argv[1] is that model's model.py).
_STUB = "triton_python_backend_stub"


def expected_stubs(repos: list[str]) -> dict[str, int]:
    """Python-backend models of these repositories -> how many stub processes Triton runs for them
    (one per CPU instance). Keyed by the model's folder, which is what each stub's command line names."""
    from ..repo.report import parse_config

    out: dict[str, int] = {}
    for repo in repos:
        for cfg_path in sorted(Path(repo).glob("*/config.pbtxt")):
            try:
                cfg = parse_config(cfg_path)
            except (OSError, ValueError):
                continue
            if cfg.backend != "python":
                continue
            out[str(cfg_path.parent.resolve())] = sum(max(g.count, 1) for g in cfg.instance_group) or 1
    return out


def missing_stubs(record: ServerRecord) -> list[str]:
    """Models of a running local server whose python-backend stub has died.

    Triton 2.51 neither restarts the stub of a decoupled model nor turns the server or the model unready when
    one dies: every later request fails with "Stub process ... is not healthy" while /v2/health/ready still
    answers 200. Counting the stubs in the server's process group is the only way to see it from outside.
    """
    if not running(record):
        return []
    live: dict[str, int] = {}
    for pid in proc.group_members(record.pid):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if len(argv) > 1 and argv[0].decode(errors="replace").endswith(_STUB):
            model_dir = str(Path(argv[1].decode(errors="replace")).parent.parent)
            live[model_dir] = live.get(model_dir, 0) + 1
    repos = record.extra.get("repos") or [record.repo]
    return sorted(Path(d).name for d, n in expected_stubs(repos).items() if live.get(d, 0) < n)


def logs(record: ServerRecord, lines: int = 50) -> str:
    """The end of the server's log file."""
    return proc.tail_file(Path(record.log), lines)
