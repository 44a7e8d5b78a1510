#!/usr/bin/env python3
"""Soak: many concurrent streams for a long time against the served tiny repository (MOCK engine, echo mode).

Starts a real tritonserver (the nvidia-pytriton one) on the cpu route with the MOCK engine streaming each prompt's
own tokens back (so the text is known and full of multi-byte characters), then keeps ``--streams`` gRPC streams
busy for ``--minutes``. Every request's streamed text is compared with the same prompt's non-streamed answer.
Half the requests send no request id and a quarter share the id "1" (what client scripts do), the rest a unique
one. Prints, at the end: requests, errors, text mismatches, tokens/s, and the server's resident memory (tritonserver
plus every python-backend stub: its process group) sampled every ``--sample-s`` seconds, with the slope of a
least-squares line through the samples after the first minute. Figures, not assertions.

    .venv/bin/python benchmarks/soak.py                       # 256 streams, 10 minutes
    .venv/bin/python benchmarks/soak.py --streams 64 --minutes 2 --json soak.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import struct
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tritongen import proc  # noqa: E402
from tritongen.clients import contract_io  # noqa: E402
from tritongen.runtime.startup import free_ports  # noqa: E402

PROMPTS = [
    "L'élève a répondu: «déjà vu», puis il a souri.",
    "東京の古い水車小屋のそばを川が流れていた。",
    "Ein Fluss floss an der alten Mühle vorbei — schön, nicht wahr?",
    "The river 🌊 ran past the old mill 🏚️ and under the stone bridge.",
    "Ça coûte 5 € ou 4,30 £ — ¿dónde está la estación?",
    "수차 옆으로 강이 흘렀다. 아침 빛은 차가웠다.",
    "Plain ASCII text about a river, a mill and a bridge in the morning.",
    "Смешанный текст: мельница, река и мост 🌉.",
]



def group_rss_mb(pgid: int) -> float:
    """Resident memory of every process in the server's process group, in MB."""
    total = 0
    for pid in proc.group_members(pgid):
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
                    break
        except OSError:
            continue
    return total / 1024


def rss_by_process(pgid: int) -> dict[str, float]:
    """MB resident per process of the server's group: tritonserver and each python-backend stub by model."""
    out: dict[str, float] = {}
    for pid in proc.group_members(pgid):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            rss = next(int(line.split()[1]) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                       if line.startswith("VmRSS:"))
        except (OSError, StopIteration):
            continue
        name = Path(argv[1].decode()).parent.parent.name if argv[0].endswith(b"_stub") and len(argv) > 1 else (
            Path(argv[0].decode()).name)
        out[name] = out.get(name, 0.0) + rss / 1024
    return out


def slope_per_minute(samples: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, MB) samples, in MB per minute."""
    if len(samples) < 2:
        return 0.0
    xs = [t for t, _ in samples]
    ys = [v for _, v in samples]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    var = sum((x - mx) ** 2 for x in xs)
    if not var:
        return 0.0
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / var * 60


def _bytes_elements(raw: bytes) -> list[bytes]:
    out, i = [], 0
    while i + 4 <= len(raw):
        (n,) = struct.unpack_from("<I", raw, i)
        out.append(raw[i + 4 : i + 4 + n])
        i += 4 + n
    return out


class Streams:
    """gRPC ModelStreamInfer against the ensemble, one call per request (as tritonclient's stream_infer does)."""

    def __init__(self, url: str, model: str, max_tokens: int):
        import grpc
        from tritonclient.grpc import service_pb2_grpc

        self.channel = grpc.aio.insecure_channel(url, options=[("grpc.max_receive_message_length", 64 << 20)])
        self.stub = service_pb2_grpc.GRPCInferenceServiceStub(self.channel)
        self.model = model
        self.max_tokens = max_tokens

    def _request(self, prompt: str, stream: bool, request_id: str):
        inputs = contract_io.client_inputs({"text_input": prompt, "max_tokens": self.max_tokens, "stream": stream})
        return inputs.infer_request(self.model, request_id, ["text_output"], empty_final_response=False)

    async def one(self, prompt: str, *, stream: bool, request_id: str, timeout: float = 120.0) -> tuple[str, str | None, int]:
        """(text, error, responses) for one request."""
        req = self._request(prompt, stream, request_id)

        async def requests():
            yield req

        call = self.stub.ModelStreamInfer(requests(), timeout=timeout)
        chunks: list[bytes] = []
        responses = 0
        final = False
        error = None
        try:
            async for resp in call:
                if resp.error_message:
                    error = " ".join(resp.error_message.split())[:200]
                    break
                ir = resp.infer_response
                responses += 1
                for i, out in enumerate(ir.outputs):
                    if out.name == "text_output" and i < len(ir.raw_output_contents):
                        chunks.extend(_bytes_elements(ir.raw_output_contents[i]))
                param = ir.parameters.get("triton_final_response")
                # Read on to the end of the call rather than breaking off: the server ends it after the final
                # response (the request side is already half-closed).
                if (param is not None and param.bool_param) or not stream:
                    final = True
        except Exception as exc:  # grpc.aio.AioRpcError: counted, the soak goes on
            error = f"{type(exc).__name__}: {str(exc)[:200]}"
        finally:
            if not final or error is not None:
                # Cancel only a stream the server has not ended: after the final response the request side is
                # half-closed and the server closes the call itself (tritongen's bench does the same).
                call.cancel()
        if error is None and not final and stream:
            error = "stream ended before the final response"
        return b"".join(chunks).decode("utf-8", errors="replace"), error, responses

    async def close(self) -> None:
        await self.channel.close()


async def soak(url: str, pgid: int, streams: int, minutes: float, max_tokens: int, sample_s: float) -> dict:
    client = Streams(url, "ensemble", max_tokens)
    expected = {}
    for p in PROMPTS:
        text, err, _ = await client.one(p, stream=False, request_id="soak-expected")
        if err:
            raise SystemExit(f"non-streamed reference request failed: {err}")
        expected[p] = text
    deadline = time.monotonic() + minutes * 60
    counts = {"requests": 0, "errors": 0, "mismatches": 0, "responses": 0}
    first_errors: list[str] = []
    first_mismatch: list[tuple[str, str]] = []
    seq = 0

    async def worker(w: int) -> None:
        nonlocal seq
        while time.monotonic() < deadline:
            seq += 1
            prompt = PROMPTS[seq % len(PROMPTS)]
            kind = seq % 4  # 0,1: no id; 2: the shared id "1"; 3: a unique id
            request_id = "" if kind < 2 else ("1" if kind == 2 else f"soak-{w}-{seq}")
            text, err, responses = await client.one(prompt, stream=True, request_id=request_id)
            counts["requests"] += 1
            counts["responses"] += responses
            if err:
                counts["errors"] += 1
                if len(first_errors) < 5:
                    first_errors.append(err)
            elif text != expected[prompt]:
                counts["mismatches"] += 1
                if len(first_mismatch) < 3:
                    first_mismatch.append((expected[prompt], text))

    samples: list[tuple[float, float]] = []
    per_process: list[tuple[float, dict[str, float]]] = []
    t0 = time.monotonic()

    async def sampler() -> None:
        while time.monotonic() < deadline:
            samples.append((time.monotonic() - t0, group_rss_mb(pgid)))
            per_process.append((samples[-1][0], rss_by_process(pgid)))
            print(f"  {samples[-1][0]:6.0f} s  server RSS {samples[-1][1]:7.1f} MB  requests {counts['requests']}"
                  f"  errors {counts['errors']}  mismatches {counts['mismatches']}", flush=True)
            await asyncio.sleep(sample_s)

    cpu0 = proc.group_cpu_seconds(pgid)
    await asyncio.gather(sampler(), *(worker(i) for i in range(streams)))
    elapsed = time.monotonic() - t0
    cpu = proc.group_cpu_seconds(pgid) - cpu0
    samples.append((elapsed, group_rss_mb(pgid)))
    await client.close()
    per_process.append((elapsed, rss_by_process(pgid)))
    steady = [s for s in samples if s[0] >= 60] or samples
    slopes = {}
    for name in per_process[-1][1]:
        series = [(t, d.get(name, 0.0)) for t, d in per_process if t >= 60] or [(t, d.get(name, 0.0)) for t, d in per_process]
        slopes[name] = round(slope_per_minute(series), 2)
    return {
        "streams": streams, "minutes": round(elapsed / 60, 2), **counts,
        "responses_per_s": round(counts["responses"] / elapsed, 1),
        "server_cpu_s": round(cpu, 1),
        "rss_start_mb": round(samples[0][1], 1), "rss_end_mb": round(samples[-1][1], 1),
        "rss_max_mb": round(max(v for _, v in samples), 1),
        "rss_slope_mb_per_min_after_1min": round(slope_per_minute(steady), 2),
        "rss_end_mb_by_process": {k: round(v, 1) for k, v in per_process[-1][1].items()},
        "rss_slope_mb_per_min_by_process": slopes,
        "first_errors": first_errors, "first_mismatches": first_mismatch,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--streams", type=int, default=256)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--max-tokens", type=int, default=48)
    ap.add_argument("--mock-step-ms", type=float, default=5.0, help="MOCK engine pace per decode step")
    ap.add_argument("--sample-s", type=float, default=15.0)
    ap.add_argument("--json", type=Path, help="write the figures here too")
    args = ap.parse_args()

    from tritongen.paths import cache_dir
    from tritongen.render import write_repo
    from tritongen.runtime import local
    from tritongen.runtime.command import ServeOptions
    from tritongen.spec import load_spec
    from tritongen.tiny import build

    build(cache_dir() / "models" / "tiny")
    with tempfile.TemporaryDirectory(prefix="tritongen-soak-") as tmp:
        options = {"route": "cpu", "name": "soak", "cpu.engine": "mock"}
        sets = [f"cpu.mock_step_ms={args.mock_step_ms}", "cpu.mock_echo=true",
                f"limits.max_batch_size={max(args.streams, 8)}"]
        repo = write_repo(load_spec("tiny", options=options, sets=sets), Path(tmp) / "soak", force=True)
        http, grpc_port, metrics = free_ports(3)
        record = local.start("bench-soak", [repo], ServeOptions(http_port=http, grpc_port=grpc_port,
                                                                metrics_port=metrics), timeout=300)
        try:
            print(f"soak: {args.streams} streams for {args.minutes} min against {record.grpc_url} "
                  f"(MOCK engine, echo, {args.mock_step_ms} ms/step, {args.max_tokens} tokens per request)")
            result = asyncio.run(soak(record.grpc_url, record.pid, args.streams, args.minutes, args.max_tokens,
                                      args.sample_s))
        finally:
            local.stop(record)
    print(json.dumps(result, indent=2, ensure_ascii=False))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
