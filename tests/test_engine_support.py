"""Helpers shared by the engine tests (no tests here): fake tools on PATH, checkpoints, golden-file normalising.

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
