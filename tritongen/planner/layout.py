"""Which formats a GPU runs, and the tp x pp layouts worth trying on it, in the order the planner prefers."""

from __future__ import annotations

from ..engine.gating import requirement, supported
from ..errors import GatingError
from .assumptions import BYTES_PER_PARAM, COMPUTE_RATE
from .shapes import Gpu, Shape


def _arch_support(gpu: Gpu) -> tuple[list[str], list[str]]:
    """(precisions, KV dtypes) the GPU's architecture builds: the same table `tritongen engine` gates on."""
    return supported(gpu.arch)


def runs_on(gpu: Gpu, precision: str) -> bool:
    """Whether the GPU builds ``precision`` and has the tensor cores its GEMMs run on."""
    return precision in _arch_support(gpu)[0] and gpu.peak_flops(COMPUTE_RATE[precision]) is not None


def check_precision(gpu: Gpu, precision: str, kv_dtype: str) -> None:
    """GatingError when the GPU's architecture cannot run the weight or KV-cache format."""
    precisions, kv_dtypes = _arch_support(gpu)
    if precision not in precisions:
        raise GatingError(f"{precision} cannot run on {gpu.key} ({gpu.arch}, SM {gpu.sm:.1f}): {requirement(precision)}",
                          hint=f"on {gpu.arch} use {', '.join(allowed_precisions(gpu))}")
    if gpu.peak_flops(COMPUTE_RATE[precision]) is None:
        raise GatingError(f"{precision} needs {COMPUTE_RATE[precision]} tensor cores, which {gpu.key} lacks",
                          hint=f"on {gpu.key} use {', '.join(allowed_precisions(gpu))}")
    if kv_dtype not in kv_dtypes:
        raise GatingError(f"an {kv_dtype} KV cache cannot run on {gpu.key} ({gpu.arch}, SM {gpu.sm:.1f}): "
                          f"{requirement('kv_' + kv_dtype)}", hint=f"use --kv-dtype {' or '.join(kv_dtypes)}")


def allowed_precisions(gpu: Gpu) -> list[str]:
    """The weight formats the GPU runs, in BYTES_PER_PARAM's order."""
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
