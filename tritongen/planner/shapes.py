"""The planner's inputs: the workload, the GPU's datasheet facts and the model's shape, and what its weights weigh."""

from __future__ import annotations

import math
from dataclasses import dataclass

from .. import gpus
from ..catalog import checkpoint_extras, estimate_params
from ..errors import CatalogError
from .assumptions import BYTES_PER_PARAM, GB, KV_BYTES


@dataclass(frozen=True)
class Workload:
    input_len: int
    output_len: int
    concurrency: int

    @property
    def seq_len(self) -> int:
        return self.input_len + self.output_len

    @property
    def mean_seq_len(self) -> float:
        """Tokens a sequence holds on average over its life (paged KV grows as it generates)."""
        return self.input_len + self.output_len / 2


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
        key, f = gpus.get(name)
        link = f.get("interconnect") or {}
        missing = [k for k in ("memory_bandwidth_gbps", "tflops") if k not in f]
        if missing:
            raise CatalogError(f"catalog/gpus.yaml: {key} lacks {', '.join(missing)} (needed by the planner)")
        return cls(key=key, name=f["name"], arch=f["arch"], sm=float(f["sm"]), memory_gb=float(f["memory_gb"]),
                   bandwidth_gbps=float(f["memory_bandwidth_gbps"]), tflops=dict(f["tflops"]),
                   nvlink_gbps=float(link.get("nvlink_gbps") or 0), nvlink_domain=int(link.get("nvlink_domain") or 1),
                   pcie=str(link.get("pcie") or "PCIe"), pcie_gbps=float(link.get("pcie_gbps") or 32),
                   source=str(f.get("source", "")),
                   memory_mib=float(f["memory_mib"]) if f.get("memory_mib") else None)

    #: What nvidia-smi reports as memory.total, MiB (None: not recorded; the datasheet GB is used instead).
    memory_mib: float | None = None

    @property
    def memory_bytes(self) -> float:
        """The memory the GPU really offers: nvidia-smi's total where recorded (an H200 reports 143771 MiB =
        150.8e9 bytes, not 141e9), else the datasheet figure (at or below the real one for every GPU)."""
        return self.memory_mib * 2**20 if self.memory_mib else self.memory_gb * GB

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
    #: MLA (DeepSeek): the KV cache holds one latent of kv_lora_rank + qk_rope_head_dim per layer, not heads.
    kv_lora_rank: int = 0
    qk_rope_head_dim: int = 0
    #: MoE models whose first layers are dense (DeepSeek's first_k_dense_replace).
    dense_layers: int = 0

    @classmethod
    def from_model(cls, m) -> Shape:
        inter = m.intermediate_size or 4 * m.hidden_size
        info = {"num_layers": m.num_layers, "hidden_size": m.hidden_size, "num_heads": m.num_heads,
                "num_kv_heads": m.num_kv_heads, "vocab_size": m.vocab_size, "intermediate_size": inter,
                "head_dim": m.resolved_head_dim, "num_experts": m.num_experts}
        tied = False
        untied_est, tied_est = estimate_params(info, tied=False), estimate_params(info, tied=True)
        if untied_est and tied_est:
            tied = abs(tied_est - m.num_params) < abs(untied_est - m.num_params)
        # What config.json says and the spec cannot hold (checkpoint given): its word beats the inference above.
        extra = checkpoint_extras(m.checkpoint_dir) if m.checkpoint_dir is not None else {}
        tied = extra.get("tied_embeddings", tied)
        return cls(name=m.name, params=float(m.num_params), layers=m.num_layers, hidden=m.hidden_size,
                   heads=m.num_heads, kv_heads=m.num_kv_heads, head_dim=m.resolved_head_dim, intermediate=inter,
                   vocab=m.vocab_size, context_length=m.context_length, experts=m.num_experts,
                   experts_per_token=m.experts_per_token, tied_embeddings=tied,
                   kv_lora_rank=int(extra.get("kv_lora_rank") or 0),
                   qk_rope_head_dim=int(extra.get("qk_rope_head_dim") or 0),
                   dense_layers=int(extra.get("dense_layers") or 0))

    @property
    def embedding_params(self) -> float:
        """Token embedding plus lm_head (one matrix when they are tied)."""
        return self.vocab * self.hidden * (1 if self.tied_embeddings else 2)

    @property
    def expert_params(self) -> float:
        if self.experts <= 1:
            return 0.0
        moe_layers = max(self.layers - self.dense_layers, 0)
        return min(float(moe_layers * self.experts * 3 * self.hidden * self.intermediate), self.params)

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
        """2 (K, V) x layers x KV heads x head_dim x bytes, for one GPU of a tp x pp group (whole model at 1x1).
        MLA: one compressed latent (kv_lora_rank + qk_rope_head_dim) per layer, kept whole on every tp rank."""
        layers = math.ceil(self.layers / pp)
        if self.kv_lora_rank:
            return layers * (self.kv_lora_rank + self.qk_rope_head_dim) * KV_BYTES[kv_dtype]
        heads = math.ceil(self.kv_heads / tp)
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
