"""Reading a metrics endpoint (Triton's port 8002, or the OpenAI front's /metrics): the Prometheus text format
parsed with the standard library, and the per-model figures ``tritongen metrics`` shows.

Rates (tokens and requests per second) come from two scrapes ``interval`` apart; quantiles from the histograms'
buckets - over the window when requests finished in it, else over the server's whole life (``window`` says
which).
"""

from __future__ import annotations

import math
import re
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field

from ..errors import ClientError

_LINE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    """Prometheus text exposition -> {(name, sorted labels): value}. Comments and timestamps are ignored."""
    out: Samples = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _LINE.match(line)
        if not m:
            continue
        labels = tuple(sorted((k, v.replace('\\"', '"').replace("\\\\", "\\"))
                              for k, v in _LABEL.findall(m.group(3) or "")))
        try:
            out[(m.group(1), labels)] = float(m.group(4))
        except ValueError:
            continue
    return out


def metrics_url(target: str) -> str:
    """host:port, http://host:port or a full URL -> the /metrics URL."""
    if not target.startswith(("http://", "https://")):
        target = "http://" + target
    return target if target.rstrip("/").endswith("/metrics") else target.rstrip("/") + "/metrics"


def scrape(target: str, timeout: float = 5.0) -> Samples:
    url = metrics_url(target)
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - the user's own endpoint
            return parse(resp.read().decode("utf-8", "replace"))
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ClientError(f"cannot read {url}: {reason}",
                          hint="is the server running? `tritongen status` lists them (metrics port, default 8002)") from None


def _by_model(samples: Samples, name: str, **match) -> dict[str, float]:
    out: dict[str, float] = {}
    for (n, labels), value in samples.items():
        if n != name:
            continue
        d = dict(labels)
        if any(d.get(k) != v for k, v in match.items()):
            continue
        model = d.get("model", "")
        out[model] = out.get(model, 0.0) + value
    return out


def _buckets(samples: Samples, stem: str) -> dict[str, list[tuple[float, float]]]:
    out: dict[str, dict[float, float]] = {}
    for (n, labels), value in samples.items():
        if n != stem + "_bucket":
            continue
        d = dict(labels)
        le = math.inf if d.get("le") in ("+Inf", "inf") else float(d.get("le", "nan"))
        per = out.setdefault(d.get("model", ""), {})
        per[le] = per.get(le, 0.0) + value
    return {m: sorted(b.items()) for m, b in out.items()}


def quantile(q: float, buckets: list[tuple[float, float]]) -> float | None:
    """PromQL's histogram_quantile on cumulative (le, count) pairs: linear within the bucket."""
    if not buckets or buckets[-1][1] <= 0:
        return None
    total = buckets[-1][1]
    rank = q * total
    prev_le, prev_count = 0.0, 0.0
    for le, count in buckets:
        if count >= rank:
            if math.isinf(le):
                return prev_le
            if count == prev_count:
                return le
            return prev_le + (le - prev_le) * (rank - prev_count) / (count - prev_count)
        prev_le, prev_count = le, count
    return prev_le


def _delta(a: list[tuple[float, float]], b: list[tuple[float, float]]) -> list[tuple[float, float]]:
    before = dict(a)
    return [(le, c - before.get(le, 0.0)) for le, c in b]


@dataclass
class ModelFigures:
    model: str
    tokens_per_s: float = 0.0
    requests_per_s: float = 0.0
    ttft_p50_s: float | None = None
    ttft_p99_s: float | None = None
    itl_p50_s: float | None = None
    itl_p99_s: float | None = None
    queue_p50_s: float | None = None
    queue_p99_s: float | None = None
    in_flight: float = 0.0
    requests: float = 0.0
    errors: float = 0.0
    generation_tokens: float = 0.0
    window: str = "life"  #: what the quantiles cover: "window" (the interval) or "life" (since the server started)


@dataclass
class Snapshot:
    target: str
    interval_s: float
    models: list[ModelFigures] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


HISTOGRAMS = {"ttft": "tritongen_time_to_first_token_seconds", "itl": "tritongen_inter_token_latency_seconds",
              "queue": "tritongen_request_queue_seconds"}


def figures(before: Samples, after: Samples, interval_s: float, target: str = "") -> Snapshot:
    """The per-model figures between two scrapes."""
    gen0, gen1 = (_by_model(s, "tritongen_generation_tokens_total") for s in (before, after))
    req0, req1 = (_by_model(s, "tritongen_requests_total") for s in (before, after))
    err1 = _by_model(after, "tritongen_requests_total", finish_reason="error")
    flight = _by_model(after, "tritongen_requests_in_flight")
    hist0 = {k: _buckets(before, v) for k, v in HISTOGRAMS.items()}
    hist1 = {k: _buckets(after, v) for k, v in HISTOGRAMS.items()}
    models = sorted(set(gen1) | set(req1) | set(flight) | set(hist1["ttft"]))
    snap = Snapshot(target=target, interval_s=interval_s)
    dt = max(interval_s, 1e-9)
    for model in models:
        f = ModelFigures(model=model, generation_tokens=gen1.get(model, 0.0), requests=req1.get(model, 0.0),
                         errors=err1.get(model, 0.0), in_flight=flight.get(model, 0.0))
        f.tokens_per_s = (gen1.get(model, 0.0) - gen0.get(model, 0.0)) / dt
        f.requests_per_s = (req1.get(model, 0.0) - req0.get(model, 0.0)) / dt
        windowed = req1.get(model, 0.0) > req0.get(model, 0.0)
        f.window = "window" if windowed else "life"
        for key in HISTOGRAMS:
            b1 = hist1[key].get(model, [])
            b = _delta(hist0[key].get(model, []), b1) if windowed else b1
            setattr(f, f"{key}_p50_s", quantile(0.5, b))
            setattr(f, f"{key}_p99_s", quantile(0.99, b))
        snap.models.append(f)
    return snap


def measure(target: str, interval_s: float = 1.0) -> Snapshot:
    """Two scrapes ``interval_s`` apart."""
    before = scrape(target)
    t0 = time.monotonic()
    time.sleep(interval_s)
    after = scrape(target)
    return figures(before, after, time.monotonic() - t0, target)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.1f}"


def table(snap: Snapshot) -> str:
    """The figures as a fixed-width table, one row per model."""
    head = (f"{'model':<24} {'tok/s':>8} {'req/s':>7} {'TTFT p50':>9} {'p99':>8} {'ITL p50':>8} {'p99':>7} "
            f"{'queue p50':>9} {'p99':>7} {'flight':>6} {'errors':>6}")
    rows = [f"{snap.target} (rates over {snap.interval_s:.1f} s; times in ms)", head]
    for f in snap.models:
        rows.append(f"{f.model[:24]:<24} {f.tokens_per_s:>8.1f} {f.requests_per_s:>7.2f} {_ms(f.ttft_p50_s):>9} "
                    f"{_ms(f.ttft_p99_s):>8} {_ms(f.itl_p50_s):>8} {_ms(f.itl_p99_s):>7} {_ms(f.queue_p50_s):>9} "
                    f"{_ms(f.queue_p99_s):>7} {f.in_flight:>6.0f} {f.errors:>6.0f}")
    if not snap.models:
        rows.append("(no tritongen_* metrics here: is serving.metrics.enabled off, or is this not a tritongen "
                    "server?)")
    return "\n".join(rows)
