"""Every external command tritongen runs goes through here: argument lists only, never a shell string.

``run`` keeps the last lines of output so a failure can say what went wrong; ``start`` launches a long-lived
process (a server) with its output in a log file; ``stop_pid`` terminates, waits, then kills.
"""

from __future__ import annotations

import collections
import os
import shlex
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from .errors import CommandFailed, MissingDependency

TAIL_LINES = 40


def format_command(argv: Sequence[str]) -> str:
    """A copy-pasteable rendering of an argument list (for --dry-run and error messages)."""
    return shlex.join(str(a) for a in argv)


def run(
    argv: Sequence[str],
    *,
    what: str | None = None,
    env: dict[str, str] | None = None,
    cwd: str | Path | None = None,
    on_line: Callable[[str], None] | None = None,
    check: bool = True,
    tail_lines: int = TAIL_LINES,
    input_text: str | None = None,
) -> tuple[int, str]:
    """Run ``argv`` to completion, streaming each output line to ``on_line``.

    Returns ``(returncode, tail)`` where ``tail`` is the last ``tail_lines`` lines of stdout+stderr. With
    ``check`` a non-zero exit raises :class:`CommandFailed` naming ``what`` (or the program) with the tail.
    """
    argv = [str(a) for a in argv]
    label = what or Path(argv[0]).name
    merged_env = None if env is None else {**os.environ, **env}
    tail: collections.deque[str] = collections.deque(maxlen=tail_lines)
    try:
        proc = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.PIPE if input_text is not None else subprocess.DEVNULL,
            env=merged_env,
            cwd=cwd,
            text=True,
            errors="replace",
            bufsize=1,
        )
    except FileNotFoundError as exc:
        raise MissingDependency(f"{label}: program not found: {argv[0]}") from exc
    if input_text is not None:
        assert proc.stdin is not None
        proc.stdin.write(input_text)
        proc.stdin.close()
    assert proc.stdout is not None
    try:
        for line in proc.stdout:
            line = line.rstrip("\n")
            tail.append(line)
            if on_line is not None:
                on_line(line)
        returncode = proc.wait()
    except KeyboardInterrupt:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        raise
    text = "\n".join(tail)
    if check and returncode != 0:
        raise CommandFailed(
            f"{label} failed with exit code {returncode}: {format_command(argv)}",
            returncode=returncode,
            tail=text,
        )
    return returncode, text


def start(
    argv: Sequence[str],
    *,
    log_path: Path,
    env: dict[str, str] | None = None,
    cwd: str | Path | None = None,
) -> subprocess.Popen:
    """Start a long-lived process in its own session, its output appended to ``log_path``."""
    argv = [str(a) for a in argv]
    log_path.parent.mkdir(parents=True, exist_ok=True)
    merged_env = None if env is None else {**os.environ, **env}
    with open(log_path, "ab") as log:
        try:
            return subprocess.Popen(
                argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=merged_env,
                cwd=cwd,
                start_new_session=True,
            )
        except FileNotFoundError as exc:
            raise MissingDependency(f"program not found: {argv[0]}") from exc


def pid_alive(pid: int) -> bool:
    """True when a process with ``pid`` exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def stop_pid(pid: int, *, timeout: float = 20.0, group: bool = True) -> bool:
    """Terminate ``pid`` and, with ``group``, every process in its process group: SIGTERM, wait up to
    ``timeout`` for all of them, then SIGKILL what is left. True if anything was running.

    The group is remembered before signalling: a server's children (Triton's python-backend stubs) can outlive
    it, and once the leader is gone its group can no longer be looked up from its pid.
    """
    pgid = None
    if group:
        try:
            pgid = os.getpgid(pid)
        except ProcessLookupError:
            pgid = None
    leader_alive = pid_alive(pid)
    if not leader_alive and (pgid is None or not group_members(pgid)):
        return False

    def _signal(sig: int) -> None:
        try:
            if pgid is not None:
                os.killpg(pgid, sig)
            else:
                os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def _running() -> bool:
        _reap(pid)
        return pid_alive(pid) or (pgid is not None and bool(group_members(pgid)))

    _signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _running():
        time.sleep(0.1)
    if _running():
        _signal(signal.SIGKILL)
        for _ in range(50):
            if not _running():
                break
            time.sleep(0.1)
    return True


def _proc_stats():
    """(pid, state, pgrp, cpu seconds) of every process, from /proc/<pid>/stat."""
    tick = os.sysconf("SC_CLK_TCK")
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        yield int(entry), fields[0], int(fields[2]), (int(fields[11]) + int(fields[12])) / tick


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes in process group ``pgid``."""
    return [pid for pid, state, pgrp, _ in _proc_stats() if pgrp == pgid and state != "Z"]


def group_cpu_seconds(pgid: int) -> float:
    """CPU seconds (user + system) used so far by the live processes of process group ``pgid``: a server
    started by tritongen and all its backend stubs."""
    return sum(cpu for _, state, pgrp, cpu in _proc_stats() if pgrp == pgid and state != "Z")


def _reap(pid: int) -> None:
    # Our own children become zombies until waited for; harmless for processes we did not start.
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def tail_file(path: Path, lines: int = TAIL_LINES) -> str:
    """The last ``lines`` lines of a text file ('' when missing)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 64 * 1024))
            data = fh.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(data.splitlines()[-lines:])
