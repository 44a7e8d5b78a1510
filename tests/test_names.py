"""Names that become paths stay plain names, nothing is written outside the output folder, huge or mistyped
input is one line with an exit code, and the temporary folders of a killed run do not pile up."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import yaml
from click.testing import CliRunner

from conftest import REPO_ROOT
from tritongen.cli import cli
from tritongen.errors import SpecError, UsageError
from tritongen.names import check_name, inside, safe_name_from
from tritongen.render import remove_stale_temp, write_repo
from tritongen.spec import load_spec

ENGINE = REPO_ROOT / "tests/fixtures/engines/llama3-8b-fp16-tp1"
#: An engine-route repository renders without building anything: the fixture engine supplies config.json.
ENGINE_ARGS = ["llama3-8b", "--engine-dir", str(ENGINE), "--checkpoint", "/models/llama3-8b"]
BAD_NAMES = ["../../etc", "a/b", "..", ".", "", "a b", "x" * 256, "a\x00b", "/abs"]


@pytest.mark.parametrize("bad", BAD_NAMES)
def test_check_name_refuses_everything_but_plain_names(bad):
    with pytest.raises(UsageError, match="--name"):
        check_name(bad, "--name")


@pytest.mark.parametrize("good", ["tiny", "llama3-8b", "Qwen2.5_7B", "a.b-c_d", "x" * 255])
def test_check_name_keeps_plain_names(good):
    assert check_name(good, "--name") == good


def test_safe_name_from_free_text():
    assert safe_name_from("My Llama (v2)+ft") == "My-Llama-v2-ft"
    assert safe_name_from("..") == "model" and safe_name_from("///", "server") == "server"


@pytest.mark.parametrize("bad", ["../../etc", "a/b", ".."])
def test_repo_name_that_is_a_path_writes_nothing(tmp_path, monkeypatch, bad):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["repo", *ENGINE_ARGS, "--name", bad])
    assert result.exit_code == SpecError.exit_code, result.output
    assert result.output.count("\n") <= 3 and "name:" in result.output
    assert sorted(p.name for p in tmp_path.rglob("*")) == []


def test_spec_file_name_and_draft_model_are_names_too(tmp_path):
    for data, field in [({"name": "../x"}, "name"), ({"model": {"name": "a/b"}}, "model.name"),
                        ({"decoding": {"speculative": {"draft_model": "../d"}}}, "draft_model")]:
        path = tmp_path / "s.yaml"
        path.write_text(yaml.safe_dump(data))
        with pytest.raises(SpecError, match=field):
            load_spec(None if "model" in data else "llama3-8b", spec_file=path,
                      options={"model.checkpoint_dir": "/models/x", "model.architecture": "LlamaForCausalLM"})


def test_a_link_cannot_lead_the_repository_out_of_repos(tmp_path, monkeypatch):
    outside = tmp_path / "outside"
    outside.mkdir()
    work = tmp_path / "work"
    (work / "repos").mkdir(parents=True)
    (work / "repos" / "evil").symlink_to(outside)
    monkeypatch.chdir(work)
    result = CliRunner().invoke(cli, ["repo", *ENGINE_ARGS, "--name", "evil"])
    assert result.exit_code == UsageError.exit_code, result.output
    assert "outside" in result.output
    assert list(outside.iterdir()) == []


def test_inside_allows_the_root_and_below_and_refuses_links_out(tmp_path):
    (tmp_path / "root").mkdir()
    (tmp_path / "root" / "link").symlink_to(tmp_path)
    assert inside(tmp_path / "root" / "new" / "file", tmp_path / "root") == tmp_path / "root" / "new" / "file"
    assert inside(tmp_path / "root", tmp_path / "root") == tmp_path / "root"
    for bad in (tmp_path / "root" / ".." / "x", tmp_path / "root" / "link" / "x"):
        with pytest.raises(UsageError, match="outside"):
            inside(bad, tmp_path / "root")


def test_serve_name_is_a_plain_name(tmp_path):
    repo = tmp_path / "r"
    repo.mkdir()
    result = CliRunner().invoke(cli, ["serve", str(repo), "--no-validate", "--name", "../x", "--dry-run"])
    assert result.exit_code == UsageError.exit_code, result.output
    assert "--name" in result.output


# -- sizes and types ------------------------------------------------------------------------------------

#: 1 MB rather than the 10 MB of the report: the same failure, and pure-Python YAML reads it 10x faster.
HUGE = "x" * 1_000_000


@pytest.mark.parametrize("data,field", [
    ({"name": HUGE}, "name"),
    ({"model": {"hf_id": HUGE}}, "model.hf_id"),
    ({"model": {"description": HUGE}}, "model.description"),
    ({"model": {"tokenizer_dir": "/" + HUGE}}, "model.tokenizer_dir"),
    ({"decoding": {"speculative": {"heads_dir": HUGE}}}, "heads_dir"),
    ({"engine": {"draft_dir": HUGE}}, "engine.draft_dir"),
    ({"container": {"image": HUGE}}, "container.image"),
    ({"serving": {"model_prefix": HUGE}}, "serving.model_prefix"),
    ({"serving": {"host": HUGE}}, "serving.host"),
])
def test_a_huge_string_is_one_short_line(tmp_path, monkeypatch, data, field):
    monkeypatch.chdir(tmp_path)
    spec_file = tmp_path / "big.yaml"
    spec_file.write_text(yaml.safe_dump(data))
    result = CliRunner().invoke(cli, ["repo", *ENGINE_ARGS, "--spec", str(spec_file)])
    assert result.exit_code == SpecError.exit_code, result.output[:500]
    assert field in result.output and len(result.output) < 1000


def test_a_huge_model_argument_or_spec_path_is_one_short_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for args in (["spec", "y" * 100_000], ["spec", "tiny", "--spec", "z" * 100_000]):
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == SpecError.exit_code and len(result.output) < 1000, result.output[:500]


@pytest.mark.parametrize("assignment,field", [
    ("limits.max_batch_size=true", "limits.max_batch_size"),
    ("parallelism.tp=false", "parallelism.tp"),
    ("limits.max_batch_size=32.0", "limits.max_batch_size"),
    ("kv_cache.free_gpu_mem_fraction=true", "kv_cache.free_gpu_mem_fraction"),
    ("serving.streaming=1", "serving.streaming"),
    ("serving.http_port='8000'", "serving.http_port"),
])
def test_set_types_are_strict(assignment, field):
    with pytest.raises(SpecError, match=field):
        load_spec("llama3-8b", sets=[assignment])


def test_set_still_reads_numbers_and_booleans():
    spec = load_spec("llama3-8b", sets=["limits.max_batch_size=32", "kv_cache.free_gpu_mem_fraction=1",
                                        "serving.streaming=false", "cpu.mock_step_ms=3"])
    assert spec.limits.max_batch_size == 32 and spec.kv_cache.free_gpu_mem_fraction == 1.0
    assert spec.serving.streaming is False and spec.cpu.mock_step_ms == 3.0


@pytest.mark.parametrize("exc,code,label", [
    (OSError(36, "File name too long", "/" + "x" * 100_000), 1, "system error"),
    (ValueError("embedded null byte"), 70, "internal error"),
])
def test_an_error_that_escapes_a_command_is_one_line(monkeypatch, exc, code, label):
    from tritongen import catalog

    def boom():
        raise exc

    monkeypatch.setattr(catalog, "model_names", boom)
    result = CliRunner().invoke(cli, ["models"])
    assert result.exit_code == code
    assert label in result.output and "Traceback" not in result.output and len(result.output) < 1000
    assert len(result.output.splitlines()) == 2  # the error and its hint


# -- stale temporary folders ----------------------------------------------------------------------------


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_killed_runs_temp_folders_are_removed_a_live_runs_are_kept(tmp_path):
    dead, live = _dead_pid(), os.getpid()
    parents = tmp_path / "repos"
    stale = [parents / f".tritongen-tmp-{dead}-tiny-abc", parents / f".tritongen-old-{dead}-tiny-def"]
    kept = [parents / f".tritongen-tmp-{live}-tiny-ghi", parents / "tiny", parents / ".tritongen-tmp-nopid-new"]
    for path in stale + kept:
        (path / "sub").mkdir(parents=True)
    spec = load_spec("llama3-8b", options={"engine.dir": ENGINE, "model.checkpoint_dir": "/models/llama3-8b"})
    write_repo(spec, parents / "llama", force=True)
    assert all(not p.exists() for p in stale)
    assert all(p.exists() for p in kept)
    assert (parents / "llama" / "ensemble").is_dir()


def test_old_format_temp_folders_go_once_they_are_an_hour_old(tmp_path):
    old = tmp_path / ".tritongen-tmp-tiny-xyz"
    old.mkdir()
    os.utime(old, (0, 0))
    assert remove_stale_temp(tmp_path) == [old] and not old.exists()
