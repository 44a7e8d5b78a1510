"""Memory fit: what one GPU of a tp x pp layout holds (weights, runtime allowance) and the KV pool left over."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from .assumptions import GB, assumed
from .shapes import Gpu, Shape, Workload, weight_bytes


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
    fixed = assumed("runtime_fixed_gb") * GB + (assumed("multi_gpu_extra_gb") * GB if world > 1 else 0.0)
    qkv = (shape.heads + 2 * shape.kv_heads) * shape.head_dim / tp
    mlp = 2 * shape.intermediate * max(1, shape.experts_per_token) / tp
    act = max_num_tokens * (2 * shape.hidden + qkv + mlp) * assumed("activation_bytes")
    logits = max_batch_size * shape.vocab * 4.0
    graphs = assumed("cuda_graph_gb") * GB
    allowance = fixed + act + logits + graphs
    free = gpu.memory_bytes - w_gpu - allowance
    pool = max(free, 0.0) * kv_fraction
    kv_tok = shape.kv_bytes_per_token(kv_dtype, tp=tp, pp=pp)
    pool_tokens = int(pool // kv_tok) // tokens_per_block * tokens_per_block
    blocks = math.ceil(workload.seq_len / tokens_per_block)
    sequences = pool_tokens // (blocks * tokens_per_block)
    return MemoryFit(
        tp=tp, pp=pp, gpu_memory_gb=gpu.memory_bytes / GB, weights_total_gb=w_total / GB, weights_gb=w_gpu / GB,
        runtime_fixed_gb=fixed / GB, activations_gb=act / GB, logits_gb=logits / GB, cuda_graphs_gb=graphs / GB,
        allowance_gb=allowance / GB, free_gb=free / GB, kv_fraction=kv_fraction, kv_pool_gb=pool / GB,
        kv_bytes_per_token=kv_tok, kv_bytes_per_token_model=shape.kv_bytes_per_token(kv_dtype),
        tokens_per_block=tokens_per_block, kv_pool_tokens=pool_tokens, blocks_per_sequence=blocks,
        sequences=sequences, max_context=min(shape.context_length, pool_tokens), fits=sequences >= 1,
    )
