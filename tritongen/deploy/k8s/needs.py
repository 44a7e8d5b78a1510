"""What one serving pod needs, from the spec: GPUs, nodes, shared memory, host memory, volume size, load time.

The rules are tritongen's own first-order estimates (the planner's weight sizes from ``tritongen.planner.shapes``), each
explained where it is computed. ``tritongen k8s`` sizes the manifests with them and ``tritongen k8s --check``
compares a (possibly edited) manifest against them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ...errors import GatingError
from ...spec import Route

GiB = 2**30
#: The /dev/shm `tritongen serve --docker` gives a one-GPU server (serve/docker.py DEFAULT_SHM): the python
#: backend's stubs exchange every tensor through it.
SHM_BASE = 2 * GiB
#: Added per GPU in the pod beyond the first: NCCL's intra-node transport and the LLM API's workers use
#: /dev/shm for their buffers (NCCL falls back to slow paths or fails when it is too small).
SHM_PER_EXTRA_GPU = 1 * GiB
#: Host memory besides the weights: tritonserver, the python backend stubs, tokenizers, MPI.
HOST_BASE = 8 * GiB
#: Sustained read rate assumed for the engine/checkpoint volume (a network volume; local NVMe is faster).
VOLUME_READ_BPS = 0.5e9
#: Process start, CUDA context and backend initialisation before weights are read.
LOAD_FIXED_S = 60
#: The llmapi route loads a Hugging Face checkpoint into PyTorch (no prebuilt engine): slower per byte.
LLMAPI_LOAD_FACTOR = 2.0
#: The startup probe allows this multiple of the load-time estimate, and at least MIN_STARTUP_S.
STARTUP_MARGIN = 2.0
MIN_STARTUP_S = 300
PROBE_PERIOD_S = 10


@dataclass(frozen=True)
class Needs:
    route: str
    world: int  #: GPUs the model runs on (tp x pp; 0 for a cpu-route pod without CUDA)
    nodes: int  #: pods per replica (1, or the LeaderWorkerSet size)
    gpus_per_pod: int
    weights_bytes: float  #: all weights in the serving precision
    checkpoint_bytes: float  #: the Hugging Face checkpoint (16-bit)
    shm_bytes: int
    memory_bytes: int  #: host memory request of one serving pod
    cpu: int  #: CPU request of one serving pod
    load_estimate_s: int  #: seconds from container start to ready (first-order)
    startup_budget_s: int  #: what the startup probe allows
    volume_gi: int  #: size of the engine/checkpoint volume

    @property
    def multi_node(self) -> bool:
        return self.nodes > 1


def _round_gi(n: float) -> int:
    return max(1, math.ceil(n / GiB))


def weights(spec) -> tuple[float, float]:
    """(serving weights, 16-bit checkpoint) in bytes, from the planner's shape arithmetic."""
    from ...planner.shapes import Shape, weight_bytes

    shape = Shape.from_model(spec.model)
    fmt = spec.precision.format.value
    if spec.route is Route.cpu:
        return shape.params * 4.0, shape.params * 4.0  # torch runs float32 on CPU
    return weight_bytes(shape, fmt, group_size=spec.precision.awq_block_size), shape.params * 2.0


def shm_needed(spec, gpus_in_pod: int) -> int:
    """/dev/shm one pod needs: the python backend's base, more per GPU, and returned logits when asked for
    (limits.max_batch_size x model.vocab_size x 4 bytes per returned position pass through the stubs)."""
    need = SHM_BASE + SHM_PER_EXTRA_GPU * max(0, gpus_in_pod - 1)
    dec = spec.decoding
    positions = (spec.limits.max_input_len if dec.gather_context_logits else 0) + (
        1 if dec.gather_generation_logits else 0)
    if positions and spec.route is Route.engine:
        need += spec.limits.max_batch_size * spec.model.vocab_size * 4 * positions
    return int(math.ceil(need / GiB) * GiB)


def load_estimate(spec, weights_per_pod: float) -> int:
    """Seconds until the server is ready: fixed start-up plus reading this pod's weights from the volume."""
    factor = LLMAPI_LOAD_FACTOR if spec.route is Route.llmapi else 1.0
    return int(math.ceil(LOAD_FIXED_S + factor * weights_per_pod / VOLUME_READ_BPS))


def startup_budget(estimate_s: int) -> int:
    budget = max(MIN_STARTUP_S, STARTUP_MARGIN * estimate_s)
    return int(math.ceil(budget / 60) * 60)


def compute(spec, gpus_per_node: int) -> Needs:
    route = spec.route.value
    par = spec.parallelism
    if spec.route is Route.cpu:
        world = 1 if spec.cpu.device.value == "cuda" else 0
    else:
        world = par.tp * par.pp
    if world > gpus_per_node:
        if spec.route is not Route.engine:
            raise GatingError(f"parallelism: tp x pp = {world} is more than --gpus-per-node {gpus_per_node}, and "
                              f"tritongen k8s runs the {route} route on one node only",
                              hint="lower tp x pp, or use the engine route for a LeaderWorkerSet across nodes")
        if world % gpus_per_node:
            raise GatingError(f"parallelism: tp x pp = {world} does not fill whole nodes of {gpus_per_node} GPUs "
                              "(each node of a LeaderWorkerSet runs the same number of ranks)",
                              hint=f"make tp x pp a multiple of {gpus_per_node}, or change --gpus-per-node")
        nodes = world // gpus_per_node
        per_pod = gpus_per_node
    else:
        nodes, per_pod = 1, world
    w, ckpt = weights(spec)
    w_pod = w / nodes
    shm = shm_needed(spec, per_pod)
    if spec.route is Route.cpu:
        memory = shm + 2 * GiB + _round_gi(w) * GiB
        cpu = 2
    else:
        memory = shm + HOST_BASE + _round_gi(w_pod) * GiB
        cpu = 2 + 2 * per_pod
    estimate = load_estimate(spec, w_pod)
    if spec.route is Route.engine:
        volume = ckpt + 2 * w  # the checkpoint, the converted checkpoint and the engine
    else:
        volume = ckpt
    volume_gi = max(5, math.ceil(volume * 1.2 / GiB) + (10 if spec.route is not Route.cpu else 0))
    return Needs(route=route, world=world, nodes=nodes, gpus_per_pod=per_pod, weights_bytes=w,
                 checkpoint_bytes=ckpt, shm_bytes=shm, memory_bytes=int(memory), cpu=cpu, load_estimate_s=estimate,
                 startup_budget_s=startup_budget(estimate), volume_gi=volume_gi)


def quantity_bytes(text: str | int) -> int:
    """Bytes of a Kubernetes quantity such as 4Gi, 512Mi, 2G, 1e9."""
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
             "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18, "m": 1e-3}
    text = str(text).strip()
    for unit in sorted(units, key=len, reverse=True):
        if text.endswith(unit):
            return int(float(text[: -len(unit)]) * units[unit])
    return int(float(text))


def gi(n: int) -> str:
    return f"{math.ceil(n / GiB)}Gi"
