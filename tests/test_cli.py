"""The command line: help is fast and light, errors are one line with an exit code, the reference is current."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from conftest import REPO_ROOT
from tritongen.cli import LAZY_COMMANDS, cli


def test_help_imports_neither_torch_nor_transformers():
    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from tritongen.cli import cli\n"
        "names = list(cli.list_commands(None))\n"
        "for args in [['--help']] + [[n, '--help'] for n in names]:\n"
        "    r = CliRunner().invoke(cli, args)\n"
        "    assert r.exit_code == 0, (args, r.output)\n"
        "heavy = sorted(m for m in ('torch', 'transformers', 'tokenizers', 'numpy', 'tritonclient') if m in sys.modules)\n"
        "print(','.join(names)); print('HEAVY=' + ','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "HEAVY=\n" in out or out.rstrip().endswith("HEAVY="), out
    for name in ("repo", "validate", "serve", "infer", "demo"):
        assert name in out.splitlines()[0]


def test_console_script_help_is_fast():
    exe = REPO_ROOT / ".venv/bin/tritongen"
    if not exe.exists():
        pytest.skip("no installed console script in .venv")
    result = subprocess.run([str(exe), "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "Usage: tritongen" in result.stdout


def test_lazy_commands_are_all_real_modules():
    import importlib

    for name, target in LAZY_COMMANDS.items():
        module, _, attr = target.partition(":")
        mod = importlib.import_module(module)
        assert getattr(mod, attr or "command").name == name


def test_models_lists_the_catalogue():
    result = CliRunner().invoke(cli, ["models"])
    assert result.exit_code == 0
    for name in ("llama3-8b", "llama3-70b", "mistral-7b", "mixtral-8x7b", "qwen2.5-7b", "tiny"):
        assert name in result.output
    data = json.loads(CliRunner().invoke(cli, ["models", "--json"]).output)
    eight = next(m for m in data if m["name"] == "llama3-8b")
    assert eight["hf_id"] == "meta-llama/Llama-3.1-8B-Instruct" and eight["context"] == 131072


def test_spec_command_shows_the_merged_spec(tmp_path):
    f = tmp_path / "s.yaml"
    f.write_text("limits:\n  max_batch_size: 16\n")
    result = CliRunner().invoke(cli, ["spec", "llama3-8b", "--spec", str(f), "--tp", "2", "--set",
                                      "kv_cache.enable_reuse=true", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["limits"]["max_batch_size"] == 16 and data["parallelism"]["tp"] == 2
    assert data["kv_cache"]["enable_reuse"] is True


def test_errors_are_one_line_per_problem_with_exit_codes(tmp_path):
    bad = CliRunner().invoke(cli, ["spec", "llama3-8b", "--precision", "fp9", "--set", "limits.max_batch_size=-1"])
    assert bad.exit_code == 3
    assert "invalid spec" in bad.output
    assert "precision.format: 'fp9' is not allowed; allowed: " in bad.output
    assert "limits.max_batch_size: -1 must be > 0" in bad.output
    unknown = CliRunner().invoke(cli, ["spec", "llama9"])
    assert unknown.exit_code == 3 and "unknown model 'llama9'" in unknown.output
    gpus = CliRunner().invoke(cli, ["spec", "llama3-8b", "--gpus", "a,b"])
    assert gpus.exit_code == 3 and "expected comma-separated GPU indices" in gpus.output
    missing = CliRunner().invoke(cli, ["validate", str(tmp_path / "nope")])
    assert missing.exit_code == 4 and "not a directory" in missing.output


def test_readme_spec_reference_is_generated_and_current():
    from tritongen.spec.reference import BEGIN, END, reference_markdown

    readme = (REPO_ROOT / "README.md").read_text()
    assert BEGIN in readme and END in readme
    block = readme.split(BEGIN, 1)[1].split(END, 1)[0].strip()
    assert block == reference_markdown().strip(), "README spec reference is stale: run `make docs`"
    for field in ("precision.format", "kv_cache.enable_reuse", "serving.streaming", "decoding.speculative.method"):
        assert f"`{field}`" in block


def test_spec_reference_command():
    result = CliRunner().invoke(cli, ["spec", "--reference"])
    assert result.exit_code == 0
    assert "| `limits.max_batch_size` | int | `64` |" in result.output
