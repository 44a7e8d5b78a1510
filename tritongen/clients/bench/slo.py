"""Service-level objectives: ``--slo ttft_p99=500ms,error_rate=1%`` parsed, checked per level, raised on."""

from __future__ import annotations

import re
from dataclasses import dataclass

from ...errors import SloViolation, UsageError
from .results import BenchResult, LevelResult

_SLO_RE = re.compile(r"^(ttft|itl|tpot|e2e)_(p50|p90|p99|max|mean)$|^(error_rate|output_tps|request_tps)$")
_UNITS = {"ms": 1.0, "s": 1e3, "us": 1e-3}


@dataclass(frozen=True)
class Slo:
    metric: str  #: e.g. ttft_p99, error_rate, output_tps
    limit: float  #: ms for latencies, a fraction for error_rate, per second for *_tps
    upper: bool  #: True: value must be <= limit; False: value must be >= limit
    text: str

    def value(self, level: LevelResult) -> float | None:
        if self.metric == "error_rate":
            return level.errors / level.requests if level.requests else 0.0
        if self.metric == "output_tps":
            return level.output_tokens_per_s
        if self.metric == "request_tps":
            return level.request_throughput
        kind, stat = self.metric.split("_")
        return getattr(getattr(level, f"{kind}_ms"), stat)


def parse_slo(text: str) -> list[Slo]:
    """``ttft_p99=500ms,itl_p99=50ms,error_rate=1%,output_tps=1000``: latencies take ms (default), s or us."""
    slos = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        key, sep, raw = part.partition("=")
        key, raw = key.strip().lower(), raw.strip().lower()
        if not sep or not raw or not _SLO_RE.match(key):
            raise UsageError(f"--slo {part!r}: expected METRIC=VALUE with METRIC one of ttft|itl|tpot|e2e_"
                             "p50|p90|p99|max|mean, error_rate, output_tps, request_tps (e.g. ttft_p99=500ms)")
        m = re.fullmatch(r"([0-9]*\.?[0-9]+)\s*(ms|s|us|%)?", raw)
        if not m:
            raise UsageError(f"--slo {part!r}: {raw!r} is not a number with an optional unit (ms, s, us, %)")
        number, unit = float(m.group(1)), m.group(2)
        if key == "error_rate":
            limit = number / 100 if unit == "%" else number
        elif key.endswith("_tps"):
            if unit:
                raise UsageError(f"--slo {part!r}: {key} is a rate per second; give a plain number")
            limit = number
        else:
            if unit == "%":
                raise UsageError(f"--slo {part!r}: a latency needs ms, s or us")
            limit = number * _UNITS[unit or "ms"]
        slos.append(Slo(key, limit, upper=not key.endswith("_tps"), text=part))
    if not slos:
        raise UsageError("--slo: no objectives given")
    return slos


def check_slos(levels: list[LevelResult], slos: list[Slo]) -> list[str]:
    """One line per (level, objective) that is broken; a metric with no samples counts as broken."""
    out = []
    for level in levels:
        for slo in slos:
            value = slo.value(level)
            unit = "" if slo.metric in ("error_rate",) or slo.metric.endswith("_tps") else " ms"
            if value is None:
                out.append(f"c={level.concurrency}: {slo.metric} has no samples (limit {slo.text})")
            elif (value > slo.limit) if slo.upper else (value < slo.limit):
                op = ">" if slo.upper else "<"
                out.append(f"c={level.concurrency}: {slo.metric} {value:.4g}{unit} {op} {slo.limit:.4g}{unit}")
    return out


def apply_slos(result: BenchResult, slos: list[Slo]) -> list[str]:
    """Record the objectives and the broken ones in ``result`` (so they land in results.json)."""
    result.slo = [s.text for s in slos]
    result.slo_violations = check_slos(result.levels, slos)
    return result.slo_violations


def raise_for_slos(result: BenchResult) -> None:
    """SloViolation (exit code 10) when ``result`` records broken objectives."""
    if result.slo_violations:
        n = len(result.slo_violations)
        raise SloViolation(f"{n} objective(s) broken: " + "; ".join(result.slo_violations[:4])
                           + (" ..." if n > 4 else ""))
