#!/usr/bin/env python3
"""What the serving pipeline itself costs: the full ensemble vs the tensorrt_llm model called directly.

Starts a real tritonserver (the one in the nvidia-pytriton wheel) on the cpu route, once with the MOCK engine at
0 ms/step (no model: the pipeline's own capacity) and once with the tiny model, and for each target (ensemble,
tensorrt_llm) and concurrency level prints streamed output tokens/s, TTFT and inter-token latency (p50/p99),
and the server's CPU seconds per 1000 streamed tokens (tritonserver plus every python-backend stub: its
process group, read from /proc). Figures, not assertions: run it on a quiet machine.

    .venv/bin/python benchmarks/pipeline.py                       # everything (several minutes on 2 cores)
    .venv/bin/python benchmarks/pipeline.py --engines mock --levels 64 --json out.json
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

from tritongen import proc  # noqa: E402
from tritongen.clients import bench, contract_io  # noqa: E402
from tritongen.runtime.startup import free_ports  # noqa: E402


class DirectTransport(bench.GrpcTransport):
    """The tensorrt_llm model itself, with the TensorRT-LLM backend's tensor contract (token ids in/out)."""

    def __init__(self, config, prompt_ids: list[int]):
        super().__init__(config)
        self.prompt_ids = prompt_ids

    def _request(self, prompt):
        ids, n = self.prompt_ids, self.config.output_len
        inputs = contract_io.llm_inputs({
            "input_ids": ids, "input_lengths": len(ids), "request_output_len": n, "min_tokens": n, "streaming": True,
            "return_num_output_tokens": True, "return_num_input_tokens": True})
        return inputs.infer_request("tensorrt_llm", "", ["output_ids", "num_output_tokens", "num_input_tokens"])


async def measure(target: str, url: str, server_pid: int, levels: list[int], output_len: int,
                  prompt: bench.Prompt, prompt_ids: list[int], requests_per_stream: int) -> list[dict]:
    config = bench.BenchConfig(url=url, model="ensemble" if target == "ensemble" else "tensorrt_llm",
                               output_len=output_len, warmup=0, exact_output=True)
    transport = DirectTransport(config, prompt_ids) if target == "tensorrt_llm" else bench.GrpcTransport(config)
    rows = []
    try:
        await bench.run_level(bench.BenchConfig(**{**config.__dict__, "requests": 8}), 8, [prompt],
                              transport=transport)  # warm-up
        for c in levels:
            config.requests = max(16, requests_per_stream * c)
            cpu0 = proc.group_cpu_seconds(server_pid)
            level = await bench.run_level(config, c, [prompt], transport=transport)
            server_cpu = proc.group_cpu_seconds(server_pid) - cpu0
            tokens = max(level.output_tokens, 1)
            rows.append({
                "target": target, "concurrency": c, "requests": level.completed, "errors": level.errors,
                "tokens": level.output_tokens, "tokens_per_s": level.output_tokens_per_s,
                "ttft_p50_ms": level.ttft_ms.p50, "ttft_p99_ms": level.ttft_ms.p99,
                "itl_p50_ms": level.itl_ms.p50, "itl_p99_ms": level.itl_ms.p99,
                "server_cpu_ms_per_1k": server_cpu / tokens * 1e6,
                "client_cpu_ms_per_1k": level.client_cpu_ms_per_1k_tokens,
            })
            r = rows[-1]
            print(f"  {target:<13}c={c:<3} {r['tokens_per_s']:8.0f} tok/s  TTFT p50 {r['ttft_p50_ms']:6.1f} "
                  f"p99 {r['ttft_p99_ms']:6.1f} ms  ITL p50 {r['itl_p50_ms']:5.2f} p99 {r['itl_p99_ms']:6.2f} ms  "
                  f"server {r['server_cpu_ms_per_1k']:6.1f} ms CPU/1k tok  client {r['client_cpu_ms_per_1k'] or 0:5.1f}"
                  f"{'  ERRORS ' + str(r['errors']) if r['errors'] else ''}", flush=True)
    finally:
        await transport.close()
    return rows


def run_engine(engine: str, levels: list[int], workdir: Path, output_len: int, per_stream: int,
               sets: list[str] | None = None, targets: tuple[str, ...] = ("tensorrt_llm", "ensemble"),
               repeat: int = 1) -> list[dict]:
    from transformers import AutoTokenizer

    from tritongen.paths import cache_dir
    from tritongen.render import write_repo
    from tritongen.runtime import local
    from tritongen.runtime.command import ServeOptions
    from tritongen.spec import load_spec
    from tritongen.tiny import build

    tiny = build(cache_dir() / "models" / "tiny")
    options = {"route": "cpu", "name": f"pipeline-{engine}", "cpu.engine": engine}
    repo = write_repo(load_spec("tiny", options=options, sets=sets), workdir / f"pipeline-{engine}", force=True)
    http, grpc, metrics = free_ports(3)
    record = local.start(f"bench-pipeline-{engine}", [repo],
                         ServeOptions(http_port=http, grpc_port=grpc, metrics_port=metrics), timeout=300)
    try:
        tok = AutoTokenizer.from_pretrained(tiny)
        text = "The river ran past the old mill and under the stone bridge. In the morning the light was cold."
        prompt = bench.Prompt(text)
        prompt_ids = tok(text)["input_ids"]
        print(f"\n{engine} engine ({len(prompt_ids)} prompt tokens, {output_len} output tokens per request):")
        rows = []
        for rep in range(repeat):
            if repeat > 1:
                print(f" run {rep + 1}/{repeat}")
            for target in targets:  # interleaved, so slow drifts of a shared machine hit both targets alike
                rows += asyncio.run(measure(target, record.grpc_url, record.pid, levels, output_len, prompt,
                                            prompt_ids, per_stream))
        for row in rows:
            row["engine"] = engine
        return rows
    finally:
        local.stop(record)


def median_rows(rows: list[dict]) -> list[dict]:
    """One row per (engine, target, concurrency): the median of each figure over the repeats."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["engine"], r["target"], r["concurrency"]), []).append(r)
    out = []
    for (engine, target, c), rs in groups.items():
        row = {"engine": engine, "target": target, "concurrency": c, "runs": len(rs)}
        for key in rs[0]:
            if key not in row and isinstance(rs[0][key], (int, float)):
                row[key] = statistics.median(r[key] for r in rs if r[key] is not None)
        out.append(row)
    return out


def compare(rows: list[dict], engine: str, c: int) -> dict | None:
    get = {r["target"]: r for r in rows if r["engine"] == engine and r["concurrency"] == c}
    if set(get) != {"ensemble", "tensorrt_llm"}:
        return None
    e, d = get["ensemble"], get["tensorrt_llm"]
    return {
        "engine": engine, "concurrency": c,
        "throughput_kept": e["tokens_per_s"] / d["tokens_per_s"],
        "added_server_cpu_ms_per_1k": e["server_cpu_ms_per_1k"] - d["server_cpu_ms_per_1k"],
        "ttft_p99_ratio": e["ttft_p99_ms"] / max(d["ttft_p99_ms"], 1e-9),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--engines", default="mock,torch", help="comma list of cpu engines: mock,torch")
    ap.add_argument("--levels", default="1,8,32,64", help="concurrency levels")
    ap.add_argument("--output-len", type=int, default=128)
    ap.add_argument("--requests-per-stream", type=int, default=4, help="requests per concurrent stream")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    ap.add_argument("--set", dest="sets", action="append", default=[], metavar="FIELD=VALUE",
                    help="spec override for the served repository (repeatable), e.g. serving.max_queue_delay_us=200")
    ap.add_argument("--targets", default="tensorrt_llm,ensemble", help="what to measure: tensorrt_llm,ensemble")
    ap.add_argument("--repeat", type=int, default=1, help="runs per level; figures are the medians")
    args = ap.parse_args()
    os.environ.setdefault("TRITONGEN_CACHE", str(ROOT / ".cache"))
    levels = [int(x) for x in args.levels.split(",")]
    print(f"machine: {os.cpu_count()} CPUs; tritonserver from the nvidia-pytriton wheel; cpu route")
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="tritongen-pipeline-") as tmp:
        for engine in args.engines.split(","):
            rows += run_engine(engine, levels, Path(tmp), args.output_len, args.requests_per_stream, args.sets,
                               tuple(args.targets.split(",")), args.repeat)
    medians = median_rows(rows)
    if args.repeat > 1:
        print(f"\nmedians of {args.repeat} runs:")
        for r in sorted(medians, key=lambda r: (r["engine"], r["target"], r["concurrency"])):
            print(f"  {r['engine']:<6}{r['target']:<13}c={r['concurrency']:<3} {r['tokens_per_s']:8.0f} tok/s  TTFT p50 "
                  f"{r['ttft_p50_ms']:6.1f} p99 {r['ttft_p99_ms']:6.1f} ms  ITL p50 {r['itl_p50_ms']:5.2f} p99 "
                  f"{r['itl_p99_ms']:6.2f} ms  server {r['server_cpu_ms_per_1k']:6.1f} ms CPU/1k tok")
    print("\nensemble vs tensorrt_llm alone" + (" (medians)" if args.repeat > 1 else "") + ":")
    summary = []
    for engine in args.engines.split(","):
        for c in levels:
            s = compare(medians, engine, c)
            if s:
                summary.append(s)
                print(f"  {engine:<6}c={c:<3} keeps {s['throughput_kept'] * 100:5.1f}% of the tokens/s, adds "
                      f"{s['added_server_cpu_ms_per_1k']:6.1f} ms server CPU per 1000 tokens, TTFT p99 x"
                      f"{s['ttft_p99_ratio']:.2f}")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "medians": medians, "summary": summary}, indent=2))
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
