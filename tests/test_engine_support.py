"""What the engine tests stand on: fake tools on PATH, checkpoints, golden-file normalising, and the tests
that these helpers and fakes do what the engine tests take them to do.

The fakes live in tests/fakes/ and are named as fakes: FAKE docker (imitates the build tools, writes fake engine
files) and FAKE nvidia-smi (lists GPUs from $FAKE_GPUS). Nothing here touches a GPU or a real container.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import yaml

FAKES = Path(__file__).resolve().parent / "fakes"
GOLDEN_ENGINE = Path(__file__).resolve().parent / "golden" / "engine"
H100 = "0, NVIDIA H100 80GB HBM3, 9.0, 81559"
A100 = "0, NVIDIA A100-SXM4-80GB, 8.0, 81920"


def fake_bin(root: Path, *, docker: bool = True, nvidia_smi: bool = True) -> Path:
    """A directory holding the chosen fakes as executables named like the real tools."""
    bin_dir = root / "fakebin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    wanted = {"docker": ("fake_docker.py", docker), "nvidia-smi": ("fake_nvidia_smi.py", nvidia_smi)}
    for name, (script, on) in wanted.items():
        path = bin_dir / name
        if on:
            path.write_text(f"#!/bin/sh\nexec '{sys.executable}' '{FAKES / script}' \"$@\"\n")
            path.chmod(0o755)
        elif path.exists():
            path.unlink()
    return bin_dir


def fake_local_tools(root: Path) -> Path:
    """FAKE python3 / trtllm-build / hf (tests/fakes/fake_docker.py --as-tool) for `tritongen engine --local`."""
    bin_dir = root / "fakelocal"
    bin_dir.mkdir(parents=True, exist_ok=True)
    for name in ("python3", "trtllm-build", "hf"):
        path = bin_dir / name
        path.write_text(f"#!/bin/sh\nexec '{sys.executable}' '{FAKES / 'fake_docker.py'}' --as-tool {name} \"$@\"\n")
        path.chmod(0o755)
    return bin_dir


def no_gpu_host(tmp_path: Path, monkeypatch) -> Path:
    """A private cache, an empty models dir, and a PATH with no docker and no nvidia-smi (detection re-run)."""
    from tritongen.engine import gating

    monkeypatch.setenv("TRITONGEN_CACHE", str(tmp_path / "cache"))
    empty = tmp_path / "emptybin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.delenv("TRITON_IMAGE", raising=False)
    (tmp_path / "models").mkdir()
    gating.clear_detect_cache()
    return tmp_path


def make_checkpoint(path: Path, model: str) -> Path:
    """A Hugging Face-style config.json consistent with the catalogue entry ``model`` (no weights)."""
    from tritongen import catalog

    m = catalog.model_entry(model)["model"]
    cfg = {
        "architectures": [m["architecture"]],
        "num_hidden_layers": m["num_layers"],
        "hidden_size": m["hidden_size"],
        "num_attention_heads": m["num_heads"],
        "num_key_value_heads": m["num_kv_heads"],
        "head_dim": m.get("head_dim"),
        "intermediate_size": m.get("intermediate_size"),
        "vocab_size": m["vocab_size"],
        "max_position_embeddings": m["context_length"],
        "torch_dtype": "bfloat16",
    }
    if m.get("num_experts"):
        cfg["num_local_experts"] = m["num_experts"]
        cfg["num_experts_per_tok"] = m["experts_per_token"]
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text(json.dumps(cfg, indent=2, sort_keys=True))
    return path


def normalise(text: str, root: Path) -> str:
    """Golden files hold fixed paths: the per-test cache and models dirs, and the caller's uid:gid, vary."""
    text = text.replace(str(root / "cache"), "/cache").replace(str(root / "models"), "/models")
    if hasattr(os, "getuid"):
        text = text.replace(f"--user {os.getuid()}:{os.getgid()}", "--user UID:GID")
    return text


def recorded_tools() -> tuple[dict, dict]:
    """(trtllm_flags.yaml, trtllm_tools.yaml) as recorded for the pinned TensorRT-LLM version."""
    root = Path(__file__).resolve().parent.parent / "tritongen" / "catalog"
    return (yaml.safe_load((root / "trtllm_flags.yaml").read_text()),
            yaml.safe_load((root / "trtllm_tools.yaml").read_text()))


# -- the helpers and fakes themselves ----------------------------------------------------------------------


def test_fake_bin_holds_exactly_the_chosen_fakes_as_executables(tmp_path):
    bin_dir = fake_bin(tmp_path)
    assert sorted(p.name for p in bin_dir.iterdir()) == ["docker", "nvidia-smi"]
    assert all(os.access(p, os.X_OK) for p in bin_dir.iterdir())
    fake_bin(tmp_path, docker=False)
    assert sorted(p.name for p in bin_dir.iterdir()) == ["nvidia-smi"]


def test_fake_nvidia_smi_lists_the_gpus_of_fake_gpus_as_gating_reads_them(tmp_path, monkeypatch):
    from tritongen.engine import gating

    monkeypatch.setenv("PATH", str(fake_bin(tmp_path, docker=False)))
    monkeypatch.setenv("FAKE_GPUS", f"{H100};{A100.replace('0, ', '1, ', 1)}")
    gating.clear_detect_cache()
    try:
        found = gating.detect()
    finally:
        gating.clear_detect_cache()
    assert [(g.index, g.name, g.sm, g.memory_mb) for g in found] == [
        (0, "NVIDIA H100 80GB HBM3", "9.0", 81559), (1, "NVIDIA A100-SXM4-80GB", "8.0", 81920)]


def _docker_run(tmp_path: Path, work: Path, command: list[str]) -> list[str]:
    """A build step's ``docker run`` as the engine plan writes it (the one builder of runtime/container)."""
    from tritongen.runtime.container import ContainerRun, Mount, docker_run_args

    run = ContainerRun(name="tritongen-build-test", image="nvcr.io/nvidia/tritonserver:test", command=command,
                       mounts=[Mount(work, "/work", readonly=False)], gpus=[0, 1], shm_size="16g",
                       env={"HOME": "/work"}, pass_env=("HF_TOKEN",), workdir="/work", remove=True,
                       short_flags=True)
    return docker_run_args(run, docker=str(fake_bin(tmp_path) / "docker"))


def test_fake_docker_builds_rank_engines_through_the_mounts_the_build_writes(tmp_path, monkeypatch):
    import subprocess

    log = tmp_path / "docker.log"
    monkeypatch.setenv("FAKE_DOCKER_LOG", str(log))
    work = tmp_path / "work"
    convert = _docker_run(tmp_path, work, ["python3", "/app/examples/convert_checkpoint.py", "--output_dir",
                                           "/work/tllm_checkpoint", "--tp_size", "2", "--pp_size", "1"])
    build = _docker_run(tmp_path, work, ["trtllm-build", "--checkpoint_dir", "/work/tllm_checkpoint",
                                         "--output_dir", "/work/engine", "--max_batch_size", "8"])
    for argv in (convert, build):
        subprocess.run(argv, check=True, capture_output=True)
    assert json.loads((work / "tllm_checkpoint" / "config.json").read_text())["tp"] == 2
    engine = json.loads((work / "engine" / "config.json").read_text())
    assert engine["build_config"]["max_batch_size"] == 8
    assert sorted(p.name for p in (work / "engine").glob("rank*.engine")) == ["rank0.engine", "rank1.engine"]
    assert [json.loads(line)[-2:] for line in log.read_text().splitlines()] == [convert[-2:], build[-2:]]


def test_fake_docker_fails_the_named_step_after_writing_part_of_an_engine(tmp_path, monkeypatch):
    import subprocess

    monkeypatch.setenv("FAKE_DOCKER_FAIL", "build")
    work = tmp_path / "work"
    done = subprocess.run(_docker_run(tmp_path, work, ["trtllm-build", "--checkpoint_dir", "/work/c",
                                                       "--output_dir", "/work/engine"]),
                          capture_output=True, text=True)
    assert done.returncode == 3 and "simulated failure of the build step" in done.stderr
    assert (work / "engine" / "rank0.engine").read_bytes() == b"half-written"


def test_fake_local_tools_run_on_host_paths(tmp_path):
    import subprocess

    bin_dir = fake_local_tools(tmp_path)
    assert sorted(p.name for p in bin_dir.iterdir()) == ["hf", "python3", "trtllm-build"]
    out = tmp_path / "ckpt"
    subprocess.run([str(bin_dir / "python3"), "convert_checkpoint.py", "--output_dir", str(out), "--pp_size", "2"],
                   check=True, capture_output=True)
    assert json.loads((out / "config.json").read_text()) == {"fake_checkpoint": True, "tp": 1, "pp": 2}


def test_make_checkpoint_agrees_with_the_catalogue(tmp_path):
    from tritongen import catalog

    model = catalog.model_entry("llama3-8b")["model"]
    cfg = json.loads((make_checkpoint(tmp_path / "llama3-8b", "llama3-8b") / "config.json").read_text())
    assert cfg["architectures"] == [model["architecture"]]
    assert (cfg["num_hidden_layers"], cfg["hidden_size"], cfg["vocab_size"]) == \
        (model["num_layers"], model["hidden_size"], model["vocab_size"])
    assert not list((tmp_path / "llama3-8b").glob("*.safetensors"))  # a config only, never weights


def test_normalise_writes_the_varying_paths_and_the_callers_ids_as_the_goldens_do(tmp_path):
    text = f"-v {tmp_path / 'cache'}/engines:/work -v {tmp_path / 'models'}/m:/checkpoint:ro"
    if hasattr(os, "getuid"):
        text += f" --user {os.getuid()}:{os.getgid()}"
    out = normalise(text, tmp_path)
    assert out.startswith("-v /cache/engines:/work -v /models/m:/checkpoint:ro")
    assert str(tmp_path) not in out
    if hasattr(os, "getuid"):
        assert out.endswith("--user UID:GID")


def test_recorded_tools_are_the_catalogue_files_for_one_release():
    flags_yaml, tools_yaml = recorded_tools()
    assert isinstance(flags_yaml, dict) and isinstance(tools_yaml, dict)
    assert flags_yaml["version"] == tools_yaml["version"]  # the flags and the tools of the same TensorRT-LLM
