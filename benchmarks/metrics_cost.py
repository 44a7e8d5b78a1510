#!/usr/bin/env python3
"""What the LLM metrics cost: the same repository served with serving.metrics.enabled on and off.

Two real tritonservers (the nvidia-pytriton wheel's), cpu route, MOCK engine at 0 ms/step (no model: the
pipeline's own capacity, where any added cost shows most), the ensemble driven by tritongen's benchmark client.
For each concurrency level the two are measured in turn, `--repeat` times interleaved, and the medians compared:
streamed tokens/s, TTFT p99, and the server's CPU per 1000 streamed tokens (tritonserver plus its python-backend
stubs, its process group, from /proc). Figures, not assertions: run it on a quiet machine.

    .venv/bin/python benchmarks/metrics_cost.py                        # 1,8,32,64 streams, 3 interleaved runs
    .venv/bin/python benchmarks/metrics_cost.py --levels 64 --repeat 5 --json out.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from pipeline import measure  # noqa: E402

from tritongen.clients import bench  # noqa: E402
from tritongen.runtime.startup import free_ports  # noqa: E402

VARIANTS = {"off": False, "on": True}


def hot_path(tokens: int = 200_000, per_request: int = 128) -> dict:
    """The metrics' own Python cost per 1000 streamed tokens, in one process: what postprocessing adds per
    response (Request.sent; Request.finish per request) and what the flush thread hands to Triton. The metric
    calls go to a stand-in for triton_python_backend_utils that counts them (in Triton each is one round trip to
    the server, ~tens of microseconds), so this measures the Python side and counts the round trips."""
    import threading
    import time
    import types

    calls = {"n": 0}

    class _Metric:
        def increment(self, v):
            calls["n"] += 1

        def set(self, v):
            calls["n"] += 1

        def observe(self, v):
            calls["n"] += 1

    class _Family:
        COUNTER, GAUGE, HISTOGRAM = 0, 1, 2

        def __init__(self, **kw):
            pass

        def Metric(self, labels=None, buckets=None):  # noqa: N802 - the python backend's name
            return _Metric()

    sys.modules["triton_python_backend_utils"] = types.SimpleNamespace(MetricFamily=_Family)
    sys.path.insert(0, str(ROOT / "templates" / "common" / "lib"))
    import llm_metrics

    llm_metrics.FLUSH_S = 3600  # flushed by hand below, so the thread's timing does not blur the figure
    metrics = llm_metrics.Metrics("ensemble")
    t0, c0 = time.perf_counter(), time.thread_time()
    for _ in range(tokens // per_request):
        r = llm_metrics.Request(metrics)
        for _ in range(per_request):
            r.sent(1)
        r.finish("length")
    hot = time.thread_time() - c0
    wall = time.perf_counter() - t0
    c1 = time.thread_time()
    metrics.flush()
    flush = time.thread_time() - c1
    requests = tokens // per_request
    assert threading.active_count() >= 1
    return {"tokens": tokens, "per_request": per_request, "hot_ms_per_1k": hot / tokens * 1e6,
            "flush_ms": flush * 1e3, "round_trips_per_flush": calls["n"], "requests": requests, "wall_s": wall}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--levels", default="1,8,32,64", help="concurrency levels")
    ap.add_argument("--output-len", type=int, default=128)
    ap.add_argument("--requests-per-stream", type=int, default=4)
    ap.add_argument("--repeat", type=int, default=3, help="interleaved runs per level; figures are the medians")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    ap.add_argument("--hot-path", action="store_true", help="only the in-process cost of the metrics' hot path")
    args = ap.parse_args()
    h = hot_path()
    print(f"hot path: {h['hot_ms_per_1k']:.2f} ms CPU per 1000 streamed tokens ({h['per_request']} tokens a "
          f"request); one flush of {h['requests']} requests' figures: {h['round_trips_per_flush']} metric calls, "
          f"{h['flush_ms']:.1f} ms (every {0.25} s in a server, whatever the token rate)")
    if args.hot_path:
        return
    os.environ.setdefault("TRITONGEN_CACHE", str(ROOT / ".cache"))
    levels = [int(x) for x in args.levels.split(",")]

    from transformers import AutoTokenizer

    from tritongen.paths import cache_dir
    from tritongen.render import write_repo
    from tritongen.runtime import local
    from tritongen.runtime.command import ServeOptions
    from tritongen.spec import load_spec
    from tritongen.tiny import build

    tiny = build(cache_dir() / "models" / "tiny")
    text = "The river ran past the old mill and under the stone bridge. In the morning the light was cold."
    prompt, prompt_ids = bench.Prompt(text), AutoTokenizer.from_pretrained(tiny)(text)["input_ids"]
    print(f"machine: {os.cpu_count()} CPUs; cpu route, MOCK engine at 0 ms/step, the ensemble, "
          f"{args.output_len} output tokens per request, {args.repeat} interleaved runs")
    servers = {}
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="tritongen-metrics-cost-") as tmp:
        try:
            for variant, on in VARIANTS.items():
                spec = load_spec("tiny", options={"route": "cpu", "name": f"metrics-{variant}", "cpu.engine": "mock",
                                                  "serving.metrics.enabled": on})
                repo = write_repo(spec, Path(tmp) / f"metrics-{variant}", force=True)
                http, grpc, port = free_ports(3)
                servers[variant] = local.start(f"bench-metrics-{variant}", [repo], ServeOptions(
                    http_port=http, grpc_port=grpc, metrics_port=port), timeout=300)
            for rep in range(args.repeat):
                print(f" run {rep + 1}/{args.repeat}")
                for c in levels:
                    for variant, record in servers.items():  # interleaved: drifts of a shared machine hit both
                        print(f"  metrics {variant:<3}", end="")
                        for row in asyncio.run(measure("ensemble", record.grpc_url, record.pid, [c], args.output_len,
                                                       prompt, prompt_ids, args.requests_per_stream)):
                            rows.append({**row, "metrics": variant, "run": rep})
        finally:
            for record in servers.values():
                local.stop(record)

    print("\nmetrics on vs off (medians):")
    summary = []
    for c in levels:
        med = {}
        for variant in VARIANTS:
            rs = [r for r in rows if r["metrics"] == variant and r["concurrency"] == c]
            med[variant] = {k: statistics.median(r[k] for r in rs)
                            for k in ("tokens_per_s", "ttft_p99_ms", "server_cpu_ms_per_1k")}
        on, off = med["on"], med["off"]
        s = {"concurrency": c, "tokens_per_s_off": off["tokens_per_s"], "tokens_per_s_on": on["tokens_per_s"],
             "throughput_ratio": on["tokens_per_s"] / off["tokens_per_s"],
             "server_cpu_ms_per_1k_off": off["server_cpu_ms_per_1k"], "server_cpu_ms_per_1k_on": on["server_cpu_ms_per_1k"],
             "added_server_cpu_ms_per_1k": on["server_cpu_ms_per_1k"] - off["server_cpu_ms_per_1k"],
             "ttft_p99_ms_off": off["ttft_p99_ms"], "ttft_p99_ms_on": on["ttft_p99_ms"]}
        summary.append(s)
        print(f"  c={c:<3} {s['tokens_per_s_off']:7.0f} -> {s['tokens_per_s_on']:7.0f} tok/s "
              f"(x{s['throughput_ratio']:.3f}), server CPU {s['server_cpu_ms_per_1k_off']:6.1f} -> "
              f"{s['server_cpu_ms_per_1k_on']:6.1f} ms per 1000 tokens ({s['added_server_cpu_ms_per_1k']:+.1f}), "
              f"TTFT p99 {s['ttft_p99_ms_off']:.1f} -> {s['ttft_p99_ms_on']:.1f} ms")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "summary": summary}, indent=2))
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
