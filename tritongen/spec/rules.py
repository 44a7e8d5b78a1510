"""Rules between spec fields that no single field can state, and what a prebuilt engine fixes.

``cross_check`` runs inside the Spec's validation (one line per broken rule, reported with the field errors);
``adopt_engine`` runs before it, on the merged data, so that a prebuilt engine's facts count as the spec's own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .. import engine_config
from ..errors import SpecError
from .choices import SPECULATIVE_DECODING_MODE, DecodingMode, Precision, Route, SpeculativeMethod

#: Marks a validator message as cross_check's lines, so that error formatting shows them as they are.
CROSS_MARK = "\x00cross\x00"


def cross_check(spec) -> list[str]:
    """Relations between fields that each field alone cannot express; one line per problem. ``spec`` is a Spec
    whose fields are each valid (model.py calls this from its validator, so this module does not import it)."""
    p: list[str] = []
    m, lim, par, kv = spec.model, spec.limits, spec.parallelism, spec.kv_cache
    dec, spec_dec = spec.decoding, spec.decoding.speculative

    if par.gpu_ids is not None and len(par.gpu_ids) != par.world_size:
        p.append(f"parallelism.gpu_ids: {len(par.gpu_ids)} GPU id(s) {par.gpu_ids} but tp x pp = "
                 f"{par.tp} x {par.pp} = {par.world_size}; give exactly {par.world_size} id(s)")
    if par.gpu_ids is not None and len(set(par.gpu_ids)) != len(par.gpu_ids):
        p.append(f"parallelism.gpu_ids: {par.gpu_ids} repeats a GPU; each rank needs its own GPU")
    if par.ep > 1 and m.num_experts == 0:
        p.append(f"parallelism.ep: {par.ep} but {m.name} is a dense model (model.num_experts=0); use ep=1")
    if par.tp % par.ep:
        p.append(f"parallelism.ep: {par.ep} must divide parallelism.tp={par.tp} (expert parallelism splits the "
                 "tensor-parallel group)")
    if m.num_heads % par.tp:
        p.append(f"parallelism.tp: {par.tp} does not divide model.num_heads={m.num_heads}; choose a divisor")
    if par.pp > m.num_layers:
        p.append(f"parallelism.pp: {par.pp} exceeds model.num_layers={m.num_layers}")
    if m.experts_per_token > m.num_experts:
        p.append(f"model.experts_per_token: {m.experts_per_token} exceeds model.num_experts={m.num_experts}")
    if m.num_heads % m.num_kv_heads:
        p.append(f"model.num_kv_heads: {m.num_kv_heads} must divide model.num_heads={m.num_heads}")

    if lim.max_input_len >= lim.max_seq_len:
        p.append(f"limits.max_input_len: {lim.max_input_len} must be below limits.max_seq_len={lim.max_seq_len} "
                 "(room is needed for generated tokens)")
    if lim.max_seq_len > m.context_length:
        p.append(f"limits.max_seq_len: {lim.max_seq_len} exceeds the model's context length {m.context_length}")
    if not spec.scheduling.enable_chunked_context and lim.max_num_tokens < lim.max_input_len:
        p.append(f"limits.max_num_tokens: {lim.max_num_tokens} is below limits.max_input_len={lim.max_input_len}; "
                 "a full prompt must fit one step unless scheduling.enable_chunked_context=true")
    if kv.tokens_per_block & (kv.tokens_per_block - 1):
        p.append(f"kv_cache.tokens_per_block: {kv.tokens_per_block} must be a power of two (e.g. 32, 64)")
    if kv.enable_reuse and not kv.paged:
        p.append("kv_cache.enable_reuse: needs kv_cache.paged=true")
    if spec.scheduling.enable_chunked_context and not kv.paged:
        p.append("scheduling.enable_chunked_context: needs kv_cache.paged=true")
    if spec.route is not Route.cpu and not kv.paged:
        p.append("kv_cache.paged: in-flight batching needs a paged KV cache; set kv_cache.paged=true")

    mode = dec.mode
    if mode is DecodingMode.beam_search and lim.max_beam_width == 1:
        p.append("decoding.mode: beam_search needs limits.max_beam_width > 1")
    if mode in (DecodingMode.top_k, DecodingMode.top_p, DecodingMode.top_k_top_p) and lim.max_beam_width > 1:
        p.append(f"decoding.mode: {mode.value} cannot run with limits.max_beam_width={lim.max_beam_width}; "
                 "use beam_search or auto")
    if spec_dec.method is not SpeculativeMethod.none:
        if lim.max_beam_width > 1:
            p.append(f"decoding.speculative.method: {spec_dec.method.value} does not support beam search "
                     f"(limits.max_beam_width={lim.max_beam_width}); set max_beam_width=1")
        expected = SPECULATIVE_DECODING_MODE[spec_dec.method]
        if mode is not DecodingMode.auto and mode is not expected:
            p.append(f"decoding.mode: {mode.value} does not match decoding.speculative.method="
                     f"{spec_dec.method.value} (expects {expected.value} or auto)")
        if spec_dec.method is SpeculativeMethod.draft_target and not spec_dec.draft_model:
            p.append("decoding.speculative.draft_model: draft_target needs the draft model's catalogue name")
        if spec_dec.method is SpeculativeMethod.draft_target and not spec.serving.bls:
            p.append("serving.bls: draft_target decoding is driven by tensorrt_llm_bls; set serving.bls=true")
        if spec_dec.method in (SpeculativeMethod.medusa, SpeculativeMethod.eagle) and spec.route is Route.engine \
                and spec_dec.heads_dir is None and spec.engine.dir is None:
            p.append(f"decoding.speculative.heads_dir: {spec_dec.method.value} needs the checkpoint with its "
                     "extra heads (or a prebuilt engine.dir)")
    elif mode in (DecodingMode.medusa, DecodingMode.eagle, DecodingMode.lookahead, DecodingMode.explicit_draft_tokens):
        p.append(f"decoding.mode: {mode.value} needs an engine built for it; set "
                 "decoding.speculative.method accordingly")

    if spec.serving.streaming and spec.serving.postprocessing_instances > 1:
        p.append(f"serving.postprocessing_instances: {spec.serving.postprocessing_instances} with streaming; "
                 "streamed text is decoded incrementally per request inside one postprocessing process, "
                 "so it must be 1 (it batches; raise serving.max_queue_delay_us for throughput)")
    srv = spec.serving
    if srv.stream_interval > 1 and spec.route is Route.engine:
        p.append(f"serving.stream_interval: {srv.stream_interval} on the engine route; the TensorRT-LLM backend "
                 "sends a response for every token and has no interval setting; use 1, or the llmapi route "
                 "(the LLM API's stream_interval)")
    if srv.stream_interval_ms and spec.route is not Route.cpu:
        p.append(f"serving.stream_interval_ms: {srv.stream_interval_ms:g} applies to the cpu route only (the LLM "
                 "API counts tokens); use 0")
    if srv.stream_interval_ms and srv.stream_interval == 1:
        p.append("serving.stream_interval_ms: has no effect with serving.stream_interval=1 (every token is sent "
                 "at once); raise stream_interval or use 0")
    if len({spec.serving.http_port, spec.serving.grpc_port, spec.serving.metrics_port}) < 3:
        p.append("serving.http_port/grpc_port/metrics_port: the three ports must differ")

    if spec.route is Route.cpu:
        if spec.precision.format not in (Precision.fp16, Precision.bf16):
            p.append(f"precision.format: {spec.precision.format.value} applies to the engine/llmapi routes; the "
                     "cpu route runs the checkpoint with PyTorch (set cpu.dtype instead)")
        if par.world_size > 1:
            p.append("parallelism.tp/pp: the cpu route runs on one device; use tp=1 pp=1")
        if spec_dec.method not in (SpeculativeMethod.none, SpeculativeMethod.draft_target):
            p.append(f"decoding.speculative.method: {spec_dec.method.value} needs a TensorRT-LLM engine; the cpu "
                     "route does draft_target only (the reference engine verifies draft tokens)")
    if spec.route is Route.llmapi and spec.decoding.speculative.method is SpeculativeMethod.draft_target:
        p.append("decoding.speculative.method: draft_target runs on the engine route; llmapi takes eagle, "
                 "medusa or lookahead")
    return p


def adopt_engine(merged: dict, *, explicit: set[str]) -> dict[str, Any]:
    """A prebuilt engine (``engine.dir``) fixes its limits, parallelism, precision and gathered logits: take
    them from its config.json into ``merged`` for every field the user did not set (the catalogue's values are
    only defaults). An explicit value that disagrees is left for validation to report. Returns what was taken."""
    engine_dir = (merged.get("engine") or {}).get("dir")
    if not engine_dir or str(merged.get("route", Route.engine.value)) != Route.engine.value:
        return {}
    try:
        if not Path(str(engine_dir), "config.json").is_file():
            return {}  # the repo command refuses a missing engine; `spec` and `plan` may describe one to build
    except (OSError, ValueError):
        return {}
    try:
        cfg = engine_config.load(Path(str(engine_dir)))
    except engine_config.EngineConfigError as exc:
        raise SpecError([f"engine.dir: {exc}"], hint="point --engine-dir at a trtllm-build output") from None
    adopted = {}
    for key, value in engine_config.spec_values(cfg).items():
        if key in explicit:
            continue
        node = merged
        *sections, leaf = key.split(".")
        for section in sections:
            node = node.setdefault(section, {})
        node[leaf] = value
        adopted[key] = value
    return adopted

