"""`tritongen plan --replicas / --slo / --expect`: layouts x replicas by throughput per GPU, latency objectives
choosing the requests in flight, and claimed figures checked against the bandwidth/compute roofline."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from tritongen import planner as sizing
from tritongen.cli import cli
from tritongen.errors import UsageError
from tritongen.planner import fleet
from tritongen.spec import load_spec

FP8_70B = {"precision.format": "fp8"}


def _deploy(workload, **kw):
    return sizing.make_deployment(load_spec("llama3-70b", options=FP8_70B), "h200", sizing.Workload(*workload), **kw)


def test_replicas_auto_prefers_many_single_gpu_replicas_for_a_big_batch():
    p = _deploy((1024, 256, 2000), num_gpus=8, replicas="auto")
    assert (p.replicas, p.tp, p.pp) == (8, 1, 1)
    best, *rest = p.fleet
    assert best["gpus"] == 8 and all(best["output_tps_per_gpu"] >= o["output_tps_per_gpu"] for o in rest)
    tp4 = next(o for o in p.fleet if o["tp"] == 4)
    one_tp4_engine = tp4["output_tps"] / tp4["replicas"]
    # the measurement: 8 single-GPU replicas give ~3x one tp=4 engine at 2000 requests
    assert 2.0 < best["output_tps"] / one_tp4_engine < 4.0
    assert p.spec_overrides["limits"]["max_batch_size"] <= best["capacity_per_replica"]
    assert p.to_dict()["total_gpus"] == 8


def test_a_fixed_replica_count_is_kept(tmp_path):
    p = _deploy((1024, 256, 256), num_gpus=8, replicas=2)
    assert p.replicas == 2 and all(o["replicas"] == 2 for o in p.fleet)
    out = tmp_path / "plan.yaml"
    result = CliRunner().invoke(cli, ["plan", "llama3-70b", "--gpu", "h200", "--precision", "fp8", "--num-gpus", "8",
                                      "--replicas", "2", "--concurrency", "256", "--write-spec", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_text().startswith("# Written by `tritongen plan`: llama3-70b on 2 replicas of ")
    assert load_spec("llama3-70b", spec_file=out).parallelism.tp * 2 <= 8


def test_slo_limits_requests_in_flight_and_is_met():
    free = _deploy((1024, 256, 2000), num_gpus=8, replicas="auto")
    slo = fleet.parse_slo("ttft_p99=1000ms,itl_p50=40ms,e2e_p99=20s")
    p = _deploy((1024, 256, 2000), num_gpus=8, replicas="auto", slo=slo)
    best = p.fleet[0]
    assert p.slo_met and best["meets_slo"]
    assert best["in_flight_per_replica"] < free.fleet[0]["in_flight_per_replica"]  # latency-bound: fewer in flight
    assert best["latency_ms"]["itl_p50"] <= 40 and best["latency_ms"]["ttft_p99"] <= 1000
    # the plan's performance is modelled at the requests in flight the objectives allow, not at 2000 / 8
    assert p.performance.batch == best["in_flight_per_replica"]
    assert p.spec_overrides["limits"]["max_batch_size"] == best["in_flight_per_replica"]


def test_nothing_meeting_the_slo_is_said():
    p = _deploy((1024, 256, 64), num_gpus=8, replicas="auto", slo=fleet.parse_slo("ttft_p99=1ms"))
    assert p.slo_met is False
    assert any(w.startswith("nothing meets the objectives ttft_p99<=1ms") for w in p.warnings)


def test_latency_grows_with_requests_in_flight():
    est = sizing.Estimator(sizing.Shape.from_model(load_spec("llama3-8b").model), sizing.Gpu.get("h100"),
                           precision="bf16", kv_dtype="bf16", tp=1, pp=1)
    w = sizing.Workload(1024, 256, 1)
    small, big = fleet.latencies(est, w, 1), fleet.latencies(est, w, 128)
    assert all(big[k] >= small[k] for k in small)
    assert small["ttft_p50"] <= small["ttft_p99"] and small["e2e_p50"] <= small["e2e_p99"]


def test_mean_latencies_at_a_rate_and_at_a_concurrency_agree():
    est = sizing.Estimator(sizing.Shape.from_model(load_spec("llama3-8b").model), sizing.Gpu.get("h100"),
                           precision="bf16", kv_dtype="bf16", tp=1, pp=1)
    w = sizing.Workload(467, 256, 1)
    open_loop = fleet.mean_latencies(est, w, 8.0)  # 8 req/s: Little's law gives the requests in flight
    b = round(open_loop["in_flight"])
    assert 8 < b < 40  # ~8 req/s x a few seconds each
    closed = fleet.closed_loop_latencies(est, w, b)
    assert closed["itl"] == pytest.approx(open_loop["itl"], rel=0.05)
    assert closed["ttft"] == pytest.approx(open_loop["ttft"], rel=0.05)
    # one client: the idle-engine prefill (its forward pass samples the first token) and the serving front
    single = fleet.closed_loop_latencies(est, w, 1)
    step, _ = est.token_latency(1, 467 + 128)
    assert est.prefill(467) + est.serving_stack_s <= single["ttft"] < 1.05 * (est.prefill(467) + est.serving_stack_s)
    assert fleet.closed_loop_latencies(est, w, 64)["itl"] > single["itl"]


@pytest.mark.parametrize("text, error", [("ttft=5ms", "NAME one of"), ("ttft_p99=fast", "not a number"),
                                         ("itl_p50=-1ms", "above 0"), ("", "at least one")])
def test_slo_parse_errors_are_one_line(text, error):
    with pytest.raises(UsageError, match=error):
        fleet.parse_slo(text)


def test_slo_units():
    assert fleet.parse_slo("ttft_p99=500,e2e_p99=20,itl_p50=0.03s") == pytest.approx(
        {"ttft_p99": 0.5, "e2e_p99": 20.0, "itl_p50": 0.03})


def test_claims_against_the_roofline_hand_computed():
    p = _deploy((1024, 256, 64), claims=fleet.parse_claims("tok_s=1000000,itl_ms=1,tok_s_per_user=10"))
    by = {c["metric"]: c for c in p.claims}
    assert by["tok_s"]["verdict"] == "impossible" and by["itl_ms"]["verdict"] == "impossible"
    assert by["tok_s_per_user"]["verdict"] in ("plausible", "possible")
    # one token of one request reads every weight once: 70.6B fp8 weights at 4.8 TB/s is the ITL floor
    shape = sizing.Shape.from_model(load_spec("llama3-70b", options=FP8_70B).model)
    floor_ms = sizing.weight_bytes(shape, "fp8") / 4800e9 * 1e3
    assert by["itl_ms"]["floor"] == pytest.approx(floor_ms, abs=0.01)
    assert any("claim cannot be true" in w for w in p.warnings)


def test_cli_replicas_slo_expect():
    result = CliRunner().invoke(cli, ["plan", "llama3-70b", "--gpu", "h200", "--precision", "fp8", "--num-gpus", "8",
                                      "--replicas", "auto", "--concurrency", "2000", "--slo", "itl_p50=50ms",
                                      "--expect", "tok_s=1e6", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["replicas"] * data["parallelism"]["num_gpus"] <= 8 and data["slo_met"]
    assert data["claims"][0]["verdict"] == "impossible"
    table = CliRunner().invoke(cli, ["plan", "llama3-70b", "--gpu", "h200", "--precision", "fp8", "--num-gpus", "8",
                                     "--replicas", "auto", "--concurrency", "2000"])
    assert "REPLICAS: 8 x (tp=1 pp=1)" in table.output
    bad = CliRunner().invoke(cli, ["plan", "llama3-70b", "--gpu", "h200", "--replicas", "auto"])
    assert bad.exit_code == UsageError.exit_code and "--num-gpus" in bad.output


def test_first_token_comes_from_the_prefill_and_waits_for_the_running_iteration():
    est = sizing.Estimator(sizing.Shape.from_model(load_spec("llama3-8b").model), sizing.Gpu.get("h100"),
                           precision="bf16", kv_dtype="bf16", tp=1, pp=1)
    w = sizing.Workload(202, 214, 1)
    step, _ = est.token_latency(16, 309)
    # idle engine: the prefill's own forward pass samples the first token, no decode step follows it
    assert fleet.first_token(est, w, step, 0) == est.prefill(202)
    # busy engine: the residual of the running iteration, then an iteration of the others' decode plus the math.
    # Iterations are a step plus K ~ Poisson(15 / 214) prompts' math; the mean residual E[T^2] / 2 E[T] is longer
    # than half a mean iteration (an arrival lands in a long iteration more often)
    p, m = est.inflight_prefill(202), 15 / 214
    mean_t, mean_t2 = step + m * p, step ** 2 + 2 * step * m * p + p ** 2 * (m + m ** 2)
    assert mean_t2 / (2 * mean_t) > mean_t / 2
    assert fleet.first_token(est, w, step, 15) == pytest.approx(mean_t2 / (2 * mean_t) + step + p)
    # prompts arriving during the wait ride in the same iteration and add their math
    assert fleet.first_token(est, w, step, 15, 10.0) == pytest.approx(
        mean_t2 / (2 * mean_t) + step + p * (1 + 10.0 * mean_t2 / (2 * mean_t)))
    assert fleet.first_token(est, w, step, 15, wait_share=0.99) > fleet.first_token(est, w, step, 15)
    # an arrival finds no other request in flight with probability e^-b (number in flight ~ Poisson(b))
    assert fleet._arrival_sees_idle(0.0) == 1.0 and fleet._arrival_sees_idle(3.0) == pytest.approx(0.0498, abs=1e-4)
    # the serving front's first-token cost is added once to the mean TTFT, and only where the run has a front
    bare = sizing.Estimator(sizing.Shape.from_model(load_spec("llama3-8b").model), sizing.Gpu.get("h100"),
                            precision="bf16", kv_dtype="bf16", tp=1, pp=1, serving_stack=False)
    assert est.serving_stack_s == pytest.approx(0.0033) and bare.serving_stack_s == 0.0
    assert fleet.mean_latencies(est, w, 2.0)["ttft"] == pytest.approx(fleet.mean_latencies(bare, w, 2.0)["ttft"] + 0.0033)


def test_attention_math_runs_at_the_kv_dtype_rate_not_the_weight_format():
    shape = sizing.Shape.from_model(load_spec("llama3-70b").model)
    b200 = sizing.Gpu.get("b200")
    fp4 = sizing.Estimator(shape, b200, precision="nvfp4", kv_dtype="fp8", tp=1, pp=1)
    assert fp4.flops == pytest.approx(9000e12 * 0.55 * 0.68) and fp4.attn_flops == pytest.approx(4500e12 * 0.55)
    bf16_kv = sizing.Estimator(shape, b200, precision="nvfp4", kv_dtype="bf16", tp=1, pp=1)
    assert bf16_kv.attn_flops == pytest.approx(2250e12 * 0.55)
    # a long prompt's causal attention is then slower than at the FP4 rate it used to be charged
    assert bf16_kv.inflight_prefill(20000) > fp4.inflight_prefill(20000)


def test_fp4_gemms_run_at_their_measured_share_of_the_fp8_efficiency():
    # vLLM's B200 kernel benchmarks: NVFP4 33.8 % of its peak vs FP8 49.5 % of its: 0.68 of the FP8 share
    shape = sizing.Shape.from_model(load_spec("llama3-70b").model)
    b200 = sizing.Gpu.get("b200")
    fp4 = sizing.Estimator(shape, b200, precision="nvfp4", kv_dtype="fp8", tp=1, pp=1)
    fp8 = sizing.Estimator(shape, b200, precision="fp8", kv_dtype="fp8", tp=1, pp=1)
    assert fp4.flops == pytest.approx(9000e12 * 0.55 * 0.68) and fp8.flops == pytest.approx(4500e12 * 0.55)
    assert sizing.ASSUMPTIONS["fp4_gemm_share"]["value"] == pytest.approx((3039 / 9000) / (2226 / 4500), abs=0.01)


def test_mean_latencies_past_capacity_say_saturated_not_a_diverged_number():
    # 70B bf16 tp4 on H100 at 202/214: the model's capacity is ~16 req/s (the source's all-at-once run: 16)
    est = sizing.Estimator(sizing.Shape.from_model(load_spec("llama3-70b").model), sizing.Gpu.get("h100"),
                           precision="bf16", kv_dtype="bf16", tp=4, pp=1)
    w = sizing.Workload(202, 214, 1)
    below, above = fleet.mean_latencies(est, w, 4.0), fleet.mean_latencies(est, w, 32.0)
    assert below["saturated"] == 0.0 and 4 < below["in_flight"] < 100
    assert above["saturated"] == 1.0 and above["in_flight"] == 4096
    assert above["itl"] < 10 and above["ttft"] < 10  # the figures at the cap, not a fixed point that ran away
    capped = fleet.mean_latencies(est, w, 32.0, max_in_flight=512)
    assert capped["saturated"] == 1.0 and capped["in_flight"] == 512 and capped["itl"] < above["itl"]
