"""Spec combinations the build tools reject (or tritongen does not plan), found before anything runs."""

from __future__ import annotations

from .. import catalog, versions
from ..errors import GatingError
from ..spec import KvCacheDtype, Precision, Spec, SpeculativeMethod
from .steps import FP8_FMHA_FORMATS, family_of, needs_paged_ctx, uses_quantize


def version_warnings(version: str) -> list[str]:
    recorded = str(catalog.load("trtllm_flags.yaml").get("version"))
    if versions.same_release(version, recorded):
        return []
    return [f"the flags tritongen emits are recorded for TensorRT-LLM {recorded} (trtllm_flags.yaml); this image "
            f"has {version}: check them against `trtllm-build --help` in the image"]


def check_combination(spec: Spec, role: str) -> None:
    """Combinations the tools reject (or tritongen does not plan), found before anything runs."""
    fmt = spec.precision.format
    kv = spec.precision.resolved_kv_dtype
    sd = spec.decoding.speculative
    method = sd.method
    family, _ = family_of(spec)
    par = spec.parallelism
    draft_len = spec.resolved_max_draft_len
    if spec.decoding.gather_context_logits and draft_len > 0:
        raise GatingError("decoding.gather_context_logits cannot be combined with speculative decoding "
                          f"(max_draft_len {draft_len}): trtllm-build rejects it",
                          hint="turn gather_context_logits off, or drop decoding.speculative.method")
    if par.ep > 1 and uses_quantize(spec):
        raise GatingError(f"parallelism.ep={par.ep} with precision {fmt.value}/KV {kv.value}: quantize.py has no "
                          "expert-parallel option", hint="use ep=1 (experts split by tensor parallelism), or a "
                          "convert-time precision (bf16, fp16, int8_wo, int4_wo)")
    if family in ("gemma", "phi") and par.pp > 1:
        raise GatingError(f"parallelism.pp={par.pp}: the {family} converter does not support pipeline parallelism",
                          hint="use tp only (pp=1)")
    if fmt is Precision.w8a8_sq and family not in ("llama", "qwen", "gpt", "gemma"):
        raise GatingError(f"precision.format=w8a8_sq: the {family} converter has no SmoothQuant option")
    if fmt is Precision.w8a8_sq and kv is KvCacheDtype.fp8:
        raise GatingError("precision w8a8_sq with an FP8 KV cache is not planned by tritongen "
                          "(SmoothQuant runs through convert_checkpoint.py, which cannot calibrate FP8 KV)",
                          hint="use --kv-dtype int8 or auto with SmoothQuant")
    if fmt is Precision.int4_gptq:
        if family not in ("llama", "qwen"):
            raise GatingError(f"precision.format=int4_gptq: the {family} converter has no GPTQ option")
        if kv is KvCacheDtype.fp8:
            raise GatingError("precision int4_gptq with an FP8 KV cache is not planned by tritongen (GPTQ loads a "
                              "pre-quantized checkpoint through convert_checkpoint.py, which cannot calibrate FP8 KV)",
                              hint="use --kv-dtype int8 or auto with GPTQ")
    if kv in (KvCacheDtype.int8,) and (spec.kv_cache.enable_reuse or spec.scheduling.enable_chunked_context
                                       or method in (SpeculativeMethod.draft_target, SpeculativeMethod.eagle)):
        raise GatingError("precision.kv_cache_dtype=int8 cannot be used with paged context FMHA, which KV-cache reuse, "
                          "chunked context, EAGLE and draft-target need (trtllm-build turns it off for INT8 KV)",
                          hint="use --kv-dtype fp8 (Ada+) or auto, or turn kv_cache.enable_reuse / chunked context off")
    if kv is KvCacheDtype.fp8 and fmt not in FP8_FMHA_FORMATS and needs_paged_ctx(spec, role):
        raise GatingError(f"an FP8 KV cache with precision {fmt.value} disables paged context FMHA in trtllm-build "
                          "(it needs FP8 context FMHA, i.e. fp8/w4a8_awq/nvfp4 weights), but KV-cache reuse, "
                          "chunked context or the speculative method need it",
                          hint="use --precision fp8 with --kv-dtype fp8, or keep the KV cache in fp16/bf16")
    if method is SpeculativeMethod.medusa:
        if fmt not in (Precision.fp16, Precision.bf16, Precision.int8_wo, Precision.int4_wo, Precision.fp8):
            raise GatingError(f"medusa with precision {fmt.value} is not planned (medusa's converter takes fp16/bf16 "
                              "and int8/int4 weight-only; fp8 goes through quantize.py)")
        if family != "llama":
            raise GatingError(f"medusa: TensorRT-LLM's medusa converter handles Llama-family base models, not {family}")
    if method is SpeculativeMethod.eagle:
        if fmt not in (Precision.fp16, Precision.bf16) or kv not in (KvCacheDtype.fp16, KvCacheDtype.bf16):
            raise GatingError(f"eagle supports fp16/bf16 only (examples/eagle README support matrix), not "
                              f"{fmt.value} with KV {kv.value}")
        if par.pp > 1:
            raise GatingError("eagle does not support pipeline parallelism (examples/eagle/convert_checkpoint.py "
                              "asserts pp_size == 1)", hint="use tp only")
        if spec.limits.max_batch_size > 512 or draft_len > 256:
            raise GatingError(f"eagle: trtllm-build requires max_batch_size <= 512 and max_draft_len <= 256 (got "
                              f"{spec.limits.max_batch_size} and {draft_len})")
        if family != "llama":
            raise GatingError(f"eagle: TensorRT-LLM's EAGLE converter handles Llama-family base models, not {family}")
    if method in (SpeculativeMethod.medusa, SpeculativeMethod.eagle) and sd.heads_dir is None:
        raise GatingError(f"decoding.speculative.heads_dir: {method.value} needs the checkpoint with its heads")

