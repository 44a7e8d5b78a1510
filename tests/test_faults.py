"""Faults: what a client gets, whether serving recovers, what `tritongen status` says, and that nothing
half-written is left, when a python-backend stub dies mid-stream, tritonserver gets SIGTERM under load, or the
disk fills during a render. The figures behind the README's "Faults" table come from these runs."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from conftest import render
from tritongen import proc
from tritongen.cli import cli


def _stream_client(url: str):
    import tritonclient.grpc as grpcclient

    return grpcclient.InferenceServerClient(url)


def _inputs(prompt: str, max_tokens: int):
    import tritonclient.grpc as grpcclient

    def tensor(name, value, dtype):
        t = grpcclient.InferInput(name, list(value.shape), dtype)
        t.set_data_from_numpy(value)
        return t

    return [
        tensor("text_input", np.array([[prompt.encode()]], dtype=object), "BYTES"),
        tensor("max_tokens", np.array([[max_tokens]], dtype=np.int32), "INT32"),
        tensor("stream", np.array([[True]], dtype=bool), "BOOL"),
    ]


class Stream:
    """One streamed request on its own gRPC stream; responses and errors land in a queue."""

    def __init__(self, url: str, prompt: str, max_tokens: int, *, timeout_s: float, request_id: str = ""):
        self.client = _stream_client(url)
        self.events: queue.Queue = queue.Queue()
        self.client.start_stream(callback=lambda result, error: self.events.put((result, error)),
                                 stream_timeout=timeout_s)
        self.client.async_stream_infer("ensemble", _inputs(prompt, max_tokens), request_id=request_id,
                                       enable_empty_final_response=True)

    def next(self, timeout: float):
        return self.events.get(timeout=timeout)

    def drain(self, timeout: float) -> tuple[int, str | None]:
        """(responses, first error) until the final response, an error, or ``timeout`` seconds of silence."""
        n = 0
        while True:
            try:
                result, error = self.events.get(timeout=timeout)
            except queue.Empty:
                return n, "silence"
            if error is not None:
                return n, str(error)
            n += 1
            params = result.get_response().parameters
            if "triton_final_response" in params and params["triton_final_response"].bool_param:
                return n, None

    def close(self) -> None:
        try:
            self.client.stop_stream(cancel_requests=True)
        except Exception:  # the server may be gone: nothing to close
            pass
        self.client.close()


def _stubs(pgid: int) -> dict[int, str]:
    """pid -> model folder of every python-backend stub in the server's process group."""
    out = {}
    for pid in proc.group_members(pgid):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv[0].endswith(b"triton_python_backend_stub"):
            out[pid] = Path(argv[1].decode()).parent.parent.name
    return out


def _status_json() -> list[dict]:
    result = CliRunner().invoke(cli, ["status", "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


@pytest.fixture()
def slow_mock_repo(tiny_dir, tmp_path) -> Path:
    # 20 ms per token: a 400-token stream lasts ~8 s, long enough to break it in the middle.
    return render("tiny", tmp_path / "faults", **{"route": "cpu", "cpu.engine": "mock", "cpu.mock_step_ms": 20})


@pytest.mark.server
@pytest.mark.slow
def test_stub_killed_mid_stream(slow_mock_repo, server_factory):
    record = server_factory(slow_mock_repo, "test-fault-stub")
    stream = Stream(record.grpc_url, "The river ran past the mill.", 400, timeout_s=12)
    try:
        first, error = stream.next(timeout=30)
        assert error is None, error
        engine = [pid for pid, model in _stubs(record.pid).items() if model == "tensorrt_llm"]
        assert len(engine) == 1, _stubs(record.pid)
        os.kill(engine[0], signal.SIGKILL)
        t0 = time.monotonic()
        responses, error = stream.drain(timeout=30)
        # What the client gets: no more tokens and, because Triton 2.51 never answers the orphaned stream, the
        # error of its own deadline (stream_timeout) - not a hang past it, and not a "successful" short answer.
        assert error is not None and ("Deadline" in error or "DEADLINE" in error), error
        assert time.monotonic() - t0 < 20
    finally:
        stream.close()

    # Whether serving recovers: it does not - every new request is refused at once, naming the dead stub ...
    again = Stream(record.grpc_url, "hello", 4, timeout_s=20)
    try:
        _, error = again.drain(timeout=20)
    finally:
        again.close()
    assert error is not None and "not healthy" in error, error

    # ... while Triton still reports itself ready, so tritongen's status looks at the stubs themselves.
    from tritongen.runtime.startup import ready

    assert ready(record.client_host, record.http_port)
    row = next(r for r in _status_json() if r["name"] == "test-fault-stub")
    assert row["state"] == "degraded" and row["dead_models"] == ["tensorrt_llm"], row
    human = CliRunner().invoke(cli, ["status"])
    assert "degraded" in human.output and "tensorrt_llm has died" in human.output, human.output


@pytest.mark.server
@pytest.mark.slow
def test_sigterm_under_load(slow_mock_repo, server_factory):
    from tritongen.runtime import local

    record = server_factory(slow_mock_repo, "test-fault-sigterm")
    streams = [Stream(record.grpc_url, f"Stream number {i} about the river.", 400, timeout_s=15) for i in range(6)]
    try:
        for s in streams:
            _, error = s.next(timeout=30)
            assert error is None, error
        members = proc.group_members(record.pid)
        assert len(members) >= 4  # tritonserver + its three python-backend stubs
        os.kill(record.pid, signal.SIGTERM)
        # What the clients get: their streams stop (Triton refuses the ensemble's internal step requests while
        # it drains) and end with an error - none of them completes, none hangs past its own deadline.
        outcomes = [s.drain(timeout=25) for s in streams]
        assert all(err is not None for _, err in outcomes), outcomes
        assert all(n < 400 for n, _ in outcomes), outcomes
    finally:
        for s in streams:
            s.close()
    # tritongen stop escalates to SIGKILL shortly after the server's exit timeout and leaves no process behind.
    t0 = time.monotonic()
    local.stop(record)
    assert time.monotonic() - t0 < local._exit_timeout(record) + 10
    assert not proc.group_members(record.pid)
    assert all(r["name"] != "test-fault-sigterm" for r in _status_json())


def _mount_tmpfs(path: Path, size: str) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        return False
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          capture_output=True).returncode == 0


def test_disk_full_during_render(tiny_dir, tmp_path):
    disk = tmp_path / "disk"
    if not _mount_tmpfs(disk, "256k"):
        pytest.skip("needs root and a tmpfs mount to fill a real file system")
    try:
        out = disk / "tiny"
        runner = CliRunner()
        first = runner.invoke(cli, ["repo", "tiny", "--route", "cpu", "--out", str(out)])
        assert first.exit_code == 0, first.output
        before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
        free = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
        (disk / "filler").write_bytes(b"\0" * max(free - 8192, 0))

        result = runner.invoke(cli, ["repo", "tiny", "--route", "cpu", "--out", str(out), "--force",
                                     "--set", "limits.max_batch_size=16"])
        assert result.exit_code == 12, result.output
        assert "No space left on device" in result.output and "Traceback" not in result.output
        # Nothing half-written: the old repository is byte-identical and no temporary sibling is left.
        after = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
        assert after == before
        assert sorted(p.name for p in disk.iterdir()) == ["filler", "tiny"]
    finally:
        subprocess.run(["umount", str(disk)], capture_output=True)
