"""The Makefile is a thin, self-documenting front for the CLI: run its real targets.

The venv stamp is marked up to date (`make -o`) and the venv is the one running these tests, so the targets run
the installed `tritongen` without reinstalling anything.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import FIXTURES, REPO_ROOT

VENV = Path(sys.executable).parent.parent
ENGINE = FIXTURES / "engines" / "llama3-8b-fp16-tp1"

pytestmark = pytest.mark.skipif(shutil.which("make") is None or not (VENV / "bin" / "tritongen").exists(),
                                reason="needs make and the tritongen console script in the test venv")


def make(*args: str) -> subprocess.CompletedProcess:
    stamp = VENV / ".tritongen-installed"
    return subprocess.run(["make", "--no-print-directory", "-C", str(REPO_ROOT), "-o", str(stamp),
                           f"VENV={VENV}", *args], capture_output=True, text=True, timeout=300)


def test_help_is_the_default_goal():
    result = make()
    assert result.returncode == 0
    for target in ("make repo", "make validate", "make test", "make demo", "make serve", "make engine",
                   "make bench", "make plan"):
        assert target in result.stdout
    assert "MODEL=tiny" in result.stdout


def test_make_repo_with_an_engine_dir_then_validate(tmp_path):
    repo = tmp_path / "llama3-8b"
    made = make("repo", "MODEL=llama3-8b", f"ENGINE_DIR={ENGINE}", "CHECKPOINT=/models/llama3-8b", f"REPO={repo}")
    assert made.returncode == 0, made.stderr
    assert f"wrote {repo}" in made.stdout
    checked = make("validate", f"REPO={repo}")
    assert checked.returncode == 0, checked.stderr
    assert "valid (4 models" in checked.stdout and "engine" in checked.stdout


@pytest.mark.parametrize("setting, message", [
    ("limits.max_batch_size=128", "128 exceeds the engine's max_batch_size 64"),
    ("decoding.gather_generation_logits=true", "--gather_generation_logits"),
])
def test_make_repo_reports_a_wrong_setting_in_one_line(tmp_path, setting, message):
    made = make("repo", "MODEL=llama3-8b", f"ENGINE_DIR={ENGINE}", f"REPO={tmp_path / 'r'}", f"SET={setting}")
    assert made.returncode != 0
    lines = [ln for ln in made.stderr.splitlines() if message in ln]
    assert len(lines) == 1, made.stderr
    assert not (tmp_path / "r").exists()


def test_make_engine_dry_run_prints_the_plan():
    made = make("engine", "MODEL=llama3-8b", "PRECISION=fp8", "GPU=h100", "DRY_RUN=1")
    assert made.returncode == 0, made.stderr
    assert "trtllm-build" in made.stdout and "--qformat fp8" in made.stdout


def test_make_and_the_cli_list_the_same_engine_cache(monkeypatch):
    monkeypatch.delenv("TRITONGEN_CACHE", raising=False)
    import os

    env = {k: v for k, v in os.environ.items() if k != "TRITONGEN_CACHE"}
    made = subprocess.run(["make", "--no-print-directory", "-C", str(REPO_ROOT), "-o",
                           str(VENV / ".tritongen-installed"), f"VENV={VENV}", "engines"],
                          capture_output=True, text=True, timeout=120, env=env)
    cli = subprocess.run([str(VENV / "bin" / "tritongen"), "engine", "--list"], capture_output=True, text=True,
                         timeout=120, env=env, cwd=REPO_ROOT)
    assert made.returncode == 0 and cli.returncode == 0, made.stderr + cli.stderr
    where = str(REPO_ROOT / ".cache" / "engines")
    assert where in made.stdout and where in cli.stdout


def test_make_demo_and_compose_use_their_variables():
    dry = make("-n", "demo", "OPENAI_PORT=9123")
    assert "--openai-port 9123" in dry.stdout
    compose = make("-n", "compose", "REPO=repos/x")
    assert "--compose-out repos/x.compose.yaml" in compose.stdout  # ignored by git, beside the repository


@pytest.mark.skipif(shutil.which("nvidia-smi") is not None, reason="this host has a GPU to plan for")
def test_make_engine_dry_run_without_a_gpu_plans_for_a_default_one():
    made = make("engine", "MODEL=llama3-8b", "PRECISION=fp8", "DRY_RUN=1")
    assert made.returncode == 0, made.stderr
    assert "trtllm-build" in made.stdout and "--gpu h100-sxm" in made.stdout + made.stderr


@pytest.fixture(scope="module")
def small_venv(tmp_path_factory):
    """A bare venv for `make torch`, with a small package standing in for torch."""
    return tmp_path_factory.mktemp("venv") / "v"


def test_make_torch_falls_back_when_the_index_cannot_be_reached(small_venv):
    port = _closed_port()
    made = make("torch", f"VENV={small_venv}", f"PYTHON={sys.executable}", "TORCH=six",
                f"TORCH_INDEX=http://127.0.0.1:{port}/")
    assert made.returncode == 0, made.stderr
    assert f"http://127.0.0.1:{port}/ cannot be reached; installing six from pip's configured index" in made.stderr
    assert subprocess.run([str(small_venv / "bin" / "python"), "-c", "import six"]).returncode == 0


def test_make_torch_uses_the_index_when_it_answers(small_venv, tmp_path):
    index = tmp_path / "simple"
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", str(index / "iniconfig"),
                    "iniconfig"], check=True, capture_output=True)
    server = subprocess.Popen([sys.executable, "-m", "http.server", "0", "--bind", "127.0.0.1",
                               "--directory", str(index)], stdout=subprocess.PIPE, text=True)
    try:
        port = int(server.stdout.readline().split("port ")[1].split()[0])
        made = make("torch", f"VENV={small_venv}", "TORCH=iniconfig", f"TORCH_INDEX=http://127.0.0.1:{port}/")
    finally:
        server.terminate()
        server.wait()
    assert made.returncode == 0, made.stderr
    assert f"torch: iniconfig from http://127.0.0.1:{port}/" in made.stdout


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
