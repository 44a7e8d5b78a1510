"""Leader mode under a real mpirun, on this machine, with the real tritonserver (no GPU needed).

The cpu route's `tensorrt_llm` is a python-backend model, so two ranks can run the exact leader-mode command
lines: rank 0 loads every model and serves on 127.0.0.1, rank 1 loads only `tensorrt_llm`, serves nothing and
has its own shared-memory prefix (two python backends with one prefix would collide). What this cannot show is
the TensorRT-LLM backend joining the ranks into one MPI world: that needs GPUs and the NGC image.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from conftest import free_ports
from tritongen.clients.triton import GenerateParams, LLMClient
from tritongen.errors import ServerError
from tritongen.runtime import launch, mpi
from tritongen.runtime.command import ServeOptions

pytestmark = [
    pytest.mark.server,
    pytest.mark.skipif(shutil.which("mpirun") is None, reason="mpirun not found (apt-get install openmpi-bin)"),
]


def _plan(ranks: int, models: list[str]) -> launch.LaunchLayout:
    return launch.LaunchLayout("leader", ranks, True, [], models, {}, "test: python-backend ranks under mpirun")


def _cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")[:-1]
    except OSError:
        return []


def _children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if fields[1] == str(pid):
                out.append(int(entry.name))
    return out


def _options() -> ServeOptions:
    http, grpc, metrics = free_ports(3)
    return ServeOptions(http_port=http, grpc_port=grpc, metrics_port=metrics)


def test_leader_mode_two_ranks(tiny_repo):
    opts = _options()
    record = mpi.start("mpi-leader", [tiny_repo], opts, _plan(2, ["tensorrt_llm"]), timeout=240)
    try:
        assert record.command[:3] == ["mpirun", "--allow-run-as-root", "--tag-output"]
        servers = {pid: _cmdline(pid) for pid in mpi._session_members(record.pid)
                   if _cmdline(pid)[:1] and _cmdline(pid)[0].endswith("/tritonserver")}
        assert len(servers) == 2, servers
        (leader,) = [p for p, argv in servers.items() if f"--http-port={opts.http_port}" in argv]
        (worker,) = [p for p in servers if p != leader]
        assert {"--allow-http=false", "--allow-grpc=false", "--allow-metrics=false",
                "--model-control-mode=explicit", "--load-model=tensorrt_llm"} <= set(servers[worker])
        prefixes = {next(a for a in argv if "shm-region-prefix-name" in a) for argv in servers.values()}
        assert len(prefixes) == 2
        # Rank 1 runs exactly one model: one python-backend stub, for tensorrt_llm.
        worker_models = [a for c in _children(worker) for a in _cmdline(c) if a.endswith("/1/model.py")]
        assert worker_models == [str(tiny_repo / "tensorrt_llm" / "1" / "model.py")]
        # Rank 0 serves, on loopback.
        done = LLMClient(f"127.0.0.1:{opts.grpc_port}").generate("The river", GenerateParams(max_tokens=8),
                                                                 stream=True)
        assert done.text.strip() and len(done.chunks) > 1
    finally:
        was = mpi.stop(record)
    assert was
    assert mpi._session_members(record.pid) == []


def test_a_rank_that_dies_brings_the_launch_down_with_its_log(tiny_repo):
    # Rank 1 is told to load a model the repository does not have: it exits, and mpirun ends the job.
    with pytest.raises(ServerError, match="exited during startup") as info:
        mpi.start("mpi-dies", [tiny_repo], _options(), _plan(2, ["no_such_model"]), timeout=240)
    log = info.value.detail or ""
    assert "[1,1]" in log and "no_such_model" in log
