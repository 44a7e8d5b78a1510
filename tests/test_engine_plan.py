"""`tritongen engine --dry-run`: golden plans, every emitted flag against the recorded CLI of the pinned
TensorRT-LLM version, precision x GPU gating, and the cache key. Nothing runs: PATH holds no docker and no
nvidia-smi unless a test puts the FAKE ones there."""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path

import pytest
from click.testing import CliRunner
from test_engine_support import (
    A100,
    GOLDEN_ENGINE,
    H100,
    fake_bin,
    make_checkpoint,
    no_gpu_host,
    normalise,
    recorded_tools,
)

from tritongen.cli import cli
from tritongen.errors import GatingError


@pytest.fixture
def env(tmp_path, monkeypatch):
    """A private cache, a models dir, and a PATH with no docker and no nvidia-smi."""
    return no_gpu_host(tmp_path, monkeypatch)


# Each case: CLI arguments (MODELS = the per-test models dir) and the checkpoints to create first.
CASES = {
    "fp16": (["llama3-8b", "--precision", "fp16", "--gpu", "h100", "--checkpoint", "MODELS/llama3-8b"], []),
    "fp8_kv_fp8": (["llama3-8b", "--precision", "fp8", "--kv-dtype", "fp8", "--gpu", "h100",
                    "--checkpoint", "MODELS/llama3-8b"], [("llama3-8b", "llama3-8b")]),
    "int4_awq": (["llama3-8b", "--precision", "int4_awq", "--gpu", "a100", "--checkpoint", "MODELS/llama3-8b"],
                 [("llama3-8b", "llama3-8b")]),
    "int8_wo": (["llama3-8b", "--precision", "int8_wo", "--gpu", "a100", "--checkpoint", "MODELS/llama3-8b"],
                [("llama3-8b", "llama3-8b")]),
    "nvfp4_blackwell": (["llama3-8b", "--precision", "nvfp4", "--kv-dtype", "fp8", "--gpu", "b200",
                         "--checkpoint", "MODELS/llama3-8b"], [("llama3-8b", "llama3-8b")]),
    "tp2_pp2": (["llama3-70b", "--tp", "2", "--pp", "2", "--gpu", "h100", "--checkpoint", "MODELS/llama3-70b"],
                [("llama3-70b", "llama3-70b")]),
    "moe_ep": (["mixtral-8x7b", "--tp", "2", "--ep", "2", "--gpu", "h100", "--checkpoint", "MODELS/mixtral-8x7b"],
               [("mixtral-8x7b", "mixtral-8x7b")]),
    "medusa": (["llama3-8b", "--precision", "fp16", "--gpu", "h100", "--checkpoint", "MODELS/llama3-8b",
                "--set", "decoding.speculative.method=medusa",
                "--set", "decoding.speculative.heads_dir=MODELS/medusa-heads"],
               [("llama3-8b", "llama3-8b"), ("medusa-heads", "llama3-8b")]),
    "draft_target": (["llama3-8b", "--gpu", "h100", "--checkpoint", "MODELS/llama3-8b",
                      "--set", "decoding.speculative.method=draft_target",
                      "--set", "decoding.speculative.draft_model=llama3.2-1b",
                      "--set", "serving.bls=true", "--set", "kv_cache.enable_reuse=true"],
                     [("llama3-8b", "llama3-8b")]),
}


def _args(case: str, root: Path) -> list[str]:
    args, checkpoints = CASES[case]
    for folder, model in checkpoints:
        make_checkpoint(root / "models" / folder, model)
    return [a.replace("MODELS", str(root / "models")) for a in args]


def _dry_run(case: str, root: Path) -> str:
    result = CliRunner().invoke(cli, ["engine", *_args(case, root), "--dry-run"])
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.parametrize("case", sorted(CASES))
def test_dry_run_matches_golden_plan(case, env):
    text = normalise(_dry_run(case, env), env)
    golden = GOLDEN_ENGINE / f"{case}.txt"
    if os.environ.get("TRITONGEN_UPDATE_GOLDEN"):
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(text)
    assert golden.is_file(), f"missing {golden}; run with TRITONGEN_UPDATE_GOLDEN=1 and review the file"
    assert text == golden.read_text()
    assert str(env) not in text  # deterministic: no per-run paths left


# -- every flag of every planned command is in the recorded interface -----------------------------------------


def _commands(text: str) -> list[list[str]]:
    return [shlex.split(line.strip()[2:]) for line in text.splitlines() if line.startswith("  $ ")]


def _split(argv: list[str]) -> tuple[list[str], list[str]]:
    """(docker options, tool argv) of a planned `docker run ... IMAGE tool...` command."""
    assert argv[:3] == ["docker", "run", "--rm"], argv
    image = next(i for i, tok in enumerate(argv) if tok.startswith("nvcr.io/nvidia/tritonserver:"))
    return argv[:image], argv[image + 1:]


def _recorded_flags(tool: list[str], flags_yaml: dict, tools_yaml: dict) -> tuple[dict, list[str]]:
    """(recorded flags of the tool, the tool's flag tokens)."""
    if tool[0] == "trtllm-build":
        return flags_yaml["flags"], tool[1:]
    if tool[:2] == ["hf", "download"]:
        return tools_yaml["hf_download"]["flags"], tool[3:]
    assert tool[0] == "python3", tool
    script = tool[1]
    if script.endswith("/quantization/quantize.py"):
        return tools_yaml["quantize"]["flags"], tool[2:]
    if script.endswith("/examples/hf_lora_convert.py"):
        return tools_yaml["hf_lora_convert"]["flags"], tool[2:]
    m = re.search(r"/examples/(?:models/core/)?(\w+)/convert_checkpoint\.py$", script)
    assert m, f"unexpected script {script}"
    return tools_yaml["convert_checkpoint"][m.group(1)]["flags"], tool[2:]


def _allowed_values(entry: dict, flags_yaml: dict, tools_yaml: dict) -> list[str] | None:
    values = entry.get("values")
    if values is None:
        return None
    if isinstance(values, str):
        values = flags_yaml.get("value_sets", {}).get(values) or tools_yaml.get(values)
    return [str(v) for v in values]


def _check_tool_flags(tool: list[str], flags_yaml: dict, tools_yaml: dict) -> list[str]:
    recorded, tokens = _recorded_flags(tool, flags_yaml, tools_yaml)
    by_name = dict(recorded)
    for entry in recorded.values():
        for alias in entry.get("aliases", []) or []:
            by_name[alias] = entry
    removed = flags_yaml.get("removed_flags", {}) if tool[0] == "trtllm-build" else {}
    seen = []
    i = 0
    while i < len(tokens):
        flag = tokens[i]
        assert flag.startswith("-"), f"{tool[:2]}: stray token {flag!r} in {tokens}"
        assert flag not in removed, f"{flag} was removed from trtllm-build ({removed[flag]})"
        entry = by_name.get(flag)
        assert entry is not None, f"{flag} is not a recorded flag of {' '.join(tool[:2])}"
        seen.append(flag)
        if entry.get("type") == "bool_store_true":
            i += 1
            continue
        assert i + 1 < len(tokens) and not tokens[i + 1].startswith("--"), f"{flag} needs a value"
        if str(entry.get("type", "")).startswith("list["):  # nargs="+": every value up to the next flag
            i += 1
            while i < len(tokens) and not tokens[i].startswith("--"):
                i += 1
            continue
        value = tokens[i + 1]
        kind = entry.get("type")
        if kind == "int":
            int(value)
        elif kind == "float":
            float(value)
        allowed = _allowed_values(entry, flags_yaml, tools_yaml)
        if allowed is not None:
            assert value in allowed, f"{flag} {value}: not one of {allowed}"
        i += 2
    return seen


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_emitted_flag_is_recorded_for_the_pinned_version(case, env):
    flags_yaml, tools_yaml = recorded_tools()
    text = _dry_run(case, env)
    assert f"TensorRT-LLM {flags_yaml['version']}" in text
    commands = _commands(text)
    assert commands
    tools_seen = set()
    for argv in commands:
        docker_opts, tool = _split(argv)
        tools_seen.add(tool[0] if tool[0] != "python3" else Path(tool[1]).name)
        assert _check_tool_flags(tool, flags_yaml, tools_yaml)
        # The container set-up the build needs, on every step.
        assert docker_opts[docker_opts.index("--shm-size") + 1]
        ulimits = [docker_opts[i + 1] for i, t in enumerate(docker_opts) if t == "--ulimit"]
        assert ulimits == ["memlock=-1", "stack=67108864"]
        if tool[0] != "hf":
            assert "--gpus" in docker_opts
            assert any(v.endswith(":/checkpoint:ro") for v in _volumes(docker_opts)) or tool[0] == "trtllm-build"
    assert "trtllm-build" in tools_seen


def _volumes(opts: list[str]) -> list[str]:
    return [opts[i + 1] for i, t in enumerate(opts) if t == "-v"]


def test_the_flag_check_catches_an_unrecorded_or_removed_flag():
    flags_yaml, tools_yaml = recorded_tools()
    with pytest.raises(AssertionError, match="--max_output_len was removed"):
        _check_tool_flags(["trtllm-build", "--max_output_len", "10"], flags_yaml, tools_yaml)
    with pytest.raises(AssertionError, match="not a recorded flag"):
        _check_tool_flags(["trtllm-build", "--no_such_flag", "1"], flags_yaml, tools_yaml)
    with pytest.raises(AssertionError, match="not one of"):
        _check_tool_flags(["trtllm-build", "--kv_cache_type", "ring"], flags_yaml, tools_yaml)


# -- each build flag traceable to a spec field --------------------------------------------------------------


def _spec_path_exists(path: str) -> bool:
    from tritongen.spec.model import Spec
    from tritongen.spec.model import submodel as _submodel

    model = Spec
    for part in path.split("."):
        fields = model.model_fields
        if part not in fields:
            return False
        model = _submodel(fields[part].annotation) or model
    return True


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_flag_names_the_spec_field_it_comes_from(case, env):
    from tritongen.cli import resolve
    from tritongen.engine import plan

    args = _args(case, env)
    model, rest = args[0], args[1:]
    kwargs = _kwargs_from_args(rest)
    spec = resolve(model, kwargs)
    bplan = plan.plan_build(spec)
    for ep in bplan.engines:
        for step in ep.steps:
            for arg in step.args:
                fields = re.split(r", | x | / ", arg.source.split(" (")[0])
                for f in fields:
                    assert f == "tritongen" or _spec_path_exists(f), f"{step.name} {arg.flag}: {arg.source!r}"


def _kwargs_from_args(args: list[str]) -> dict:
    """The CLI's keyword arguments for the shared spec options used in CASES."""
    names = {"--precision": "precision", "--kv-dtype": "kv_dtype", "--gpu": "gpu", "--checkpoint": "checkpoint",
             "--tp": "tp", "--pp": "pp", "--ep": "ep"}
    out: dict = {"sets": []}
    it = iter(args)
    for flag in it:
        value = next(it)
        if flag == "--set":
            out["sets"].append(value)
        elif flag in ("--tp", "--pp", "--ep"):
            out[names[flag]] = int(value)
        elif flag == "--checkpoint":
            out["checkpoint"] = Path(value)
        else:
            out[names[flag]] = value
    return out


# -- gating ---------------------------------------------------------------------------------------------------


def _engine(args: list[str]):
    return CliRunner().invoke(cli, ["engine", *args])


def test_fp8_on_ampere_is_refused_naming_the_gpu_and_what_it_supports(env):
    result = _engine(["llama3-8b", "--precision", "fp8", "--gpu", "a100", "--dry-run"])
    assert result.exit_code == GatingError.exit_code
    err = result.output
    assert "precision.format=fp8 cannot be built for a100-80gb (Ampere, SM 8.0)" in err
    assert "FP8 weights/activations need Ada (SM 8.9), Hopper or Blackwell" in err
    assert "Ampere supports precisions fp16, bf16, int8_wo, int4_wo, int4_awq, int4_gptq, w8a8_sq" in err
    assert "docker run" not in err


def test_nvfp4_on_hopper_is_refused_naming_the_gpu_and_what_it_supports(env):
    result = _engine(["llama3-8b", "--precision", "nvfp4", "--gpu", "h100", "--dry-run"])
    assert result.exit_code == GatingError.exit_code
    err = result.output
    assert "precision.format=nvfp4 cannot be built for h100-sxm (Hopper, SM 9.0): NVFP4 needs Blackwell" in err
    supports = err.split("Hopper supports precisions ", 1)[1].split(" and KV-cache dtypes")[0].split(", ")
    assert "fp8" in supports and "w4a8_awq" in supports and "nvfp4" not in supports


@pytest.mark.parametrize(("gpu", "precision", "kv", "ok"), [
    ("a100", "bf16", "fp8", False),  # FP8 KV needs Ada+
    ("l4", "fp8", "fp8", True),  # Ada has FP8
    ("l4", "w4a8_awq", "auto", True),
    ("b200", "w4a8_awq", "auto", False),  # W4A8 AWQ: Ada/Hopper only
    ("b200", "int4_awq", "auto", False),  # trtllm-build rejects INT4 weight-only on SM 10.x
    ("b200", "w8a8_sq", "auto", False),
    ("b200", "nvfp4", "auto", True),
    ("rtx5090", "nvfp4", "fp8", True),
    ("a10g", "w8a8_sq", "int8", True),  # SmoothQuant + INT8 KV on Ampere
    ("a100", "int4_gptq", "auto", True),
])
def test_precision_gating_table(gpu, precision, kv, ok, env):
    from tritongen.engine import gating, plan
    from tritongen.spec import load_spec

    spec = load_spec("llama3-8b", options={"precision.format": precision, "precision.kv_cache_dtype": kv,
                                           "engine.gpu": gpu, "model.checkpoint_dir": env / "models" / "x"})
    if ok:
        plan.plan_build(spec)
    else:
        with pytest.raises(GatingError, match=f"cannot be built for {gating.resolve(spec).key}"):
            plan.plan_build(spec)


def test_gating_happens_before_any_command_runs(env, monkeypatch):
    monkeypatch.setenv("PATH", str(fake_bin(env)))
    monkeypatch.setenv("FAKE_GPUS", A100)
    log = env / "docker.log"
    monkeypatch.setenv("FAKE_DOCKER_LOG", str(log))
    result = _engine(["llama3-8b", "--precision", "fp8"])
    assert result.exit_code == GatingError.exit_code
    assert "cannot be built for a100-80gb (Ampere, SM 8.0)" in result.output
    assert not log.exists()


def test_the_gpu_is_detected_with_nvidia_smi(env, monkeypatch):
    from tritongen.engine import gating
    from tritongen.spec import load_spec

    monkeypatch.setenv("PATH", str(fake_bin(env, docker=False)))
    monkeypatch.setenv("FAKE_GPUS", H100)
    target = gating.resolve(load_spec("llama3-8b"))
    assert (target.key, target.arch, target.sm, target.source) == ("h100-sxm", "hopper", "9.0", "nvidia-smi")
    # A GPU the catalogue does not know is placed by the compute capability nvidia-smi reports.
    monkeypatch.setenv("PATH", str(fake_bin(env / "other", docker=False)))
    monkeypatch.setenv("FAKE_GPUS", "0, NVIDIA RTX PRO 4000 Blackwell, 12.0, 24463")
    target = gating.resolve(load_spec("llama3-8b"))
    assert (target.key, target.arch, target.sm) == (None, "blackwell", "12.0")


def test_parallelism_is_checked_against_the_gpus_present(env, monkeypatch):
    from tritongen.engine import gating

    monkeypatch.setenv("PATH", str(fake_bin(env)))
    monkeypatch.setenv("FAKE_GPUS", H100)
    result = _engine(["llama3-8b", "--tp", "2", "--dry-run"])
    assert result.exit_code == GatingError.exit_code
    assert "tp x pp = 2 x 1 needs GPU(s) [0, 1] but nvidia-smi lists 1 GPU(s)" in result.output
    monkeypatch.setenv("FAKE_GPUS", f"{H100};1, NVIDIA A100-SXM4-80GB, 8.0, 81920")
    gating.clear_detect_cache()  # detection is cached per PATH; the fake now lists other GPUs
    result = _engine(["llama3-8b", "--tp", "2", "--dry-run"])
    assert result.exit_code == GatingError.exit_code
    assert "the GPUs differ" in result.output


def test_no_gpu_and_no_gpu_option_says_how_to_name_one(env):
    result = _engine(["llama3-8b", "--dry-run"])
    assert result.exit_code == GatingError.exit_code
    assert "no GPU to build for" in result.output and "--gpu" in result.output


@pytest.mark.parametrize(("args", "message"), [
    (["--set", "decoding.gather_context_logits=true", "--set", "decoding.speculative.method=lookahead"],
     "cannot be combined with speculative decoding"),
    (["--precision", "fp8", "--tp", "2", "--ep", "2"], "quantize.py has no expert-parallel option"),
    (["--kv-dtype", "int8", "--set", "kv_cache.enable_reuse=true"], "cannot be used with paged context FMHA"),
    (["--precision", "int4_awq", "--kv-dtype", "fp8", "--set", "kv_cache.enable_reuse=true"],
     "disables paged context FMHA"),
])
def test_combinations_the_tools_reject_fail_before_running(args, message, env):
    model = "mixtral-8x7b" if "--ep" in args else "llama3-8b"
    result = _engine([model, "--gpu", "h100", *args, "--dry-run"])
    assert result.exit_code == GatingError.exit_code, result.output
    assert message in result.output


# -- cache key ----------------------------------------------------------------------------------------------


def _entry(env, **options):
    from tritongen.engine import cache
    from tritongen.spec import load_spec

    base = {"engine.gpu": "h100", "model.checkpoint_dir": env / "models" / "llama3-8b"}
    return cache.entry_dir(load_spec("llama3-8b", options={**base, **options}))


def test_cache_key_covers_what_changes_the_binary_and_nothing_else(env):
    make_checkpoint(env / "models" / "llama3-8b", "llama3-8b")
    same = _entry(env)
    assert _entry(env) == same
    # Serving-only settings do not need a rebuild.
    assert _entry(env, **{"serving.http_port": 9000, "kv_cache.free_gpu_mem_fraction": 0.5,
                          "serving.streaming": False}) == same
    # Same SM (H100 and H200 are both SM 9.0): same engine.
    assert _entry(env, **{"engine.gpu": "h200"}) == same
    changed = {
        "limits.max_batch_size": 32,
        "limits.max_seq_len": 6144,
        "precision.format": "fp8",
        "precision.kv_cache_dtype": "fp8",
        "kv_cache.enable_reuse": True,
        "decoding.gather_generation_logits": True,
        "engine.gpu": "a100",
        "container.image": "nvcr.io/nvidia/tritonserver:26.02-trtllm-python-py3",
    }
    seen = {same}
    for key, value in changed.items():
        other = _entry(env, **{key: value})
        assert other not in seen, f"{key}={value} should change the engine's cache entry"
        seen.add(other)
    # The checkpoint's identity is part of the key: a different config.json is a different model.
    cfg = env / "models" / "llama3-8b" / "config.json"
    cfg.write_text(cfg.read_text().replace('"bfloat16"', '"float16"'))
    assert _entry(env) != same


def test_the_rendered_repository_points_where_the_build_puts_the_engine(env, monkeypatch):
    from tritongen.engine import plan
    from tritongen.resolve import engine_dir_for
    from tritongen.spec import load_spec

    monkeypatch.setenv("PATH", str(fake_bin(env, docker=False)))
    monkeypatch.setenv("FAKE_GPUS", H100)
    spec = load_spec("llama3-8b", options={"model.checkpoint_dir": env / "models" / "llama3-8b"})
    assert engine_dir_for(spec) == plan.plan_build(spec).target.entry  # GPU detected the same way in both


# -- version matrix -------------------------------------------------------------------------------------------


def test_the_default_image_is_the_newest_that_still_has_the_engine_route(env):
    from tritongen import versions

    text = _dry_run("int8_wo", env)
    newest = versions.default_container("engine")
    assert f"TensorRT-LLM {newest.trtllm} in {newest.image()}" in text
    assert all(newest.tag >= c.tag for c in versions.containers() if "engine" in c.routes)


@pytest.mark.parametrize(("tag", "expect"), [
    ("26.02", "TensorRT-LLM 1.1.0 in nvcr.io/nvidia/tritonserver:26.02-trtllm-python-py3"),
    ("26.08", "No -trtllm-python-py3 image for 26.08"),
    ("25.01", "tritongen does not know where images with TensorRT-LLM 0.17.0 keep convert_checkpoint.py"),
])
def test_an_older_or_missing_image_is_planned_or_refused_with_the_reason(tag, expect, env):
    result = _engine(["llama3-8b", "--gpu", "h100", "--image", f"nvcr.io/nvidia/tritonserver:{tag}-trtllm-python-py3",
                      "--dry-run"])
    assert expect in result.output
    if tag == "26.02":
        assert result.exit_code == 0
        assert "warning: the flags tritongen emits are recorded for TensorRT-LLM 1.2.1" in result.output
    else:
        assert result.exit_code == GatingError.exit_code


# -- more variants: every flag still recorded (no golden files) --------------------------------------------


def _hf_config(path: Path, arch: str, **extra) -> Path:
    import json

    cfg = {"architectures": [arch], "num_hidden_layers": 4, "hidden_size": 256, "num_attention_heads": 8,
           "num_key_value_heads": 4, "intermediate_size": 512, "vocab_size": 32000, "max_position_embeddings": 8192,
           "torch_dtype": "bfloat16", **extra}
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text(json.dumps(cfg))
    return path


VARIANTS = {
    "eagle": ["llama3-8b", "--gpu", "h100", "--set", "decoding.speculative.method=eagle",
              "--set", "decoding.speculative.heads_dir=MODELS/eagle-heads"],
    "lookahead": ["llama3-8b", "--gpu", "h100", "--set", "decoding.speculative.method=lookahead"],
    "smoothquant_int8_kv": ["llama3-8b", "--gpu", "a100", "--precision", "w8a8_sq", "--kv-dtype", "int8"],
    "gptq_qwen": ["qwen2.5-7b", "--gpu", "a100", "--precision", "int4_gptq"],
    "bf16_fp8_kv": ["qwen2.5-7b", "--gpu", "l40s", "--kv-dtype", "fp8"],
    "int8_kv_quantize": ["llama3-8b", "--gpu", "a100", "--kv-dtype", "int8"],
    "w4a8_awq_ada": ["llama3-8b", "--gpu", "l4", "--precision", "w4a8_awq"],
    "medusa_fp8": ["llama3-8b", "--gpu", "h100", "--precision", "fp8", "--set", "decoding.speculative.method=medusa",
                   "--set", "decoding.speculative.heads_dir=MODELS/medusa-heads"],
    "medusa_int4_wo": ["llama3-8b", "--gpu", "a100", "--precision", "int4_wo",
                       "--set", "decoding.speculative.method=medusa",
                       "--set", "decoding.speculative.heads_dir=MODELS/medusa-heads"],
    "gemma_tp2": ["gemma2", "--gpu", "h100", "--tp", "2", "--checkpoint", "MODELS/gemma2"],
    "phi3_int8_wo": ["phi3", "--gpu", "a100", "--precision", "int8_wo", "--checkpoint", "MODELS/phi3"],
    "qwen_moe_ep": ["qwen-moe", "--gpu", "h100", "--tp", "2", "--ep", "2", "--checkpoint", "MODELS/qwen-moe"],
    "logits": ["llama3-8b", "--gpu", "h100", "--set", "decoding.gather_context_logits=true",
               "--set", "decoding.gather_generation_logits=true", "--set", "scheduling.enable_chunked_context=true"],
}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_more_variants_emit_only_recorded_flags(variant, env):
    models = env / "models"
    make_checkpoint(models / "llama3-8b", "llama3-8b")
    for heads in ("eagle-heads", "medusa-heads"):
        _hf_config(models / heads, "LlamaForCausalLM")
    _hf_config(models / "gemma2", "Gemma2ForCausalLM", head_dim=32)
    _hf_config(models / "phi3", "Phi3ForCausalLM")
    _hf_config(models / "qwen-moe", "Qwen2MoeForCausalLM", num_experts=8, num_experts_per_tok=2)
    args = [a.replace("MODELS", str(models)) for a in VARIANTS[variant]]
    if "--checkpoint" not in args:
        args += ["--checkpoint", str(models / "llama3-8b")]
    result = _engine([*args, "--dry-run"])
    assert result.exit_code == 0, result.output
    flags_yaml, tools_yaml = recorded_tools()
    seen = set()
    for argv in _commands(result.output):
        _, tool = _split(argv)
        seen.update(_check_tool_flags(tool, flags_yaml, tools_yaml))
    expected = {
        "eagle": {"--eagle_model_dir", "--speculative_decoding_mode"},
        "lookahead": {"--speculative_decoding_mode", "--max_draft_len"},
        "smoothquant_int8_kv": {"--smoothquant", "--per_channel", "--per_token", "--int8_kv_cache"},
        "gptq_qwen": {"--weight_only_precision", "--per_group", "--group_size"},
        "bf16_fp8_kv": {"--qformat", "--kv_cache_dtype"},
        "int8_kv_quantize": {"--qformat", "--kv_cache_dtype"},
        "w4a8_awq_ada": {"--qformat", "--awq_block_size"},
        "medusa_fp8": {"--medusa_model_dir", "--num_medusa_heads", "--qformat"},
        "medusa_int4_wo": {"--medusa_model_dir", "--max_medusa_token_len", "--use_weight_only"},
        "gemma_tp2": {"--ckpt-type", "--world-size", "--workers"},
        "phi3_int8_wo": {"--use_weight_only"},
        "qwen_moe_ep": {"--moe_ep_size", "--moe_tp_size"},
        "logits": {"--gather_context_logits", "--gather_generation_logits", "--use_paged_context_fmha"},
    }[variant]
    assert expected <= seen, expected - seen


def test_the_rendered_draft_target_repository_points_at_the_target_engine(env):
    from tritongen.engine import plan
    from tritongen.resolve import engine_dir_for
    from tritongen.spec import load_spec

    spec = load_spec("llama3-8b", options={"engine.gpu": "h100", "serving.bls": True},
                     sets=["decoding.speculative.method=draft_target", "decoding.speculative.draft_model=llama3.2-1b"])
    bplan = plan.plan_build(spec)
    assert [ep.role for ep in bplan.engines] == ["draft", "target"]
    assert engine_dir_for(spec) == bplan.target.entry != bplan.engines[0].entry
