"""A local Dynamo graph as one tritongen server: an event broker, the frontend and the workers, started
together and recorded in one :class:`ServerRecord` (``launcher="dynamo"``), so ``tritongen status``,
``logs`` and ``stop NAME`` handle the graph as a whole.

Every address is loopback unless the caller passes another host: the ``DYN_*_HOST`` variables, the frontend's
``--http-host``, the workers' system (metrics) servers, and the ZMQ broker the event publishers connect to
(:mod:`tritongen.runtime.dynamo_broker`; without it they bind 0.0.0.0).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .. import proc
from ..errors import MissingDependency, ServerError
from .startup import free_ports, port_in_use
from .state import ServerRecord, run_dir

LAUNCHER = "dynamo"


@dataclass
class GraphProcess:
    """One process to start: a name (``frontend``, ``worker-0``, ``prefill-0`` ...), its role, argv and env."""

    name: str
    role: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)


def _check_installed() -> None:
    try:
        import dynamo._core  # noqa: F401
        import zmq  # noqa: F401
    except ImportError as exc:
        raise MissingDependency(f"Dynamo is not installed ({exc.name})",
                                hint="pip install 'tritongen[dynamo]' then pip install --no-deps "
                                     "ai-dynamo==1.6.1 ai-dynamo-runtime==1.6.1 (see README, Dynamo)") from None


def low_free_ports(n: int, start: int = 20000) -> list[int]:
    """n free ports on 127.0.0.1 below 32768: Dynamo 1.6.1 reads DYN_SYSTEM_PORT as a signed 16-bit number and
    refuses any port of the kernel's ephemeral range (32768 and up)."""
    import random
    import socket

    found: list[int] = []
    for port in random.sample(range(start, 32768), 2000):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        found.append(port)
        if len(found) == n:
            return found
    raise ServerError(f"no {n} free ports between {start} and 32767 on 127.0.0.1")


def graph_dir(name: str) -> Path:
    return run_dir() / f"{name}.dynamo"


def _get(url: str, timeout: float = 2.0) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, resp.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return exc.code, ""
    except (urllib.error.URLError, OSError, ValueError):
        return 0, ""


def served_models(record: ServerRecord) -> list[str]:
    """The model names the frontend lists on /v1/models ([] when it does not answer)."""
    code, body = _get(f"http://{record.client_host}:{record.http_port}/v1/models")
    if code != 200:
        return []
    try:
        return [m["id"] for m in json.loads(body).get("data", [])]
    except (ValueError, KeyError, TypeError):
        return []


def registered_workers(record: ServerRecord) -> int:
    """How many worker instances have registered a ``generate`` endpoint in the graph's file discovery."""
    root = Path(record.extra.get("discovery", "")) / "v1" / "instances"
    if not root.is_dir():
        return 0
    # One file per endpoint instance, named <namespace>/<component>/<endpoint>/<id> URL-encoded.
    return sum(1 for p in root.iterdir() if p.is_file() and "%2Fgenerate%2F" in p.name)


def ready(record: ServerRecord) -> bool:
    """The frontend serves the model and every worker has registered."""
    return record.extra.get("model") in served_models(record) and \
        registered_workers(record) >= int(record.extra.get("workers", 1))


def start(name: str, processes: list[GraphProcess], *, model: str, host: str, http_port: int,
          timeout: float = 120.0, echo: Callable[[str], None] = lambda m: None,
          extra: dict | None = None) -> ServerRecord:
    """Start the broker, then ``processes`` (frontend first), in one process group; wait until ready."""
    _check_installed()
    if port_in_use(host, http_port):
        raise ServerError(f"HTTP port {http_port} on {host} is already in use", hint="choose another --http-port")
    gdir = graph_dir(name)
    if gdir.exists():
        import shutil

        shutil.rmtree(gdir)
    (gdir / "discovery").mkdir(parents=True)
    xsub, xpub = free_ports(2, host="127.0.0.1")
    system_ports = low_free_ports(len(processes))
    common = {"DYN_FILE_KV": str(gdir / "discovery"),
              "DYN_ZMQ_BROKER_URL": f"xsub=tcp://127.0.0.1:{xsub},xpub=tcp://127.0.0.1:{xpub}",
              # Worker logs without colour codes, so that `tritongen logs` reads cleanly.
              "NO_COLOR": "1", "DYN_SDK_DISABLE_ANSI_LOGGING": "1"}
    entries: list[dict] = []

    def launch(pname: str, role: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen:
        # Each process leads its own session (a Ctrl-C in this terminal reaches none of them); the record lists
        # them all and stop() takes down each one's process group.
        log = gdir / f"{pname}.log"
        with open(log, "ab") as fh:
            child = subprocess.Popen(argv, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     env={**os.environ, **common, **env}, start_new_session=True)
        entries.append({"name": pname, "role": role, "pid": child.pid, "log": str(log), "argv": argv,
                        "system_port": env.get("DYN_SYSTEM_PORT")})
        return child

    broker = launch("broker", "broker", [sys.executable, "-m", "tritongen.runtime.dynamo_broker", str(xsub),
                                         str(xpub)], {})
    children = [broker]
    workers = 0
    for p, port in zip(processes, system_ports):
        env = dict(p.env)
        if p.role != "frontend":
            env.setdefault("DYN_SYSTEM_PORT", str(port))
            workers += 1
        children.append(launch(p.name, p.role, p.argv, env))
    record = ServerRecord(
        name=name, repo=str(gdir), runtime="dynamo", launcher=LAUNCHER, host=host, http_port=http_port,
        grpc_port=0, metrics_port=http_port, log=entries[1]["log"], pid=broker.pid,
        command=processes[0].argv if processes else [],
        extra={"processes": entries, "discovery": str(gdir / "discovery"), "model": model,
               "workers": workers, **(extra or {})})
    record.save()
    try:
        _wait_ready(record, children, timeout=timeout, echo=echo)
    except BaseException:
        stop(record)
        raise
    return record


def _wait_ready(record: ServerRecord, children: list[subprocess.Popen], *, timeout: float,
                echo: Callable[[str], None]) -> None:
    deadline = time.monotonic() + timeout
    said = -1
    while time.monotonic() < deadline:
        dead = [(e, c.poll()) for e, c in zip(record.extra["processes"], children) if c.poll() is not None]
        if dead:
            e, code = dead[0]
            raise ServerError(f"Dynamo {e['name']} exited during startup (exit code {code})",
                              detail=proc.tail_file(Path(e["log"]), 30))
        if ready(record):
            return
        n = registered_workers(record)
        if n != said:
            echo(f"waiting for the graph: {n}/{record.extra['workers']} worker(s) registered")
            said = n
        time.sleep(0.5)
    raise ServerError(f"the Dynamo graph {record.name!r} was not ready within {timeout:.0f} s",
                      detail=logs(record, 10))


def _pids(record: ServerRecord) -> list[int]:
    return [int(e["pid"]) for e in record.extra.get("processes", [])]


def running(record: ServerRecord) -> bool:
    """Any process of the graph (or a child in one of their process groups) is alive."""
    return any(proc.pid_alive(pid) or proc.group_members(pid) for pid in _pids(record))


def _signal_groups(pids: list[int], sig: int) -> None:
    for pid in pids:
        try:
            os.killpg(pid, sig)  # each process leads its own group (start_new_session)
        except (ProcessLookupError, PermissionError):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass


def stop(record: ServerRecord, *, timeout: float = 15.0) -> bool:
    """SIGTERM the frontend first (no new requests), then the workers and the broker; SIGKILL whatever is left
    of their process groups after ``timeout``. True when anything was running."""
    was = running(record)
    entries = record.extra.get("processes", [])
    rank = {"frontend": 0, "broker": 2}
    ordered = [int(e["pid"]) for e in sorted(entries, key=lambda e: rank.get(e["role"], 1))]
    for pid in ordered:
        _signal_groups([pid], signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and running(record):
        for pid in ordered:
            proc._reap(pid)
        time.sleep(0.1)
    if running(record):
        _signal_groups(ordered, signal.SIGKILL)
        for _ in range(50):
            for pid in ordered:
                proc._reap(pid)
            if not running(record):
                break
            time.sleep(0.1)
    record.remove()
    return was


def logs(record: ServerRecord, lines: int = 50) -> str:
    """The end of each process's log, one section per process."""
    out = []
    for e in record.extra.get("processes", []):
        state = "running" if proc.pid_alive(int(e["pid"])) else "exited"
        out.append(f"==> {e['name']} (pid {e['pid']}, {state}) {e['log']}")
        out.append(proc.tail_file(Path(e["log"]), lines))
    return "\n".join(out)


class DynamoRuntime:
    """A local Dynamo graph (``tritongen dynamo up``); started by :func:`start`, not by ``tritongen serve``."""

    def start(self, request) -> ServerRecord:
        raise ServerError("a Dynamo graph is started with `tritongen dynamo up`, not `tritongen serve`")

    def stop(self, record: ServerRecord) -> bool:
        return stop(record)

    def running(self, record: ServerRecord) -> bool:
        return running(record)

    def logs(self, record: ServerRecord, lines: int) -> str:
        return logs(record, lines)

    def missing_stubs(self, record: ServerRecord) -> list[str]:
        return []

    def ready(self, record: ServerRecord) -> bool:
        return ready(record)
