#!/usr/bin/env python3
"""Dynamo's frontend with mocker workers against our Triton ensemble with the MOCK engine, and Dynamo's scale-out.

Part 1 (serving path): the tiny model's tokenizer and the same prompts on both sides. Dynamo: `tritongen dynamo
up tiny --mocker` (frontend, KV router, --workers mocker workers whose simulated TRT-LLM time runs
--mocker-speedup times faster, so the serving path and not the simulated GPU dominates); Triton: the cpu route's
ensemble with the MOCK engine (no per-step delay) on a real tritonserver, streamed over gRPC. Levels of
concurrency 1/8/32/64 run interleaved (Dynamo, Triton, Dynamo, ...) for --rounds rounds; the figures are
medians over the rounds: output tok/s, TTFT p50/p99, and CPU seconds per 1000 output tokens of the serving
processes (every process of the graph, or tritonserver and its python stubs, from /proc), plus Dynamo/Triton
ratios measured in the same run.

Part 2 (scale-out): 1, 2 and 4 mocker workers at the mocker's own timing (speedup 1) behind one frontend, at a
concurrency that saturates one worker (2 x its max batch by default): tok/s and TTFT, with ratios to 1 worker.

Figures, not assertions. Everything binds 127.0.0.1 and is stopped at the end.

    .venv/bin/python benchmarks/dynamo.py
    .venv/bin/python benchmarks/dynamo.py --rounds 3 --levels 1,8,32,64 --scale-concurrency 128
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# This file is named dynamo.py: with its folder first on sys.path, `import dynamo` would find it, not Dynamo.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TRITONGEN_CACHE", tempfile.mkdtemp(prefix="tritongen-bench-dynamo-"))

from click.testing import CliRunner  # noqa: E402

from tritongen import proc  # noqa: E402
from tritongen.cli import cli  # noqa: E402
from tritongen.clients.bench import BenchConfig  # noqa: E402
from tritongen.clients.bench.prompts import synthetic_prompts  # noqa: E402
from tritongen.clients.bench.runner import run_level  # noqa: E402
from tritongen.runtime import dynamo as dyn  # noqa: E402
from tritongen.runtime import local, state  # noqa: E402
from tritongen.runtime.command import ServeOptions  # noqa: E402
from tritongen.runtime.startup import free_ports  # noqa: E402


def start_dynamo(name: str, workers: int, speedup: float) -> state.ServerRecord:
    (port,) = free_ports(1)
    result = CliRunner().invoke(cli, ["dynamo", "up", "tiny", "--mocker", "--name", name, "--workers", str(workers),
                                      "--mocker-speedup", str(speedup), "--http-port", str(port)])
    if result.exit_code != 0:
        raise SystemExit(f"dynamo up failed:\n{result.output}")
    return next(r for r in state.find(name) if r.launcher == dyn.LAUNCHER)


def start_triton() -> tuple[state.ServerRecord, Path]:
    from tritongen.pipeline import build_repo
    from tritongen.spec import load_spec

    spec = load_spec("tiny", options={"route": "cpu", "cpu.engine": "mock", "name": "tinymock"})
    repo = Path(os.environ["TRITONGEN_CACHE"]) / "repos" / "tinymock"
    build_repo(spec, repo, force=True)
    http, grpc, metrics = free_ports(3)
    record = local.start("tinymock", [repo], ServeOptions(http_port=http, grpc_port=grpc, metrics_port=metrics),
                         timeout=300)
    return record, repo


def serving_cpu(record: state.ServerRecord) -> float:
    """CPU seconds so far of every serving process of the record (each one's process group)."""
    if record.launcher == dyn.LAUNCHER:
        return sum(proc.group_cpu_seconds(int(e["pid"])) for e in record.extra["processes"])
    return proc.group_cpu_seconds(int(record.pid))


def measure(record, config: BenchConfig, concurrency: int, prompts) -> dict:
    cpu0 = serving_cpu(record)
    level = asyncio.run(run_level(config, concurrency, prompts))
    cpu = serving_cpu(record) - cpu0
    if level.errors:
        print(f"  {record.name} c={concurrency}: {level.errors} error(s): {level.error_messages}", file=sys.stderr)
    tokens = level.output_tokens
    return {"tok_s": level.output_tokens_per_s, "ttft_p50": level.ttft_ms.p50, "ttft_p99": level.ttft_ms.p99,
            # A process that exits during the level (a crashed stub) takes its CPU out of the sum: no figure then.
            "cpu_per_1k": 1000 * cpu / tokens if tokens and cpu >= 0 else float("nan"), "errors": level.errors}


def median_of(runs: list[dict]) -> dict:
    return {k: statistics.median(r[k] if r[k] is not None else float("nan") for r in runs) for k in runs[0]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--levels", default="1,8,32,64")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--input-len", type=int, default=128)
    ap.add_argument("--output-len", type=int, default=64)
    ap.add_argument("--workers", type=int, default=1, help="Dynamo workers in part 1.")
    ap.add_argument("--mocker-speedup", type=float, default=100.0, help="Part 1 only.")
    ap.add_argument("--scale-concurrency", type=int, default=128)
    ap.add_argument("--scale-requests", type=int, default=256)
    ap.add_argument("--skip-compare", action="store_true")
    ap.add_argument("--skip-scale", action="store_true")
    args = ap.parse_args()
    levels = [int(x) for x in args.levels.split(",")]

    from tritongen.paths import cache_dir
    from tritongen.tiny import build

    tok = str(build(cache_dir() / "models" / "tiny"))
    prompts = synthetic_prompts(tok, args.input_len, 64)
    started: list[state.ServerRecord] = []
    try:
        if not args.skip_compare:
            d = start_dynamo("bench-dyn", args.workers, args.mocker_speedup)
            started.append(d)
            t, _ = start_triton()
            started.append(t)
            dcfg = dict(url=d.http_url, protocol="openai", model=d.extra["model"])
            tcfg = dict(url=t.grpc_url, protocol="grpc", model="ensemble")
            common = dict(input_len=args.input_len, output_len=args.output_len, exact_output=True, warmup=0)
            results: dict[tuple[str, int], list[dict]] = {}
            for r in range(args.rounds):
                for c in levels:
                    for label, rec, cfg in (("dynamo", d, dcfg), ("triton", t, tcfg)):
                        config = BenchConfig(**cfg, **common, concurrency=[c], requests=max(16, 4 * c))
                        results.setdefault((label, c), []).append(measure(rec, config, c, prompts))
                print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)
            print(f"\nPart 1: Dynamo frontend + {args.workers} mocker worker(s) (speedup {args.mocker_speedup:g}) vs "
                  f"Triton ensemble + MOCK engine; {args.input_len} in / {args.output_len} out tokens, median of "
                  f"{args.rounds} interleaved rounds")
            print(f"{'conc':>5} {'server':>7} {'tok/s':>9} {'TTFT p50':>9} {'TTFT p99':>9} {'CPU s/1k tok':>13} "
                  f"{'err':>4}")
            for c in levels:
                m = {label: median_of(results[(label, c)]) for label in ("dynamo", "triton")}
                for label in ("dynamo", "triton"):
                    x = m[label]
                    print(f"{c:>5} {label:>7} {x['tok_s']:>9.0f} {x['ttft_p50']:>8.1f}ms {x['ttft_p99']:>8.1f}ms "
                          f"{x['cpu_per_1k']:>13.3f} {x['errors']:>4.0f}")
                r = {k: m["dynamo"][k] / m["triton"][k] if m["triton"][k] else float("nan") for k in m["dynamo"]}
                print(f"{c:>5} {'ratio':>7} {r['tok_s']:>9.2f} {r['ttft_p50']:>9.2f} {r['ttft_p99']:>9.2f} "
                      f"{r['cpu_per_1k']:>13.2f}      (dynamo / triton)")
            for rec in started:
                dyn.stop(rec) if rec.launcher == dyn.LAUNCHER else local.stop(rec)
            started.clear()

        if not args.skip_scale:
            print(f"\nPart 2: scale-out at the mocker's own timing (speedup 1), concurrency {args.scale_concurrency}, "
                  f"{args.scale_requests} requests, {args.input_len} in / {args.output_len} out tokens")
            print(f"{'workers':>8} {'tok/s':>9} {'TTFT p50':>9} {'TTFT p99':>9} {'err':>4} {'tok/s vs 1':>11}")
            base = None
            for n in (1, 2, 4):
                rec = start_dynamo(f"bench-scale{n}", n, 1.0)
                started.append(rec)
                config = BenchConfig(url=rec.http_url, protocol="openai", model=rec.extra["model"],
                                     concurrency=[args.scale_concurrency], requests=args.scale_requests,
                                     input_len=args.input_len, output_len=args.output_len, exact_output=True,
                                     warmup=0)
                x = measure(rec, config, args.scale_concurrency, prompts)
                base = base or x["tok_s"]
                print(f"{n:>8} {x['tok_s']:>9.0f} {x['ttft_p50']:>8.1f}ms {x['ttft_p99']:>8.1f}ms {x['errors']:>4} "
                      f"{x['tok_s'] / base:>11.2f}")
                dyn.stop(rec)
                started.remove(rec)
    finally:
        for rec in started:
            dyn.stop(rec) if rec.launcher == dyn.LAUNCHER else local.stop(rec)
    return 0


if __name__ == "__main__":
    sys.exit(main())
