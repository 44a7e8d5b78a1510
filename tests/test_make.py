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
