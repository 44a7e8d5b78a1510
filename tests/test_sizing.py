"""`tritongen plan`: the sizing arithmetic against hand-computed cases, gating, layouts and the CLI."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from tritongen import planner as sizing
from tritongen.cli import cli
from tritongen.errors import GatingError, UsageError
from tritongen.spec import load_spec

LLAMA31_8B_EMBED = 128256 * 4096  # token embedding; the lm_head is a second matrix of the same size (untied)


def spec(model="llama3-8b", **options):
    return load_spec(model, options=options)


def plan(model, gpu, workload=(1024, 256, 16), **kw):
    opts = kw.pop("options", {})
    return sizing.make_plan(spec(model, **opts), gpu, sizing.Workload(*workload), **kw)


# -- shapes and bytes -------------------------------------------------------------------------------------


def test_kv_bytes_per_token_llama31_8b_gqa():
    shape = sizing.Shape.from_model(spec().model)
    assert shape.kv_bytes_per_token("fp16") == 2 * 32 * 8 * 128 * 2 == 131072
    assert shape.kv_bytes_per_token("bf16") == 131072
    assert shape.kv_bytes_per_token("fp8") == 65536
    # tp shards KV heads (8 / 2 = 4 per GPU); pp shards layers (32 / 4 = 8 per GPU).
    assert shape.kv_bytes_per_token("fp16", tp=2) == 2 * 32 * 4 * 128 * 2
    assert shape.kv_bytes_per_token("fp16", pp=4) == 2 * 8 * 8 * 128 * 2
    # tp beyond the 8 KV heads replicates one head per GPU instead of going below one.
    assert shape.kv_bytes_per_token("fp16", tp=16) == 2 * 32 * 1 * 128 * 2


def test_kv_bytes_per_token_70b_and_mha():
    shape = sizing.Shape.from_model(spec("llama3-70b").model)
    assert shape.kv_bytes_per_token("fp16") == 2 * 80 * 8 * 128 * 2 == 327680
    qwen = sizing.Shape.from_model(spec("qwen2.5-7b").model)
    assert qwen.kv_bytes_per_token("bf16") == 2 * 28 * 4 * 128 * 2


def test_embeddings_tied_or_not_from_parameter_count():
    assert not sizing.Shape.from_model(spec().model).tied_embeddings
    assert sizing.Shape.from_model(spec("llama3.2-1b").model).tied_embeddings  # Llama 3.2 1B ties them


def test_weight_bytes_per_precision():
    shape = sizing.Shape.from_model(spec().model)
    emb = 2 * LLAMA31_8B_EMBED
    linear = 8.03e9 - emb
    assert sizing.weight_bytes(shape, "fp16") == pytest.approx(8.03e9 * 2)
    assert sizing.weight_bytes(shape, "bf16") == pytest.approx(16.06e9)
    # fp8: 1 byte per linear weight, per-tensor scales only; embeddings and lm_head stay 16 bit.
    assert sizing.weight_bytes(shape, "fp8") == pytest.approx(linear * 1 + emb * 2)
    # int4 AWQ: half a byte plus one fp16 scale per group of 128 weights.
    assert sizing.weight_bytes(shape, "int4_awq") == pytest.approx(linear * (0.5 + 2 / 128) + emb * 2)
    assert sizing.weight_bytes(shape, "int4_gptq") == pytest.approx(linear * (0.5 + 4 / 128) + emb * 2)
    # NVFP4: an FP8 scale per 16-element block.
    assert sizing.weight_bytes(shape, "nvfp4") == pytest.approx(linear * (0.5 + 1 / 16) + emb * 2)


def test_moe_active_parameters():
    shape = sizing.Shape.from_model(spec("mixtral-8x7b").model)
    experts = 32 * 8 * 3 * 4096 * 14336
    assert shape.expert_params == experts
    assert shape.active_params == pytest.approx(46.7e9 - experts * (1 - 2 / 8))


# -- memory fit ---------------------------------------------------------------------------------------------


def test_8b_fp16_fits_one_80gb_gpu_hand_computed():
    p = plan("llama3-8b", "h100", (1024, 256, 32), options={"precision.format": "fp16"})
    m = p.memory
    assert (p.tp, p.pp) == (1, 1)
    assert m.fits
    assert m.weights_gb == pytest.approx(16.06)
    # allowance: 1.0 GB fixed + activations for 8192 tokens x (2*4096 + (32+2*8)*128 + 2*14336) x 2 bytes
    #            + logits 32 x 128256 x 4 bytes + 0.25 GB CUDA graphs
    act = 8192 * (2 * 4096 + 48 * 128 + 2 * 14336) * 2
    assert act == 704_643_072
    allowance = 1.0e9 + act + 32 * 128256 * 4 + 0.25e9
    assert m.allowance_gb == pytest.approx(allowance / 1e9)
    pool = (81559 * 2**20 - 16.06e9 - allowance) * 0.9  # what nvidia-smi reports for an H100 80GB HBM3
    assert m.kv_pool_gb == pytest.approx(pool / 1e9)
    tokens = int(pool // 131072) // 32 * 32
    assert m.kv_pool_tokens == tokens
    assert m.blocks_per_sequence == 40  # 1280 tokens / 32 per block
    assert m.sequences == tokens // 1280
    assert m.max_context == 131072  # the model's limit, not the pool's (the pool holds ~380k tokens)


def test_70b_fp16_needs_tp2_on_80gb_gpus():
    for gpu in ("h100", "a100-80gb"):
        p = plan("llama3-70b", gpu, (128, 128, 1), options={"precision.format": "fp16"})
        assert p.tp * p.pp == 2 and p.tp == 2, gpu
        assert p.memory.weights_gb == pytest.approx(70.6e9 * 2 / 2 / 1e9)
        assert p.considered[0] == {**p.considered[0], "tp": 1, "pp": 1, "fits": False}
    with pytest.raises(GatingError, match=r"does not fit on 1 x h100-sxm"):
        plan("llama3-70b", "h100", (128, 128, 1), options={"precision.format": "fp16"}, tp=1)


def test_70b_fp16_on_a_single_24gb_gpu_is_refused_with_alternatives():
    with pytest.raises(GatingError) as info:
        plan("llama3-70b", "rtx4090", (128, 128, 1), options={"precision.format": "fp16"}, num_gpus=1)
    err = info.value
    assert str(err).startswith("llama3-70b in fp16 does not fit on 1 x rtx4090 (24 GB): weights are 141.2 GB")
    assert "\n" not in str(err)
    # What would: more of the same GPU (70.6e9 x 2 / 8 = 17.65 GB each fits 24 GB), or one H200 (its real
    # 150.8e9 bytes hold the 141.2 GB of weights and a small KV cache).
    assert err.hint.startswith("would fit: 8 x rtx4090")
    assert "1 x h200 (141 GB)" in err.hint
    assert err.exit_code == 6


def test_smaller_precision_and_bigger_gpus_are_suggested():
    # 70.6e9 x 2 = 141.2 GB of fp16 weights cannot fit one H100 (85.5e9 bytes); fp8 (~72.7 GB) can, and so can
    # one H200 (150.8e9 bytes as nvidia-smi reports it, not the datasheet's 141e9).
    with pytest.raises(GatingError) as info:
        plan("llama3-70b", "h100", (128, 128, 1), options={"precision.format": "fp16"}, num_gpus=1)
    hint = info.value.hint
    assert "2 x h100-sxm (tp=2 pp=1)" in hint
    assert "--precision fp8 on 1 x h100-sxm" in hint
    assert "1 x h200 (141 GB)" in hint


def test_real_gpu_memory_is_used_where_recorded():
    p = plan("llama3-70b", "h200", (128, 128, 1), options={"precision.format": "fp16"}, num_gpus=1)
    assert p.memory.fits and p.memory.gpu_memory_gb == pytest.approx(143771 * 2**20 / 1e9)
    assert sizing.Gpu.get("l40s").memory_bytes == 48e9  # no nvidia-smi reading recorded: the datasheet figure
    assert "max_tokens_in_paged_kv_cache" not in p.runtime_parameters  # an estimate must not cap the real pool


def test_precision_gated_by_architecture():
    # The same table `tritongen engine` gates on (catalog/precision_support.yaml), so plan and engine agree.
    with pytest.raises(GatingError, match=r"fp8 cannot run on a100-80gb \(ampere, SM 8\.0\): FP8 .*need Ada \(SM 8\.9\)"):
        plan("llama3-8b", "a100", options={"precision.format": "fp8"})
    with pytest.raises(GatingError, match=r"nvfp4 cannot run on h100-sxm \(hopper, SM 9\.0\): .*Blackwell"):
        plan("llama3-8b", "h100", options={"precision.format": "nvfp4"})
    with pytest.raises(GatingError, match=r"fp8 KV cache cannot run on a10g \(ampere, SM 8\.6\): .*Ada \(SM 8\.9\)"):
        plan("llama3-8b", "a10g", options={"precision.kv_cache_dtype": "fp8"})
    with pytest.raises(GatingError, match=r"int8_wo cannot run on b200"):
        plan("llama3-8b", "b200", options={"precision.format": "int8_wo"})
    assert plan("llama3-8b", "b200", options={"precision.format": "nvfp4"}).precision == "nvfp4"


def test_context_longer_than_the_model_is_a_usage_error():
    with pytest.raises(UsageError, match=r"input \+ output = 140000 tokens exceeds llama3-8b's context length 131072"):
        plan("llama3-8b", "h100", (130000, 10000, 1))


# -- parallelism --------------------------------------------------------------------------------------------


def test_concurrency_decides_the_layout():
    p = plan("llama3-70b", "h100", (1024, 256, 64),
             options={"precision.format": "fp8", "precision.kv_cache_dtype": "fp8"})
    one, two = p.considered[0], p.considered[1]
    assert (one["tp"], one["pp"], one["fits"]) == (1, 1, True) and one["sequences"] < 64
    assert (p.tp, p.pp) == (2, 1) and p.memory.sequences >= 64
    assert "fewer than the 64 asked for" in p.explanation[0]
    assert "NVLink domain" in p.explanation[-1]
    assert two["tp"] == 2


def test_layout_order_nvlink_first_then_pipeline():
    shape = sizing.Shape.from_model(spec("llama3-70b").model)
    h100 = sizing.layouts(shape, sizing.Gpu.get("h100"), max_gpus=32, gpus_per_node=8)
    assert [(t, p) for t, p, _ in h100] == [(1, 1), (2, 1), (4, 1), (8, 1), (8, 2), (8, 4)]
    assert h100[4][2] == "pp-across-domains"
    pcie = sizing.layouts(shape, sizing.Gpu.get("rtx4090"), max_gpus=16, gpus_per_node=8)
    # no NVLink: pipeline first (one hand-off per stage), tp over PCIe as the alternative
    assert [(t, p) for t, p, _ in pcie][:3] == [(1, 1), (1, 2), (2, 1)]
    assert pcie[-1][:2] == (8, 2)
    h100_pcie = sizing.layouts(shape, sizing.Gpu.get("h100-pcie"), max_gpus=4, gpus_per_node=8)
    assert [(t, p) for t, p, _ in h100_pcie] == [(1, 1), (2, 1), (2, 2), (1, 4), (4, 1)]


def test_without_nvlink_the_faster_layout_of_the_same_size_wins():
    p = plan("mixtral-8x7b", "l40s", (1024, 256, 32), options={"precision.format": "fp8",
                                                                "precision.kv_cache_dtype": "bf16"})
    same = [c for c in p.considered if c["tp"] * c["pp"] == 2]
    assert {(c["tp"], c["pp"]) for c in same} == {(1, 2), (2, 1)}
    mine = next(c for c in same if (c["tp"], c["pp"]) == (p.tp, p.pp))
    other = next(c for c in same if c is not mine)
    assert mine["sustained_output_tps"] >= other["sustained_output_tps"]
    assert any(line.startswith(f"tp={p.tp} pp={p.pp} beats tp={other['tp']} pp={other['pp']}")
               for line in p.explanation)
    # the estimates are the Estimator's own numbers for each layout
    shape = sizing.Shape.from_model(spec("mixtral-8x7b").model)
    est = sizing.Estimator(shape, sizing.Gpu.get("l40s"), precision="fp8", kv_dtype="bf16", tp=other["tp"],
                           pp=other["pp"])
    assert other["sustained_output_tps"] == pytest.approx(est.sustained(32, sizing.Workload(1024, 256, 32)), abs=0.1)


def test_too_few_gpus_for_the_concurrency_warns_and_takes_the_most_kv():
    p = plan("llama3-70b", "h100", (4096, 1024, 256), options={"precision.format": "fp16"}, num_gpus=2)
    assert (p.tp, p.pp) == (2, 1)
    assert p.memory.sequences < 256
    assert any("holds only" in w and "not 256" in w for w in p.warnings)


def test_fixed_layout_must_divide_heads_and_respect_num_gpus():
    with pytest.raises(GatingError, match="does not divide"):
        plan("llama3-8b", "h100", tp=3)
    with pytest.raises(GatingError, match="--num-gpus is 2"):
        plan("llama3-8b", "h100", tp=4, num_gpus=2)


# -- performance --------------------------------------------------------------------------------------------


def test_decode_is_bandwidth_bound_hand_computed():
    p = plan("llama3-8b", "h100", (1024, 256, 1), options={"precision.format": "fp16"})
    perf = p.performance
    ctx = 1024 + 256 / 2  # average context while decoding
    read = 16.06e9 + ctx * 131072 + 32 * 8 * 4096 * 2  # + the unsharded residual stream: 8 vectors per layer
    step = read / (3350e9 * 0.75) + 0.0003
    assert perf.decode_bound == "memory"
    assert perf.decode_step_ms == pytest.approx(step * 1e3)
    assert perf.decode_tps_per_seq == pytest.approx(1 / step)
    assert perf.decode_tps_aggregate == pytest.approx(1 / step)
    # prefill: (2 x params x I + 2 x layers x I^2 x heads x head_dim) / (989.4 TFLOPS x 0.55) + overhead, and the
    # serving front's 3.3 ms (tokenizer and ensemble hops, measured by benchmarks/pipeline.py)
    flop = 2 * 8.03e9 * 1024 + 2 * 32 * 1024**2 * 32 * 128
    assert perf.ttft_ms == pytest.approx((flop / (989.4e12 * 0.55) + 0.0003 + 0.0033) * 1e3)
    assert perf.e2e_latency_s == pytest.approx(perf.ttft_ms / 1e3 + 255 * step)


def test_batching_raises_aggregate_but_not_per_sequence_speed():
    one = plan("llama3-8b", "h100", (1024, 256, 1), options={"precision.format": "fp8"}).performance
    many = plan("llama3-8b", "h100", (1024, 256, 64), options={"precision.format": "fp8"}).performance
    assert many.decode_tps_aggregate > 20 * one.decode_tps_aggregate
    assert many.decode_tps_per_seq < one.decode_tps_per_seq
    assert many.sustained_output_tps < many.decode_tps_aggregate  # prefills take their share
    # KV-limited, workload-independent (but for the logits buffer of the larger max_batch_size)
    assert one.max_throughput_batch == pytest.approx(many.max_throughput_batch, rel=0.01)


def test_faster_memory_decodes_faster():
    h100 = plan("llama3-8b", "h100", (1024, 256, 1), options={"precision.format": "fp8"}).performance
    h200 = plan("llama3-8b", "h200", (1024, 256, 1), options={"precision.format": "fp8"}).performance
    ratio = h200.decode_tps_per_seq / h100.decode_tps_per_seq
    assert 1.2 < ratio < 4800 / 3350


def test_tensor_parallel_adds_allreduce_time():
    shape = sizing.Shape.from_model(spec("llama3-70b").model)
    gpu = sizing.Gpu.get("h100")
    est = sizing.Estimator(shape, gpu, precision="fp8", kv_dtype="fp8", tp=4, pp=1)
    step, _ = est.stage_step(1, 1000)
    msg = 1 * 8192 * 2
    allreduce = 3 * 8e-6 + 2 * 3 / 4 * msg / (900e9 / 2 * 0.75)  # ring: 2 (tp-1) hops at half the tp=2 latency
    no_comm = (sizing.weight_bytes(shape, "fp8") / 4 + 1000 * shape.kv_bytes_per_token("fp8", tp=4)
               + 80 * 8 * 8192 * 2) / (3350e9 * 0.75)
    assert step == pytest.approx(no_comm + 2 * 80 * allreduce, rel=1e-3)


# -- the command ----------------------------------------------------------------------------------------------


def test_plan_command_json_and_spec_file_roundtrip(tmp_path):
    out = tmp_path / "plan.yaml"
    result = CliRunner().invoke(cli, ["plan", "llama3-70b", "--gpu", "h100", "--precision", "fp8", "--kv-dtype",
                                      "fp8", "--input-len", "2048", "--output-len", "512", "--concurrency", "32",
                                      "--json", "--write-spec", str(out)])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["fits"] and data["fits_concurrency"]
    assert data["parallelism"]["num_gpus"] == data["parallelism"]["tp"] * data["parallelism"]["pp"]
    assert data["memory_per_gpu"]["kv_bytes_per_token_model"] == 2 * 80 * 8 * 128 * 1
    assert data["settings"]["trtllm_build_flags"][:3] == ["--max_batch_size 32", "--max_input_len 2048",
                                                           "--max_seq_len 2560"]
    assert data["spec_file"] == str(out)
    assert "bandwidth_efficiency" in data["assumptions"]
    # The written spec is what `tritongen repo MODEL --spec FILE` resolves.
    applied = load_spec("llama3-70b", spec_file=out)
    assert applied.parallelism.tp == data["parallelism"]["tp"]
    assert applied.parallelism.pp == data["parallelism"]["pp"]
    assert applied.precision.format.value == "fp8" and applied.precision.kv_cache_dtype.value == "fp8"
    assert (applied.limits.max_batch_size, applied.limits.max_input_len, applied.limits.max_seq_len) == (32, 2048, 2560)
    assert applied.engine.gpu == "h100-sxm"
    # ... and planning again from it keeps the layout (parallelism in the file counts as given).
    again = CliRunner().invoke(cli, ["plan", "llama3-70b", "--spec", str(out), "--input-len", "2048",
                                     "--output-len", "512", "--concurrency", "32", "--json"])
    assert again.exit_code == 0, again.output
    assert json.loads(again.output)["explanation"][0].endswith("as given")


def test_plan_command_table_and_gating_exit_code():
    ok = CliRunner().invoke(cli, ["plan", "llama3-8b", "--gpu", "l40s", "--precision", "fp8", "--concurrency", "8"])
    assert ok.exit_code == 0, ok.output
    for needle in ("MEMORY per GPU", "KV bytes per token", "PARALLELISM", "first-order estimate", "TTFT",
                   "trtllm-build:      --max_batch_size 8", "convert/quantize:  --tp_size 1 --pp_size 1"):
        assert needle in ok.output
    # the one-paragraph assumptions summary names every term of the estimate, with today's values
    summary = " ".join(ok.output.split("assumptions:")[1].split("SETTINGS")[0].split())
    for term in ("GEMMs and attention each bound by their own resource", "75% of peak bandwidth",
                 "55% of dense tensor peak", "FP4 GEMMs 0.68", "+0.3 ms per step", "2 ring all-reduces",
                 "prefill's own pass", "running step", "3.3 ms for the serving front"):
        assert term in summary, (term, summary)
    bad = CliRunner().invoke(cli, ["plan", "llama3-70b", "--gpu", "rtx4090", "--num-gpus", "1", "--precision",
                                   "fp16"])
    assert bad.exit_code == 6
    assert "does not fit on 1 x rtx4090" in bad.output and "would fit:" in bad.output


def test_plan_without_gpu_says_how(monkeypatch):
    from tritongen.commands import plan as plan_cmd

    monkeypatch.setattr(plan_cmd, "_detect_gpu", lambda: None)
    result = CliRunner().invoke(cli, ["plan", "llama3-8b"])
    assert result.exit_code == 2
    assert "give --gpu" in result.output


def test_assumptions_are_documented():
    for name, entry in sizing.ASSUMPTIONS.items():
        assert entry["why"] and isinstance(entry["value"], (int, float)), name
