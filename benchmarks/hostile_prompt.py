#!/usr/bin/env python3
"""What a hostile 50 MB prompt costs a running server: time to the refusal, the server's memory, the requests
running beside it.

Serves the tiny repository on the cpu route (MOCK engine by default: the pipeline, not a model, is measured) on
a real tritonserver bound to 127.0.0.1, keeps a few streaming requests going the whole time, and sends a prompt
of --mb megabytes once over HTTP generate and once over gRPC, to the ensemble and to tensorrt_llm_bls. For each
it prints the time until the error came back, the error text, the resident memory of tritonserver and its
python-backend stubs (summed over the server's process group, from /proc) before and after, and the side
requests' latency (median and max) before and during. Figures, not assertions.

    .venv/bin/python benchmarks/hostile_prompt.py
    .venv/bin/python benchmarks/hostile_prompt.py --mb 50 --side 4 --engine mock
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import statistics
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tritongen import proc  # noqa: E402
from tritongen.runtime.startup import free_ports  # noqa: E402


def memory_mb(pgid: int) -> dict[str, float]:
    """Memory of every live process in the server's process group (tritonserver and its python-backend stubs),
    summed, in MB: rss (VmRSS; the python backend's shared-memory regions count in every process that maps
    them), pss (proportional: shared pages split among the processes; what the server really holds), and the
    rss split into anon and shmem."""
    out = {"rss": 0.0, "pss": 0.0, "anon": 0.0, "shmem": 0.0}
    keys = {"VmRSS:": "rss", "RssAnon:": "anon", "RssShmem:": "shmem"}
    for pid in proc.group_members(pgid):
        try:
            with open(f"/proc/{pid}/status") as fh:
                for line in fh:
                    key = keys.get(line.split(":", 1)[0] + ":")
                    if key:
                        out[key] += int(line.split()[1]) / 1024
            with open(f"/proc/{pid}/smaps_rollup") as fh:
                for line in fh:
                    if line.startswith("Pss:"):
                        out["pss"] += int(line.split()[1]) / 1024
        except OSError:
            continue
    return out


class SideLoad:
    """Steady streaming requests (gRPC, ensemble) in threads; records each one's latency and when it ended."""

    def __init__(self, url: str, streams: int, max_tokens: int):
        from tritongen.clients.triton import GenerateParams, LLMClient

        self.client = LLMClient(url)
        self.params = GenerateParams(max_tokens=max_tokens)
        self.samples: list[tuple[float, float]] = []  # (end time, latency s)
        self.errors: list[str] = []
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(streams)]

    def start(self):
        for t in self.threads:
            t.start()

    def _run(self):
        from tritongen.errors import ClientError

        deadline = time.monotonic() + 600  # bounded even if the main thread dies
        while not self.stop.is_set() and time.monotonic() < deadline:
            t0 = time.monotonic()
            try:
                list(self.client.stream("The river ran past the old mill", self.params))
            except ClientError as exc:
                self.errors.append(str(exc))
                time.sleep(0.1)
                continue
            t1 = time.monotonic()
            with self.lock:
                self.samples.append((t1, t1 - t0))

    def window(self, start: float, end: float) -> list[float]:
        with self.lock:
            return [lat for t, lat in self.samples if start <= t <= end]

    def close(self):
        self.stop.set()
        for t in self.threads:
            t.join(30)


def send_http(url: str, model: str, prompt: bytes) -> tuple[float, str]:
    body = b'{"text_input": "' + prompt + b'", "max_tokens": 8}'
    req = urllib.request.Request(f"http://{url}/v2/models/{model}/generate", data=body, method="POST",
                                 headers={"Content-Type": "application/json"})
    t0 = time.monotonic()
    try:
        with urllib.request.urlopen(req, timeout=300) as resp:
            text = resp.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        text = exc.read().decode("utf-8", "replace")
    except OSError as exc:
        text = f"transport error: {exc}"
    took = time.monotonic() - t0
    try:
        text = json.loads(text).get("error", text[:200])
    except (json.JSONDecodeError, AttributeError):
        text = text[:200]
    return took, text


def send_grpc(url: str, model: str, prompt: bytes) -> tuple[float, str]:
    import numpy as np
    import tritonclient.grpc as grpcclient

    client = grpcclient.InferenceServerClient(url)
    results: queue.Queue = queue.Queue()
    text_in = grpcclient.InferInput("text_input", [1, 1], "BYTES")
    text_in.set_data_from_numpy(np.array([[prompt]], dtype=object))
    max_tokens = grpcclient.InferInput("max_tokens", [1, 1], "INT64")
    max_tokens.set_data_from_numpy(np.array([[8]], dtype=np.int64))
    t0 = time.monotonic()
    try:
        client.start_stream(callback=lambda result, error: results.put((result, error)))
        client.async_stream_infer(model, [text_in, max_tokens], request_id="hostile")
        try:
            result, error = results.get(timeout=300)
            text = " ".join(str(error).split()) if error is not None else "answered without an error"
        except queue.Empty:
            text = "no answer within 300 s"
    finally:
        took = time.monotonic() - t0
        client.stop_stream(cancel_requests=True)
        client.close()
    return took, text


def median_max(values: list[float]) -> str:
    if not values:
        return "no requests finished"
    return f"median {statistics.median(values) * 1000:.0f} ms, max {max(values) * 1000:.0f} ms (n={len(values)})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mb", type=float, default=50.0, help="size of the hostile prompt in MB")
    ap.add_argument("--side", type=int, default=4, help="side streams running the whole time")
    ap.add_argument("--side-tokens", type=int, default=32)
    ap.add_argument("--engine", default="mock", choices=["mock", "torch"])
    ap.add_argument("--step-ms", type=float, default=5.0, help="mock engine: ms per decode step")
    ap.add_argument("--settle", type=float, default=4.0, help="seconds of side load measured before/after")
    ap.add_argument("--repeat", type=int, default=5, help="hostile prompts sent again at the end (memory kept)")
    args = ap.parse_args()

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from tritongen.paths import cache_dir
    from tritongen.render import write_repo
    from tritongen.runtime import local
    from tritongen.runtime.command import ServeOptions
    from tritongen.spec import load_spec
    from tritongen.tiny import build

    build(cache_dir() / "models" / "tiny")
    workdir = Path(tempfile.mkdtemp(prefix="tritongen-hostile-"))
    options = {"route": "cpu", "name": "hostile", "cpu.engine": args.engine, "cpu.mock_step_ms": args.step_ms,
               "serving.bls": True}
    repo = write_repo(load_spec("tiny", options=options), workdir / "hostile", force=True)
    http, grpc, metrics = free_ports(3)
    record = local.start("bench-hostile", [repo], ServeOptions(http_port=http, grpc_port=grpc, metrics_port=metrics),
                         timeout=300)
    prompt = b"word " * int(args.mb * 1e6 / 5)
    print(f"server pid {record.pid}; hostile prompt {len(prompt) / 1e6:.1f} MB; {args.side} side streams of "
          f"{args.side_tokens} tokens ({args.engine} engine, {args.step_ms} ms/step)", flush=True)
    side = SideLoad(record.grpc_url, args.side, args.side_tokens)
    try:
        side.start()
        time.sleep(args.settle)  # warm up
        start_mem = memory_mb(record.pid)
        for protocol, model in (("http", "ensemble"), ("grpc", "ensemble"), ("http", "tensorrt_llm_bls"),
                                ("grpc", "tensorrt_llm_bls")):
            before_t = time.monotonic()
            time.sleep(args.settle)
            before = memory_mb(record.pid)
            sent = time.monotonic()
            peak = dict(before)
            done = threading.Event()

            def watch(peak=peak, done=done):
                while not done.is_set():
                    now = memory_mb(record.pid)
                    for key in peak:
                        peak[key] = max(peak[key], now[key])
                    time.sleep(0.05)

            watcher = threading.Thread(target=watch, daemon=True)
            watcher.start()
            send = send_http if protocol == "http" else send_grpc
            took, error = send(record.http_url if protocol == "http" else record.grpc_url, model, prompt)
            time.sleep(1.0)  # let the side requests that overlapped the refusal finish
            done.set()
            watcher.join()
            after = memory_mb(record.pid)
            during = side.window(sent, time.monotonic())
            baseline = side.window(before_t, sent)
            health = urllib.request.urlopen(f"http://{record.http_url}/v2/health/ready", timeout=10).status
            print(f"\n{protocol.upper()} {model}: refused in {took:.2f} s", flush=True)
            print(f"  error: {error[:300]}")
            for key, label in (("rss", "RSS"), ("pss", "PSS"), ("anon", "  of RSS: anon"), ("shmem", "  of RSS: shmem")):
                print(f"  server {label:<15} (sum over its process group): before {before[key]:6.0f} MB, peak "
                      f"+{peak[key] - before[key]:4.0f}, after +{after[key] - before[key]:4.0f}")
            print(f"  side requests before: {median_max(baseline)}")
            print(f"  side requests during: {median_max(during)}")
            if during and baseline:
                print(f"  latency change: median {(statistics.median(during) - statistics.median(baseline)) * 1000:+.0f}"
                      f" ms, max {(max(during) - max(baseline)) * 1000:+.0f} ms")
            print(f"  /v2/health/ready: {health}", flush=True)
        for _ in range(args.repeat):
            for protocol, model in (("http", "ensemble"), ("grpc", "tensorrt_llm_bls")):
                (send_http if protocol == "http" else send_grpc)(
                    record.http_url if protocol == "http" else record.grpc_url, model, prompt)
        end_mem = memory_mb(record.pid)
        print(f"\nafter {4 + 2 * args.repeat} hostile prompts in all: server RSS +{end_mem['rss'] - start_mem['rss']:.0f} MB, "
              f"PSS +{end_mem['pss'] - start_mem['pss']:.0f} MB since the first one")
        if side.errors:
            print(f"\nside request errors: {len(side.errors)} (first: {side.errors[0][:200]})")
    finally:
        side.close()
        local.stop(record)


if __name__ == "__main__":
    main()
