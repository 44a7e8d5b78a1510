"""Speed: decode step, prefill and sustained throughput of one layout, bandwidth- or compute-bound."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from .assumptions import COMPUTE_RATE, GB, assumed
from .shapes import Gpu, Shape, Workload, weight_bytes


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
                 group_size: int = 128, graph_batches: tuple[int, ...] = (), serving_stack: bool = True):
        self.shape, self.gpu, self.tp, self.pp = shape, gpu, tp, pp
        # a plan is served behind Triton's ensemble, whose tokenizer and hops every first token pays; an offline
        # harness calling the engine directly (trtllm-bench, gptSessionBenchmark) does not
        self.serving_stack_s = assumed("serving_stack_ttft_s") if serving_stack else 0.0
        # CUDA graphs captured with padding (cuda_graph_config.enable_padding): a decode step of b sequences runs
        # the graph of the next captured size, so its GEMMs compute the padded rows too. Empty: no padding (the
        # LLM API default), every batch runs at its own size.
        self.graph_batches = tuple(sorted(graph_batches))
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
        self.flops = flops * assumed("compute_efficiency")
        if rate == "fp4":  # FP4 GEMMs (block scales, activation quantization) fall further short of their peak
            self.flops *= assumed("fp4_gemm_share")
        # attention's two matmuls (QK^T, PV) run on the KV cache's dtype, not the weights' format: an NVFP4 or
        # W4A8 model with an FP8 KV cache does its attention math at the FP8 rate, with a 16-bit cache at 16 bit
        attn_rate = "fp8" if kv_dtype == "fp8" and gpu.peak_flops("fp8") else "bf16"
        self.attn_flops = (gpu.peak_flops(attn_rate) or flops) * assumed("compute_efficiency")
        self.bandwidth = gpu.bandwidth_gbps * GB * assumed("bandwidth_efficiency")
        nvlink = tp <= gpu.nvlink_domain and gpu.nvlink_gbps > 0
        # one direction, at the same share of the datasheet rate as DRAM: no transfer, NCCL's or a custom
        # all-reduce's, runs at the link's peak either
        self.link_bw = (gpu.nvlink_gbps if nvlink else gpu.pcie_gbps) * GB / 2 * assumed("bandwidth_efficiency")
        self.link_latency = assumed("allreduce_latency_nvlink_s" if nvlink else "allreduce_latency_pcie_s")

    def _allreduce(self, tokens: int) -> float:
        if self.tp == 1:
            return 0.0
        # ring all-reduce (alpha-beta model): reduce-scatter + all-gather are 2 (tp-1) steps, each paying a hop's
        # latency (half the small-message latency measured at tp=2) and moving msg/tp per step
        msg = tokens * self.shape.hidden * assumed("activation_bytes")
        return self.link_latency * (self.tp - 1) + 2 * (self.tp - 1) / self.tp * msg / self.link_bw

    def _padded(self, batch: int) -> int:
        """The batch a decode step's GEMMs really run at (the next captured CUDA graph size when padding)."""
        return next((g for g in self.graph_batches if g >= batch), batch)

    def _weights_read(self, batch: int) -> float:
        """Bytes of weights one step reads, whole model (MoE: only the experts the batch routes to)."""
        s = self.shape
        if s.experts <= 1 or not self.expert_bytes:
            return self.dense_bytes + self.expert_bytes
        touched = 1 - (1 - s.experts_per_token / s.experts) ** max(batch, 1)
        return self.dense_bytes + self.expert_bytes * touched

    def stage_step(self, batch: int, context: float) -> tuple[float, str]:
        """Seconds for one pipeline stage to advance ``batch`` sequences by one token, and the bound.

        Each layer runs its GEMMs and its attention as separate kernels, one after the other, and each kernel is
        bound by its own resource: at large batches the GEMMs are compute-bound while attention streams every
        sequence's KV from DRAM. Their times add; one roofline over the whole step would let the KV read hide
        behind GEMM math that cannot run at the same time.
        """
        s, world = self.shape, self.tp * self.pp
        layers = s.layers / self.pp
        gemm_mem = self._weights_read(batch) / world / self.bandwidth
        gemm_comp = self._padded(batch) * 2 * s.active_params / world / self.flops
        attn_mem = batch * context * self.kv_tok / self.bandwidth
        attn_comp = batch * 4 * context * s.heads * s.head_dim * layers / self.tp / self.attn_flops
        # the residual stream is not sharded by tp: every rank reads and writes each token's full hidden vector
        # around the two norms, the two residual adds and the two all-reduces of a layer (~8 vectors, 16-bit)
        elementwise = batch * layers * 8 * s.hidden * assumed("activation_bytes") / self.bandwidth
        comm = 2 * layers * self._allreduce(batch) + (self.link_latency if self.pp > 1 else 0.0)
        step = max(gemm_mem, gemm_comp) + max(attn_mem, attn_comp) + elementwise + comm
        return step, ("memory" if gemm_mem + attn_mem >= gemm_comp + attn_comp else "compute")

    def token_latency(self, batch: int, context: float) -> tuple[float, str]:
        """Seconds between two tokens of one sequence when ``batch`` sequences decode together."""
        micro = max(1, math.ceil(batch / self.pp)) if self.pp > 1 else batch
        step, bound = self.stage_step(micro, context)
        return self.pp * step + assumed("step_overhead_s"), bound

    def prefill(self, tokens: int) -> float:
        """Seconds to prefill one prompt of ``tokens`` tokens on an idle engine (compute-bound)."""
        comp_t = self._prefill_math(tokens)
        mem_t = self._weights_read(tokens) / (self.tp * self.bandwidth)
        comm = 2 * self.shape.layers * self._allreduce(tokens) + (self.pp - 1) * self.link_latency
        return max(comp_t, mem_t) + comm + assumed("step_overhead_s")

    def inflight_prefill(self, tokens: int) -> float:
        """Seconds one prompt adds to a busy engine: in-flight batching runs its tokens in the same forward pass as
        the decoding sequences, so the weights are read once for both and the prompt costs only its math (and
        the all-reduce bytes, not another per-step latency or overhead)."""
        s = self.shape
        comm = 2 * s.layers * (self._allreduce(tokens) - self._allreduce(0)) if self.tp > 1 else 0.0
        return self._prefill_math(tokens) + comm

    def _prefill_math(self, tokens: int) -> float:
        """Seconds of tensor-core math for one prompt: its GEMMs at the format's rate, its causal attention at
        the KV dtype's (:attr:`attn_flops`)."""
        s = self.shape
        gemm = 2 * s.active_params * tokens / self.flops
        attn = 2 * s.layers * tokens * tokens * s.heads * s.head_dim / self.attn_flops
        return (gemm + attn) / self.tp

    def loaded_prefill(self, batch: float, tokens: int) -> float:
        """What one prompt costs an engine with ``batch`` requests in flight: the idle-engine prefill when it is
        alone, else its share of the fused forward pass (:meth:`inflight_prefill`)."""
        return self.prefill(tokens) if batch <= 1 else self.inflight_prefill(tokens)

    def sustained(self, batch: int, workload: Workload) -> float:
        """Output tokens/s with ``batch`` requests in flight, each needing a prefill and O decode steps."""
        ctx = workload.input_len + workload.output_len / 2
        tok, _ = self.token_latency(batch, ctx)
        prefill = self.loaded_prefill(batch, workload.input_len) / self.pp  # stages overlap on different prompts
        return batch * workload.output_len / (batch * prefill + workload.output_len * tok)

    def performance(self, workload: Workload, batch: int, capacity: int) -> Performance:
        batch = max(1, min(batch, max(capacity, 1)))
        ctx = workload.input_len + workload.output_len / 2
        tok, bound = self.token_latency(batch, ctx)
        ttft = self.prefill(workload.input_len) + self.serving_stack_s
        best_b = max(1, min(capacity, int(assumed("max_batch_for_throughput"))))
        return Performance(
            batch=batch, ttft_ms=ttft * 1e3, decode_step_ms=tok * 1e3, decode_bound=bound,
            decode_tps_per_seq=1 / tok, decode_tps_aggregate=batch / tok,
            sustained_output_tps=self.sustained(batch, workload),
            e2e_latency_s=ttft + max(workload.output_len - 1, 0) * tok,
            max_throughput_batch=best_b, max_throughput_output_tps=self.sustained(best_b, workload),
        )
