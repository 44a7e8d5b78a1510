"""The plan: the smallest layout that holds the workload, its estimate, the settings to apply, and what would fit
when nothing does."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from .. import gpus as gpu_table
from ..errors import GatingError, UsageError
from .assumptions import ASSUMPTIONS, BYTES_PER_PARAM, COMPUTE_RATE, PRECISION_LADDER
from .layout import allowed_precisions, check_precision, layouts, runs_on
from .memory import MemoryFit, memory_fit
from .shapes import Gpu, Shape, Workload
from .speed import Estimator, Performance


@dataclass
class Plan:
    model: str
    gpu: Gpu
    precision: str
    kv_dtype: str
    workload: Workload
    tp: int
    pp: int
    memory: MemoryFit
    performance: Performance
    explanation: list[str]
    warnings: list[str]
    spec_overrides: dict
    convert_flags: list[str]
    build_flags: list[str]
    runtime_parameters: dict
    considered: list[dict] = field(default_factory=list)
    #: The settings that matter, each {"setting", "value", "why"} (and "buys" where it is a number).
    recommendations: list[dict] = field(default_factory=list)
    #: Replicas of this tp x pp engine (--replicas), the layouts x replicas compared, objectives and claims.
    replicas: int = 1
    fleet: list[dict] = field(default_factory=list)
    slo: dict = field(default_factory=dict)
    slo_met: bool | None = None
    claims: list[dict] = field(default_factory=list)

    @property
    def num_gpus(self) -> int:
        return self.tp * self.pp

    def to_dict(self) -> dict:
        g = self.gpu
        return {
            "model": self.model,
            "gpu": {"key": g.key, "name": g.name, "arch": g.arch, "sm": g.sm, "memory_gb": g.memory_gb,
                    "memory_bandwidth_gbps": g.bandwidth_gbps, "tflops": g.tflops, "nvlink_gbps": g.nvlink_gbps,
                    "nvlink_domain": g.nvlink_domain, "pcie": g.pcie, "source": g.source},
            "precision": self.precision, "kv_cache_dtype": self.kv_dtype,
            "workload": asdict(self.workload),
            "parallelism": {"tp": self.tp, "pp": self.pp, "num_gpus": self.num_gpus},
            "fits": self.memory.fits, "fits_concurrency": self.memory.sequences >= self.workload.concurrency,
            "memory_per_gpu": self.memory.to_dict(),
            "performance": self.performance.to_dict(),
            "explanation": self.explanation, "warnings": self.warnings,
            "settings": {"spec_overrides": self.spec_overrides, "convert_checkpoint_flags": self.convert_flags,
                         "trtllm_build_flags": self.build_flags, "runtime_parameters": self.runtime_parameters},
            "recommendations": self.recommendations,
            "replicas": self.replicas, "total_gpus": self.num_gpus * self.replicas,
            "fleet": self.fleet, "slo": {k: v for k, v in self.slo.items()}, "slo_met": self.slo_met,
            "claims": self.claims,
            "considered": self.considered,
            "assumptions": {k: v["value"] for k, v in ASSUMPTIONS.items()},
            "estimate": "first-order: bandwidth-bound decode, compute-bound prefill; see docs/perf-estimates.md",
        }


def default_max_num_tokens(input_len: int) -> int:
    """TensorRT-LLM's usual 8192, raised to the prompt length (a whole prompt must fit one step unless
    chunked context is on)."""
    return max(8192, input_len)


#: Weight formats whose checkpoints carry FP8 scales, so an FP8 KV cache costs no extra calibration and FP8
#: context FMHA can read it (TensorRT-LLM builds paged context FMHA with an FP8 KV cache only for these).
FP8_KV_WEIGHTS = ("fp8", "nvfp4", "w4a8_awq")
TRAFFIC = ("auto", "chat", "long-prompt", "batch")
#: Prompts at least this long get chunked context under --traffic auto (one long prefill would otherwise stall
#: every decoding sequence for its whole length, and max_num_tokens would have to hold it in one step).
LONG_PROMPT_TOKENS = 4096


def recommended_kv_dtype(gpu: Gpu, precision: str, kv_dtype: str) -> str | None:
    """'fp8' when the GPU builds an FP8 KV cache and the weights are FP8/FP4-quantized, else None."""
    from .layout import _arch_support

    if precision in FP8_KV_WEIGHTS and kv_dtype != "fp8" and "fp8" in _arch_support(gpu)[1]:
        return "fp8"
    return None


def make_plan(spec, gpu_name: str, workload: Workload, *, num_gpus: int | None = None,
              gpus_per_node: int | None = None, tp: int | None = None, pp: int | None = None,
              traffic: str = "auto") -> Plan:
    """Size ``spec``'s model on ``gpu_name`` for ``workload``. With ``tp``/``pp`` the layout is fixed; otherwise
    the smallest layout that holds ``workload.concurrency`` sequences is chosen (see :func:`layouts`).

    ``traffic`` (chat, long-prompt, batch, auto) decides KV-cache reuse and chunked context. An FP8 KV cache is
    used when the KV dtype was left to ``auto`` and :func:`recommended_kv_dtype` says so, and suggested when the
    dtype was given."""
    if traffic not in TRAFFIC:
        raise UsageError(f"traffic must be one of {', '.join(TRAFFIC)}, got {traffic!r}")
    gpu = Gpu.get(gpu_name)
    shape = Shape.from_model(spec.model)
    precision = spec.precision.format.value
    kv_dtype = spec.precision.resolved_kv_dtype.value
    kv_auto = spec.precision.kv_cache_dtype.value == "auto"
    kv_better = recommended_kv_dtype(gpu, precision, kv_dtype)
    auto_kv_from = None
    if kv_better and kv_auto:
        auto_kv_from, kv_dtype = kv_dtype, kv_better
    chunked = spec.scheduling.enable_chunked_context or traffic == "long-prompt" or (
        traffic in ("auto", "chat") and workload.input_len >= LONG_PROMPT_TOKENS)
    reuse = spec.kv_cache.enable_reuse or traffic == "chat"
    for name, value in (("input length", workload.input_len), ("output length", workload.output_len),
                        ("concurrency", workload.concurrency)):
        if value < 1:
            raise UsageError(f"{name} must be at least 1, got {value}")
    if workload.seq_len > shape.context_length:
        raise UsageError(f"input + output = {workload.seq_len} tokens exceeds {shape.name}'s context length "
                         f"{shape.context_length}")
    check_precision(gpu, precision, kv_dtype)
    per_node = gpus_per_node or (gpu.nvlink_domain if gpu.nvlink_domain > 1 else 8)
    max_batch = min(max(workload.concurrency, 1), 4096)
    mnt = 8192 if chunked else default_max_num_tokens(workload.input_len)
    kw = dict(precision=precision, kv_dtype=kv_dtype, workload=workload, max_num_tokens=mnt,
              max_batch_size=max_batch, kv_fraction=spec.kv_cache.free_gpu_mem_fraction,
              tokens_per_block=spec.kv_cache.tokens_per_block, group_size=spec.precision.awq_block_size)

    fixed = tp is not None or pp is not None
    if fixed:
        tp, pp = tp or 1, pp or 1
        if num_gpus is not None and tp * pp > num_gpus:
            raise GatingError(f"tp x pp = {tp} x {pp} = {tp * pp} GPUs but --num-gpus is {num_gpus}")
        if shape.heads % tp:
            raise GatingError(f"tp={tp} does not divide {shape.name}'s {shape.heads} attention heads")
        candidates = [(tp, pp, "given")]
    else:
        candidates = layouts(shape, gpu, max_gpus=num_gpus or 64, gpus_per_node=per_node)

    considered: list[dict] = []
    chosen = first_fit = None
    group = kw["group_size"]
    worlds: dict[int, list[tuple[int, int, str]]] = {}
    for cand in candidates:
        worlds.setdefault(cand[0] * cand[1], []).append(cand)
    for world_candidates in worlds.values():
        holding = []
        for ctp, cpp, where in world_candidates:
            fit = memory_fit(shape, gpu, tp=ctp, pp=cpp, **kw)
            entry = {"tp": ctp, "pp": cpp, "where": where, "weights_gb": round(fit.weights_gb, 2),
                     "kv_pool_gb": round(fit.kv_pool_gb, 2), "sequences": fit.sequences, "fits": fit.fits}
            considered.append(entry)
            if fit.fits and first_fit is None:
                first_fit = (ctp, cpp, where, fit)
            if fit.fits and fit.sequences >= workload.concurrency:
                holding.append(((ctp, cpp, where, fit), entry))
        if len(holding) > 1:
            # Same GPU count, different layouts (no NVLink: pp or tp over PCIe): keep the faster estimate.
            for (ctp, cpp, _where, _fit), entry in holding:
                est = Estimator(shape, gpu, precision=precision, kv_dtype=kv_dtype, tp=ctp, pp=cpp, group_size=group)
                entry["sustained_output_tps"] = round(est.sustained(workload.concurrency, workload), 1)
            holding.sort(key=lambda h: -h[1]["sustained_output_tps"])
        if holding:
            chosen = holding[0][0]
            break
    if first_fit is None:
        raise _does_not_fit(shape, gpu, workload, precision, candidates, per_node, kw)

    warnings: list[str] = []
    if chosen is None:
        # Fits, but nothing within the allowed GPUs holds the requested concurrency: take the most KV.
        best = max((c for c in considered if c["fits"]), key=lambda c: c["sequences"])
        chosen_tp, chosen_pp = best["tp"], best["pp"]
        where = next(w for t, p, w in candidates if (t, p) == (chosen_tp, chosen_pp))
        fit = memory_fit(shape, gpu, tp=chosen_tp, pp=chosen_pp, **kw)
        warnings.append(f"the KV cache holds only {fit.sequences} concurrent {workload.input_len}+"
                        f"{workload.output_len}-token sequences, not {workload.concurrency}; requests beyond that "
                        f"queue (more GPUs, a smaller --kv-dtype or precision would raise it)")
        chosen = (chosen_tp, chosen_pp, where, fit)
    ctp, cpp, where, fit = chosen

    # Size the engine's batch from memory: with a paged KV cache a sequence holds blocks for the tokens it has
    # so far, so on average input + output/2; more in flight than that many only queue inside the engine.
    mean_blocks = math.ceil(workload.mean_seq_len / fit.tokens_per_block)
    at_mean = max(1, fit.kv_pool_tokens // (mean_blocks * fit.tokens_per_block))
    if at_mean < max_batch:
        max_batch = at_mean
        kw["max_batch_size"] = max_batch
        fit = memory_fit(shape, gpu, tp=ctp, pp=cpp, **kw)
    mnt = max(mnt, max_batch)  # every sequence of a full batch adds one token to a decode step
    kw["max_num_tokens"] = mnt
    fit = memory_fit(shape, gpu, tp=ctp, pp=cpp, **kw)
    recommendations = _recommendations(shape, gpu, kw, ctp, cpp, fit, precision, kv_dtype, kv_better, auto_kv_from,
                                       chunked, reuse, traffic, workload)

    est = Estimator(shape, gpu, precision=precision, kv_dtype=kv_dtype, tp=ctp, pp=cpp,
                    group_size=spec.precision.awq_block_size)
    perf = est.performance(workload, min(workload.concurrency, fit.sequences), fit.sequences)
    explanation = _explain(shape, gpu, workload, ctp, cpp, where, fit, considered, fixed)
    if cpp > 1 and ctp * cpp > per_node:
        warnings.append(f"tp={ctp} x pp={cpp} spans {math.ceil(ctp * cpp / per_node)} nodes: a multi-node "
                        "(MPI) launch that tritongen's local/docker serve does not start for you")
    if ctp > 1 and where in ("tp-pcie",):
        warnings.append(f"tensor parallelism over {gpu.pcie} (no NVLink) adds two all-reduces per layer per step")
    if ctp > shape.kv_heads:
        warnings.append(f"tp={ctp} exceeds the model's {shape.kv_heads} KV heads: KV heads are replicated")

    kv_setting = kv_dtype if auto_kv_from else spec.precision.kv_cache_dtype.value
    overrides = {
        "precision": {"format": precision, "kv_cache_dtype": kv_setting},
        "parallelism": {"tp": ctp, "pp": cpp},
        "limits": {"max_batch_size": max_batch, "max_input_len": workload.input_len,
                   "max_seq_len": workload.seq_len, "max_num_tokens": mnt},
        "kv_cache": {"free_gpu_mem_fraction": spec.kv_cache.free_gpu_mem_fraction, "enable_reuse": reuse},
        "scheduling": {"enable_chunked_context": chunked},
        "engine": {"gpu": gpu.key},
    }
    convert = [f"--tp_size {ctp}", f"--pp_size {cpp}"]
    if kv_dtype == "fp8":
        convert.append("--kv_cache_dtype fp8")
    build = [f"--max_batch_size {max_batch}", f"--max_input_len {workload.input_len}",
             f"--max_seq_len {workload.seq_len}", f"--max_num_tokens {mnt}"]
    if reuse or chunked:
        build.append("--use_paged_context_fmha enable")
    # No max_tokens_in_paged_kv_cache: the pool estimate is first-order, and a cap from it could hold the cache
    # below what the GPU really offers; the free-memory fraction sizes the pool at load time instead.
    runtime = {"kv_cache_free_gpu_mem_fraction": spec.kv_cache.free_gpu_mem_fraction,
               "enable_kv_cache_reuse": reuse, "enable_chunked_context": chunked}
    return Plan(model=shape.name, gpu=gpu, precision=precision, kv_dtype=kv_dtype, workload=workload, tp=ctp,
                pp=cpp, memory=fit, performance=perf, explanation=explanation, warnings=warnings,
                spec_overrides=overrides, convert_flags=convert, build_flags=build, runtime_parameters=runtime,
                considered=considered, recommendations=recommendations)


def _recommendations(shape, gpu, kw, tp, pp, fit, precision, kv_dtype, kv_better, auto_kv_from, chunked, reuse,
                     traffic, workload) -> list[dict]:
    """What each recommended setting is and what it buys on this layout."""
    out: list[dict] = []
    if auto_kv_from or kv_better:
        base = auto_kv_from or kv_dtype
        other = memory_fit(shape, gpu, tp=tp, pp=pp, **{**kw, "kv_dtype": base if auto_kv_from else "fp8"})
        fp8_fit, base_fit = (fit, other) if auto_kv_from else (other, fit)
        out.append({"setting": "precision.kv_cache_dtype", "value": "fp8", "applied": bool(auto_kv_from),
                    "why": f"{gpu.key} runs an FP8 KV cache and {precision} weights carry FP8 scales",
                    "buys": f"{fp8_fit.sequences} concurrent {workload.seq_len}-token sequences instead of "
                            f"{base_fit.sequences} with {base} ({fp8_fit.kv_pool_tokens:,} vs "
                            f"{base_fit.kv_pool_tokens:,} KV tokens per GPU)",
                    "sequences": fp8_fit.sequences, "sequences_without": base_fit.sequences})
    if reuse:
        out.append({"setting": "kv_cache.enable_reuse", "value": True, "applied": True,
                    "why": "chat requests repeat the system prompt and the conversation so far: reused KV blocks "
                           "skip their prefill (needs paged context FMHA, set in the build)"})
    elif traffic == "auto":
        out.append({"setting": "kv_cache.enable_reuse", "value": True, "applied": False,
                    "why": "turn it on (or pass --traffic chat) when requests share a prefix, as chat does"})
    if chunked:
        out.append({"setting": "scheduling.enable_chunked_context", "value": True, "applied": True,
                    "why": f"{workload.input_len}-token prompts are prefilled in chunks of max_num_tokens, so "
                           "decoding sequences keep stepping while a long prompt is read, and max_num_tokens "
                           "need not hold a whole prompt (needs paged context FMHA, set in the build)"})
    return out


def _explain(shape, gpu, workload, tp, pp, where, fit, considered, fixed) -> list[str]:
    lines = []
    if fixed:
        lines.append(f"tp={tp} pp={pp} as given")
    else:
        smaller = [c for c in considered if c["tp"] * c["pp"] < tp * pp]
        if smaller:
            c = smaller[-1]
            why = ("the weights do not fit" if not c["fits"] else
                   f"its KV cache holds {c['sequences']} sequences, fewer than the {workload.concurrency} asked for")
            lines.append(f"{c['tp'] * c['pp']} GPU(s) (tp={c['tp']} pp={c['pp']}) is not enough: {why}")
        lines.append(f"tp={tp} pp={pp} is the smallest layout whose KV cache holds "
                     f"{min(fit.sequences, workload.concurrency)} of {workload.concurrency} requested "
                     f"{workload.input_len}+{workload.output_len}-token sequences")
    rivals = [c for c in considered if c["tp"] * c["pp"] == tp * pp and "sustained_output_tps" in c
              and (c["tp"], c["pp"]) != (tp, pp)]
    mine = next((c for c in considered if (c["tp"], c["pp"]) == (tp, pp)), {})
    for r in rivals:
        lines.append(f"tp={tp} pp={pp} beats tp={r['tp']} pp={r['pp']} on the same {tp * pp} GPUs: est. "
                     f"{mine.get('sustained_output_tps', 0):,.0f} vs {r['sustained_output_tps']:,.0f} output tok/s "
                     "(pp runs its stages one after another for every token and re-reads each stage's weights per "
                     "micro-batch; tp splits every layer but pays two all-reduces per layer)")
    if where == "nvlink":
        lines.append(f"tensor parallelism stays inside one NVLink domain ({gpu.nvlink_domain} x {gpu.key}, "
                     f"{gpu.nvlink_gbps:g} GB/s per GPU)")
    elif where == "pp-across-domains":
        lines.append(f"tp fills one NVLink domain ({gpu.nvlink_domain} GPUs); pipeline stages span domains/nodes, "
                     "which only pass activations between stages")
    elif where in ("pp-pcie", "pp-across-nodes"):
        lines.append(f"{gpu.key} has no NVLink: pipeline parallelism over {gpu.pcie} moves one activation per "
                     "stage instead of two all-reduces per layer")
    elif where == "tp-pcie":
        lines.append(f"{gpu.key} has no NVLink: tensor parallelism runs its all-reduces over {gpu.pcie}")
    return lines


def _does_not_fit(shape, gpu, workload, precision, candidates, per_node, kw) -> GatingError:
    """A one-line 'does not fit' with what would: more GPUs, a smaller format, or a bigger GPU."""
    biggest = max(candidates, key=lambda c: c[0] * c[1]) if candidates else (1, 1, "single")
    n = biggest[0] * biggest[1]
    fit = memory_fit(shape, gpu, tp=biggest[0], pp=biggest[1], **kw)
    total = fit.weights_total_gb
    msg = (f"{shape.name} in {precision} does not fit on {n} x {gpu.key} ({gpu.memory_gb:g} GB): weights are "
           f"{total:.1f} GB ({fit.weights_gb:.1f} GB per GPU at tp={biggest[0]} pp={biggest[1]}) plus "
           f"{fit.allowance_gb:.1f} GB runtime allowance and the KV cache for one {workload.seq_len}-token sequence")
    ideas: list[str] = []
    # 1. more of the same GPU
    for tp, pp, _where in layouts(shape, gpu, max_gpus=64, gpus_per_node=per_node):
        if tp * pp <= n:
            continue
        f = memory_fit(shape, gpu, tp=tp, pp=pp, **kw)
        if f.fits:
            ideas.append(f"{tp * pp} x {gpu.key} (tp={tp} pp={pp})")
            break
    # 2. a smaller format on the same GPUs
    for p in PRECISION_LADDER:
        if BYTES_PER_PARAM[p] >= BYTES_PER_PARAM[precision] or p not in allowed_precisions(gpu):
            continue
        f = memory_fit(shape, gpu, tp=biggest[0], pp=biggest[1], **{**kw, "precision": p})
        if f.fits:
            ideas.append(f"--precision {p} on {n} x {gpu.key}")
            break
    # 3. a bigger GPU, same format and GPU count
    for key in sorted(gpu_table.table(), key=lambda k: gpu_table.table()[k]["memory_gb"]):
        other = Gpu.get(key)
        if other.memory_gb <= gpu.memory_gb or not runs_on(other, precision):
            continue
        if other.peak_flops(COMPUTE_RATE[precision]) is None:
            continue
        f = memory_fit(shape, other, tp=biggest[0], pp=biggest[1], **kw)
        if f.fits:
            ideas.append(f"{n} x {other.key} ({other.memory_gb:g} GB)")
            break
    hint = ("would fit: " + "; or ".join(ideas)) if ideas else "no catalogued layout of up to 64 GPUs fits"
    return GatingError(msg, hint=hint)


def make_deployment(spec, gpu_name: str, workload: Workload, *, num_gpus: int | None = None,
                    gpus_per_node: int | None = None, tp: int | None = None, pp: int | None = None,
                    traffic: str = "auto", replicas: str | int | None = None, slo: dict | None = None,
                    claims: dict | None = None) -> Plan:
    """:func:`make_plan`, then (``replicas`` "auto" or N, or ``slo``) the best layout x replicas on
    ``num_gpus`` by output tokens/s per GPU within the objectives, and ``claims`` checked against the ceilings.
    ``workload.concurrency`` is the whole deployment's requests in flight."""
    from .fleet import ceilings, check_claims, compare_fleet

    base = make_plan(spec, gpu_name, workload, num_gpus=num_gpus, gpus_per_node=gpus_per_node, tp=tp, pp=pp,
                     traffic=traffic)
    plan = base
    if replicas is not None or slo:
        fixed = None if replicas in (None, "auto") else int(replicas)
        if fixed is not None and fixed < 1:
            raise UsageError(f"--replicas must be auto or at least 1, got {replicas}")
        total = num_gpus or (fixed * base.num_gpus if fixed else base.num_gpus)
        per_node = gpus_per_node or (base.gpu.nvlink_domain if base.gpu.nvlink_domain > 1 else 8)
        shape = Shape.from_model(spec.model)
        kw = dict(precision=base.precision, kv_dtype=base.kv_dtype, workload=workload,
                  max_num_tokens=base.spec_overrides["limits"]["max_num_tokens"], max_batch_size=4096,
                  kv_fraction=spec.kv_cache.free_gpu_mem_fraction, tokens_per_block=spec.kv_cache.tokens_per_block,
                  group_size=spec.precision.awq_block_size)
        options = compare_fleet(shape, base.gpu, workload, total_gpus=total, replicas=fixed, kw=kw,
                                gpus_per_node=per_node, slo=slo)
        if tp is not None or pp is not None:
            options = [o for o in options if (o.tp, o.pp) == (tp or 1, pp or 1)]
        if not options:
            raise GatingError(f"no layout x replicas of {shape.name} fits {total} x {base.gpu.key}"
                              + (f" with {fixed} replicas" if fixed else ""))
        best = options[0]
        per_replica = Workload(workload.input_len, workload.output_len, max(best.in_flight_per_replica, 1))
        plan = make_plan(spec, gpu_name, per_replica, num_gpus=best.tp * best.pp, gpus_per_node=gpus_per_node,
                         tp=best.tp, pp=best.pp, traffic=traffic)
        plan.workload = workload
        plan.explanation = [line for line in plan.explanation if not line.endswith("as given")]
        plan.replicas = best.replicas
        plan.fleet = [o.to_dict() for o in options[:12]]
        plan.slo = dict(slo or {})
        plan.slo_met = best.meets_slo
        plan.explanation.append(
            f"{best.replicas} replica(s) of tp={best.tp} pp={best.pp} on {best.gpus} of {total} GPUs: est. "
            f"{best.output_tps:,.0f} output tok/s ({best.output_tps_per_gpu:,.0f} per GPU) with "
            f"{best.in_flight_per_replica} requests in flight per replica, the best per GPU of "
            f"{len(options)} layouts x replicas compared" + (" within the objectives" if slo and best.meets_slo else ""))
        plan.explanation.insert(0, plan.explanation.pop())
        if slo and not best.meets_slo:
            wanted = ", ".join(f"{k}<={v * 1e3:g}ms" for k, v in slo.items())
            reached = ", ".join(f"{k} {best.latency_s[k] * 1e3:,.1f}ms" for k in slo)
            plan.warnings.append(f"nothing meets the objectives {wanted}: even one request in flight on the "
                                 f"fastest layout takes {reached}")
    if claims:
        m = plan.memory
        mean_tokens = math.ceil(workload.mean_seq_len / m.tokens_per_block) * m.tokens_per_block
        capacity = max(1, m.kv_pool_tokens // mean_tokens)
        shape = Shape.from_model(spec.model)
        ceiling = ceilings(shape, plan.gpu, workload, precision=plan.precision, kv_dtype=plan.kv_dtype, tp=plan.tp,
                           pp=plan.pp, replicas=plan.replicas, capacity=capacity,
                           group_size=spec.precision.awq_block_size)
        p = plan.performance
        estimate = {"tok_s": p.max_throughput_output_tps * plan.replicas,
                    "tok_s_per_gpu": p.max_throughput_output_tps / plan.num_gpus,
                    "tok_s_per_user": p.decode_tps_per_seq, "ttft_ms": p.ttft_ms, "itl_ms": p.decode_step_ms}
        plan.claims = check_claims(claims, ceiling, estimate)
        for c in plan.claims:
            if c["verdict"] == "impossible":
                plan.warnings.append(f"claim cannot be true: {c['why']}")
    return plan
