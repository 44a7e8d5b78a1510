"""The first hour: one cache rule for make and the CLI, servers that a checkout only stops when it names them,
clear messages without a server or with a foreign process on a port, and a readable startup."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import free_ports
from tritongen.cli import cli
from tritongen.errors import ClientError, ServerError
from tritongen.paths import cache_dir, project_root
from tritongen.runtime import local, startup, state
from tritongen.runtime.command import ServeOptions


def make_checkout(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "Makefile").write_text("all:\n")
    (root / "pyproject.toml").write_text('[project]\nname = "tritongen"\nversion = "0"\n')
    return root


# -- one cache ------------------------------------------------------------------------------------------


def test_cache_rule_env_then_checkout_then_home(tmp_path, monkeypatch):
    checkout = make_checkout(tmp_path / "checkout")
    (checkout / "tritongen" / "serve").mkdir(parents=True)
    home = tmp_path / "home"
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.delenv("TRITONGEN_CACHE", raising=False)
    monkeypatch.chdir(checkout / "tritongen" / "serve")
    assert project_root() == checkout.resolve() and cache_dir() == checkout.resolve() / ".cache"
    monkeypatch.chdir(tmp_path)
    assert project_root() is None and cache_dir() == home / ".cache" / "tritongen"
    monkeypatch.setenv("TRITONGEN_CACHE", str(tmp_path / "mine"))
    monkeypatch.chdir(checkout)
    assert cache_dir() == (tmp_path / "mine").resolve()


def test_another_project_is_not_a_checkout(tmp_path, monkeypatch):
    other = tmp_path / "other"
    other.mkdir()
    (other / "Makefile").write_text("all:\n")
    (other / "pyproject.toml").write_text('[project]\nname = "tritongen-plugin"\n')
    assert project_root(other) is None


def test_engine_list_in_a_checkout_is_the_checkouts_cache(tmp_path, monkeypatch):
    checkout = make_checkout(tmp_path / "checkout")
    monkeypatch.delenv("TRITONGEN_CACHE", raising=False)
    monkeypatch.chdir(checkout)
    result = CliRunner().invoke(cli, ["engine", "--list"])
    assert result.exit_code == 0, result.output
    assert f"in {checkout.resolve() / '.cache' / 'engines'}" in result.output


# -- servers of other checkouts -------------------------------------------------------------------------


@pytest.fixture
def own_state(tmp_path, monkeypatch):
    """A cache (and so a server state folder) of this test's own: the session's servers are not in it."""
    monkeypatch.setenv("TRITONGEN_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def sleepers():
    """Processes standing in for servers (own session, so stop_pid's group kill only hits them)."""
    started = []

    def start() -> int:
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"], start_new_session=True)
        started.append(child)
        return child.pid

    yield start
    for child in started:
        if child.poll() is None:
            child.kill()
        child.wait()


def _record(name: str, pid: int, owner: str) -> state.ServerRecord:
    http, grpc, metrics = free_ports(3)
    record = state.ServerRecord(name=name, repo=f"/repos/{name}", runtime="local", host="127.0.0.1",
                                http_port=http, grpc_port=grpc, metrics_port=metrics, log="/dev/null", pid=pid,
                                owner=owner)
    record.save()
    return record


def test_stop_without_a_name_never_stops_another_checkouts_server(own_state, sleepers):
    theirs = _record("theirs", sleepers(), owner="/elsewhere/checkout/.cache")
    runner = CliRunner()
    alone = runner.invoke(cli, ["stop"])
    assert alone.exit_code == 0, alone.output
    assert "no tritongen server of this checkout is running" in alone.output and "'theirs'" in alone.output
    assert local.running(theirs)
    mine = _record("mine", sleepers(), owner=state.this_owner())
    assert [r.name for r in state.find(None)] == ["mine"]
    stopped = runner.invoke(cli, ["stop"])
    assert stopped.exit_code == 0 and "stopped 'mine'" in stopped.output, stopped.output
    assert not local.running(mine) and local.running(theirs)
    listed = runner.invoke(cli, ["status"])
    assert "theirs" in listed.output and "started from /elsewhere/checkout/.cache" in listed.output
    named = runner.invoke(cli, ["stop", "theirs"])
    assert named.exit_code == 0 and "stopped 'theirs'" in named.output
    assert not local.running(theirs) and state.find(None, everyone=True) == []


def test_a_record_knows_the_cache_that_started_it():
    record = state.ServerRecord(name="x", repo="/r", runtime="local", host="127.0.0.1", http_port=1,
                                grpc_port=2, metrics_port=3, log="/dev/null")
    assert record.owner == str(cache_dir()) and record.mine


# -- messages -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_infer_without_a_server_says_cannot_reach(protocol):
    port = free_ports(1)[0]
    result = CliRunner().invoke(cli, ["infer", "Hi", "--url", f"127.0.0.1:{port}", "--protocol", protocol])
    assert result.exit_code == ClientError.exit_code, result.output
    assert f"cannot reach 127.0.0.1:{port}" in result.output and "tritongen serve" in result.output
    assert "valid state" not in result.output


def test_a_port_taken_by_a_foreign_program_is_not_for_tritongen_stop():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        http, metrics = free_ports(2)
        with pytest.raises(ServerError, match="another program") as exc:
            startup.check_ports(ServeOptions(http_port=http, grpc_port=port, metrics_port=metrics), owners=[])
    assert "tritongen stop" not in (exc.value.hint or "") and f"sport = :{port}" in exc.value.hint


# -- readiness ------------------------------------------------------------------------------------------


def _repo(root: Path, models: list[str]) -> Path:
    for m in models:
        (root / m).mkdir(parents=True)
        (root / m / "config.pbtxt").write_text(f'name: "{m}"\n')
    return root


def test_startup_log_names_each_models_state_and_gives_new_lines_once(tmp_path):
    repo = _repo(tmp_path / "repo", ["ensemble", "preprocessing", "tensorrt_llm"])
    log = tmp_path / "server.log"
    log.write_text("I1 server.cc] starting\nI2 model_lifecycle.cc] loading: preprocessing:1\npartial")
    follow = startup.StartupLog(startup.repo_models([str(repo)]), path=log, tail=lambda: "")
    assert follow.new_lines() == ["I1 server.cc] starting", "I2 model_lifecycle.cc] loading: preprocessing:1"]
    assert follow.summary() == "preprocessing loading, tensorrt_llm waiting, ensemble waiting"
    with open(log, "a") as fh:
        fh.write(" line\nI3 successfully loaded 'preprocessing'\nE4 failed to load 'tensorrt_llm' version 1\n")
    assert follow.new_lines() == ["partial line", "I3 successfully loaded 'preprocessing'",
                                  "E4 failed to load 'tensorrt_llm' version 1"]
    assert follow.summary() == "preprocessing ready, tensorrt_llm failed, ensemble waiting"
    assert follow.new_lines() == []


def test_startup_log_from_a_tail_only_gives_lines_not_seen(tmp_path):
    tails = iter(["a\nb\nc", "b\nc\nd\ne", "d\ne"])
    follow = startup.StartupLog([], path=None, tail=lambda: next(tails))
    assert follow.new_lines() == ["a", "b", "c"]
    assert follow.new_lines() == ["d", "e"]
    assert follow.new_lines() == []


def test_wait_ready_prints_model_states_and_log_lines(tmp_path, monkeypatch):
    repo = _repo(tmp_path / "repo", ["ensemble", "preprocessing"])
    log = tmp_path / "server.log"
    log.write_text("I loading: preprocessing:1\nI successfully loaded 'preprocessing'\n")
    answers = iter([False, False, True])
    monkeypatch.setattr(startup, "ready", lambda host, port, timeout=1.0: next(answers))
    monkeypatch.setattr(startup.time, "sleep", lambda s: None)
    record = state.ServerRecord(name="t", repo=str(repo), runtime="local", host="127.0.0.1", http_port=1,
                                grpc_port=2, metrics_port=3, log=str(log))
    out: list[str] = []
    startup.wait_ready(record, alive=lambda: True, log_tail=lambda: "", timeout=60, echo=out.append)
    text = "".join(out)
    assert "  | I successfully loaded 'preprocessing'" in text
    assert "preprocessing ready, ensemble waiting" in text


def test_test_session_temp_folder_is_removed_at_exit():
    code = ("import conftest, os; print(conftest._SESSION_ROOT); "
            "assert conftest._SESSION_ROOT.is_dir()")
    tests_dir = Path(__file__).parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tests_dir), os.environ.get("PYTHONPATH", "")])}
    env.pop("TRITONGEN_KEEP_TEST_TMP", None)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert not Path(out.stdout.strip()).exists()


# -- smaller points -------------------------------------------------------------------------------------

ENGINE = Path(__file__).parent / "fixtures/engines/llama3-8b-fp16-tp1"


def _engine_repo(out: Path) -> Path:
    from tritongen.render import write_repo
    from tritongen.spec import load_spec

    return write_repo(load_spec("llama3-8b", options={"engine.dir": ENGINE, "model.checkpoint_dir": "/m"}), out)


def test_one_broken_config_is_one_error(tmp_path):
    from tritongen.repo.validate import validate_repo

    repo = _engine_repo(tmp_path / "r")
    with open(repo / "postprocessing" / "config.pbtxt", "a") as fh:
        fh.write("garbage {\n")
    errors = validate_repo(repo).errors
    assert [e.field for e in errors] == ["protobuf"], [str(e) for e in errors]


def test_a_missing_model_is_one_error_not_its_tensors_too(tmp_path):
    import shutil

    from tritongen.repo.validate import validate_repo

    repo = _engine_repo(tmp_path / "r")
    shutil.rmtree(repo / "postprocessing")
    errors = [e for e in validate_repo(repo).errors if "ensemble" in str(e.file)]
    assert len(errors) == 1 and "no model 'postprocessing'" in str(errors[0]), [str(e) for e in errors]


def test_the_lock_header_names_no_bare_repository_name(tmp_path):
    from tritongen.repo.lock import LOCK_NAME

    repo = _engine_repo(tmp_path / "llama3-8b")
    header = [line for line in (repo / LOCK_NAME).read_text().splitlines() if line.startswith("#")]
    assert "tritongen validate" in " ".join(header) and "validate llama3-8b" not in " ".join(header)
    result = CliRunner().invoke(cli, ["validate", str(repo)])
    assert result.exit_code == 0, result.output


def test_bench_records_a_container_only_for_a_docker_server():
    from tritongen.commands.bench import _runtime

    base = dict(repo="/r", host="127.0.0.1", http_port=1, grpc_port=2, metrics_port=3, log="/dev/null")
    docker = state.ServerRecord(name="d", runtime="docker", image="nvcr.io/nvidia/tritonserver:x", container="c",
                                **base)
    local_record = state.ServerRecord(name="l", runtime="local", command=["/bin/tritonserver"],
                                      extra={"source": "nvidia-pytriton"}, **base)
    assert _runtime(docker)["container"] == {"image": "nvcr.io/nvidia/tritonserver:x", "name": "c"}
    assert _runtime(local_record) == {"kind": "local", "server": "l", "container": None,
                                      "tritonserver": "nvidia-pytriton"}
    assert _runtime(None)["container"] is None


def test_a_record_of_an_older_release_with_any_name_can_still_be_removed(own_state):
    import json
    from dataclasses import asdict

    legacy = state.ServerRecord(name="my repo", repo="/r", runtime="local", host="127.0.0.1", http_port=1,
                                grpc_port=2, metrics_port=3, log="/dev/null", pid=None)
    data = asdict(legacy)
    data.pop("owner")  # older releases wrote no owner
    state.run_dir().mkdir(parents=True, exist_ok=True)
    (state.run_dir() / "my repo.json").write_text(json.dumps(data))
    [record] = [r for r in state.load_all() if r.name == "my repo"]
    assert record.owner is None
    result = CliRunner().invoke(cli, ["stop", "my repo"])
    assert result.exit_code == 0 and "removed stale record of 'my repo'" in result.output, result.output
    assert not (state.run_dir() / "my repo.json").exists()
