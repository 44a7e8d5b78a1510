"""The closed sets of values spec fields take (``precision.format: fp8``, ``route: cpu``...).

Each is a ``str`` enum whose members are named as their values, so ``Precision.fp8 == "fp8"`` and YAML, JSON and
templates see plain strings. They are made by one helper from the list of values instead of a class per set of
``name = "name"`` lines; the docstring says what the values mean.
"""

from __future__ import annotations

import enum

__all__ = ["BatchSchedulerPolicy", "BatchingStrategy", "ComputeDtype", "CpuDevice", "CpuEngineKind", "DecodingMode",
           "KvCacheDtype", "LogitsDataType", "OutputGroup", "OutputSet", "Precision", "Route", "SpeculativeMethod",
           "TorchDtype", "SPECULATIVE_DECODING_MODE"]

def _choices(name: str, values: str, doc: str) -> type[enum.Enum]:
    """A ``str`` enum ``name`` with one member per space-separated value, named as the value."""
    members = [(value, value) for value in values.split()]
    choice = enum.Enum(name, members, type=str, module=__name__, qualname=name)
    choice.__doc__ = doc
    return choice


Route = _choices("Route", "engine llmapi cpu", """How the model is executed.

engine: TensorRT engines built by trtllm-build, served by the tensorrtllm C++ backend; llmapi: TensorRT-LLM's
PyTorch LLM-API Triton model (model.yaml), no build step; cpu: reference engine in the python backend (PyTorch, or
the mock), same tensor contract.""")

Precision = _choices("Precision", "fp16 bf16 fp8 int8_wo int4_wo int4_awq int4_gptq w4a8_awq w8a8_sq nvfp4", """\
Weight (and, where it applies, activation) format of the engine.

fp8: FP8 weights and activations (Ada, Hopper, Blackwell); int8_wo: INT8 weight-only; int4_wo: INT4 weight-only
(round-to-nearest); int4_awq: INT4 AWQ (activation-aware, group-wise); int4_gptq: INT4 GPTQ (pre-quantized
checkpoint); w4a8_awq: INT4 AWQ weights with FP8 activations (Ada, Hopper); w8a8_sq: INT8 SmoothQuant weights and
activations; nvfp4: NVFP4 weights and activations (Blackwell).""")

ComputeDtype = _choices("ComputeDtype", "fp16 bf16", "Dtype of the non-quantized parts (activations, embeddings, "
                        "norms).")

KvCacheDtype = _choices("KvCacheDtype", "auto fp16 bf16 fp8 int8", "KV-cache element type; auto: the same as "
                        "precision.dtype.")

BatchSchedulerPolicy = _choices("BatchSchedulerPolicy", "max_utilization guaranteed_no_evict",
                                "How requests are admitted to the running batch.")

BatchingStrategy = _choices("BatchingStrategy", "inflight_fused_batching inflight_batching",
                            "The tensorrt_llm model's ``gpt_model_type`` parameter.")

DecodingMode = _choices(
    "DecodingMode", "auto top_k top_p top_k_top_p beam_search medusa eagle lookahead explicit_draft_tokens",
    "The tensorrt_llm model's ``decoding_mode`` parameter; ``auto`` derives it from the other settings.")

SpeculativeMethod = _choices("SpeculativeMethod", "none draft_target medusa eagle lookahead", """\
Speculative decoding method.

draft_target: a small draft model proposes tokens, the target verifies (BLS drives it).""")

LogitsDataType = _choices("LogitsDataType", "TYPE_FP32 TYPE_FP16",
                          "Named like Triton's ``DataType`` enum in model_config.proto.")

OutputGroup = _choices("OutputGroup", "log_probs logits indices perf_metrics speculative token_counts",
                       "Optional client outputs in groups; tritongen.contract.OUTPUT_GROUPS lists each group's "
                       "tensors.")

OutputSet = _choices("OutputSet", "auto all", """Optional outputs by name instead of a list of groups.

auto: log_probs, indices, token_counts (+ logits, speculative when configured); llmapi: all. all: every optional
output of the reference contract.""")

CpuEngineKind = _choices("CpuEngineKind", "torch mock", "torch: runs the Hugging Face checkpoint with PyTorch; "
                         "mock: MOCK engine, deterministic token ids at a fixed pace, no model (load tests).")

CpuDevice = _choices("CpuDevice", "auto cpu cuda", "Where PyTorch runs on the cpu route (auto: CUDA when "
                     "available).")

TorchDtype = _choices("TorchDtype", "auto float32 float16 bfloat16", "PyTorch dtype of the cpu route.")

#: The decoding mode each speculative method runs the engine in.
SPECULATIVE_DECODING_MODE = {
    SpeculativeMethod.medusa: DecodingMode.medusa,
    SpeculativeMethod.eagle: DecodingMode.eagle,
    SpeculativeMethod.lookahead: DecodingMode.lookahead,
    # draft_target runs the target with externally supplied draft tokens; sampling stays top_k_top_p.
    SpeculativeMethod.draft_target: DecodingMode.top_k_top_p,
}
