"""First-order sizing of a TensorRT-LLM deployment: memory fit, parallelism, speed and the matching settings.

Everything here is arithmetic on published facts (catalog/gpus.yaml, the model's shape) and a handful of
named, documented assumptions (``ASSUMPTIONS``). It is a planning tool: it answers "does it fit, on how many
GPUs, roughly how fast" before anything is downloaded or built. docs/perf-estimates.md compares its output
with published TensorRT-LLM figures and records the error.

Units: bytes, seconds and FLOP internally; "GB" means 1e9 bytes everywhere (GPU memory_gb is taken as
memory_gb x 1e9 bytes, which is at or below what nvidia-smi reports for every catalogued GPU).

The model, in short (per GPU, after tp x pp sharding):

- weights   = linear params x bytes/param(precision) + quantization scales + embeddings/lm_head in the compute
              dtype (quantization recipes leave them unquantized), divided evenly over tp x pp
- KV/token  = 2 (K and V) x layers/pp x ceil(kv_heads/tp) x head_dim x KV dtype bytes (GQA: kv_heads, not
              heads; when tp exceeds kv_heads each rank keeps a replica of one head, as TensorRT-LLM does)
- allowance = runtime fixed cost + activations for max_num_tokens + logits + CUDA graphs (+ NCCL when tp*pp>1)
- KV pool   = (memory - weights - allowance) x kv_cache_free_gpu_mem_fraction, in blocks of tokens_per_block
- decode step (batch b) = max(bytes read / (bandwidth x eff_bw), FLOP / (tensor peak x eff_compute))
              + 2 all-reduces per layer when tp > 1 + a fixed per-step runtime overhead
- prefill   = compute-bound: (2 x active params x I + attention) / (tensor peak x eff_compute x tp)
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from .errors import GatingError, UsageError

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
                             "kernels reach (typical memory-bandwidth utilization of tuned inference kernels)"},
    "compute_efficiency": {"value": 0.55, "why": "share of dense tensor-core peak that prefill GEMMs reach"},
    "step_overhead_s": {"value": 0.0003, "why": "per-iteration runtime cost outside the kernels (scheduling, "
                        "sampling, in-flight batching bookkeeping)"},
    "allreduce_latency_nvlink_s": {"value": 8e-6, "why": "latency of one small all-reduce over NVLink"},
    "allreduce_latency_pcie_s": {"value": 30e-6, "why": "latency of one small all-reduce over PCIe"},
    "max_batch_for_throughput": {"value": 2048, "why": "batch cap used for the 'max throughput' figure "
                                 "(trtllm-bench's default max_batch_size)"},
}


def _a(name: str) -> float:
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
#: Smallest SM (compute capability) each format needs. Source: TensorRT Model Optimizer support matrix
#: (FP8 and W4A8: Ada and later; NVFP4: Blackwell and later; INT8 SmoothQuant and INT4 weight-only: Ampere+).
#: Precisions tried, most to least precise, when suggesting a smaller format.
PRECISION_LADDER = ("bf16", "fp8", "int8_wo", "int4_awq", "nvfp4")


# -- inputs ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Workload:
    input_len: int
    output_len: int
    concurrency: int

    @property
    def seq_len(self) -> int:
        return self.input_len + self.output_len


@dataclass(frozen=True)
class Gpu:
    key: str
    name: str
    arch: str
    sm: float
    memory_gb: float
    bandwidth_gbps: float
    tflops: dict[str, float | None]
    nvlink_gbps: float
    nvlink_domain: int
    pcie: str
    pcie_gbps: float
    source: str

    @classmethod
    def get(cls, name: str) -> Gpu:
        from . import gpus

        key, f = gpus.get(name)
        link = f.get("interconnect") or {}
        missing = [k for k in ("memory_bandwidth_gbps", "tflops") if k not in f]
        if missing:
            from .errors import CatalogError

            raise CatalogError(f"catalog/gpus.yaml: {key} lacks {', '.join(missing)} (needed by the planner)")
        return cls(key=key, name=f["name"], arch=f["arch"], sm=float(f["sm"]), memory_gb=float(f["memory_gb"]),
                   bandwidth_gbps=float(f["memory_bandwidth_gbps"]), tflops=dict(f["tflops"]),
                   nvlink_gbps=float(link.get("nvlink_gbps") or 0), nvlink_domain=int(link.get("nvlink_domain") or 1),
                   pcie=str(link.get("pcie") or "PCIe"), pcie_gbps=float(link.get("pcie_gbps") or 32),
                   source=str(f.get("source", "")))

    @property
    def memory_bytes(self) -> float:
        return self.memory_gb * GB

    def peak_flops(self, rate: str) -> float | None:
        value = self.tflops.get(rate)
        return None if value is None else float(value) * 1e12


@dataclass(frozen=True)
class Shape:
    """The parts of a model's shape the arithmetic needs, derived from the spec's ``model`` section."""

    name: str
    params: float
    layers: int
    hidden: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    vocab: int
    context_length: int
    experts: int = 0
    experts_per_token: int = 0
    tied_embeddings: bool = False

    @classmethod
    def from_model(cls, m) -> Shape:
        from .catalog import estimate_params

        inter = m.intermediate_size or 4 * m.hidden_size
        info = {"num_layers": m.num_layers, "hidden_size": m.hidden_size, "num_heads": m.num_heads,
                "num_kv_heads": m.num_kv_heads, "vocab_size": m.vocab_size, "intermediate_size": inter,
                "head_dim": m.resolved_head_dim, "num_experts": m.num_experts}
        tied = False
        untied_est, tied_est = estimate_params(info, tied=False), estimate_params(info, tied=True)
        if untied_est and tied_est:
            tied = abs(tied_est - m.num_params) < abs(untied_est - m.num_params)
        return cls(name=m.name, params=float(m.num_params), layers=m.num_layers, hidden=m.hidden_size,
                   heads=m.num_heads, kv_heads=m.num_kv_heads, head_dim=m.resolved_head_dim, intermediate=inter,
                   vocab=m.vocab_size, context_length=m.context_length, experts=m.num_experts,
                   experts_per_token=m.experts_per_token, tied_embeddings=tied)

    @property
    def embedding_params(self) -> float:
        """Token embedding plus lm_head (one matrix when they are tied)."""
        return self.vocab * self.hidden * (1 if self.tied_embeddings else 2)

    @property
    def expert_params(self) -> float:
        if self.experts <= 1:
            return 0.0
        return float(self.layers * self.experts * 3 * self.hidden * self.intermediate)

    @property
    def linear_params(self) -> float:
        """Parameters of the decoder's linear layers (what quantization recipes quantize)."""
        return max(self.params - self.embedding_params, 0.0)

    @property
    def active_params(self) -> float:
        """Parameters one token passes through (all of them for a dense model)."""
        if self.experts <= 1:
            return self.params
        return self.params - self.expert_params * (1 - self.experts_per_token / self.experts)

    def kv_bytes_per_token(self, kv_dtype: str, *, tp: int = 1, pp: int = 1) -> int:
        """2 (K, V) x layers x KV heads x head_dim x bytes, for one GPU of a tp x pp group (whole model at 1x1)."""
        heads = math.ceil(self.kv_heads / tp)
        layers = math.ceil(self.layers / pp)
        return 2 * layers * heads * self.head_dim * KV_BYTES[kv_dtype]


def scale_bytes_per_param(precision: str, *, group_size: int = 128, hidden: int = 4096) -> float:
    """Quantization scales (and zero points) stored alongside the quantized weights, per quantized weight."""
    if precision in ("int4_awq", "w4a8_awq"):
        return 2.0 / group_size  # one fp16 scale per group
    if precision == "int4_gptq":
        return 4.0 / group_size  # fp16 scale + fp16 zero point per group
    if precision == "nvfp4":
        return 1.0 / 16  # one FP8 (E4M3) scale per 16-element block
    if precision in ("int8_wo", "int4_wo"):
        return 2.0 / hidden  # one fp16 scale per output channel
    if precision == "w8a8_sq":
        return 8.0 / hidden  # fp32 per-channel weight scales + smoothing factors
    return 0.0  # fp16/bf16; fp8 uses per-tensor scales


def weight_bytes(shape: Shape, precision: str, *, group_size: int = 128) -> float:
    """Bytes of all weights: quantized linear layers (+ scales) and the embeddings/lm_head in 16 bit."""
    bpp = BYTES_PER_PARAM[precision]
    if bpp == 2.0:
        return shape.params * 2.0
    per = bpp + scale_bytes_per_param(precision, group_size=group_size, hidden=shape.hidden)
    return shape.linear_params * per + shape.embedding_params * 2.0


# -- memory fit --------------------------------------------------------------------------------------------


@dataclass
class MemoryFit:
    tp: int
    pp: int
    gpu_memory_gb: float
    weights_total_gb: float
    weights_gb: float
    runtime_fixed_gb: float
    activations_gb: float
    logits_gb: float
    cuda_graphs_gb: float
    allowance_gb: float
    free_gb: float
    kv_fraction: float
    kv_pool_gb: float
    kv_bytes_per_token: int
    kv_bytes_per_token_model: int
    tokens_per_block: int
    kv_pool_tokens: int
    blocks_per_sequence: int
    sequences: int
    max_context: int
    fits: bool

    def to_dict(self) -> dict:
        return {k: (round(v, 3) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def memory_fit(shape: Shape, gpu: Gpu, *, precision: str, kv_dtype: str, tp: int, pp: int, workload: Workload,
               max_num_tokens: int, max_batch_size: int, kv_fraction: float = 0.9, tokens_per_block: int = 32,
               group_size: int = 128) -> MemoryFit:
    """Per-GPU memory budget for one tp x pp layout; ``fits`` when at least one I+O sequence fits the KV pool."""
    world = tp * pp
    w_total = weight_bytes(shape, precision, group_size=group_size)
    w_gpu = w_total / world
    fixed = _a("runtime_fixed_gb") * GB + (_a("multi_gpu_extra_gb") * GB if world > 1 else 0.0)
    qkv = (shape.heads + 2 * shape.kv_heads) * shape.head_dim / tp
    mlp = 2 * shape.intermediate * max(1, shape.experts_per_token) / tp
    act = max_num_tokens * (2 * shape.hidden + qkv + mlp) * _a("activation_bytes")
    logits = max_batch_size * shape.vocab * 4.0
    graphs = _a("cuda_graph_gb") * GB
    allowance = fixed + act + logits + graphs
    free = gpu.memory_bytes - w_gpu - allowance
    pool = max(free, 0.0) * kv_fraction
    kv_tok = shape.kv_bytes_per_token(kv_dtype, tp=tp, pp=pp)
    pool_tokens = int(pool // kv_tok) // tokens_per_block * tokens_per_block
    blocks = math.ceil(workload.seq_len / tokens_per_block)
    sequences = pool_tokens // (blocks * tokens_per_block)
    return MemoryFit(
        tp=tp, pp=pp, gpu_memory_gb=gpu.memory_gb, weights_total_gb=w_total / GB, weights_gb=w_gpu / GB,
        runtime_fixed_gb=fixed / GB, activations_gb=act / GB, logits_gb=logits / GB, cuda_graphs_gb=graphs / GB,
        allowance_gb=allowance / GB, free_gb=free / GB, kv_fraction=kv_fraction, kv_pool_gb=pool / GB,
        kv_bytes_per_token=kv_tok, kv_bytes_per_token_model=shape.kv_bytes_per_token(kv_dtype),
        tokens_per_block=tokens_per_block, kv_pool_tokens=pool_tokens, blocks_per_sequence=blocks,
        sequences=sequences, max_context=min(shape.context_length, pool_tokens), fits=sequences >= 1,
    )


# -- performance -------------------------------------------------------------------------------------------


@dataclass
class Performance:
    batch: int
    ttft_ms: float
    decode_step_ms: float
    decode_bound: str
    decode_tps_per_seq: float
    decode_tps_aggregate: float
    sustained_output_tps: float
    e2e_latency_s: float
    max_throughput_batch: int
    max_throughput_output_tps: float
    note: str = "first-order estimate (see assumptions)"

    def to_dict(self) -> dict:
        return {k: (round(v, 3) if isinstance(v, float) else v) for k, v in asdict(self).items()}


class Estimator:
    """Step times for one model/precision on one GPU type with a tp x pp layout."""

    def __init__(self, shape: Shape, gpu: Gpu, *, precision: str, kv_dtype: str, tp: int, pp: int,
                 group_size: int = 128):
        self.shape, self.gpu, self.tp, self.pp = shape, gpu, tp, pp
        self.precision = precision
        self.kv_tok = shape.kv_bytes_per_token(kv_dtype, tp=tp, pp=pp)
        total = weight_bytes(shape, precision, group_size=group_size)
        expert_share = shape.expert_params / shape.params if shape.params else 0.0
        self.expert_bytes = total * expert_share
        self.dense_bytes = total - self.expert_bytes
        rate = COMPUTE_RATE[precision]
        flops = gpu.peak_flops(rate)
        if flops is None:  # gated earlier; keep the arithmetic defined
            flops = gpu.peak_flops("bf16") or 1e12
        self.flops = flops * _a("compute_efficiency")
        self.bandwidth = gpu.bandwidth_gbps * GB * _a("bandwidth_efficiency")
        nvlink = tp <= gpu.nvlink_domain and gpu.nvlink_gbps > 0
        self.link_bw = (gpu.nvlink_gbps if nvlink else gpu.pcie_gbps) * GB / 2  # one direction
        self.link_latency = _a("allreduce_latency_nvlink_s" if nvlink else "allreduce_latency_pcie_s")

    def _allreduce(self, tokens: int) -> float:
        if self.tp == 1:
            return 0.0
        msg = tokens * self.shape.hidden * _a("activation_bytes")
        return self.link_latency + 2 * (self.tp - 1) / self.tp * msg / self.link_bw

    def _weights_read(self, batch: int) -> float:
        """Bytes of weights one step reads, whole model (MoE: only the experts the batch routes to)."""
        s = self.shape
        if s.experts <= 1 or not self.expert_bytes:
            return self.dense_bytes + self.expert_bytes
        touched = 1 - (1 - s.experts_per_token / s.experts) ** max(batch, 1)
        return self.dense_bytes + self.expert_bytes * touched

    def stage_step(self, batch: int, context: float) -> tuple[float, str]:
        """Seconds for one pipeline stage to advance ``batch`` sequences by one token, and the bound."""
        s, world = self.shape, self.tp * self.pp
        read = self._weights_read(batch) / world + batch * context * self.kv_tok
        mem_t = read / self.bandwidth
        layers = s.layers / self.pp
        flop = batch * 2 * s.active_params / world + batch * 4 * context * s.heads * s.head_dim * layers / self.tp
        comp_t = flop / self.flops
        comm = 2 * layers * self._allreduce(batch) + (self.link_latency if self.pp > 1 else 0.0)
        return max(mem_t, comp_t) + comm, ("memory" if mem_t >= comp_t else "compute")

    def token_latency(self, batch: int, context: float) -> tuple[float, str]:
        """Seconds between two tokens of one sequence when ``batch`` sequences decode together."""
        micro = max(1, math.ceil(batch / self.pp)) if self.pp > 1 else batch
        step, bound = self.stage_step(micro, context)
        return self.pp * step + _a("step_overhead_s"), bound

    def prefill(self, tokens: int) -> float:
        """Seconds to prefill one prompt of ``tokens`` tokens on an idle engine (compute-bound)."""
        s = self.shape
        flop = 2 * s.active_params * tokens + 2 * s.layers * tokens * tokens * s.heads * s.head_dim
        comp_t = flop / (self.flops * self.tp)
        mem_t = self._weights_read(tokens) / (self.tp * self.bandwidth)
        comm = 2 * s.layers * self._allreduce(tokens) + (self.pp - 1) * self.link_latency
        return max(comp_t, mem_t) + comm + _a("step_overhead_s")

    def sustained(self, batch: int, workload: Workload) -> float:
        """Output tokens/s with ``batch`` requests in flight, each needing a prefill and O decode steps."""
        ctx = workload.input_len + workload.output_len / 2
        tok, _ = self.token_latency(batch, ctx)
        prefill = self.prefill(workload.input_len) / self.pp  # stages overlap on different prompts
        return batch * workload.output_len / (batch * prefill + workload.output_len * tok)

    def performance(self, workload: Workload, batch: int, capacity: int) -> Performance:
        batch = max(1, min(batch, max(capacity, 1)))
        ctx = workload.input_len + workload.output_len / 2
        tok, bound = self.token_latency(batch, ctx)
        ttft = self.prefill(workload.input_len)
        best_b = max(1, min(capacity, int(_a("max_batch_for_throughput"))))
        return Performance(
            batch=batch, ttft_ms=ttft * 1e3, decode_step_ms=tok * 1e3, decode_bound=bound,
            decode_tps_per_seq=1 / tok, decode_tps_aggregate=batch / tok,
            sustained_output_tps=self.sustained(batch, workload),
            e2e_latency_s=ttft + max(workload.output_len - 1, 0) * tok,
            max_throughput_batch=best_b, max_throughput_output_tps=self.sustained(best_b, workload),
        )


# -- gating and parallelism ---------------------------------------------------------------------------------


def _arch_support(gpu: Gpu) -> tuple[list[str], list[str]]:
    """(precisions, KV dtypes) the GPU's architecture builds: the same table `tritongen engine` gates on."""
    from .engine.gating import supported

    return supported(gpu.arch)


def runs_on(gpu: Gpu, precision: str) -> bool:
    return precision in _arch_support(gpu)[0] and gpu.peak_flops(COMPUTE_RATE[precision]) is not None


def check_precision(gpu: Gpu, precision: str, kv_dtype: str) -> None:
    """GatingError when the GPU's architecture cannot run the weight or KV-cache format."""
    precisions, kv_dtypes = _arch_support(gpu)
    from .engine.gating import requirement

    if precision not in precisions:
        raise GatingError(f"{precision} cannot run on {gpu.key} ({gpu.arch}, SM {gpu.sm:.1f}): {requirement(precision)}",
                          hint=f"on {gpu.arch} use {', '.join(_allowed(gpu))}")
    if gpu.peak_flops(COMPUTE_RATE[precision]) is None:
        raise GatingError(f"{precision} needs {COMPUTE_RATE[precision]} tensor cores, which {gpu.key} lacks",
                          hint=f"on {gpu.key} use {', '.join(_allowed(gpu))}")
    if kv_dtype not in kv_dtypes:
        raise GatingError(f"an {kv_dtype} KV cache cannot run on {gpu.key} ({gpu.arch}, SM {gpu.sm:.1f}): "
                          f"{requirement('kv_' + kv_dtype)}", hint=f"use --kv-dtype {' or '.join(kv_dtypes)}")


def _allowed(gpu: Gpu) -> list[str]:
    return [p for p in BYTES_PER_PARAM if runs_on(gpu, p)]


def _pow2_upto(n: int) -> list[int]:
    out, v = [], 1
    while v <= n:
        out.append(v)
        v *= 2
    return out


def layouts(shape: Shape, gpu: Gpu, *, max_gpus: int, gpus_per_node: int) -> list[tuple[int, int, str]]:
    """Candidate (tp, pp, where) layouts, in the order the planner prefers them.

    Smallest world size first. Within a world size: tensor parallelism inside one NVLink domain; past the domain,
    tp fills the domain and pipeline stages span domains/nodes (one activation hand-off per stage instead of two
    all-reduces per layer). GPUs without NVLink offer both pp and tp over PCIe; make_plan keeps whichever the
    estimate says is faster. tp must divide the attention heads.
    """
    domain = gpu.nvlink_domain if gpu.nvlink_gbps > 0 else 1
    out: list[tuple[int, int, str]] = []
    for world in _pow2_upto(max_gpus):
        options: list[tuple[int, int, str]] = []
        if world <= domain:
            options.append((world, 1, "nvlink" if world > 1 else "single"))
        else:
            if domain > 1:
                options.append((domain, world // domain, "pp-across-domains"))
            if world <= gpus_per_node:
                options.append((1, world, "pp-pcie"))
                options.append((world, 1, "tp-pcie"))
            elif domain == 1:
                options.append((gpus_per_node, world // gpus_per_node, "pp-across-nodes"))
        for tp, pp, where in options:
            if shape.heads % tp == 0 and pp <= shape.layers and (tp, pp, where) not in out:
                out.append((tp, pp, where))
    return out


# -- the plan ----------------------------------------------------------------------------------------------


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
            "considered": self.considered,
            "assumptions": {k: v["value"] for k, v in ASSUMPTIONS.items()},
            "estimate": "first-order: bandwidth-bound decode, compute-bound prefill; see docs/perf-estimates.md",
        }


def default_max_num_tokens(input_len: int) -> int:
    """TensorRT-LLM's usual 8192, raised to the prompt length (a whole prompt must fit one step unless
    chunked context is on)."""
    return max(8192, input_len)


def make_plan(spec, gpu_name: str, workload: Workload, *, num_gpus: int | None = None,
              gpus_per_node: int | None = None, tp: int | None = None, pp: int | None = None) -> Plan:
    """Size ``spec``'s model on ``gpu_name`` for ``workload``. With ``tp``/``pp`` the layout is fixed; otherwise
    the smallest layout that holds ``workload.concurrency`` sequences is chosen (see :func:`layouts`)."""
    gpu = Gpu.get(gpu_name)
    shape = Shape.from_model(spec.model)
    precision = spec.precision.format.value
    kv_dtype = spec.precision.resolved_kv_dtype.value
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
    mnt = default_max_num_tokens(workload.input_len)
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

    overrides = {
        "precision": {"format": precision, "kv_cache_dtype": spec.precision.kv_cache_dtype.value},
        "parallelism": {"tp": ctp, "pp": cpp},
        "limits": {"max_batch_size": max_batch, "max_input_len": workload.input_len,
                   "max_seq_len": workload.seq_len, "max_num_tokens": mnt},
        "kv_cache": {"free_gpu_mem_fraction": spec.kv_cache.free_gpu_mem_fraction},
        "engine": {"gpu": gpu.key},
    }
    convert = [f"--tp_size {ctp}", f"--pp_size {cpp}"]
    build = [f"--max_batch_size {max_batch}", f"--max_input_len {workload.input_len}",
             f"--max_seq_len {workload.seq_len}", f"--max_num_tokens {mnt}"]
    runtime = {"kv_cache_free_gpu_mem_fraction": spec.kv_cache.free_gpu_mem_fraction,
               "max_tokens_in_paged_kv_cache": fit.kv_pool_tokens}
    return Plan(model=shape.name, gpu=gpu, precision=precision, kv_dtype=kv_dtype, workload=workload, tp=ctp,
                pp=cpp, memory=fit, performance=perf, explanation=explanation, warnings=warnings,
                spec_overrides=overrides, convert_flags=convert, build_flags=build, runtime_parameters=runtime,
                considered=considered)


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
        if BYTES_PER_PARAM[p] >= BYTES_PER_PARAM[precision] or p not in _allowed(gpu):
            continue
        f = memory_fit(shape, gpu, tp=biggest[0], pp=biggest[1], **{**kw, "precision": p})
        if f.fits:
            ideas.append(f"--precision {p} on {n} x {gpu.key}")
            break
    # 3. a bigger GPU, same format and GPU count
    from . import gpus as gpu_table

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
