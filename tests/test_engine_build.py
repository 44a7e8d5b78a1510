"""Running engine builds with the FAKE docker and FAKE nvidia-smi (tests/fakes): cache hit / miss / new key, a
failing step, the download step, draft-target, `tritongen repo` building first or failing clearly, and
validate refusing an engine built for another TensorRT-LLM version or GPU."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from test_engine_support import A100, H100, fake_bin, fake_local_tools, make_checkpoint

from tritongen.cli import cli
from tritongen.engine_config import BUILD_INFO_NAME
from tritongen.errors import CommandFailed


@pytest.fixture
def host(tmp_path, monkeypatch):
    """A fake GPU host: FAKE docker and FAKE nvidia-smi (one H100) on PATH, a private cache, a checkpoint."""
    from tritongen.engine import gating

    monkeypatch.setenv("TRITONGEN_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("PATH", str(fake_bin(tmp_path)))
    monkeypatch.setenv("FAKE_GPUS", H100)
    monkeypatch.setenv("FAKE_DOCKER_LOG", str(tmp_path / "docker.log"))
    for var in ("FAKE_DOCKER_FAIL", "FAKE_TRTLLM_VERSION", "TRITON_IMAGE", "HF_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    gating.clear_detect_cache()
    make_checkpoint(tmp_path / "models" / "llama3-8b", "llama3-8b")
    return tmp_path


def _run(*args: str):
    return CliRunner().invoke(cli, list(args))


def _ckpt(root: Path) -> str:
    return str(root / "models" / "llama3-8b")


def _docker_calls(root: Path) -> list[list[str]]:
    log = root / "docker.log"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def _tools(root: Path) -> list[str]:
    out = []
    for argv in _docker_calls(root):
        if argv[0] != "run":
            continue
        image = next(i for i, t in enumerate(argv) if t.startswith("nvcr.io/"))
        tool = argv[image + 1:]
        out.append(tool[0] if tool[0] != "python3" else Path(tool[1]).name)
    return out


def _entries(root: Path) -> list[Path]:
    engines = root / "cache" / "engines"
    return sorted(p for p in engines.iterdir() if p.is_dir() and not p.name.startswith(".")) if engines.exists() else []


def test_build_records_version_and_gpu_and_a_second_run_does_nothing(host):
    first = _run("engine", "llama3-8b", "--checkpoint", _ckpt(host))
    assert first.exit_code == 0, first.output
    assert _tools(host) == ["convert_checkpoint.py", "trtllm-build"]
    # Step/progress display and the tools' streamed output.
    assert "[1/2] convert: llama convert_checkpoint.py" in first.output
    assert "[2/2] build: trtllm-build" in first.output
    assert "  build | [fake build] done" in first.output
    assert "engine ready in" in first.output
    (entry,) = _entries(host)
    assert str(entry) in first.output
    assert sorted(p.name for p in entry.iterdir()) == ["config.json", "rank0.engine", BUILD_INFO_NAME]
    info = json.loads((entry / BUILD_INFO_NAME).read_text())
    assert (info["gpu"], info["gpu_arch"], info["gpu_sm"]) == ("h100-sxm", "hopper", "9.0")
    assert info["trtllm_version"] == "1.2.1"
    assert info["key"] in entry.name and info["spec"]["model"]["name"] == "llama3-8b"
    assert not any(p.is_dir() for p in (host / "cache" / "engines" / ".tmp").iterdir())

    calls = len(_docker_calls(host))
    second = _run("engine", "llama3-8b", "--checkpoint", _ckpt(host))
    assert second.exit_code == 0, second.output
    assert "already built for h100-sxm (Hopper, SM 9.0), nothing to do" in second.output
    assert len(_docker_calls(host)) == calls
    assert _entries(host) == [entry]
    dry = _run("engine", "llama3-8b", "--checkpoint", _ckpt(host), "--dry-run")
    assert f"engine: {entry} (cached: nothing to do)" in dry.output and "docker run" not in dry.output


def test_a_changed_input_builds_a_new_engine_beside_the_old_one_and_list_shows_both(host):
    assert _run("engine", "llama3-8b", "--checkpoint", _ckpt(host)).exit_code == 0
    (old,) = _entries(host)
    result = _run("engine", "llama3-8b", "--checkpoint", _ckpt(host), "--max-batch-size", "32",
                  "--name", "llama-small-batch")
    assert result.exit_code == 0, result.output
    entries = _entries(host)
    assert len(entries) == 2 and old in entries
    new = next(e for e in entries if e != old)
    assert json.loads((new / "config.json").read_text())["build_config"]["max_batch_size"] == 32

    listing = _run("engine", "--list")
    assert listing.exit_code == 0
    assert old.name in listing.output and new.name in listing.output
    assert "llama-small-batch" in listing.output and "32/4096/8192/8192" in listing.output
    rows = json.loads(_run("engine", "--list", "--json").output)
    assert {r["name"] for r in rows} == {old.name, new.name}
    assert {r["spec"] for r in rows} == {"llama3-8b", "llama-small-batch"}
    assert all(r["gpu_arch"] == "hopper" and r["trtllm_version"] == "1.2.1" for r in rows)
    assert "no engines cached for qwen2.5-7b" in _run("engine", "--list", "qwen2.5-7b").output


def test_a_failing_step_is_named_with_its_output_tail_and_leaves_nothing_in_the_cache(host, monkeypatch):
    monkeypatch.setenv("FAKE_DOCKER_FAIL", "build")
    result = _run("engine", "llama3-8b", "--checkpoint", _ckpt(host))
    assert result.exit_code == CommandFailed.exit_code
    out = result.output
    assert "engine build failed at step 2/2 (build: trtllm-build: 1 rank engine) with exit code 3" in out
    assert "RuntimeError: simulated failure of the build step" in out  # the tail of the tool's output
    assert "working on layer 59" in out
    assert "nothing was written to the engine cache" in out
    assert _entries(host) == []
    leftovers = [p for p in (host / "cache" / "engines" / ".tmp").iterdir() if p.is_dir()]
    assert leftovers == []  # the half-written rank0.engine went with the work dir
    (log_dir,) = (host / "cache" / "logs" / "engine").iterdir()
    assert "working on layer 0" in (log_dir / "2-build.log").read_text()
    # The container is removed by name: without a TTY `docker run` leaves it running when the client dies.
    assert any(argv[:2] == ["rm", "-f"] and argv[2].endswith("-build") for argv in _docker_calls(host))


def test_a_failing_quantize_step_is_named_too(host, monkeypatch):
    monkeypatch.setenv("FAKE_DOCKER_FAIL", "quantize")
    result = _run("engine", "llama3-8b", "--checkpoint", _ckpt(host), "--precision", "fp8")
    assert result.exit_code == CommandFailed.exit_code
    assert "at step 1/2 (quantize:" in result.output
    assert _tools(host) == ["quantize.py"] and _entries(host) == []


def test_missing_checkpoint_is_downloaded_with_the_token_passed_by_name_only(host, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_secret_value_123")
    ckpt = host / "models" / "fresh"
    result = _run("engine", "llama3-8b", "--checkpoint", str(ckpt))
    assert result.exit_code == 0, result.output
    assert _tools(host) == ["hf", "convert_checkpoint.py", "trtllm-build"]
    download = _docker_calls(host)[0]
    assert download[download.index("-e", download.index("HF_HOME=/work/.hf")) + 1] == "HF_TOKEN"
    assert "hf_secret_value_123" not in json.dumps(_docker_calls(host)) + result.output
    assert (ckpt / "config.json").is_file() and not ckpt.with_name("fresh.partial").exists()
    (entry,) = _entries(host)
    # The key includes the downloaded checkpoint's identity; a second run finds the same entry.
    again = _run("engine", "llama3-8b", "--checkpoint", str(ckpt))
    assert "nothing to do" in again.output and str(entry) in again.output


def test_tensor_parallel_builds_one_engine_per_rank_on_the_requested_gpus(host, monkeypatch):
    from tritongen.engine import gating

    monkeypatch.setenv("FAKE_GPUS", ";".join(f"{i}, NVIDIA H100 80GB HBM3, 9.0, 81559" for i in range(4)))
    gating.clear_detect_cache()
    result = _run("engine", "llama3-8b", "--checkpoint", _ckpt(host), "--tp", "2", "--gpus", "2,3")
    assert result.exit_code == 0, result.output
    (entry,) = _entries(host)
    assert sorted(p.name for p in entry.glob("rank*.engine")) == ["rank0.engine", "rank1.engine"]
    build = _docker_calls(host)[-1]
    assert build[build.index("--gpus") + 1] == '"device=2,3"'
    assert build[build.index("--workers") + 1] == "2"


def test_draft_target_builds_the_draft_engine_too(host):
    from tritongen.engine import workflow
    from tritongen.spec import load_spec

    make_checkpoint(host / "cache" / "models" / "llama3.2-1b", "llama3.2-1b")
    sets = ["--set", "decoding.speculative.method=draft_target", "--set", "decoding.speculative.draft_model=llama3.2-1b",
            "--set", "serving.bls=true"]
    result = _run("engine", "llama3-8b", "--checkpoint", _ckpt(host), *sets)
    assert result.exit_code == 0, result.output
    assert _tools(host) == ["convert_checkpoint.py", "trtllm-build"] * 2
    entries = _entries(host)
    assert len(entries) == 2
    roles = {json.loads((e / BUILD_INFO_NAME).read_text())["role"]: e for e in entries}
    assert set(roles) == {"draft", "target"}
    target_cfg = json.loads((roles["target"] / "config.json").read_text())["build_config"]
    assert target_cfg["speculative_decoding_mode"] == 2 and target_cfg["max_draft_len"] == 4
    spec = load_spec("llama3-8b", options={"model.checkpoint_dir": _ckpt(host)},
                     sets=[s for s in sets if s != "--set"])
    assert workflow.draft_engine_dir(spec) == roles["draft"]


def test_building_on_a_gpu_other_than_the_one_asked_for_is_refused(host):
    result = _run("engine", "llama3-8b", "--checkpoint", _ckpt(host), "--gpu", "a100")
    assert result.exit_code != 0
    assert "this host's GPU is NVIDIA H100 80GB HBM3 (SM 9.0)" in result.output
    assert _docker_calls(host) == []


def test_no_docker_is_a_clear_error(host, monkeypatch):
    monkeypatch.setenv("PATH", str(fake_bin(host / "nodocker", docker=False)))
    result = _run("engine", "llama3-8b", "--checkpoint", _ckpt(host))
    assert result.exit_code != 0
    assert "docker is not installed" in result.output and "Traceback" not in result.output


def test_local_runs_the_same_tools_on_the_host(host):
    result = _run("engine", "llama3-8b", "--checkpoint", _ckpt(host), "--local", "--examples-dir",
                  "/opt/TensorRT-LLM/examples", "--dry-run")
    assert result.exit_code == 0, result.output
    commands = [line.strip()[2:] for line in result.output.splitlines() if line.startswith("  $ ")]
    assert commands[0].startswith(f"CUDA_VISIBLE_DEVICES=0 python3 /opt/TensorRT-LLM/examples/models/core/llama/"
                                  f"convert_checkpoint.py --model_dir {_ckpt(host)} --output_dir ")
    assert commands[1].startswith("CUDA_VISIBLE_DEVICES=0 trtllm-build --checkpoint_dir ")
    assert "docker" not in result.output
    missing = _run("engine", "llama3-8b", "--checkpoint", _ckpt(host), "--local", "--examples-dir", "/opt/x")
    assert missing.exit_code != 0 and "trtllm-build is not on PATH" in missing.output


def test_local_build_runs_the_tools_here_on_the_requested_gpus(host, monkeypatch):
    import os

    monkeypatch.setenv("PATH", os.pathsep.join([str(fake_local_tools(host)), str(fake_bin(host, docker=False))]))
    result = _run("engine", "llama3-8b", "--checkpoint", _ckpt(host), "--local", "--examples-dir", "/opt/trtllm/examples")
    assert result.exit_code == 0, result.output
    calls = _docker_calls(host)
    assert [c["tool"][0] for c in calls] == ["python3", "trtllm-build"]
    assert calls[0]["tool"][1] == "/opt/trtllm/examples/models/core/llama/convert_checkpoint.py"
    assert {c["CUDA_VISIBLE_DEVICES"] for c in calls} == {"0"}
    assert all(c["cwd"].startswith(str(host / "cache" / "engines" / ".tmp")) for c in calls)
    (entry,) = _entries(host)
    assert json.loads((entry / BUILD_INFO_NAME).read_text())["runner"] == "local"


# -- tritongen repo / validate --------------------------------------------------------------------------------


def test_repo_without_an_engine_or_docker_fails_with_one_clear_line(tmp_path, monkeypatch):
    from tritongen.engine import gating

    monkeypatch.setenv("TRITONGEN_CACHE", str(tmp_path / "cache"))
    empty = tmp_path / "emptybin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    gating.clear_detect_cache()
    out_dir = tmp_path / "repos" / "llama3-8b"
    result = _run("repo", "llama3-8b", "--out", str(out_dir))
    assert result.exit_code != 0
    assert "Traceback" not in result.output and result.exception is None or isinstance(result.exception, SystemExit)
    lines = result.output.strip().splitlines()
    assert lines[0] == ("tritongen: error: no engine for llama3-8b (bf16, tp=1 pp=1) in the cache, and no GPU here "
                        "to build one (nvidia-smi not found)")
    assert len(lines) == 2 and lines[1].startswith("  hint: build it on the GPU host with `tritongen engine llama3-8b")
    assert not out_dir.exists()


def _param(pbtxt: str, key: str) -> str:
    block = pbtxt.split(f'key: "{key}"', 1)[1]
    return block.split('string_value: "', 1)[1].split('"', 1)[0]


def test_repo_builds_the_engine_first_and_points_at_it(host):
    out_dir = host / "repos" / "llama3-8b"
    result = _run("repo", "llama3-8b", "--checkpoint", _ckpt(host), "--out", str(out_dir))
    assert result.exit_code == 0, result.output
    assert "building it first" in result.output
    (entry,) = _entries(host)
    pbtxt = (out_dir / "tensorrt_llm" / "config.pbtxt").read_text()
    assert _param(pbtxt, "gpt_model_path") == str(entry)
    # Rendering again finds the engine in the cache and builds nothing.
    calls = len(_docker_calls(host))
    again = _run("repo", "llama3-8b", "--checkpoint", _ckpt(host), "--out", str(out_dir))
    assert again.exit_code == 0, again.output
    assert "using cached engine" in again.output and len(_docker_calls(host)) == calls


def test_validate_refuses_an_engine_built_for_another_gpu_or_version(host, monkeypatch):
    out_dir = host / "repos" / "llama3-8b"
    assert _run("repo", "llama3-8b", "--checkpoint", _ckpt(host), "--out", str(out_dir)).exit_code == 0
    ok = _run("validate", str(out_dir))
    assert ok.exit_code == 0, ok.output
    other_arch = _run("validate", str(out_dir), "--gpu", "a100")
    assert other_arch.exit_code == 4
    assert "the engine was built for hopper but the target GPU is a100 (ampere)" in other_arch.output

    # An engine from another TensorRT-LLM release (the image says 1.2.1).
    (entry,) = _entries(host)
    cfg = json.loads((entry / "config.json").read_text())
    cfg["version"] = "1.1.0"
    (entry / "config.json").write_text(json.dumps(cfg))
    old = _run("validate", str(out_dir))
    assert old.exit_code == 4
    assert "the engine was built by TensorRT-LLM 1.1.0" in old.output and "runs 1.2.1" in old.output


def test_validate_compares_the_compute_capability_within_an_architecture(host, monkeypatch):
    from tritongen.engine import gating

    monkeypatch.setenv("FAKE_GPUS", A100)
    gating.clear_detect_cache()
    out_dir = host / "repos" / "a100"
    assert _run("repo", "llama3-8b", "--checkpoint", _ckpt(host), "--out", str(out_dir)).exit_code == 0
    result = _run("validate", str(out_dir), "--gpu", "a10g")  # also Ampere, but SM 8.6
    assert result.exit_code == 4
    assert "built for ampere SM 8.0 but the target GPU a10g is SM 8.6" in result.output
    # Without --gpu, validate (and serve) compare with the GPU nvidia-smi reports.
    monkeypatch.setenv("FAKE_GPUS", H100)
    gating.clear_detect_cache()
    here = _run("validate", str(out_dir))
    assert here.exit_code == 4 and "NVIDIA H100 80GB HBM3 (GPU 0, detected) (hopper)" in here.output
