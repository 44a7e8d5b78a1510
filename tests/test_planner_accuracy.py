"""How close `tritongen plan` comes to published TensorRT-LLM figures (docs/perf-estimates.md, "Estimate vs
published figures"). Run ``python tests/test_planner_accuracy.py`` to print the comparison table; the tests
check the memory-fit and batch answers and guard the error summary the document states (no constant is tuned
to a row: every row uses the same ASSUMPTIONS).

Sources, three kinds:
- docs: NVIDIA/TensorRT-LLM docs/source/performance/perf-overview.md (1.0-era, trtllm-bench, FP8, KV-limited batch)
- blog: NVIDIA/TensorRT-LLM docs/source/blogs/H200launch.md (v0.5.0, FP8, the batch sizes it states) and the NVIDIA
  technical blog "Boosting Llama 3.1 405B Performance up to 1.44x with TensorRT Model Optimizer on NVIDIA H200
  GPUs" (8 x H200, ModelOpt FP8 with FP8 KV cache, maximum throughput)
- vendor/user reports: Jan "Benchmarking NVIDIA TensorRT-LLM" (RTX 4090) and the NeMo Framework user guide
"""

from __future__ import annotations

import statistics

import pytest

from tritongen import planner as sizing
from tritongen.spec import build_spec, load_spec

LLAMA2_13B = {"name": "llama2-13b", "architecture": "LlamaForCausalLM", "num_layers": 40, "hidden_size": 5120,
              "num_heads": 40, "num_kv_heads": 40, "intermediate_size": 13824, "vocab_size": 32000,
              "num_params": 13.02e9, "context_length": 4096}
LLAMA2_70B = {"name": "llama2-70b", "architecture": "LlamaForCausalLM", "num_layers": 80, "hidden_size": 8192,
              "num_heads": 64, "num_kv_heads": 8, "intermediate_size": 28672, "vocab_size": 32000,
              "num_params": 68.98e9, "context_length": 4096}
LLAMA31_405B = {"name": "llama3.1-405b", "architecture": "LlamaForCausalLM", "num_layers": 126,
                "hidden_size": 16384, "num_heads": 128, "num_kv_heads": 8, "intermediate_size": 53248,
                "vocab_size": 128256, "num_params": 405.85e9, "context_length": 131072}

# (source, model, gpu, tp, isl, osl, batch or None for KV-limited, published output tok/s)
THROUGHPUT = [
    *[("docs", "llama3-8b", "h100", 1, i, o, None, v) for (i, o), v in zip(
        [(128, 128), (128, 2048), (1000, 1000), (2048, 128), (2048, 2048), (5000, 500), (20000, 2000)],
        [28312, 22714, 15220, 3450, 9305, 3459, 1351])],
    *[("docs", "llama3-8b", "h200", 1, i, o, None, v) for (i, o), v in zip(
        [(128, 128), (128, 2048), (1000, 1000), (2048, 128), (2048, 2048), (5000, 500), (20000, 2000)],
        [27911, 26221, 17744, 3538, 12194, 3902, 1804])],
    *[("docs", "llama3-70b", "h200", 1, i, o, None, v) for (i, o), v in zip(
        [(128, 128), (128, 2048), (1000, 1000), (2048, 128), (2048, 2048), (5000, 500)],
        [3803, 4336, 2909, 442, 2003, 566])],
    *[("docs", "llama3-70b", "h100", 2, i, o, None, v) for (i, o), v in zip(
        [(128, 128), (128, 2048), (1000, 1000), (2048, 128), (2048, 2048), (5000, 500)],
        [6378, 6651, 4205, 762, 3082, 898])],
    ("blog", LLAMA2_13B, "h200", 1, 128, 128, 1024, 11819),
    ("blog", LLAMA2_13B, "h200", 1, 128, 2048, 128, 4750),
    ("blog", LLAMA2_13B, "h200", 1, 2048, 128, 64, 1349),
    ("blog", LLAMA2_70B, "h200", 1, 128, 128, 512, 3014),
    ("blog", LLAMA2_70B, "h200", 4, 128, 2048, 512, 6616),
    ("blog", LLAMA2_70B, "h200", 2, 2048, 128, 64, 682),
    ("blog", LLAMA2_70B, "h200", 1, 2048, 128, 32, 303),
    ("blog", LLAMA31_405B, "h200", 8, 2048, 128, None, 463.1),
    ("blog", LLAMA31_405B, "h200", 8, 32768, 2048, None, 320.1),
    ("blog", LLAMA31_405B, "h200", 8, 120000, 2048, None, 71.5),
]


def _spec(model, precision="fp8", kv="fp8", frac=0.95, seq=None):
    if isinstance(model, dict):
        limits = {"max_input_len": min(1024, model["context_length"] // 2), "max_seq_len": model["context_length"]}
        return build_spec({"model": model, "precision": {"format": precision, "kv_cache_dtype": kv},
                           "kv_cache": {"free_gpu_mem_fraction": frac}, "limits": limits})
    return load_spec(model, options={"precision.format": precision, "precision.kv_cache_dtype": kv,
                                     "kv_cache.free_gpu_mem_fraction": frac})


def throughput_estimate(model, gpu, tp, isl, osl, batch) -> float:
    """Output tok/s: at the stated batch (capped by what the KV cache holds), or the KV-limited maximum."""
    plan = sizing.make_plan(_spec(model), gpu, sizing.Workload(isl, osl, batch or 1), tp=tp, pp=1, traffic="batch")
    if batch is None:
        return plan.performance.max_throughput_output_tps
    est = sizing.Estimator(sizing.Shape.from_model(plan_spec_model(model)), plan.gpu, precision="fp8",
                           kv_dtype="fp8", tp=tp, pp=1)
    mean = -(-int(isl + osl / 2) // plan.memory.tokens_per_block) * plan.memory.tokens_per_block
    return est.sustained(min(batch, max(1, plan.memory.kv_pool_tokens // mean)), sizing.Workload(isl, osl, batch))


def plan_spec_model(model):
    return _spec(model).model


def rows() -> list[tuple]:
    out = []
    for source, model, gpu, tp, isl, osl, batch, published in THROUGHPUT:
        est = throughput_estimate(model, gpu, tp, isl, osl, batch)
        name = model["name"] if isinstance(model, dict) else model
        out.append((source, name, gpu, tp, isl, osl, batch, published, est, (est - published) / published))
    return out


def summary(errors: list[float]) -> tuple[float, float]:
    a = sorted(abs(e) for e in errors)
    return statistics.median(a), a[min(len(a) - 1, int(round(0.9 * (len(a) - 1))))]


def test_memory_fit_answers():
    # 70B FP8 fits one H200 and one H100 80GB; 405B FP8 (~410 GB) needs more than 4 H200s; 70B fp16 needs 2 H100s.
    assert sizing.make_plan(_spec("llama3-70b"), "h200", sizing.Workload(2048, 2048, 1), tp=1).memory.fits
    assert sizing.make_plan(_spec("llama3-70b"), "h100", sizing.Workload(2048, 128, 1), tp=1).memory.fits
    with pytest.raises(Exception, match="does not fit"):
        sizing.make_plan(_spec(LLAMA31_405B), "h200", sizing.Workload(2048, 128, 1), tp=2)
    assert sizing.make_plan(_spec(LLAMA31_405B), "h200", sizing.Workload(120000, 2048, 1), tp=8).memory.fits


def test_error_summary_matches_the_document():
    errs = [r[-1] for r in rows()]
    median, p90 = summary(errs)
    # docs/perf-estimates.md states these (throughput rows); a change to the model must update the document.
    assert median == pytest.approx(DOC_MEDIAN, abs=0.01) and p90 == pytest.approx(DOC_P90, abs=0.01)


DOC_MEDIAN, DOC_P90 = 0.092, 0.399


if __name__ == "__main__":
    for source, name, gpu, tp, isl, osl, batch, pub, est, err in rows():
        print(f"| {source} | {name}, {gpu}, tp{tp} | {isl}/{osl} | {batch or 'KV-limited'} | {pub:,.1f} | "
              f"{est:,.1f} | {err * 100:+.0f} % |")
    errs = [r[-1] for r in rows()]
    median, p90 = summary(errs)
    print(f"median abs error {median:.3f}, p90 {p90:.3f} over {len(errs)}")
