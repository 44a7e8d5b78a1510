"""Per-request records and the per-level summary (throughput, TTFT, ITL, TPOT, end-to-end latency, CPU)."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from .config import BenchConfig

SCHEMA = "tritongen-bench/1"


@dataclass
class Stats:
    """One metric over a level's requests (all None when there were no samples)."""

    count: int = 0
    mean: float | None = None
    min: float | None = None
    p50: float | None = None
    p90: float | None = None
    p99: float | None = None
    max: float | None = None

    @classmethod
    def of(cls, values: list[float], scale: float = 1.0) -> Stats:
        if not values:
            return cls()
        v = sorted(x * scale for x in values)
        return cls(count=len(v), mean=sum(v) / len(v), min=v[0], p50=percentile(v, 50), p90=percentile(v, 90),
                   p99=percentile(v, 99), max=v[-1])


def percentile(sorted_values: list[float], q: float) -> float:
    """Linear-interpolated percentile of an ascending list (numpy's default method)."""
    if not sorted_values:
        raise ValueError("percentile of no values")
    pos = (len(sorted_values) - 1) * q / 100
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


@dataclass
class RequestRecord:
    request_id: str
    start: float  #: seconds since the level started
    end: float = 0.0
    ttft: float | None = None  #: seconds from send to the first token
    token_times: list[float] = field(default_factory=list)  #: seconds since send, one per token-carrying response
    token_counts: list[int] = field(default_factory=list)  #: tokens each of those responses carried
    output_tokens: int = 0
    input_tokens: int | None = None
    counted_by: str = "num_output_tokens"
    error: str | None = None


@dataclass
class LevelResult:
    concurrency: int
    requests: int
    completed: int
    errors: int
    duration_s: float
    request_throughput: float  #: completed requests per second
    output_tokens: int
    output_tokens_per_s: float
    input_tokens_mean: float | None
    output_tokens_mean: float | None
    ttft_ms: Stats
    itl_ms: Stats  #: every gap between consecutive tokens of a request
    tpot_ms: Stats  #: per request: (last token - first token) / (tokens - 1)
    e2e_ms: Stats
    client_cpu_s: float
    client_cpu_cores: float  #: client CPU seconds per wall second
    client_cpu_ms_per_1k_tokens: float | None
    error_messages: dict[str, int] = field(default_factory=dict)
    token_count_source: str = "num_output_tokens"

    def to_dict(self) -> dict:
        return asdict(self)

    def flat(self) -> dict[str, Any]:
        """One CSV row: nested stats become ttft_ms_p50 etc."""
        row: dict[str, Any] = {}
        for key, value in self.to_dict().items():
            if isinstance(value, dict) and key.endswith("_ms"):
                for stat in ("mean", "p50", "p90", "p99", "max"):
                    row[f"{key}_{stat}"] = _round(value.get(stat))
            elif key == "error_messages":
                row[key] = "; ".join(f"{n}x {m}" for m, n in value.items())
            else:
                row[key] = _round(value)
        return row


def _round(value):
    return round(value, 4) if isinstance(value, float) else value


@dataclass
class BenchResult:
    config: BenchConfig
    levels: list[LevelResult]
    metadata: dict[str, Any]
    slo: list[str] = field(default_factory=list)
    slo_violations: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"schema": SCHEMA, "config": asdict(self.config), **self.metadata,
                "levels": [lv.to_dict() for lv in self.levels], "slo": self.slo,
                "slo_violations": self.slo_violations}


def summarize(concurrency: int, records: list[RequestRecord], duration: float, cpu_s: float) -> LevelResult:
    ok = [r for r in records if r.error is None]
    errors = [r for r in records if r.error is not None]
    tokens = sum(r.output_tokens for r in ok)
    itl: list[float] = []
    tpot: list[float] = []
    for r in ok:
        for i in range(1, len(r.token_times)):
            k = max(r.token_counts[i], 1)
            itl.extend([(r.token_times[i] - r.token_times[i - 1]) / k] * k)
        if r.output_tokens > 1 and r.token_times:
            tpot.append((r.token_times[-1] - r.token_times[0]) / (r.output_tokens - 1))
    inputs = [r.input_tokens for r in ok if r.input_tokens is not None]
    duration = max(duration, 1e-9)
    sources = Counter(r.counted_by for r in ok)
    return LevelResult(
        concurrency=concurrency, requests=len(records), completed=len(ok), errors=len(errors),
        duration_s=duration, request_throughput=len(ok) / duration, output_tokens=tokens,
        output_tokens_per_s=tokens / duration,
        input_tokens_mean=(sum(inputs) / len(inputs)) if inputs else None,
        output_tokens_mean=(tokens / len(ok)) if ok else None,
        ttft_ms=Stats.of([r.ttft for r in ok if r.ttft is not None], 1e3), itl_ms=Stats.of(itl, 1e3),
        tpot_ms=Stats.of(tpot, 1e3), e2e_ms=Stats.of([r.end - r.start for r in ok], 1e3),
        client_cpu_s=cpu_s, client_cpu_cores=cpu_s / duration,
        client_cpu_ms_per_1k_tokens=(cpu_s * 1e3 / (tokens / 1000)) if tokens else None,
        error_messages=dict(Counter(r.error for r in errors).most_common(5)),
        token_count_source=sources.most_common(1)[0][0] if sources else "none",
    )


def record_tokens(rec: RequestRecord, now: float, count: int | None, has_text: bool) -> None:
    """Account one response: ``count`` is the cumulative num_output_tokens when the server sent it."""
    if count is not None:
        new = count - rec.output_tokens
        if new <= 0:
            return
        rec.output_tokens = count
    elif has_text:
        new = 1
        rec.output_tokens += 1
        rec.counted_by = "text chunks"
    else:
        return
    if rec.ttft is None:
        rec.ttft = now
    rec.token_times.append(now)
    rec.token_counts.append(new)
