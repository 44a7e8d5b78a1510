"""`tritongen plan` recommends the settings that matter: FP8 KV cache, KV reuse / chunked context (with paged
context FMHA), max_batch_size and max_num_tokens sized from memory, and --write-spec carries all of them."""

from __future__ import annotations

import json
import math

import yaml
from click.testing import CliRunner

from tritongen import planner as sizing
from tritongen.cli import cli
from tritongen.spec import load_spec


def _plan(model, gpu, workload, traffic="auto", **options):
    return sizing.make_plan(load_spec(model, options=options), gpu, sizing.Workload(*workload), traffic=traffic)


def test_fp8_kv_is_used_for_fp8_weights_and_shows_what_it_buys():
    p = _plan("llama3-70b", "h200", (1024, 256, 64), **{"precision.format": "fp8"})
    assert p.kv_dtype == "fp8" and p.spec_overrides["precision"]["kv_cache_dtype"] == "fp8"
    rec = next(r for r in p.recommendations if r["setting"] == "precision.kv_cache_dtype")
    assert rec["applied"] and rec["sequences"] == p.memory.sequences
    # halving the bytes per token about doubles what the pool holds
    assert 1.9 < rec["sequences"] / rec["sequences_without"] < 2.1
    bf16_kv = _plan("llama3-70b", "h200", (1024, 256, 64), **{"precision.format": "fp8",
                                                              "precision.kv_cache_dtype": "bf16"})
    assert bf16_kv.memory.sequences == rec["sequences_without"]
    assert "--kv_cache_dtype fp8" in p.convert_flags


def test_an_explicit_kv_dtype_is_kept_and_fp8_only_suggested():
    p = _plan("llama3-70b", "h200", (1024, 256, 16), **{"precision.format": "fp8", "precision.kv_cache_dtype": "bf16"})
    assert p.kv_dtype == "bf16"
    rec = next(r for r in p.recommendations if r["setting"] == "precision.kv_cache_dtype")
    assert not rec["applied"] and rec["sequences"] > rec["sequences_without"] == p.memory.sequences


def test_no_fp8_kv_where_it_does_not_apply():
    bf16 = _plan("llama3-8b", "h100", (1024, 256, 16))  # 16-bit weights: no FP8 scales to reuse
    ampere = _plan("llama3-8b", "a100", (1024, 256, 16), **{"precision.format": "int8_wo"})  # no FP8 on Ampere
    for p in (bf16, ampere):
        assert p.kv_dtype != "fp8"
        assert not any(r["setting"] == "precision.kv_cache_dtype" for r in p.recommendations)


def test_chat_turns_on_kv_reuse_and_paged_context_fmha():
    p = _plan("llama3-8b", "h100", (1024, 256, 16), traffic="chat")
    assert p.spec_overrides["kv_cache"]["enable_reuse"] is True
    assert p.runtime_parameters["enable_kv_cache_reuse"] is True
    assert "--use_paged_context_fmha enable" in p.build_flags
    batch = _plan("llama3-8b", "h100", (1024, 256, 16), traffic="batch")
    assert batch.spec_overrides["kv_cache"]["enable_reuse"] is False
    assert "--use_paged_context_fmha enable" not in batch.build_flags


def test_long_prompts_get_chunked_context_and_a_bounded_max_num_tokens():
    p = _plan("llama3-8b", "h100", (16384, 256, 8))
    assert p.spec_overrides["scheduling"]["enable_chunked_context"] is True
    assert p.spec_overrides["limits"]["max_num_tokens"] == 8192 < 16384  # prompts are chunked
    assert "--use_paged_context_fmha enable" in p.build_flags
    short = _plan("llama3-8b", "h100", (1024, 256, 8))
    assert short.spec_overrides["scheduling"]["enable_chunked_context"] is False
    assert short.spec_overrides["limits"]["max_num_tokens"] >= 1024


def test_max_batch_size_is_sized_from_memory_at_the_mean_sequence_length():
    w = (2048, 2048, 2000)
    p = sizing.make_plan(load_spec("llama3-70b", options={"precision.format": "fp8"}), "h200", sizing.Workload(*w),
                         tp=1, pp=1)
    m = p.memory
    mean_blocks = math.ceil((2048 + 2048 / 2) / m.tokens_per_block)
    at_mean = m.kv_pool_tokens // (mean_blocks * m.tokens_per_block)
    mbs = p.spec_overrides["limits"]["max_batch_size"]
    assert mbs < 2000  # not the requested concurrency: fewer fit
    assert abs(mbs - at_mean) <= 1  # sized before the smaller logits buffer freed a little more
    assert m.sequences < mbs  # paged KV: more fit at the mean length than at the full length
    assert p.spec_overrides["limits"]["max_num_tokens"] >= mbs
    small = _plan("llama3-8b", "h100", (1024, 256, 8))
    assert small.spec_overrides["limits"]["max_batch_size"] == 8  # the concurrency, when it fits


def test_write_spec_carries_every_recommended_setting(tmp_path):
    out = tmp_path / "plan.yaml"
    result = CliRunner().invoke(cli, ["plan", "llama3-70b", "--gpu", "h200", "--precision", "fp8", "--traffic",
                                      "chat", "--input-len", "8192", "--output-len", "512", "--concurrency", "64",
                                      "--write-spec", str(out)])
    assert result.exit_code == 0, result.output
    assert "RECOMMENDED" in result.output and "precision.kv_cache_dtype=fp8" in result.output
    data = yaml.safe_load(out.read_text())
    assert data["precision"]["kv_cache_dtype"] == "fp8"
    assert data["kv_cache"]["enable_reuse"] is True
    assert data["scheduling"]["enable_chunked_context"] is True
    applied = load_spec("llama3-70b", spec_file=out)
    assert applied.precision.kv_cache_dtype.value == "fp8" and applied.kv_cache.enable_reuse
    assert applied.scheduling.enable_chunked_context
    assert applied.limits.max_num_tokens == data["limits"]["max_num_tokens"]


def test_json_lists_recommendations():
    result = CliRunner().invoke(cli, ["plan", "llama3-8b", "--gpu", "h100", "--precision", "fp8", "--json"])
    data = json.loads(result.output)
    assert {r["setting"] for r in data["recommendations"]} >= {"precision.kv_cache_dtype", "kv_cache.enable_reuse"}
