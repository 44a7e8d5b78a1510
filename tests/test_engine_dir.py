"""A prebuilt engine (--engine-dir) is the ground truth for what it fixed at build time: what the user did not set
is taken from its config.json, an explicit conflict is still an error, and a missing engine is an error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import REPO_ROOT
from tritongen.cli import cli
from tritongen.errors import SpecError, UsageError, ValidationFailed
from tritongen.repo.validate import params_of, parse_config
from tritongen.spec import load_spec

FIXTURE = REPO_ROOT / "tests/fixtures/engines/llama3-8b-fp16-tp1/config.json"


def fake_engine(root: Path, **build) -> Path:
    """An engine dir whose config.json is the fixture's with ``build`` (build_config keys, plus tp/pp, dtype,
    quant_algo, kv_cache_quant_algo) changed."""
    cfg = json.loads(FIXTURE.read_text())
    pre = cfg["pretrained_config"]
    for key in ("tp_size", "pp_size"):
        if key in build:
            pre["mapping"][key] = build.pop(key)
    pre["mapping"]["world_size"] = pre["mapping"]["tp_size"] * pre["mapping"]["pp_size"]
    for key in ("quant_algo", "kv_cache_quant_algo"):
        if key in build:
            pre["quantization"][key] = build.pop(key)
    if "dtype" in build:
        pre["dtype"] = build.pop("dtype")
    cfg["build_config"].update(build)
    root.mkdir(parents=True, exist_ok=True)
    (root / "config.json").write_text(json.dumps(cfg))
    return root


def test_an_engine_with_other_limits_than_the_catalogue_is_adopted(tmp_path):
    engine = fake_engine(tmp_path / "engine", max_input_len=2048, max_seq_len=4096, max_batch_size=16,
                         max_num_tokens=4096)
    out = tmp_path / "repo"
    result = CliRunner().invoke(cli, ["repo", "llama3-8b", "--engine-dir", str(engine), "--checkpoint",
                                      "/models/llama3-8b", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "from the engine's config.json" in result.output and "limits.max_input_len=2048" in result.output
    pre = params_of(parse_config(out / "preprocessing" / "config.pbtxt"))
    assert (pre["max_input_len"], pre["max_seq_len"]) == ("2048", "4096")
    assert parse_config(out / "tensorrt_llm" / "config.pbtxt").max_batch_size == 16


def test_every_build_time_setting_comes_from_the_engine(tmp_path):
    engine = fake_engine(tmp_path / "engine", tp_size=2, pp_size=2, max_beam_width=4, dtype="bfloat16",
                         quant_algo="FP8", kv_cache_quant_algo="FP8", gather_context_logits=True,
                         gather_generation_logits=True)
    spec = load_spec("llama3-8b", options={"engine.dir": engine})
    assert (spec.parallelism.tp, spec.parallelism.pp, spec.limits.max_beam_width) == (2, 2, 4)
    assert (spec.precision.format.value, spec.precision.dtype.value, spec.precision.kv_cache_dtype.value) == \
        ("fp8", "bf16", "fp8")
    assert spec.decoding.gather_context_logits and spec.decoding.gather_generation_logits
    assert spec.resolved_decoding_mode.value == "beam_search"
    assert spec._from_engine["parallelism.tp"] == 2


def test_an_unquantized_engine_gives_its_dtype_as_precision(tmp_path):
    spec = load_spec("llama3-8b", options={"engine.dir": fake_engine(tmp_path / "e", dtype="float16")})
    assert spec.precision.format.value == "fp16"  # the catalogue says bf16


def test_an_explicit_value_wins_and_a_conflict_stays_an_error(tmp_path):
    engine = fake_engine(tmp_path / "engine", max_input_len=2048, max_seq_len=4096, max_num_tokens=4096)
    spec = load_spec("llama3-8b", options={"engine.dir": engine}, sets=["limits.max_seq_len=3000"])
    assert (spec.limits.max_input_len, spec.limits.max_seq_len) == (2048, 3000)
    assert "limits.max_seq_len" not in spec._from_engine
    result = CliRunner().invoke(cli, ["repo", "llama3-8b", "--engine-dir", str(engine), "--checkpoint", "/m",
                                      "--set", "limits.max_input_len=3072", "--out", str(tmp_path / "repo")])
    assert result.exit_code == ValidationFailed.exit_code, result.output
    assert "exceeds the engine's max_input_len 2048" in result.output
    assert not (tmp_path / "repo").exists()


def test_a_spec_file_value_is_explicit_too(tmp_path):
    engine = fake_engine(tmp_path / "engine", max_batch_size=16)
    spec_file = tmp_path / "s.yaml"
    spec_file.write_text("limits:\n  max_batch_size: 8\n")
    spec = load_spec("llama3-8b", spec_file=spec_file, options={"engine.dir": engine})
    assert spec.limits.max_batch_size == 8


@pytest.mark.parametrize("make", ["missing", "empty"])
def test_an_engine_dir_that_is_not_an_engine_is_an_error(tmp_path, make):
    engine = tmp_path / "engine"
    if make == "empty":
        engine.mkdir()
    args = ["repo", "llama3-8b", "--engine-dir", str(engine), "--checkpoint", "/m", "--out", str(tmp_path / "r")]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == UsageError.exit_code, result.output
    assert ("does not exist" if make == "missing" else "no config.json") in result.output
    assert "next:" not in result.output and not (tmp_path / "r").exists()
    later = CliRunner().invoke(cli, [*args, "--no-build"])
    assert later.exit_code == 0, later.output
    assert "warning: --engine-dir" in later.output


def test_a_broken_engine_config_is_a_spec_error(tmp_path):
    (tmp_path / "engine").mkdir()
    (tmp_path / "engine" / "config.json").write_text("{not json")
    with pytest.raises(SpecError, match="engine.dir: .*not valid JSON"):
        load_spec("llama3-8b", options={"engine.dir": tmp_path / "engine"})


def test_cpu_route_ignores_engine_dir(tmp_path):
    engine = fake_engine(tmp_path / "engine", max_batch_size=3)
    spec = load_spec("tiny", options={"engine.dir": engine})
    assert spec.limits.max_batch_size != 3 and spec._from_engine == {}
