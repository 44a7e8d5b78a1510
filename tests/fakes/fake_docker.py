"""FAKE `docker` for tritongen's engine tests. It never starts a container and never runs TensorRT-LLM.

It understands just enough of ``docker run [options] IMAGE TOOL ARGS...`` to imitate the tools tritongen calls,
mapping container paths back to host paths through the ``-v HOST:CONTAINER`` mounts:

* ``hf download REPO --local-dir D``: writes a small ``D/config.json``;
* ``python3 .../convert_checkpoint.py`` / ``quantize.py ... --output_dir D``: writes a fake TensorRT-LLM checkpoint
  ``D/config.json`` recording tp/pp;
* ``trtllm-build --checkpoint_dir C --output_dir D ...``: writes ``D/config.json`` (shaped like a real engine config,
  version from ``FAKE_TRTLLM_VERSION``, default 1.2.1) and one ``rank<N>.engine`` per rank.

``docker rm -f NAME`` succeeds. Called as ``fake_docker.py --as-tool NAME ARGS...`` it imitates the tool NAME
itself (``python3``, ``trtllm-build``, ``hf``) on host paths, for ``tritongen engine --local``. Environment knobs:

* ``FAKE_DOCKER_LOG``: append one JSON line per invocation (its argv);
* ``FAKE_DOCKER_FAIL``: ``download`` | ``convert`` | ``quantize`` | ``build`` makes that tool print some lines and exit 3
  (a failing ``build`` first writes part of an engine, to prove tritongen cleans up).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path


def _log(argv: list[str]) -> None:
    path = os.environ.get("FAKE_DOCKER_LOG")
    if path:
        with open(path, "a") as fh:
            fh.write(json.dumps(argv) + "\n")


def _parse_run(args: list[str]) -> tuple[dict[str, str], list[str]]:
    """(container path -> host path, tool argv) from the arguments after ``docker run``."""
    with_value = {"--name", "--gpus", "--shm-size", "--ulimit", "--user", "-e", "-v", "-w", "--env", "--volume"}
    mounts: dict[str, str] = {}
    i = 0
    while i < len(args):
        a = args[i]
        if a in with_value:
            if a in ("-v", "--volume"):
                host, container = args[i + 1].split(":")[:2]
                mounts[container] = host
            i += 2
        elif a.startswith("-"):
            i += 1
        else:
            return mounts, args[i + 1:]  # args[i] is the image
    raise SystemExit("fake docker: no image in `docker run` arguments")


def _host(path: str, mounts: dict[str, str]) -> Path:
    if mounts == {"/": "/"}:
        return Path(path)
    for container in sorted(mounts, key=len, reverse=True):
        if path == container or path.startswith(container + "/"):
            return Path(mounts[container] + path[len(container):])
    raise SystemExit(f"fake docker: {path} is not under a mount ({sorted(mounts)})")


def _opt(tool: list[str], flag: str, default: str | None = None) -> str | None:
    for i, tok in enumerate(tool):
        if tok == flag and i + 1 < len(tool):
            return tool[i + 1]
    return default


def _step(tool: list[str]) -> str:
    if tool[:2] == ["hf", "download"]:
        return "download"
    if tool and tool[0] == "trtllm-build":
        return "build"
    if len(tool) > 1 and tool[1].endswith("quantize.py"):
        return "quantize"
    return "convert"


def _fail(step: str, out: Path | None) -> None:
    for n in range(60):
        print(f"[fake {step}] working on layer {n}")
    if step == "build" and out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "rank0.engine").write_bytes(b"half-written")
    print(f"[fake {step}] RuntimeError: simulated failure of the {step} step", file=sys.stderr)
    raise SystemExit(3)


def main(argv: list[str]) -> int:
    if argv[:1] == ["--as-tool"]:
        tool = argv[1:]
        _log({"tool": tool, "cwd": os.getcwd(), "CUDA_VISIBLE_DEVICES": os.environ.get("CUDA_VISIBLE_DEVICES")})
        return _imitate({"/": "/"}, tool)
    _log(argv)
    if argv[:2] == ["rm", "-f"]:
        return 0
    if not argv or argv[0] != "run":
        print(f"fake docker: unsupported command {argv[:1]}", file=sys.stderr)
        return 2
    mounts, tool = _parse_run(argv[1:])
    return _imitate(mounts, tool)


def _imitate(mounts: dict[str, str], tool: list[str]) -> int:
    step = _step(tool)
    if step == "download":
        out = _host(_opt(tool, "--local-dir"), mounts)
    elif step == "build":
        out = _host(_opt(tool, "--output_dir"), mounts)
    else:
        out = _host(_opt(tool, "--output_dir") or _opt(tool, "--output-model-dir"), mounts)
    if os.environ.get("FAKE_DOCKER_FAIL") == step:
        _fail(step, out)
    out.mkdir(parents=True, exist_ok=True)
    print(f"[fake {step}] {' '.join(tool)}")
    if step == "download":
        (out / "config.json").write_text(json.dumps({"architectures": ["LlamaForCausalLM"], "fake": True}))
    elif step in ("convert", "quantize"):
        tp = int(_opt(tool, "--tp_size") or _opt(tool, "--world-size") or 1)
        pp = int(_opt(tool, "--pp_size") or 1)
        (out / "config.json").write_text(json.dumps({"fake_checkpoint": True, "tp": tp, "pp": pp}))
    else:
        ckpt = json.loads((_host(_opt(tool, "--checkpoint_dir"), mounts) / "config.json").read_text())
        _write_engine(out, tool, tp=ckpt["tp"], pp=ckpt["pp"])
    print(f"[fake {step}] done")
    return 0


def _write_engine(out: Path, tool: list[str], *, tp: int, pp: int) -> None:
    spec_mode = {"draft_tokens_external": 2, "medusa": 4, "lookahead_decoding": 8, "eagle": 32}
    mode = _opt(tool, "--speculative_decoding_mode")
    config = {
        "version": os.environ.get("FAKE_TRTLLM_VERSION", "1.2.1"),
        "pretrained_config": {
            "architecture": "LlamaForCausalLM",
            "dtype": "bfloat16",
            "vocab_size": 128256,
            "num_hidden_layers": 32,
            "mapping": {"world_size": tp * pp, "tp_size": tp, "pp_size": pp},
            "quantization": {"quant_algo": None, "kv_cache_quant_algo": None},
        },
        "build_config": {
            "max_batch_size": int(_opt(tool, "--max_batch_size", "2048")),
            "max_input_len": int(_opt(tool, "--max_input_len", "1024")),
            "max_seq_len": int(_opt(tool, "--max_seq_len", "2048")),
            "max_num_tokens": int(_opt(tool, "--max_num_tokens", "8192")),
            "max_beam_width": int(_opt(tool, "--max_beam_width", "1")),
            "max_draft_len": int(_opt(tool, "--max_draft_len", "0")),
            "speculative_decoding_mode": spec_mode.get(mode or "", 1),
            "kv_cache_type": (_opt(tool, "--kv_cache_type", "paged") or "paged").upper(),
            "gather_context_logits": "--gather_context_logits" in tool,
            "gather_generation_logits": "--gather_generation_logits" in tool,
            "plugin_config": {
                "use_paged_context_fmha": _opt(tool, "--use_paged_context_fmha", "enable") == "enable",
                "tokens_per_block": int(_opt(tool, "--tokens_per_block", "32")),
                "paged_kv_cache": True,
            },
        },
    }
    (out / "config.json").write_text(json.dumps(config, indent=2))
    for rank in range(tp * pp):
        (out / f"rank{rank}.engine").write_bytes(b"FAKE ENGINE rank %d" % rank)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
