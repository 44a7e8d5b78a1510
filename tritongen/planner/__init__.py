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
- decode step (batch b) = GEMMs + attention, each kernel bound by its own resource:
              max(weights / (bandwidth x eff_bw), GEMM FLOP / (tensor peak x eff_compute))
              + max(KV read / (bandwidth x eff_bw), attention FLOP / (tensor peak x eff_compute))
              + the residual stream (not sharded by tp: ~8 hidden-size vectors per token per layer)
              + 2 ring all-reduces per layer when tp > 1 + a fixed per-step runtime overhead
- prefill   = compute-bound: (2 x active params x I + attention) / (tensor peak x eff_compute x tp) on an idle
              engine; in a busy one a prompt rides in the decode step's forward pass and costs only its math.
              GEMMs at the format's rate (NVFP4: x fp4_gemm_share), attention at the KV dtype's
- TTFT      = the prefill's own forward pass (it samples the first token) on an idle engine; on a busy one the
              wait for the running iteration (length-biased residual) plus one iteration carrying the prompt
              (fleet.first_token); + the serving front's measured serving_stack_ttft_s
"""

from .assumptions import ASSUMPTIONS, BYTES_PER_PARAM, COMPUTE_RATE, GB, KV_BYTES, PRECISION_LADDER
from .fleet import parse_claims, parse_slo
from .layout import check_precision, layouts, runs_on
from .memory import MemoryFit, memory_fit
from .plan import Plan, default_max_num_tokens, make_deployment, make_plan
from .shapes import Gpu, Shape, Workload, scale_bytes_per_param, weight_bytes
from .speed import Estimator, Performance

__all__ = [
    "ASSUMPTIONS", "BYTES_PER_PARAM", "COMPUTE_RATE", "GB", "KV_BYTES", "PRECISION_LADDER", "Estimator", "Gpu",
    "MemoryFit", "Performance", "Plan", "Shape", "Workload", "check_precision", "default_max_num_tokens",
    "layouts", "make_deployment", "make_plan", "memory_fit", "parse_claims", "parse_slo", "runs_on",
    "scale_bytes_per_param", "weight_bytes",
]
