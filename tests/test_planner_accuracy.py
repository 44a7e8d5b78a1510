"""How close `tritongen plan` comes to published TensorRT-LLM figures (docs/perf-estimates.md, "Estimate vs
published figures"). Run ``python tests/test_planner_accuracy.py`` to print every row and the error summary; the
tests check the memory-fit and batch answers and guard the summary the document states. No constant is tuned to
a row: every row uses the same ASSUMPTIONS, and each source only adds what its published setup was (the KV
fraction, the CUDA-graph padding of its harness, per-GPU vs total figures).

Sources (each row names its source key; URLs in SOURCES):
- docs: TensorRT-LLM perf-overview tables of two releases (v1.0 PyTorch backend, v0.17 TensorRT engines) and the
  v0.17 page's "Online Serving Measurements" (Triton backend, mean TTFT / ITL at a request rate); the v0.5
  performance.md batch-1 TTFT tables; the NeMo Framework guide's end-to-end latency.
- blog: NVIDIA's H200 launch post (v0.5) and the Llama 3.1 405B Model Optimizer post (8 x H200).
- docs: NVIDIA NIM's LLM benchmarking page (Llama 3.3 70B FP8 on 2 x H100, TTFT / ITL / tok/s at a concurrency).
- vendor: Jan's "Benchmarking NVIDIA TensorRT-LLM" (RTX 4090).
"""

from __future__ import annotations

import csv
import statistics
from dataclasses import dataclass
from pathlib import Path

import pytest

from tritongen import planner as sizing
from tritongen.planner.fleet import closed_loop_latencies, mean_latencies
from tritongen.spec import build_spec, load_spec

PUBLISHED = Path(__file__).parent / "fixtures" / "published"
TRTLLM = "https://github.com/NVIDIA/TensorRT-LLM/blob"

LLAMA2_7B = {"name": "llama2-7b", "architecture": "LlamaForCausalLM", "num_layers": 32, "hidden_size": 4096,
             "num_heads": 32, "num_kv_heads": 32, "intermediate_size": 11008, "vocab_size": 32000,
             "num_params": 6.74e9, "context_length": 4096}
LLAMA2_13B = {"name": "llama2-13b", "architecture": "LlamaForCausalLM", "num_layers": 40, "hidden_size": 5120,
              "num_heads": 40, "num_kv_heads": 40, "intermediate_size": 13824, "vocab_size": 32000,
              "num_params": 13.02e9, "context_length": 4096}
LLAMA2_70B = {"name": "llama2-70b", "architecture": "LlamaForCausalLM", "num_layers": 80, "hidden_size": 8192,
              "num_heads": 64, "num_kv_heads": 8, "intermediate_size": 28672, "vocab_size": 32000,
              "num_params": 68.98e9, "context_length": 4096}
LLAMA31_405B = {"name": "llama3.1-405b", "architecture": "LlamaForCausalLM", "num_layers": 126,
                "hidden_size": 16384, "num_heads": 128, "num_kv_heads": 8, "intermediate_size": 53248,
                "vocab_size": 128256, "num_params": 405.85e9, "context_length": 131072}
MODELS = {"llama3.1-405b": LLAMA31_405B}

#: The CUDA-graph batch sizes perf-overview v1.0's llm_options.yml captures, with enable_padding: true.
PO10_GRAPHS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 384, 512, 1024, 2048, 4096, 8192)


@dataclass(frozen=True)
class Source:
    kind: str  # docs | blog | vendor
    title: str
    url: str
    frac: float = 0.95  # kv_cache_free_gpu_mem_fraction of the published run
    graphs: tuple[int, ...] = ()  # CUDA graph sizes with padding (empty: none)
    served: bool = False  # measured through a serving front (tokenizer, hops): its TTFT includes them


SOURCES = {
    "po-1.0": Source("docs", "TensorRT-LLM perf-overview (v1.0 era, trtllm-bench, PyTorch backend, FP8 / NVFP4)",
                     f"{TRTLLM}/00f37686aa854010d68bcbd0f4ab000221541ca6/docs/source/performance/perf-overview.md",
                     graphs=PO10_GRAPHS),
    "po-0.17": Source("docs", "TensorRT-LLM perf-overview (v0.17, trtllm-bench build + throughput, TensorRT engines)",
                      f"{TRTLLM}/258c7540c03517def55d9a5aadfa9288af474e1b/docs/source/performance/perf-overview.md"),
    "serving-0.14": Source("docs", "same page, Online Serving Measurements (v0.14, Triton backend, BF16, 500 requests)",
                           f"{TRTLLM}/258c7540c03517def55d9a5aadfa9288af474e1b/docs/source/performance/"
                           "perf-overview.md#online-serving-measurements", frac=0.9, served=True),
    "h200-launch": Source("blog", "H200 achieves nearly 12,000 tokens/sec on Llama2-13B (v0.5.0, FP8, out tok/s/GPU)",
                          f"{TRTLLM}/2c39687db20941793ee357ef598b114c69453368/docs/source/blogs/H200launch.md"),
    "405b-blog": Source("blog", "Boosting Llama 3.1 405B Performance up to 1.44x with TensorRT Model Optimizer on "
                        "NVIDIA H200 GPUs (8 x H200, ModelOpt FP8 + FP8 KV, Table 1 maximum throughput)",
                        "https://developer.nvidia.com/blog/boosting-llama-3-1-405b-performance-by-up-to-44-with-"
                        "nvidia-tensorrt-model-optimizer-on-nvidia-h200-gpus/"),
    "perf-0.5": Source("docs", "TensorRT-LLM performance.md, Low Latency tables (v0.5.0, 1st token latency)",
                       f"{TRTLLM}/release/0.5.0/docs/source/performance.md", frac=0.9),
    "nemo": Source("docs", "NeMo Framework user guide, Llama-2 inference performance (TensorRT-LLM, bf16 assumed)",
                   "https://docs.nvidia.com/nemo-framework/user-guide/latest/performance/llama.html", frac=0.9),
    "nim-1.8": Source("docs", "NVIDIA NIM LLM benchmarking, Llama-3.3-70b-instruct, NIM 1.8.0, 2 x H100 80G, fp8 TP2 "
                      "(TensorRT-LLM profile assumed; AIPerf at a fixed concurrency)",
                      "https://docs.nvidia.com/nim/benchmarking/llm/1.0.0/performance", frac=0.9, served=True),
    "jan": Source("vendor", "Jan, Benchmarking NVIDIA TensorRT-LLM (2024-04-29, TensorRT-LLM 0.7.1, Windows)",
                  "https://jan.ai/post/benchmarking-nvidia-tensorrt-llm", frac=0.9),
}


@dataclass(frozen=True)
class Row:
    source: str
    model: str
    precision: str
    gpu: str
    tp: int
    isl: int
    osl: int
    batch: int | None  # None: as many as the KV cache holds (an offline maximum-throughput run)
    published: float  # output tokens/s of the whole layout


def _csv(name: str) -> list[list[str]]:
    with open(PUBLISHED / name) as fh:
        return [r for r in csv.reader(line for line in fh if not line.startswith("#"))]


def _po10() -> list[Row]:
    return [Row("po-1.0", m, p, g, int(tp), int(i), int(o), None, float(v)) for m, g, p, tp, i, o, v in
            _csv("perf_overview_1.0.csv")]


def _po017() -> list[Row]:
    out = []
    gpus = (("h200", "fp8"), ("h100", "fp8"), ("gh200", "fp8"), ("l40s", "fp8"), ("a100-80gb", "fp16"))
    for name in ("perf_overview_0.17.csv", "perf_overview_0.17_mistral.csv"):  # Llama; Mistral 7B, Mixtral 8x7B
        for m, tp, i, o, *cells in _csv(name):
            out += [Row("po-0.17", m, p, g, int(tp), int(i), int(o), None, float(v))
                    for (g, p), v in zip(gpus, cells) if v]
    return out


# H200 launch post: "Throughput (out tok/s/GPU)" at "Largest batch supported on given TP configuration by power of
# 2"; the figure is per GPU, so a layout's total is it x TP. (The previous table had two rows wrong: the 70B
# 128/2048 row is TP 2 at 1,654 per GPU, not TP 4 at 6,616, and the 2048/128 batch-64 row is TP 1 at 341.)
H200_LAUNCH = [(LLAMA2_13B, 1024, 1, 128, 128, 11819), (LLAMA2_13B, 128, 1, 128, 2048, 4750),
               (LLAMA2_13B, 64, 1, 2048, 128, 1349), (LLAMA2_70B, 512, 1, 128, 128, 3014),
               (LLAMA2_70B, 512, 2, 128, 2048, 1654), (LLAMA2_70B, 64, 1, 2048, 128, 341),
               (LLAMA2_70B, 32, 1, 2048, 128, 303)]


def throughput_rows() -> list[Row]:
    rows = _po10() + _po017()
    for model, b, tp, i, o, per_gpu in H200_LAUNCH:
        MODELS[model["name"]] = model
        rows.append(Row("h200-launch", model["name"], "fp8", "h200", tp, i, o, b, per_gpu * tp))
    rows += [Row("405b-blog", "llama3.1-405b", "fp8", "h200", 8, i, o, None, v)
             for i, o, v in ((2048, 128, 463.1), (32768, 2048, 320.1), (120000, 2048, 71.5))]
    rows += [Row("nim-1.8", "llama3-70b", "fp8", "h100", 2, int(i), int(o), int(c), float(tps))
             for i, o, c, ttft, _itl, tps in _csv("nim_1.8.csv") if float(ttft) <= 1000]
    return rows


def _spec(model: str, precision: str, kv: str, frac: float):
    if model in MODELS:
        m = MODELS[model]
        limits = {"max_input_len": min(1024, m["context_length"] // 2), "max_seq_len": m["context_length"]}
        return build_spec({"model": m, "precision": {"format": precision, "kv_cache_dtype": kv},
                           "kv_cache": {"free_gpu_mem_fraction": frac}, "limits": limits})
    return load_spec(model, options={"precision.format": precision, "precision.kv_cache_dtype": kv,
                                     "kv_cache.free_gpu_mem_fraction": frac})


def _kv(precision: str) -> str:
    return "fp8" if precision in ("fp8", "nvfp4") else "fp16"


def _setup(row: Row, concurrency: int = 1):
    src = SOURCES[row.source]
    kv = _kv(row.precision)
    spec = _spec(row.model, row.precision, kv, src.frac)
    plan = sizing.make_plan(spec, row.gpu, sizing.Workload(row.isl, row.osl, concurrency), tp=row.tp, pp=1,
                            traffic="batch")
    est = sizing.Estimator(sizing.Shape.from_model(spec.model), plan.gpu, precision=row.precision, kv_dtype=kv,
                           tp=row.tp, pp=1, graph_batches=src.graphs, serving_stack=src.served)
    return plan, est


def in_flight(row: Row) -> int:
    """Requests the published run keeps in flight: the stated batch or the KV capacity (TensorRT-LLM's default
    GUARANTEED_NO_EVICT scheduler reserves a request's whole I+O), capped at trtllm-bench's 4096."""
    plan, _ = _setup(row)
    cap = min(plan.memory.sequences, int(sizing.ASSUMPTIONS["max_batch_for_throughput"]["value"]))
    return min(row.batch, cap) if row.batch else cap


def throughput_estimate(row: Row) -> float:
    """Output tok/s of the layout with the published run's requests in flight."""
    _, est = _setup(row)
    return est.sustained(in_flight(row), sizing.Workload(row.isl, row.osl, 1))


@dataclass(frozen=True)
class Latency:
    source: str
    case: str
    metric: str  # ttft_ms | itl_ms | e2e_ms | tok_s_per_user
    published: float
    row: Row
    rate: float = 0.0  # requests/s for the serving rows (0: batch 1)


def serving_capacity() -> dict[tuple[str, ...], float]:
    """The most requests/s each served setup completes, as the source publishes it: its "INF" row (all 500
    requests at once, the engine full for the whole run)."""
    return {tuple(r[:5]): float(r[6]) for r in _csv("serving_0.14.csv") if r[5] == "INF"}


def steady_serving_rows() -> list[list[str]]:
    """The serving rows that have a steady state to compare a steady-state model with. Left out: "INF" itself;
    rates at or above the setup's own published capacity (:func:`serving_capacity`), where requests in flight
    grow for as long as the 500 arrivals last and the published means are those of a transient, not of a
    steady state (70B tp4: 16 and 32 req/s against a capacity of 16-17 req/s); and rates whose mean TTFT is
    over 1 s (requests queueing for admission). A rate below the capacity can still queue briefly; the rule
    only drops what cannot be steady."""
    cap = serving_capacity()
    return [r for r in _csv("serving_0.14.csv")
            if r[5] != "INF" and float(r[5]) < cap[tuple(r[:5])] and float(r[7]) <= 1000]


def latency_rows() -> list[Latency]:
    MODELS.update({"llama2-7b": LLAMA2_7B, "llama2-70b": LLAMA2_70B})
    out = []
    for model, prec, gpu, tp, isl, ms in (("llama2-7b", "fp8", "h100", 1, 128, 7), ("llama2-7b", "fp8", "h100", 1, 2048, 36),
                                          ("llama2-7b", "fp16", "a100-80gb", 1, 128, 16),
                                          ("llama2-7b", "fp16", "a100-80gb", 1, 2048, 133),
                                          ("llama2-7b", "fp8", "l40s", 1, 128, 14),
                                          ("llama2-7b", "fp8", "l40s", 1, 2048, 73),
                                          ("llama2-70b", "fp8", "h100", 4, 128, 26),
                                          ("llama2-70b", "fp8", "h100", 4, 2048, 109),
                                          ("llama2-70b", "fp16", "a100-80gb", 4, 128, 47),
                                          ("llama2-70b", "fp16", "a100-80gb", 4, 2048, 377)):
        out.append(Latency("perf-0.5", f"{model} {prec}, {gpu}, tp{tp}, {isl}-token prompt", "ttft_ms", ms,
                           Row("perf-0.5", model, prec, gpu, tp, isl, 1, 1, 0)))
    for gpu, tp, ms in (("a100-80gb", 1, 234.0), ("h100", 1, 153.8), ("a100-80gb", 4, 143.7), ("h100", 4, 107.4)):
        out.append(Latency("nemo", f"llama2-7b bf16, {gpu}, tp{tp}, 128 in / 20 out, end to end", "e2e_ms", ms,
                           Row("nemo", "llama2-7b", "bf16", gpu, tp, 128, 20, 1, 0)))
    out.append(Latency("jan", "mistral-7b int4_awq, rtx4090, 2048 in / 512 out, decode", "tok_s_per_user", 170.6,
                       Row("jan", "mistral-7b", "int4_awq", "rtx4090", 1, 2048, 512, 1, 0)))
    # Serving rows at a request rate the server keeps up with: mean TTFT, mean ITL (:func:`steady_serving_rows`).
    for m, gpu, tp, i, o, qps, _got, ttft, itl, _total, _out in steady_serving_rows():
        row = Row("serving-0.14", m, "bf16", gpu, int(tp), int(i), int(o), None, 0)
        case = f"{m} bf16, {gpu}, tp{tp}, {i}/{o} at {qps} req/s"
        out.append(Latency("serving-0.14", case, "ttft_ms", float(ttft), row, float(qps)))
        out.append(Latency("serving-0.14", case, "itl_ms", float(itl), row, float(qps)))
    # NIM at a fixed concurrency (closed loop), the same rule for queueing rows
    for i, o, c, ttft, itl, _tps in _csv("nim_1.8.csv"):
        if float(ttft) > 1000:
            continue
        row = Row("nim-1.8", "llama3-70b", "fp8", "h100", 2, int(i), int(o), int(c), 0)
        case = f"llama3-70b fp8, h100, tp2, {i}/{o} at concurrency {c}"
        out.append(Latency("nim-1.8", case, "ttft_ms", float(ttft), row))
        out.append(Latency("nim-1.8", case, "itl_ms", float(itl), row))
    return out


def latency_estimate(lat: Latency) -> float:
    plan, est = _setup(lat.row)
    w = sizing.Workload(lat.row.isl, lat.row.osl, 1)
    if lat.source == "nim-1.8":
        mean = closed_loop_latencies(est, w, lat.row.batch or 1)
        return mean["ttft" if lat.metric == "ttft_ms" else "itl"] * 1e3
    if lat.rate:
        mean = mean_latencies(est, w, lat.rate)
        return mean["ttft" if lat.metric == "ttft_ms" else "itl"] * 1e3
    perf = est.performance(w, 1, plan.memory.sequences)  # the source's own harness: a serving front or none
    return {"ttft_ms": perf.ttft_ms, "e2e_ms": perf.e2e_latency_s * 1e3,
            "tok_s_per_user": perf.decode_tps_per_seq}[lat.metric]


def summary(errors: list[float]) -> tuple[float, float]:
    a = sorted(abs(e) for e in errors)
    return statistics.median(a), a[min(len(a) - 1, int(round(0.9 * (len(a) - 1))))]


def throughput_errors() -> list[tuple[Row, float, float]]:
    return [(r, est, (est - r.published) / r.published) for r in throughput_rows()
            for est in [throughput_estimate(r)]]


def latency_errors() -> list[tuple[Latency, float, float]]:
    return [(lat, est, (est - lat.published) / lat.published) for lat in latency_rows()
            for est in [latency_estimate(lat)]]


def test_every_source_is_cited_and_of_three_kinds():
    used = {r.source for r in throughput_rows()} | {lat.source for lat in latency_rows()}
    assert used <= set(SOURCES) and {SOURCES[s].kind for s in used} == {"docs", "blog", "vendor"}
    assert all(SOURCES[s].url.startswith("https://") for s in used)


def test_every_published_setup_fits_where_it_ran():
    # a published figure is proof that the layout fits: the plan must agree, and hold the stated batch
    for row in throughput_rows():
        plan, _ = _setup(row)
        assert plan.memory.fits, row
        if row.batch:
            assert plan.memory.sequences >= row.batch, row


def test_memory_fit_answers():
    # 70B FP8 fits one H200 and one H100 80GB; 405B FP8 (~410 GB) needs more than 4 H200s; 70B fp16 needs 2 H100s.
    fp8 = _spec("llama3-70b", "fp8", "fp8", 0.95)
    assert sizing.make_plan(fp8, "h200", sizing.Workload(2048, 2048, 1), tp=1).memory.fits
    assert sizing.make_plan(fp8, "h100", sizing.Workload(2048, 128, 1), tp=1).memory.fits
    with pytest.raises(Exception, match="does not fit"):
        sizing.make_plan(_spec("llama3.1-405b", "fp8", "fp8", 0.95), "h200", sizing.Workload(2048, 128, 1), tp=2)
    with pytest.raises(Exception, match="does not fit"):
        sizing.make_plan(_spec("llama3-70b", "bf16", "fp16", 0.9), "h100", sizing.Workload(2048, 128, 1), tp=1)
    assert sizing.make_plan(_spec("llama3.1-405b", "fp8", "fp8", 0.95), "h200", sizing.Workload(120000, 2048, 1),
                            tp=8).memory.fits


def test_batch_answers():
    # the KV capacity at I+O tokens per request, capped at trtllm-bench's 4096: 8B FP8 at 128/128 on one H100
    # holds >4096 such requests (the cap binds); 70B FP8 at 128/2048 on one H200 holds ~200.
    assert in_flight(Row("po-1.0", "llama3-8b", "fp8", "h100", 1, 128, 128, None, 0)) == 4096
    assert 150 < in_flight(Row("po-1.0", "llama3-70b", "fp8", "h200", 1, 128, 2048, None, 0)) < 260
    # a stated batch is kept when it fits
    assert in_flight(Row("h200-launch", "llama2-13b", "fp8", "h200", 1, 128, 128, 1024, 0)) == 1024


#: The comparison before it was widened: perf-overview v1.0's seven shapes on the four layouts it had, and the
#: two NVIDIA blogs (H200 launch rows as corrected above).
ORIGINAL_SHAPES = {(128, 128), (128, 2048), (1000, 1000), (2048, 128), (2048, 2048), (5000, 500), (20000, 2000)}
ORIGINAL_LAYOUTS = {("llama3-8b", "h100", 1), ("llama3-8b", "h200", 1), ("llama3-70b", "h200", 1),
                    ("llama3-70b", "h100", 2)}  # all FP8


def test_serving_rows_without_a_steady_state_are_left_out_by_the_sources_own_capacity():
    cap = serving_capacity()
    assert len(cap) == 12 and cap[("llama3-70b", "h100", "4", "202", "214")] == 16.0
    kept = steady_serving_rows()
    assert all(float(r[5]) < cap[tuple(r[:5])] for r in kept) and len(kept) == 51
    dropped = {(r[1], r[3], r[4], r[5]) for r in _csv("serving_0.14.csv") if r[5] != "INF" and r not in kept}
    assert ("h100", "202", "214", "32") in dropped and ("h200", "202", "214", "16") not in dropped
    # where the source's offered rate doubles its capacity the model finds no steady state either
    for gpu in ("h100", "h200"):
        _, est = _setup(Row("serving-0.14", "llama3-70b", "bf16", gpu, 4, 202, 214, None, 0))
        assert mean_latencies(est, sizing.Workload(202, 214, 1), 32.0)["saturated"] == 1.0


def _original(row: Row) -> bool:
    if row.source == "po-1.0":
        return (row.model, row.gpu, row.tp) in ORIGINAL_LAYOUTS and (row.isl, row.osl) in ORIGINAL_SHAPES
    return row.source in ("h200-launch", "405b-blog")


def _moe(row: Row) -> bool:
    return row.model.startswith("mixtral")


def _sets(throughput: list[tuple[Row, float, float]]) -> dict[str, list[float]]:
    return {"original": [e for r, _, e in throughput if _original(r)],
            "dense_not_fp4": [e for r, _, e in throughput if r.precision != "nvfp4" and not _moe(r)],
            "dense": [e for r, _, e in throughput if not _moe(r)],
            "moe": [e for r, _, e in throughput if _moe(r)],
            "all": [e for *_, e in throughput]}


def test_error_summary_matches_the_document():
    sets = _sets(throughput_errors())
    # docs/perf-estimates.md states these; a change to the model must update the document.
    for name, figures in DOC.items():
        errors = [e for *_, e in latency_errors()] if name == "latency" else sets[name]
        assert (len(errors), *summary(errors)) == pytest.approx(figures, abs=0.005), name


def test_accuracy_goal_where_it_is_met_and_bounds_where_it_is_not():
    goal_median, goal_p90 = 0.10, 0.25
    sets = _sets(throughput_errors())
    for name in ("original", "dense_not_fp4", "dense"):  # every dense row, NVFP4 included
        med, p90 = summary(sets[name])
        assert med <= goal_median and p90 <= goal_p90, name  # the goal, met
    # NOT met with the MoE rows (Mixtral 8x7B, over-predicted at tp4/tp8) nor on latency: today's figures as
    # regression bounds
    med, p90 = summary(sets["moe"])
    assert med <= 0.23 and p90 <= 0.41
    med, p90 = summary(sets["all"])
    assert med <= goal_median and p90 <= 0.31
    med, p90 = summary([e for *_, e in latency_errors()])
    assert med <= 0.13 and p90 <= 0.27


#: rows, median, 90th percentile of each set, as docs/perf-estimates.md states them
DOC = {"original": (38, 0.064, 0.216), "dense_not_fp4": (295, 0.076, 0.228), "dense": (335, 0.073, 0.216),
       "moe": (126, 0.224, 0.403), "all": (461, 0.096, 0.306), "latency": (127, 0.124, 0.264)}


def _report() -> None:
    by: dict[str, list[float]] = {}
    for r, est, err in throughput_errors():
        by.setdefault(r.source, []).append(err)
        print(f"| {r.source} | {r.model} {r.precision}, {r.gpu}, tp{r.tp} | {r.isl}/{r.osl} | "
              f"{r.batch or in_flight(r)}{'' if r.batch else ' (KV)'} | {r.published:,.1f} | {est:,.1f} | "
              f"{err * 100:+.0f} % |")
    for lat, est, err in latency_errors():
        by.setdefault(f"{lat.source} {lat.metric}", []).append(err)
        print(f"| {lat.source} | {lat.case} | {lat.metric} | {lat.published:,.1f} | {est:,.1f} | {err * 100:+.0f} % |")
    for key, errs in by.items():
        med, p90 = summary(errs)
        print(f"{key}: {len(errs)} rows, median {med * 100:.1f} %, p90 {p90 * 100:.1f} %, "
              f"bias {statistics.median(errs) * 100:+.1f} %")
    everything = throughput_errors()
    for label, errs in (("throughput, original rows", [e for r, _, e in everything if _original(r)]),
                        ("throughput", [e for *_, e in everything]),
                        ("latency", [e for *_, e in latency_errors()])):
        med, p90 = summary(errs)
        print(f"{label}: {len(errs)} rows, median {med:.3f}, p90 {p90:.3f}")

if __name__ == "__main__":
    _report()
