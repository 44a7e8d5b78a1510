"""What every runtime does around starting a server: check its ports, then wait until it is ready.

tritonserver opens its HTTP endpoint only once every model has loaded, so the wait follows the server's log
meanwhile and shows each model's state; a server that dies or stays unready fails with its log tail.
"""

from __future__ import annotations

import errno
import re
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from ..errors import ServerError
from .command import ServeOptions
from .state import ServerRecord


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
    """Fail clearly when a port is taken, naming the tritongen server that holds it when we know it.

    ``owners`` are the records of servers that are running (a stale record must not be named as the holder).
    """
    for label, port in (("HTTP", opts.http_port), ("gRPC", opts.grpc_port), ("metrics", opts.metrics_port)):
        if port_in_use(opts.host, port):
            owner = next((r for r in owners if port in (r.http_port, r.grpc_port, r.metrics_port)), None)
            ports = "choose other ports (--http-port/--grpc-port/--metrics-port)"
            if owner is not None:
                raise ServerError(f"{label} port {port} on {opts.host} is already in use by tritongen server "
                                  f"{owner.name!r} ({owner.repo})",
                                  hint=f"stop it with `tritongen stop {owner.name}`, or {ports}")
            raise ServerError(f"{label} port {port} on {opts.host} is already in use by another program (not a "
                              "server tritongen started)",
                              hint=f"`ss -ltnp 'sport = :{port}'` shows which; stop it, or {ports}")



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
    # A server in a container logs to `docker logs`, which is only available as a tail.
    log_path = Path(record.log) if record.log and record.container is None else None
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

