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
        self.flops = flops * assumed("compute_efficiency")
        self.bandwidth = gpu.bandwidth_gbps * GB * assumed("bandwidth_efficiency")
        nvlink = tp <= gpu.nvlink_domain and gpu.nvlink_gbps > 0
        self.link_bw = (gpu.nvlink_gbps if nvlink else gpu.pcie_gbps) * GB / 2  # one direction
        self.link_latency = assumed("allreduce_latency_nvlink_s" if nvlink else "allreduce_latency_pcie_s")

    def _allreduce(self, tokens: int) -> float:
        if self.tp == 1:
            return 0.0
        msg = tokens * self.shape.hidden * assumed("activation_bytes")
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
        return self.pp * step + assumed("step_overhead_s"), bound

    def prefill(self, tokens: int) -> float:
        """Seconds to prefill one prompt of ``tokens`` tokens on an idle engine (compute-bound)."""
        s = self.shape
        flop = 2 * s.active_params * tokens + 2 * s.layers * tokens * tokens * s.heads * s.head_dim
        comp_t = flop / (self.flops * self.tp)
        mem_t = self._weights_read(tokens) / (self.tp * self.bandwidth)
        comm = 2 * s.layers * self._allreduce(tokens) + (self.pp - 1) * self.link_latency
        return max(comp_t, mem_t) + comm + assumed("step_overhead_s")

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
        best_b = max(1, min(capacity, int(assumed("max_batch_for_throughput"))))
        return Performance(
            batch=batch, ttft_ms=ttft * 1e3, decode_step_ms=tok * 1e3, decode_bound=bound,
            decode_tps_per_seq=1 / tok, decode_tps_aggregate=batch / tok,
            sustained_output_tps=self.sustained(batch, workload),
            e2e_latency_s=ttft + max(workload.output_len - 1, 0) * tok,
            max_throughput_batch=best_b, max_throughput_output_tps=self.sustained(best_b, workload),
        )
