"""The closed sets of values spec fields take (``precision.format: fp8``, ``route: cpu``...).

Each is a ``str`` enum whose members are named as their values, so ``Precision.fp8 == "fp8"`` and YAML, JSON and
templates see plain strings. They are made by one helper from the list of values instead of a class per set of
``name = "name"`` lines; the docstring says what the values mean.
"""

from __future__ import annotations

import enum
from typing import Any, ClassVar

__all__ = ["BatchSchedulerPolicy", "BatchingStrategy", "ComputeDtype", "CpuDevice", "CpuEngineKind", "DecodingMode", "GuidedDecoding",
           "KvCacheDtype", "LogitsDataType", "OutputGroup", "OutputSet", "Precision", "Route", "SpeculativeMethod",
           "TorchDtype", "SPECULATIVE_DECODING_MODE"]

def _choices(name: str, values: str, doc: str) -> type[enum.Enum]:
    """A ``str`` enum ``name`` with one member per space-separated value, named as the value."""
    members = [(value, value) for value in values.split()]
    choice = enum.Enum(name, members, type=str, module=__name__, qualname=name)
    choice.__doc__ = doc
    return choice


class Route(str):
    """How the model is executed: the name of a route.

    engine: TensorRT engines built by trtllm-build, served by the tensorrtllm C++ backend; llmapi: TensorRT-LLM's
    PyTorch LLM-API Triton model (model.yaml), no build step; cpu: reference engine in the python backend (PyTorch,
    or the mock), same tensor contract.

    Not an Enum, because the set is open: ``tritongen.routes.register`` adds a name at run time and the spec then
    takes it like a built-in one. Each name has exactly one instance, so ``spec.route is Route.cpu`` holds, and
    ``.value`` reads as an enum member's does.
    """

    _names: ClassVar[dict[str, Route]] = {}
    #: The names tritongen ships, in the order its messages list them.
    BUILTIN: ClassVar[tuple[str, ...]] = ("engine", "llmapi", "cpu")
    engine: ClassVar[Route]
    llmapi: ClassVar[Route]
    cpu: ClassVar[Route]

    def __new__(cls, value: object) -> Route:
        if isinstance(value, Route):
            return value
        if isinstance(value, str) and value in cls._names:
            return cls._names[value]
        raise ValueError(f"{value!r} is not a route (known: {', '.join(cls._names)})")

    @classmethod
    def add(cls, name: str) -> Route:
        """The route called ``name``, made known to the spec from now on."""
        if name not in cls._names:
            cls._names[name] = str.__new__(cls, name)
        return cls._names[name]

    @classmethod
    def forget(cls, name: str) -> None:
        """Take back a name :meth:`add` made known (the built-in names stay)."""
        if name not in cls.BUILTIN:
            cls._names.pop(name, None)

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """Every route name the spec takes now."""
        return tuple(cls._names)

    @property
    def value(self) -> str:
        return str(self)

    def __repr__(self) -> str:
        return f"<Route.{self}>"

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: Any) -> Any:
        from pydantic_core import core_schema

        return core_schema.no_info_plain_validator_function(
            cls._validate, json_schema_input_schema=core_schema.str_schema(),
            serialization=core_schema.plain_serializer_function_ser_schema(str, when_used="json"))

    @classmethod
    def _validate(cls, value: object) -> Route:
        from pydantic_core import PydanticCustomError

        if isinstance(value, Route) or (isinstance(value, str) and value in cls._names):
            return cls(value)
        # The same error an Enum field gives, so that one message format serves every closed set.
        names = [repr(n) for n in cls._names]
        expected = " or ".join([", ".join(names[:-1]), names[-1]]) if len(names) > 1 else names[0]
        raise PydanticCustomError("enum", "Input should be {expected}", {"expected": expected})


for _name in Route.BUILTIN:
    setattr(Route, _name, Route.add(_name))

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

GuidedDecoding = _choices("GuidedDecoding", "none xgrammar", "Structured-output backend: none (guides refused) or "
                          "xgrammar (README \"Structured output\").")

#: The decoding mode each speculative method runs the engine in.
SPECULATIVE_DECODING_MODE = {
    SpeculativeMethod.medusa: DecodingMode.medusa,
    SpeculativeMethod.eagle: DecodingMode.eagle,
    SpeculativeMethod.lookahead: DecodingMode.lookahead,
    # draft_target runs the target with externally supplied draft tokens; sampling stays top_k_top_p.
    SpeculativeMethod.draft_target: DecodingMode.top_k_top_p,
}
