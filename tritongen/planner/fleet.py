"""Replicas, latency objectives and claimed figures: how to spend N GPUs, and what cannot be true.

- :func:`compare_fleet` tries every tp x pp layout that holds the model, times the replicas that fit in the
  GPUs given, and ranks them by output tokens/s per GPU for the workload's requests in flight (spread evenly
  over the replicas; a replica never runs more than its KV cache holds at the mean sequence length).
- With objectives (:func:`parse_slo`), each layout x replicas also searches its requests in flight: the most
  that keeps every objective (up to what its KV cache holds; --concurrency is not a bound then), so a
  latency-bound server is modelled with few requests in flight. Nothing meeting them is said, with the
  closest figures reached.
- :func:`check_claims` sets a claimed figure against physical ceilings at 100% of datasheet peaks: decode
  cannot beat reading the weights (and the KV) at full memory bandwidth, and no token costs less than
  2 x active parameters FLOP at full tensor rate.

Latency under load, first-order (documented in docs/perf-estimates.md): with b sequences in flight, each of O
decode steps also carries, on average, b/O prompts' prefill, so the mean inter-token time is
``(b x prefill + O x step(b)) / O``; a request's first token waits for its own prefill plus the prefills that
arrive in the same window (Poisson, rate b/O per step) at the percentile asked. The first token comes out of the
prompt's own forward pass: on an idle engine after the idle-engine prefill, on a busy one after waiting for the
running iteration and one iteration that carries the prompt beside the decoding sequences (:func:`first_token`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ..errors import UsageError
from .layout import layouts
from .memory import memory_fit
from .shapes import Gpu, Shape, Workload
from .speed import Estimator

#: Objective names --slo / --expect accept, and their unit.
SLO_METRICS = {"ttft_p50": "ms", "ttft_p99": "ms", "itl_p50": "ms", "itl_p99": "ms", "e2e_p50": "s", "e2e_p99": "s"}
CLAIM_METRICS = {"tok_s": "output tokens/s of the whole deployment", "tok_s_per_gpu": "output tokens/s per GPU",
                 "tok_s_per_user": "output tokens/s of one request", "ttft_ms": "time to first token, ms",
                 "itl_ms": "time between tokens, ms"}
_UNIT_SCALE = {"ms": 1e-3, "s": 1.0, "us": 1e-6}


def _parse_pairs(text: str, allowed: dict, what: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = part.partition("=")
        key = key.strip()
        if not sep or key not in allowed:
            raise UsageError(f"{what} {part!r}: expected NAME=VALUE with NAME one of {', '.join(allowed)}")
        out[key] = value.strip()
    if not out:
        raise UsageError(f"{what}: give at least one NAME=VALUE")
    return out


def _seconds(value: str, default_unit: str, label: str) -> float:
    v = value.lower()
    for unit in ("ms", "us", "s"):
        if v.endswith(unit):
            v, default_unit = v[: -len(unit)], unit
            break
    try:
        number = float(v)
    except ValueError:
        raise UsageError(f"{label}={value}: not a number (e.g. {label}=500ms)") from None
    if number <= 0:
        raise UsageError(f"{label}={value}: must be above 0")
    return number * _UNIT_SCALE[default_unit]


def parse_slo(text: str) -> dict[str, float]:
    """``ttft_p99=500ms,itl_p50=30ms,e2e_p99=20s`` -> seconds per objective (ttft/itl default to ms, e2e to s)."""
    return {k: _seconds(v, SLO_METRICS[k], k) for k, v in _parse_pairs(text, SLO_METRICS, "--slo").items()}


def parse_claims(text: str) -> dict[str, float]:
    """``tok_s=30000,ttft_ms=80`` -> the claimed figures (tokens/s, or ms for the latency claims)."""
    out = {}
    for k, v in _parse_pairs(text, CLAIM_METRICS, "--expect").items():
        try:
            out[k] = float(v.lower().removesuffix("ms").replace("_", ""))
        except ValueError:
            raise UsageError(f"--expect {k}={v}: not a number") from None
        if out[k] <= 0:
            raise UsageError(f"--expect {k}={v}: must be above 0")
    return out


def _poisson_quantile(mean: float, q: float) -> int:
    """Smallest n with P(N <= n) >= q for N ~ Poisson(mean)."""
    if mean <= 0:
        return 0
    term = total = math.exp(-mean)
    n = 0
    while total < q and n < 10_000:
        n += 1
        term *= mean / n
        total += term
    return n


def first_token(est: Estimator, workload: Workload, step: float, others: float, arrivals_per_s: float = 0.0,
                wait_share: float = 0.5) -> float:
    """Engine seconds to a request's first token when ``others`` requests are in flight beside it.

    TensorRT-LLM's context phase samples the first token from the prompt's own forward pass, so no decode step
    follows the prefill. On an idle engine that is the idle-engine prefill (weights read, math, overhead). On a
    busy one the prompt waits for the running iteration to end, then rides in the next, which lasts a decode
    step of the others plus its own math and that of the prompts that arrived during its wait
    (``arrivals_per_s``) and ride with it (:meth:`Estimator.inflight_prefill`).

    The wait is the residual of an iteration met at random: iterations are a decode step plus K prompts' math,
    K ~ Poisson(others / O) (each request joins one of its O iterations), and an arrival lands in a long
    iteration more often than in a short one (the inspection paradox), so the mean wait is E[T^2] / (2 E[T]),
    not E[T] / 2. ``wait_share`` 0.5 gives that mean; a percentile scales E[T^2] / E[T] instead.
    """
    if others <= 0:
        return est.prefill(workload.input_len)
    own = est.inflight_prefill(workload.input_len)
    m, p = others / max(workload.output_len, 1), own / est.pp
    mean_t = step + m * p
    mean_t2 = step * step + 2 * step * m * p + p * p * (m + m * m)
    wait = wait_share * mean_t2 / mean_t
    return wait + step + own * (1 + arrivals_per_s * wait)


def _arrival_sees_idle(in_flight: float) -> float:
    """Probability that a request arriving at random finds no other in flight: an in-flight batching engine
    serves every admitted request at once (M/G/infinity below saturation), so the number in flight is Poisson
    with mean ``in_flight`` (Little's law) and an arrival sees its time average (PASTA)."""
    return math.exp(-in_flight)


def latencies(est: Estimator, workload: Workload, batch: int) -> dict[str, float]:
    """First-order latency percentiles (seconds) with ``batch`` requests in flight on one replica."""
    o = max(workload.output_len, 1)
    ctx = workload.input_len + workload.output_len / 2
    step, _ = est.token_latency(batch, ctx)
    prefill = est.prefill(workload.input_len)
    itl = (batch * est.loaded_prefill(batch, workload.input_len) / est.pp + o * step) / o
    window = max(prefill, step)
    arrivals = batch / o * (window / step)  # prompts that land while one is being prefilled
    ttft = {q: first_token(est, workload, step, batch - 1, wait_share=p)
            + est.loaded_prefill(batch, workload.input_len) * _poisson_quantile(arrivals, p) + est.serving_stack_s
            for q, p in (("p50", 0.5), ("p99", 0.99))}
    return {"ttft_p50": ttft["p50"], "ttft_p99": ttft["p99"], "itl_p50": itl,
            "itl_p99": step + prefill / est.pp,  # a step that also carries a whole prompt's prefill
            "e2e_p50": ttft["p50"] + (o - 1) * itl, "e2e_p99": ttft["p99"] + (o - 1) * itl * 1.1}


def mean_latencies(est: Estimator, workload: Workload, rate: float, max_in_flight: int = 4096) -> dict[str, float]:
    """Mean TTFT and ITL (seconds) and requests in flight at ``rate`` requests/s arriving at random (Poisson):
    the requests in flight b solve Little's law b = rate x e2e(b); an arrival finds the engine idle with
    probability e^-b (:func:`_arrival_sees_idle`) and then pays the idle-engine prefill, else it waits for the
    running iteration and rides in the next (:func:`first_token`); the prompts that arrive during its prefill
    add theirs on average.

    A steady state exists only below the engine's capacity, the most requests/s it completes, sup b / e2e(b).
    At or above it Little's law has no fixed point: requests in flight grow for as long as arrivals last, so
    there is no mean to give. Then ``saturated`` is 1.0 and the figures are those at ``max_in_flight`` (a
    lower bound on what a growing queue reaches), never a diverged number."""
    o = max(workload.output_len, 1)
    ctx = workload.input_len + workload.output_len / 2
    batch, saturated = 1.0, 0.0
    for _ in range(100):  # fixed point; e2e grows slowly with b below saturation
        step, _ = est.token_latency(max(1, math.ceil(batch)), ctx)
        prefill = est.loaded_prefill(batch, workload.input_len)
        itl = (batch * prefill / est.pp + o * step) / o
        idle = _arrival_sees_idle(batch)
        ttft = idle * first_token(est, workload, step, 0) + (1 - idle) * first_token(est, workload, step, batch, rate)
        # not floored at 1: below one request in flight on average most arrivals find the engine idle
        new = rate * (ttft + (o - 1) * itl)
        if abs(new - batch) < 1e-3:
            break
        if new >= max_in_flight and batch >= max_in_flight:  # past capacity: no fixed point below the cap
            saturated = 1.0
            break
        batch = min(new, float(max_in_flight))
    # the front's tokenizer and hops delay the first token but hold no KV: outside the engine's in-flight count
    return {"ttft": ttft + est.serving_stack_s, "itl": itl, "in_flight": batch, "saturated": saturated}


def closed_loop_latencies(est: Estimator, workload: Workload, concurrency: int) -> dict[str, float]:
    """Mean TTFT and ITL (seconds) with ``concurrency`` clients that each send the next request when the last one
    ends: ``concurrency`` requests always in flight, arriving at concurrency / e2e per second; a request finds
    the other concurrency - 1 decoding (:func:`first_token`)."""
    o = max(workload.output_len, 1)
    ctx = workload.input_len + workload.output_len / 2
    step, _ = est.token_latency(concurrency, ctx)
    prefill = est.loaded_prefill(concurrency, workload.input_len)
    itl = (concurrency * prefill / est.pp + o * step) / o
    ttft = first_token(est, workload, step, concurrency - 1)
    for _ in range(50):  # the requests arriving during one's wait ride with it: arrivals at concurrency / e2e
        rate = concurrency / (ttft + est.serving_stack_s + (o - 1) * itl)
        ttft = first_token(est, workload, step, concurrency - 1, rate)
    return {"ttft": ttft + est.serving_stack_s, "itl": itl}


def _meets(lat: dict[str, float], slo: dict[str, float]) -> bool:
    return all(lat[k] <= v for k, v in slo.items())


@dataclass
class Option:
    tp: int
    pp: int
    replicas: int
    in_flight_per_replica: int
    capacity_per_replica: int
    output_tps: float
    output_tps_per_gpu: float
    latency_s: dict[str, float] = field(default_factory=dict)
    meets_slo: bool | None = None

    @property
    def gpus(self) -> int:
        return self.tp * self.pp * self.replicas

    def to_dict(self) -> dict:
        return {"tp": self.tp, "pp": self.pp, "replicas": self.replicas, "gpus": self.gpus,
                "in_flight_per_replica": self.in_flight_per_replica,
                "capacity_per_replica": self.capacity_per_replica, "output_tps": round(self.output_tps, 1),
                "output_tps_per_gpu": round(self.output_tps_per_gpu, 1),
                "latency_ms": {k: round(v * 1e3, 1) for k, v in self.latency_s.items()}, "meets_slo": self.meets_slo}


def compare_fleet(shape: Shape, gpu: Gpu, workload: Workload, *, total_gpus: int, replicas: int | None, kw: dict,
                  gpus_per_node: int, slo: dict[str, float] | None = None) -> list[Option]:
    """Every layout x replicas on ``total_gpus`` (``replicas`` fixed, or None for all that fit), best first:
    those meeting ``slo`` first, then by output tokens/s per GPU."""
    options: list[Option] = []
    precision, kv_dtype, group = kw["precision"], kw["kv_dtype"], kw["group_size"]
    for tp, pp, _where in layouts(shape, gpu, max_gpus=total_gpus, gpus_per_node=gpus_per_node):
        world = tp * pp
        counts = [replicas] if replicas else [total_gpus // world]
        for r in counts:
            if r < 1 or r * world > total_gpus:
                continue
            fit = memory_fit(shape, gpu, tp=tp, pp=pp, **kw)
            if not fit.fits:
                continue
            mean_tokens = math.ceil(workload.mean_seq_len / fit.tokens_per_block) * fit.tokens_per_block
            capacity = max(1, min(fit.kv_pool_tokens // mean_tokens, kw["max_batch_size"]))
            est = Estimator(shape, gpu, precision=precision, kv_dtype=kv_dtype, tp=tp, pp=pp, group_size=group)
            wanted = max(1, math.ceil(workload.concurrency / r))
            batch = min(wanted, capacity)
            if slo:  # objectives decide the requests in flight: the most that keeps them, up to the KV capacity
                batch = _largest_batch_within(est, workload, capacity, slo)
            lat = latencies(est, workload, max(batch, 1))
            tps = r * est.sustained(max(batch, 1), workload)
            options.append(Option(tp, pp, r, batch, capacity, tps, tps / (r * world), lat,
                                  _meets(lat, slo) if slo else None))
    options.sort(key=lambda o: (not (o.meets_slo or o.meets_slo is None), -o.output_tps_per_gpu, o.gpus))
    return options


def _largest_batch_within(est: Estimator, workload: Workload, upper: int, slo: dict[str, float]) -> int:
    """The most requests in flight (<= upper) whose latencies keep every objective; 0 when even one does not."""
    if not _meets(latencies(est, workload, 1), slo):
        return 0
    lo, hi = 1, upper
    while lo < hi:  # latency grows with the batch: binary search the boundary
        mid = (lo + hi + 1) // 2
        if _meets(latencies(est, workload, mid), slo):
            lo = mid
        else:
            hi = mid - 1
    return lo


def ceilings(shape: Shape, gpu: Gpu, workload: Workload, *, precision: str, kv_dtype: str, tp: int, pp: int,
             replicas: int, capacity: int, group_size: int = 128) -> dict[str, float]:
    """Physical bounds at 100% of datasheet peaks: the most tokens/s (deployment, per GPU, per request) and the
    least TTFT / ITL any software could reach on this layout."""
    from .assumptions import COMPUTE_RATE

    world = tp * pp
    bw = gpu.bandwidth_gbps * 1e9 * world  # one replica's GPUs together
    flops = (gpu.peak_flops(COMPUTE_RATE[precision]) or gpu.peak_flops("bf16") or 1e12) * world
    est = Estimator(shape, gpu, precision=precision, kv_dtype=kv_dtype, tp=tp, pp=pp, group_size=group_size)
    ctx = workload.input_len + workload.output_len / 2
    kv = shape.kv_bytes_per_token(kv_dtype)
    b = max(capacity, 1)
    # bandwidth: a step of b sequences reads the (touched) weights once and each sequence's KV
    bw_bound = b / ((est._weights_read(b) + b * ctx * kv) / bw)
    # compute: every output token costs 2 x active params, and its share of the prompt 2 x active x I / O
    per_token = 2 * shape.active_params * (1 + workload.input_len / max(workload.output_len, 1))
    compute_bound = flops / per_token
    replica = min(bw_bound, compute_bound)
    single = 1 / ((est._weights_read(1) + ctx * kv) / bw)
    return {"tok_s": replica * replicas, "tok_s_per_gpu": replica / world, "tok_s_per_user": single,
            "ttft_ms": 2 * shape.active_params * workload.input_len / flops * 1e3,
            "itl_ms": est._weights_read(1) / bw * 1e3}


def check_claims(claims: dict[str, float], ceiling: dict[str, float], estimate: dict[str, float]) -> list[dict]:
    """Each claim against its ceiling (a throughput above it, or a latency below it, cannot be true) and against
    the first-order estimate."""
    out = []
    for key, claimed in claims.items():
        bound, est = ceiling[key], estimate.get(key)
        lower_is_better = key.endswith("_ms")
        impossible = claimed < bound if lower_is_better else claimed > bound
        verdict = "impossible" if impossible else "possible"
        if not impossible and est:
            optimistic = claimed < est / 1.5 if lower_is_better else claimed > est * 1.5
            verdict = "optimistic" if optimistic else "plausible"
        word = "floor" if lower_is_better else "ceiling"
        out.append({"metric": key, "claimed": claimed, word: round(bound, 2), "estimate": round(est, 2) if est else None,
                    "verdict": verdict,
                    "why": (f"{CLAIM_METRICS[key]} {claimed:g} is {'below' if lower_is_better else 'above'} the "
                            f"physical {word} {bound:,.1f} (datasheet peaks at 100%)") if impossible else
                           f"{CLAIM_METRICS[key]} {claimed:g} vs {word} {bound:,.1f}, estimate {est or 0:,.1f}"})
    return out
