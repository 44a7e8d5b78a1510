"""Run tritonserver on this machine: the one on PATH, else the one in the nvidia-pytriton wheel.

The wheel ships Triton 2.51 with the python backend. Its backend stub runs the first ``python3`` on PATH and
loads the first ``libpython`` the loader finds, so tritongen puts this interpreter's ``bin`` and ``LIBDIR``
first; models then import numpy, torch and transformers from the same environment as tritongen.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import socket
import sys
import sysconfig
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .. import proc
from ..errors import MissingDependency, ServerError
from ..spec import cache_dir
from .command import ServeOptions, tritonserver_args
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


def free_ports(n: int, host: str = "127.0.0.1") -> list[int]:
    """n distinct ports on ``host`` that are free right now (for benchmarks and tests that start servers)."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind((host, 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host if host not in ("", "::") else "0.0.0.0", port))
        except OSError as exc:
            return exc.errno in (errno.EADDRINUSE, errno.EACCES)
    return False


def check_ports(opts: ServeOptions, *, owners: list[ServerRecord]) -> None:
    """Fail clearly when a port is taken, naming the tritongen server that holds it when we know it."""
    for label, port in (("HTTP", opts.http_port), ("gRPC", opts.grpc_port), ("metrics", opts.metrics_port)):
        if port_in_use(opts.host, port):
            owner = next((r for r in owners if port in (r.http_port, r.grpc_port, r.metrics_port)
                          and record_alive(r)), None)
            ports = "choose other ports (--http-port/--grpc-port/--metrics-port)"
            if owner is not None:
                raise ServerError(f"{label} port {port} on {opts.host} is already in use by tritongen server "
                                  f"{owner.name!r} ({owner.repo})",
                                  hint=f"stop it with `tritongen stop {owner.name}`, or {ports}")
            raise ServerError(f"{label} port {port} on {opts.host} is already in use by another program (not a "
                              "server tritongen started)",
                              hint=f"`ss -ltnp 'sport = :{port}'` shows which; stop it, or {ports}")


def record_alive(record: ServerRecord) -> bool:
    """Whether the server a record describes is still running, whichever runtime started it."""
    if record.runtime == "docker":
        from . import docker

        return docker.running(record)
    return running(record)


def ready(host: str, http_port: int, timeout: float = 1.0) -> bool:
    try:
        with urllib.request.urlopen(f"http://{host}:{http_port}/v2/health/ready", timeout=timeout) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


class StartupLog:
    """What a starting server has logged since we last looked: new lines, and each model's state.

    tritonserver only opens its HTTP endpoint once every model has loaded, so until then the log is the only
    source: ``loading: M:1``, ``successfully loaded 'M'``, ``failed to load 'M'``. A log file is followed from the
    byte it was last read to; a log that is only available as a tail (docker logs) is compared with the last tail.
    """

    _LOADING = re.compile(r"loading: ([^\s:]+):\d+")
    _LOADED = re.compile(r"successfully loaded '([^']+)'")
    _FAILED = re.compile(r"failed to load '([^']+)'")

    def __init__(self, models: list[str], *, path: Path | None, tail: Callable[[], str]):
        self.states = dict.fromkeys(models, "waiting")
        self._path = path
        self._tail = tail
        self._offset = 0
        self._partial = ""
        self._last_tail: list[str] = []

    def new_lines(self) -> list[str]:
        if self._path is not None and self._path.is_file():
            try:
                with open(self._path, "rb") as fh:
                    fh.seek(self._offset)
                    data = fh.read(1 << 20)
                    self._offset = fh.tell()
            except OSError:
                data = b""
            text = self._partial + data.decode("utf-8", "replace")
            *lines, self._partial = text.split("\n")
        else:
            tail = self._tail().splitlines()
            lines = tail
            if self._last_tail:
                last = self._last_tail[-1]
                hits = [i for i, line in enumerate(tail) if line == last]
                lines = tail[hits[-1] + 1:] if hits else tail
            self._last_tail = tail or self._last_tail
        for line in lines:
            for pattern, state in ((self._LOADING, "loading"), (self._LOADED, "ready"), (self._FAILED, "failed")):
                match = pattern.search(line)
                if match and (match.group(1) in self.states or not self.states):
                    self.states[match.group(1)] = state
        return [line for line in lines if line.strip()]

    def summary(self) -> str:
        if not self.states:
            return ""
        return ", ".join(f"{model} {state}" for model, state in self.states.items())


def repo_models(repos: list[str]) -> list[str]:
    """The model folders (those with a config.pbtxt) of the repositories, ensembles last as Triton loads them."""
    names = []
    for repo in repos:
        try:
            names += sorted(p.parent.name for p in Path(repo).glob("*/config.pbtxt"))
        except OSError:
            continue
    return sorted(dict.fromkeys(names), key=lambda n: n.endswith("ensemble"))


def wait_ready(
    record: ServerRecord,
    *,
    alive: Callable[[], bool],
    log_tail: Callable[[], str],
    timeout: float,
    echo: Callable[[str], None],
    tty: bool = False,
) -> None:
    """Poll /v2/health/ready until the server answers; show each model's state and the server's new log lines
    while it loads; fail with the log tail."""
    start = time.monotonic()
    last_note = 0.0
    spinner = "|/-\\"
    i = 0
    log_path = Path(record.log) if record.log and not record.log.startswith("docker ") else None
    startup = StartupLog(repo_models(record.extra.get("repos") or [record.repo]), path=log_path, tail=log_tail)
    width = 0
    last_states = startup.summary()
    while True:
        if ready(record.client_host, record.http_port):
            if tty:
                echo("\r" + " " * width + "\r")
            return
        elapsed = time.monotonic() - start
        if not alive():
            raise ServerError(f"tritonserver for {record.name!r} exited during startup (log: {record.log})",
                              hint="the log tail above says why", detail=log_tail())
        if elapsed > timeout:
            raise ServerError(f"tritonserver for {record.name!r} not ready after {timeout:.0f} s (log: {record.log})",
                              hint="raise --timeout for big models", detail=log_tail())
        lines = startup.new_lines()
        states = startup.summary()
        note = f"waiting for tritonserver {record.name!r}: {elapsed:4.0f} s" + (f" - {states}" if states else "")
        if tty:
            shown = "".join(f"  | {line[:200]}\n" for line in lines)
            echo("\r" + " " * width + "\r" + shown + f"{spinner[i % 4]} {note}")
            width = len(note) + 2
            i += 1
        else:
            for line in lines:
                echo(f"  | {line[:200]}\n")
            if elapsed - last_note >= 5 or states != last_states:
                echo(note + "\n")
                last_note, last_states = elapsed, states
        time.sleep(0.25)


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
    """Start tritonserver on the given repositories and wait until it is ready."""
    install = find_installation()
    check_ports(opts, owners=owners or [])
    log = run_dir() / f"{name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text("")
    opts.shm_prefix = opts.shm_prefix or f"tritongen_{name}_{os.getpid()}_"
    argv = tritonserver_args([str(Path(r).resolve()) for r in repos], opts, binary=install.binary,
                             backend_dir=install.backend_dir)
    child = proc.start(argv, log_path=log, env=install.env)
    record = ServerRecord(
        name=name, repo=str(Path(repos[0]).resolve()), runtime="local", host=opts.host, http_port=opts.http_port,
        grpc_port=opts.grpc_port, metrics_port=opts.metrics_port, log=str(log), pid=child.pid,
        command=argv, extra={"source": install.source, "repos": [str(Path(r).resolve()) for r in repos],
                             "model_control": opts.model_control},
    )
    record.save()
    try:
        wait_ready(record, alive=lambda: child.poll() is None, log_tail=lambda: proc.tail_file(log),
                   timeout=timeout, echo=echo, tty=tty)
    except BaseException:
        proc.stop_pid(child.pid, timeout=10)
        record.remove()
        raise
    return record


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
    from ..repo.validate import parse_config

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
    if record.runtime != "local" or not running(record):
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
