"""The constants the planner's estimate rests on: named assumptions (each with why) and per-format byte sizes."""

from __future__ import annotations

from typing import Any

GB = 1e9

#: Every constant the estimate rests on, with why. Printed by ``tritongen plan --json`` and documented.
ASSUMPTIONS: dict[str, dict[str, Any]] = {
    "runtime_fixed_gb": {"value": 1.0, "why": "CUDA context, cuBLAS/cuBLASLt workspaces, TensorRT runtime and "
                         "decoder buffers per GPU"},
    "multi_gpu_extra_gb": {"value": 0.5, "why": "NCCL buffers and the custom all-reduce workspace when tp*pp > 1"},
    "cuda_graph_gb": {"value": 0.25, "why": "CUDA graph memory pool for the generation step"},
    "activation_bytes": {"value": 2, "why": "activations are fp16/bf16; the peak live set of one layer is kept "
                         "(TensorRT reuses activation memory across layers)"},
    "bandwidth_efficiency": {"value": 0.75, "why": "share of peak DRAM bandwidth that decode GEMV/attention "
                             "kernels reach (typical memory-bandwidth utilization of tuned inference kernels); "
                             "the same share of NVLink / PCIe one-direction bandwidth for all-reduces"},
    "compute_efficiency": {"value": 0.55, "why": "share of dense tensor-core peak that prefill GEMMs reach"},
    "fp4_gemm_share": {"value": 0.68, "why": "NVFP4 GEMMs reach a smaller share of their (doubled) datasheet "
                       "peak than FP8 GEMMs of theirs: on a B200 at M=16384, Llama-3.1-8B shapes, activation "
                       "quantization included, NVFP4 3039 TFLOP/s = 33.8 % of 9 PFLOPS (vLLM PR 20646) vs FP8 "
                       "2226 TFLOP/s = 49.5 % of 4.5 PFLOPS (vLLM PR 19566): 0.338 / 0.495 = 0.68 of the FP8 "
                       "share; FP4 GEMM efficiency = compute_efficiency x this"},
    "step_overhead_s": {"value": 0.0003, "why": "per-iteration runtime cost outside the kernels (scheduling, "
                        "sampling, in-flight batching bookkeeping)"},
    "serving_stack_ttft_s": {"value": 0.0033, "why": "what the serving front adds to a request's first token "
                             "outside the engine (tokenizing the prompt, the ensemble's hops to and from the engine, "
                             "detokenizing the first token): measured by benchmarks/pipeline.py, ensemble vs the "
                             "engine model alone at concurrency 1, TTFT p50 5.5 vs 2.2 ms (MOCK engine); "
                             "re-measured 4.7 vs 1.6 ms with the lean stand-in engine (README, 'What the serving "
                             "pipeline costs')"},
    "allreduce_latency_nvlink_s": {"value": 8e-6, "why": "latency of one small all-reduce over NVLink"},
    "allreduce_latency_pcie_s": {"value": 30e-6, "why": "latency of one small all-reduce over PCIe"},
    "max_batch_for_throughput": {"value": 4096, "why": "batch cap used for the 'max throughput' figure "
                                 "(trtllm-bench sizes max_batch_size from the KV cache at I+O tokens per request, "
                                 "capped at 4096 requests: tensorrt_llm/bench/build/tuning.py finetune_setting)"},
}


def assumed(name: str) -> float:
    """The value of one of the ``ASSUMPTIONS``."""
    return ASSUMPTIONS[name]["value"]


#: Bytes per weight of the quantized (linear-layer) parameters, before scales.
BYTES_PER_PARAM = {
    "fp16": 2.0, "bf16": 2.0, "fp8": 1.0, "int8_wo": 1.0, "w8a8_sq": 1.0,
    "int4_wo": 0.5, "int4_awq": 0.5, "int4_gptq": 0.5, "w4a8_awq": 0.5, "nvfp4": 0.5,
}
#: Which tensor-core rate the GEMMs of each format run at (weight-only formats dequantize to 16 bit).
COMPUTE_RATE = {
    "fp16": "fp16", "bf16": "bf16", "fp8": "fp8", "int8_wo": "bf16", "w8a8_sq": "int8",
    "int4_wo": "bf16", "int4_awq": "bf16", "int4_gptq": "bf16", "w4a8_awq": "fp8", "nvfp4": "fp4",
}
KV_BYTES = {"fp16": 2, "bf16": 2, "fp8": 1, "int8": 1}
#: Precisions tried, most to least precise, when suggesting a smaller format.
PRECISION_LADDER = ("bf16", "fp8", "int8_wo", "int4_awq", "nvfp4")
