#!/usr/bin/env python3
"""What the serving pipeline itself costs: the ensemble vs the tensorrt_llm model called directly, on one server.

Each variant is a cpu-route repository served by a real tritonserver (the one in the nvidia-pytriton wheel). All
variants' servers run side by side and are measured in interleaved rounds (round 1: every variant and target at
every level, then round 2, ...), so slow drifts of a shared machine hit them alike; figures are medians over the
rounds with their min-max spread. Per level: streamed output tokens/s, TTFT and inter-token latency (p50/p99),
server CPU per 1000 streamed tokens (tritonserver plus every python-backend stub, split by process), and the
client's own CPU.

The honest baseline is the LEAN STAND-IN ENGINE (benchmarks/standin_engine.py): a decoupled python model with the
TensorRT-LLM backend's tensor contract that emits one token per sequence per step and nothing else, used for the
ensemble and for the engine-alone run alike. tritongen's MOCK engine and the tiny torch model are measured too,
but they spend CPU of their own per token (sampling, cancellation checks), which makes the pipeline's share look
better than it is. A pipeline share above 100% of the engine alone is flagged: it means the baseline is wrong.

Variants (--variants):
  standin        stand-in at 0 ms/step, every token streamed                       (the baseline of the targets)
  standin-si4    the same with serving.stream_interval=4 (4 tokens per streamed response)
  standin-lean   the same with serving.optional_outputs=[token_counts]: the ensemble carries no log-prob or
                 index outputs (what each carried output costs per streamed response)
  standin-floor  the same with postprocessing replaced by a no-op python model returning one constant string:
                 the floor of any python-backend step run once per streamed response
  standin-20ms   stand-in paced at 20 ms per step, like a GPU iteration
  standin-nometrics  serving.metrics.enabled=false (what the LLM metrics cost)
  mock, torch    tritongen's MOCK engine at 0 ms/step and the tiny Llama in torch

    .venv/bin/python benchmarks/pipeline.py                     # the default variants, 3 rounds (~20 min)
    .venv/bin/python benchmarks/pipeline.py --variants standin,standin-si4 --levels 64 --rounds 3 --json out.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tritongen import proc  # noqa: E402
from tritongen.clients import bench, contract_io  # noqa: E402
from tritongen.runtime.startup import free_ports  # noqa: E402

BASELINE = "standin"
DEFAULT_VARIANTS = "standin,standin-si4,standin-lean,standin-floor,standin-20ms,standin-nometrics,mock,torch"

NOOP_POSTPROCESSING = '''"""NO-OP POSTPROCESSING (benchmarks/pipeline.py, variant standin-floor): reads nothing, decodes nothing,
returns one constant string per request. What the ensemble costs with it is the floor of any python-backend
step that runs once per streamed response."""
import numpy as np
import triton_python_backend_utils as pb_utils

_EMPTY = np.array([b"x"], dtype=object)


class TritonPythonModel:
    def execute(self, requests):
        return [pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor("OUTPUT", _EMPTY)]) for _ in requests]
'''


@dataclass
class Variant:
    name: str
    engine: str  # the cpu route's engine the repository is rendered with (standin: mock, then replaced)
    sets: list[str] = field(default_factory=list)
    step_ms: float = 0.0
    noop_post: bool = False


VARIANTS = {
    "standin": Variant("standin", "standin"),
    "standin-si4": Variant("standin-si4", "standin", ["serving.stream_interval=4"]),
    "standin-lean": Variant("standin-lean", "standin", ["serving.optional_outputs=[token_counts]"]),
    "standin-floor": Variant("standin-floor", "standin", noop_post=True),
    "standin-20ms": Variant("standin-20ms", "standin", step_ms=20.0),
    "standin-nometrics": Variant("standin-nometrics", "standin", ["serving.metrics.enabled=false"]),
    "mock": Variant("mock", "mock"),
    "torch": Variant("torch", "torch"),
}


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


def _component(pid: int) -> str:
    """Which part of the server a process is: tritonserver itself or one model's python-backend stub."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return "gone"
    text = b" ".join(argv).decode(errors="replace")
    if "triton_python_backend_stub" not in text:
        return "tritonserver"
    for model in ("postprocessing", "preprocessing", "tensorrt_llm_bls", "tensorrt_llm"):
        if f"/{model}/" in text:
            return model
    return "other stub"


def _pid_cpu(pid: int | None) -> float:
    """CPU seconds so far of one process (0 for None)."""
    if pid is None:
        return 0.0
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_by_component(pgid: int) -> dict[str, float]:
    """CPU seconds so far of each part of the server in process group ``pgid``."""
    out: dict[str, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for pid in proc.group_members(pgid):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        name = _component(pid)
        out[name] = out.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / tick
    return out


class Served:
    """One variant's repository, rendered and served."""

    def __init__(self, variant: Variant, workdir: Path):
        from transformers import AutoTokenizer

        from tritongen.paths import cache_dir
        from tritongen.render import write_repo
        from tritongen.runtime import local
        from tritongen.runtime.command import ServeOptions
        from tritongen.spec import load_spec
        from tritongen.tiny import build

        self.variant = variant
        tiny = build(cache_dir() / "models" / "tiny")
        engine = "mock" if variant.engine == "standin" else variant.engine
        options = {"route": "cpu", "name": f"pipeline-{variant.name}", "cpu.engine": engine}
        repo = write_repo(load_spec("tiny", options=options, sets=variant.sets), workdir / variant.name, force=True)
        if variant.engine == "standin":
            shutil.copyfile(ROOT / "benchmarks" / "standin_engine.py", repo / "tensorrt_llm" / "1" / "model.py")
            with open(repo / "tensorrt_llm" / "config.pbtxt", "a") as fh:
                fh.write(f'parameters {{ key: "standin_step_ms" value {{ string_value: "{variant.step_ms}" }} }}\n')
        if variant.noop_post:
            (repo / "postprocessing" / "1" / "model.py").write_text(NOOP_POSTPROCESSING)
        http, grpc, metrics = free_ports(3)
        self.record = local.start(f"bench-pipeline-{variant.name}", [repo],
                                  ServeOptions(http_port=http, grpc_port=grpc, metrics_port=metrics), timeout=300)
        self.fronts: dict[str, tuple[str, int]] = {}  # target -> (OpenAI base URL, pid)
        self.text = "The river ran past the old mill and under the stone bridge. In the morning the light was cold."
        self.prompt_ids = AutoTokenizer.from_pretrained(tiny)(self.text)["input_ids"]

    def start_fronts(self):
        """The OpenAI front over the ensemble and the direct front (tokenizer in the front, tensorrt_llm in Triton)."""
        from tritongen.clients.openai import launch

        for target, direct in (("openai-ensemble", False), ("openai-direct", True)):
            url, pid = launch._launch(self.record, free_ports(1)[0], direct=direct)
            self.fronts[target] = (url.removeprefix("http://"), pid)

    def stop(self):
        from tritongen.runtime import local

        for _, pid in self.fronts.values():
            proc.stop_pid(pid, timeout=10)
        local.stop(self.record)


async def measure(served: Served, target: str, levels: list[int], output_len: int, per_stream: int) -> list[dict]:
    """One round of one variant and target over every level."""
    front_pid = None
    if target.startswith("openai-"):
        url, front_pid = served.fronts[target]
        config = bench.BenchConfig(url=url, protocol="openai", model=served.record.name, output_len=output_len,
                                   warmup=0, exact_output=False)
        from tritongen.clients.bench.openai_transport import OpenAITransport

        transport = OpenAITransport(config)
    else:
        config = bench.BenchConfig(url=served.record.grpc_url, model=target, output_len=output_len, warmup=0,
                                   exact_output=True)
        transport = (DirectTransport(config, served.prompt_ids) if target == "tensorrt_llm"
                     else bench.GrpcTransport(config))
    prompt = bench.Prompt(served.text)
    rows = []
    pgid = served.record.pid
    try:
        await bench.run_level(bench.BenchConfig(**{**config.__dict__, "requests": 8}), 8, [prompt],
                              transport=transport)  # warm-up
        for c in levels:
            config.requests = max(16, per_stream * c)
            before, front0 = cpu_by_component(pgid), _pid_cpu(front_pid)
            level = await bench.run_level(config, c, [prompt], transport=transport)
            after, front1 = cpu_by_component(pgid), _pid_cpu(front_pid)
            per_1k = 1e6 / max(level.output_tokens, 1)
            parts = {k: (after.get(k, 0.0) - before.get(k, 0.0)) * per_1k for k in after}
            rows.append({
                "variant": served.variant.name, "target": target, "concurrency": c, "requests": level.completed,
                "errors": level.errors, "tokens": level.output_tokens, "tokens_per_s": level.output_tokens_per_s,
                "ttft_p50_ms": level.ttft_ms.p50 or 0.0, "ttft_p99_ms": level.ttft_ms.p99 or 0.0,
                "itl_p50_ms": level.itl_ms.p50 or 0.0, "itl_p99_ms": level.itl_ms.p99 or 0.0,
                "server_cpu_ms_per_1k": sum(parts.values()), "server_cpu_parts_ms_per_1k": parts,
                "client_cpu_ms_per_1k": level.client_cpu_ms_per_1k_tokens or 0.0,
                "front_cpu_ms_per_1k": (front1 - front0) * per_1k,
                "load_1min": os.getloadavg()[0],
            })
            if level.errors:
                print(f"  {served.variant.name} {target} c={c}: {level.errors} errors: {level.error_messages}")
            print("  " + _row_line(rows[-1]), flush=True)
    finally:
        await transport.close()
    return rows


def _row_line(r: dict) -> str:
    return (f"{r['variant']:<18}{r['target']:<16}c={r['concurrency']:<3}{r['tokens_per_s']:8.0f} tok/s  TTFT p50 "
            f"{r['ttft_p50_ms']:6.1f} p99 {r['ttft_p99_ms']:7.1f} ms  ITL p50 {r['itl_p50_ms']:5.2f} p99 "
            f"{r['itl_p99_ms']:6.2f} ms  server {r['server_cpu_ms_per_1k']:6.1f}  client "
            f"{r['client_cpu_ms_per_1k']:5.1f}" + (f"  front {r['front_cpu_ms_per_1k']:6.1f}" if r["front_cpu_ms_per_1k"]
                                                    else "") + " ms CPU/1k tok"
            + (f"  ERRORS {r['errors']}" if r["errors"] else ""))


def summarize_rounds(rows: list[dict]) -> list[dict]:
    """One row per (variant, target, concurrency): each figure's median over the rounds, with min and max."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["variant"], r["target"], r["concurrency"]), []).append(r)
    out = []
    for (variant, target, c), rs in groups.items():
        row: dict = {"variant": variant, "target": target, "concurrency": c, "rounds": len(rs)}
        for key, value in rs[0].items():
            if key not in row and isinstance(value, (int, float)):
                values = [r[key] for r in rs]
                row[key] = statistics.median(values)
                row[key + "_range"] = (min(values), max(values))
        parts = {k for r in rs for k in r["server_cpu_parts_ms_per_1k"]}
        row["server_cpu_parts_ms_per_1k"] = {
            k: statistics.median(r["server_cpu_parts_ms_per_1k"].get(k, 0.0) for r in rs) for k in sorted(parts)}
        out.append(row)
    return out


def compare(medians: list[dict], variant: str, c: int) -> dict | None:
    """The ensemble of ``variant`` against the engine alone on the same server."""
    get = {(r["variant"], r["target"]): r for r in medians if r["concurrency"] == c}
    e, d = get.get((variant, "ensemble")), get.get((variant, "tensorrt_llm"))
    if e is None or d is None:
        return None
    parts = {k: e["server_cpu_parts_ms_per_1k"].get(k, 0.0) - d["server_cpu_parts_ms_per_1k"].get(k, 0.0)
             for k in set(e["server_cpu_parts_ms_per_1k"]) | set(d["server_cpu_parts_ms_per_1k"])}
    return {
        "variant": variant, "concurrency": c,
        "throughput_kept": e["tokens_per_s"] / d["tokens_per_s"],
        "throughput_kept_range": (e["tokens_per_s_range"][0] / d["tokens_per_s_range"][1],
                                  e["tokens_per_s_range"][1] / d["tokens_per_s_range"][0]),
        "added_server_cpu_ms_per_1k": e["server_cpu_ms_per_1k"] - d["server_cpu_ms_per_1k"],
        "added_by_part_ms_per_1k": {k: v for k, v in sorted(parts.items()) if abs(v) >= 0.5},
        "ttft_p99_ratio": e["ttft_p99_ms"] / max(d["ttft_p99_ms"], 1e-9),
        "itl_p50_ms": e["itl_p50_ms"], "baseline_itl_p50_ms": d["itl_p50_ms"],
    }


def compare_fronts(medians: list[dict], c: int) -> dict | None:
    """The OpenAI front's direct path against the front over the ensemble (both on the baseline variant)."""
    get = {r["target"]: r for r in medians if r["variant"] == BASELINE and r["concurrency"] == c}
    e, d = get.get("openai-ensemble"), get.get("openai-direct")
    if e is None or d is None:
        return None
    return {
        "variant": "openai-direct", "baseline": "openai-ensemble", "concurrency": c,
        "throughput_ratio": d["tokens_per_s"] / e["tokens_per_s"],
        "triton_cpu_ms_per_1k": (e["server_cpu_ms_per_1k"], d["server_cpu_ms_per_1k"]),
        "front_cpu_ms_per_1k": (e["front_cpu_ms_per_1k"], d["front_cpu_ms_per_1k"]),
        "ttft_p99_ms": (e["ttft_p99_ms"], d["ttft_p99_ms"]),
    }


def _fronts_line(s: dict) -> str:
    (te, td), (fe, fd), (pe, pd) = s["triton_cpu_ms_per_1k"], s["front_cpu_ms_per_1k"], s["ttft_p99_ms"]
    return (f"OpenAI front direct vs over the ensemble c={s['concurrency']:<3}: {s['throughput_ratio'] * 100:5.1f}% of "
            f"the tokens/s; Triton CPU {te:.0f} -> {td:.0f}, front CPU {fe:.0f} -> {fd:.0f}, together {te + fe:.0f} "
            f"-> {td + fd:.0f} ms/1k tok; TTFT p99 {pe:.1f} -> {pd:.1f} ms")


def _compare_line(s: dict) -> str:
    kept = s["throughput_kept"] * 100
    lo, hi = (x * 100 for x in s["throughput_kept_range"])
    flag = ("  ** above 100%: the baseline is suspect (the engine alone cannot be slower than the pipeline "
            "around it), or the difference is noise **" if kept > 100 else "")
    parts = ", ".join(f"{k} {v:+.0f}" for k, v in s["added_by_part_ms_per_1k"].items())
    return (f"{s['variant']:<18}c={s['concurrency']:<3}: keeps {kept:5.1f}% ({lo:.0f}-{hi:.0f}) of the "
            f"tokens/s, adds {s['added_server_cpu_ms_per_1k']:6.1f} ms server CPU/1k tok ({parts}), TTFT p99 "
            f"x{s['ttft_p99_ratio']:.2f}, ITL p50 {s['itl_p50_ms']:.2f} ms (alone {s['baseline_itl_p50_ms']:.2f})"
            + flag)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variants", default=DEFAULT_VARIANTS, help=f"comma list of: {', '.join(VARIANTS)}")
    ap.add_argument("--levels", default="1,8,32,64", help="concurrency levels")
    ap.add_argument("--output-len", type=int, default=128)
    ap.add_argument("--requests-per-stream", type=int, default=4, help="requests per concurrent stream")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds; figures are their medians")
    ap.add_argument("--json", type=Path, help="also write every figure here")
    ap.add_argument("--openai", action=argparse.BooleanOptionalAction, default=True,
                    help="also measure the OpenAI front over the ensemble vs its direct path (--direct), on the "
                    f"{BASELINE} variant")
    args = ap.parse_args()
    os.environ.setdefault("TRITONGEN_CACHE", str(ROOT / ".cache"))
    names = args.variants.split(",")
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        ap.error(f"unknown variant(s) {', '.join(unknown)}; choose from {', '.join(VARIANTS)}")
    levels = [int(x) for x in args.levels.split(",")]
    print(f"machine: {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}; tritonserver from the nvidia-pytriton "
          f"wheel; cpu route; {args.output_len} output tokens per request; {args.rounds} interleaved rounds")
    rows: list[dict] = []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="tritongen-pipeline-") as tmp:
        servers: list[Served] = []
        try:
            for name in names:
                servers.append(Served(VARIANTS[name], Path(tmp)))
                if args.openai and name == BASELINE:
                    servers[-1].start_fronts()
            for r in range(args.rounds):
                print(f"\nround {r + 1}/{args.rounds}:")
                for served in servers:
                    for target in ("tensorrt_llm", "ensemble", *served.fronts):
                        rows += asyncio.run(measure(served, target, levels, args.output_len,
                                                    args.requests_per_stream))
        finally:
            for served in servers:
                served.stop()
    medians = summarize_rounds(rows)
    print(f"\nmedians of {args.rounds} rounds ({time.perf_counter() - started:.0f} s):")
    for r in sorted(medians, key=lambda r: (names.index(r["variant"]), r["target"], r["concurrency"])):
        print("  " + _row_line(r))
    print("\nensemble vs the engine alone (medians; range: worst-best pairing of the rounds):")
    summary = []
    for name in names:
        for c in levels:
            s = compare(medians, name, c)
            if s:
                summary.append(s)
                print("  " + _compare_line(s))
    for c in levels:
        s = compare_fronts(medians, c)
        if s:
            summary.append(s)
            print("  " + _fronts_line(s))
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "medians": medians, "summary": summary}, indent=2))
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
