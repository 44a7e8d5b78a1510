"""The command line's surface is a contract: every command's --help, the Make targets and the exit codes.

A layout change must leave all three byte-identical; TRITONGEN_UPDATE_GOLDEN=1 rewrites the snapshots when a
change to them is meant.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import click
from click.testing import CliRunner

from tritongen import errors
from tritongen.cli import cli

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = Path(__file__).parent / "golden" / "cli"
UPDATE = os.environ.get("TRITONGEN_UPDATE_GOLDEN") == "1"


def _check(name: str, text: str) -> None:
    path = GOLDEN / name
    if UPDATE:
        path.write_text(text)
    assert path.is_file(), f"{path} missing (TRITONGEN_UPDATE_GOLDEN=1 writes it)"
    assert text == path.read_text(), f"{name} changed (TRITONGEN_UPDATE_GOLDEN=1 to accept)"


def _help_of_every_command() -> str:
    runner = CliRunner()
    ctx = click.Context(cli)
    out = [runner.invoke(cli, ["--help"], terminal_width=120).output]
    for name in cli.list_commands(ctx):
        result = runner.invoke(cli, [name, "--help"], terminal_width=120)
        assert result.exit_code == 0, f"{name} --help: {result.output}"
        out.append(f"==== tritongen {name} --help\n{result.output}")
    return "\n".join(out)


def test_every_commands_help_is_unchanged():
    _check("help.txt", _help_of_every_command())


def test_make_targets_are_unchanged():
    made = subprocess.run(["make", "--no-print-directory", "help"], cwd=ROOT, capture_output=True, text=True,
                          check=True, env={**os.environ, "NO_COLOR": "1"})
    assert made.stdout.count("  make ") > 20, made.stdout
    _check("make-help.txt", made.stdout)


def test_exit_codes_are_unchanged():
    codes = sorted((cls.__name__, cls.exit_code) for cls in vars(errors).values()
                   if isinstance(cls, type) and issubclass(cls, errors.TritongenError))
    _check("exit-codes.txt", "".join(f"{name} {code}\n" for name, code in codes))
