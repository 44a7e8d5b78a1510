"""Streaming load generator and metrics for a served repository (``tritongen bench``).

It speaks the ensemble's client contract (text_input, max_tokens, min_tokens, stream=true,
return_num_output_tokens, a unique request id per request) over

- gRPC bidirectional streaming with ``grpc.aio`` and tritonclient's protobuf stubs (the default). The stubs are
  used directly rather than through ``tritonclient.grpc.aio.InferenceServerClient`` because that client cannot
  ask for ``triton_enable_empty_final_response`` (a reserved parameter), without which a decoupled stream never
  says that a request is finished; requests are built once per prompt and copied, and only the two INT32 count
  outputs are decoded, so the client stays cheap;
- HTTP ``/v2/models/<model>/generate_stream`` (server-sent events) with ``aiohttp``.

Every level runs ``concurrency`` workers that each keep one request in flight (closed loop) until ``requests``
have been sent or ``duration`` seconds have passed. Per level it reports request throughput, output tokens/s,
TTFT, inter-token latency (ITL: every gap between tokens), time per output token (TPOT: per-request mean gap),
end-to-end latency (mean/p50/p90/p99/max), errors and the client's own CPU time (``time.process_time``, all
threads) per 1000 output tokens.

Reuse from Python (results are plain dataclasses with ``to_dict()``):

    from tritongen.bench import BenchConfig, run, run_level, load_prompts
    result = run(BenchConfig(url="127.0.0.1:8001", concurrency=[1, 8], requests=32))
    for level in result.levels:
        print(level.concurrency, level.output_tokens_per_s, level.ttft_ms.p99)

    # or one level inside your own event loop (e.g. while sampling server CPU):
    prompts = load_prompts(config)
    level = await run_level(config, 64, prompts)
"""

from __future__ import annotations

import asyncio
import csv
import itertools
import json
import math
import platform
import re
import struct
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .errors import ClientError, MissingDependency, SloViolation, UsageError

SCHEMA = "tritongen-bench/1"
_FINAL = "triton_final_response"


# -- configuration -------------------------------------------------------------------------------------------


@dataclass
class BenchConfig:
    url: str = "127.0.0.1:8001"
    protocol: str = "grpc"  #: grpc | http
    model: str = "ensemble"
    concurrency: list[int] = field(default_factory=lambda: [1, 8, 32, 64])
    input_len: int = 128  #: prompt tokens (synthetic prompts)
    output_len: int = 128  #: tokens generated per request
    requests: int | None = None  #: requests per level (default 4 x concurrency, at least 8)
    duration: float | None = None  #: seconds per level instead of a request count
    prompts_file: str | None = None  #: JSONL with {"text": ...} (or "prompt"/"text_input") per line
    tokenizer_dir: str | None = None  #: tokenizer for synthetic prompts (default: the served model's)
    #: send min_tokens = max_tokens so every request generates output_len tokens; None: when the target model
    #: has a min_tokens input (the llmapi route's model has none)
    exact_output: bool | None = None
    warmup: int = 1  #: unmeasured requests before the first level
    timeout: float = 600.0  #: seconds one request may take
    headers: dict[str, str] = field(default_factory=dict)
    repo: str | None = None  #: the served repository (for its tritongen.lock.yaml), when known

    def validate(self) -> None:
        if self.protocol not in ("grpc", "http"):
            raise UsageError(f"protocol {self.protocol!r}: use grpc or http")
        if not self.concurrency or any(c < 1 for c in self.concurrency):
            raise UsageError(f"concurrency levels must be positive integers, got {self.concurrency}")
        if self.requests is not None and self.duration is not None:
            raise UsageError("give --requests or --duration, not both")
        if self.requests is not None and self.requests < 1:
            raise UsageError(f"--requests must be at least 1, got {self.requests}")
        if self.duration is not None and self.duration <= 0:
            raise UsageError(f"--duration must be positive, got {self.duration}")
        if self.input_len < 1 or self.output_len < 1:
            raise UsageError("--input-len and --output-len must be at least 1")

    def requests_for(self, concurrency: int) -> int | None:
        if self.duration is not None:
            return None
        return self.requests if self.requests is not None else max(8, 4 * concurrency)


@dataclass
class Prompt:
    text: str
    tokens: int | None = None  #: prompt length in tokens when known (tokenizer-made prompts)
    output_len: int | None = None  #: per-prompt override from a prompts file


# -- prompts --------------------------------------------------------------------------------------------------


def load_prompts(config: BenchConfig, *, count: int = 64, tokenizer_dir: str | None = None) -> tuple[list[Prompt], str]:
    """Prompts for the run and a description of where they came from."""
    if config.prompts_file:
        return _prompts_from_file(Path(config.prompts_file)), f"file:{config.prompts_file}"
    tok_dir = config.tokenizer_dir or tokenizer_dir
    if tok_dir:
        return synthetic_prompts(tok_dir, config.input_len, count), f"synthetic:{tok_dir}"
    words = _corpus_words()
    prompts = [Prompt(" ".join(words[(i * 37 + j) % len(words)] for j in range(config.input_len)))
               for i in range(count)]
    return prompts, "words (no tokenizer found: prompt lengths in tokens are approximate)"


def _prompts_from_file(path: Path) -> list[Prompt]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise UsageError(f"{path}: cannot read prompts file ({exc.strerror})") from None
    prompts = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UsageError(f"{path}:{n}: not valid JSON ({exc.msg})") from None
        if isinstance(item, str):
            item = {"text": item}
        text = next((item[k] for k in ("text", "prompt", "text_input") if isinstance(item, dict) and k in item), None)
        if not isinstance(text, str):
            raise UsageError(f"{path}:{n}: expected a string or an object with \"text\" (or \"prompt\")")
        out = item.get("output_len", item.get("max_tokens"))
        prompts.append(Prompt(text, None, int(out) if out else None))
    if not prompts:
        raise UsageError(f"{path}: no prompts")
    return prompts


def _corpus_text() -> str:
    from importlib import resources

    return (resources.files("tritongen") / "data" / "tiny_corpus.txt").read_text(encoding="utf-8")


def _corpus_words() -> list[str]:
    return _corpus_text().split()


def synthetic_prompts(tokenizer_dir: str, length: int, count: int) -> list[Prompt]:
    """``count`` different prompts of exactly ``length`` tokens (without special tokens) for this tokenizer:
    windows of tritongen's bundled corpus, re-encoded and trimmed until the count is exact."""
    try:
        from transformers import AutoTokenizer
    except ImportError:
        raise MissingDependency("transformers is needed to make prompts of a given token length") from None
    try:
        tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    except Exception as exc:  # noqa: BLE001 - any loading failure is a usage problem here
        raise UsageError(f"cannot load a tokenizer from {tokenizer_dir}: {exc}".splitlines()[0]) from None
    ids = tok.encode(_corpus_text(), add_special_tokens=False)
    if not ids:
        raise UsageError(f"the tokenizer in {tokenizer_dir} produced no tokens")
    while len(ids) < length * 2:
        ids = ids + ids
    prompts = []
    for i in range(count):
        start = (i * 7919) % (len(ids) - length)
        window = ids[start:start + length]
        text = tok.decode(window, skip_special_tokens=True)
        for _ in range(8):  # decoding and re-encoding may merge or split tokens at the edges
            again = tok.encode(text, add_special_tokens=False)
            if len(again) == length:
                break
            if len(again) > length:
                text = tok.decode(again[:length], skip_special_tokens=True)
            else:
                extra = ids[(start + length) % len(ids):][: length - len(again)] or ids[: length - len(again)]
                text = tok.decode(again + extra, skip_special_tokens=True)
        prompts.append(Prompt(text, len(tok.encode(text, add_special_tokens=False))))
    return prompts


# -- results --------------------------------------------------------------------------------------------------


@dataclass
class Stats:
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


def _record_tokens(rec: RequestRecord, now: float, count: int | None, has_text: bool) -> None:
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


# -- transports ------------------------------------------------------------------------------------------------


def _split_url(url: str, default_port: int) -> str:
    url = url.split("://", 1)[-1].rstrip("/")
    return url if ":" in url else f"{url}:{default_port}"


class GrpcTransport:
    """gRPC ModelStreamInfer, one stream per request, on one shared HTTP/2 channel."""

    def __init__(self, config: BenchConfig):
        import grpc
        from tritonclient.grpc import service_pb2, service_pb2_grpc

        self._pb = service_pb2
        self.config = config
        self.url = _split_url(config.url, 8001)
        options = [("grpc.max_receive_message_length", 64 * 1024 * 1024)]
        self.channel = grpc.aio.insecure_channel(self.url, options=options)
        self.stub = service_pb2_grpc.GRPCInferenceServiceStub(self.channel)
        self.metadata = tuple((k.lower(), v) for k, v in config.headers.items())
        self._templates: dict[int, Any] = {}
        self._offered: frozenset[str] | None = None  # the model's outputs (asked once); empty: unknown

    async def _offered_outputs(self) -> frozenset[str]:
        """Token counts are asked for only where the model carries them; otherwise tokens are counted by text
        chunks."""
        if self._offered is None:
            from .client import model_output_names

            self._offered = await model_output_names(self.stub, self.config.model, metadata=self.metadata) or frozenset()
        return self._offered

    def _template(self, prompt: Prompt):
        key = id(prompt)
        tmpl = self._templates.get(key)
        if tmpl is not None:
            return tmpl
        req = self._pb.ModelInferRequest(model_name=self.config.model)

        def add(name: str, dtype: str, raw: bytes) -> None:
            t = req.inputs.add()
            t.name, t.datatype = name, dtype
            t.shape.extend([1, 1])
            req.raw_input_contents.append(raw)

        text = prompt.text.encode("utf-8")
        out_len = prompt.output_len or self.config.output_len
        add("text_input", "BYTES", struct.pack("<I", len(text)) + text)
        add("max_tokens", "INT32", struct.pack("<i", out_len))
        if self.config.exact_output:
            add("min_tokens", "INT32", struct.pack("<i", out_len))
        add("stream", "BOOL", b"\x01")
        offered = self._offered or frozenset()
        # Containers before TensorRT-LLM 1.0 have no token counts: their ensemble refuses the flags by name.
        if not offered or "num_output_tokens" in offered:
            add("return_num_output_tokens", "BOOL", b"\x01")
        if not offered or "num_input_tokens" in offered:
            add("return_num_input_tokens", "BOOL", b"\x01")
        for name in ("text_output", "num_output_tokens", "num_input_tokens"):
            if name == "text_output" or not offered or name in offered:
                req.outputs.add().name = name
        req.parameters["triton_enable_empty_final_response"].bool_param = True
        self._templates[key] = req
        return req

    async def send(self, prompt: Prompt, request_id: str, level_start: float) -> RequestRecord:
        if self._offered is None:
            await self._offered_outputs()
        req = self._pb.ModelInferRequest()
        req.CopyFrom(self._template(prompt))
        req.id = request_id

        async def requests():
            yield req

        t0 = time.perf_counter()
        rec = RequestRecord(request_id, t0 - level_start)
        call = self.stub.ModelStreamInfer(requests(), metadata=self.metadata, timeout=self.config.timeout)
        final = False
        try:
            async for resp in call:
                now = time.perf_counter() - t0
                if resp.error_message:
                    rec.error = " ".join(resp.error_message.split())[:300]
                    break
                ir = resp.infer_response
                count = None
                has_text = False
                for i, out in enumerate(ir.outputs):
                    name = out.name
                    if name == "num_output_tokens":
                        count = struct.unpack_from("<i", ir.raw_output_contents[i])[0]
                    elif name == "num_input_tokens" and rec.input_tokens is None:
                        rec.input_tokens = struct.unpack_from("<i", ir.raw_output_contents[i])[0]
                    elif name == "text_output":
                        has_text = len(ir.raw_output_contents[i]) > 4
                _record_tokens(rec, now, count, has_text)
                if _FINAL in ir.parameters and ir.parameters[_FINAL].bool_param:
                    # The request side is already half-closed, so the server now ends the stream itself.
                    # Cancelling instead would leave the ensemble with a dangling request at shutdown.
                    final = True
            if not final and rec.error is None:
                rec.error = "stream ended before the final response"
        except Exception as exc:  # grpc.aio.AioRpcError (deadline, unavailable...): recorded, the run goes on
            rec.error = _grpc_message(exc, self.config.timeout)
        finally:
            if not final or rec.error is not None:
                call.cancel()
        rec.end = time.perf_counter() - level_start
        return rec

    async def close(self) -> None:
        await self.channel.close()


class HttpTransport:
    """HTTP generate_stream (server-sent events) with one aiohttp session."""

    def __init__(self, config: BenchConfig):
        import aiohttp

        self.config = config
        self.base = f"http://{_split_url(config.url, 8000)}"
        self.path = f"/v2/models/{config.model}/generate_stream"
        self.session = aiohttp.ClientSession(
            self.base, connector=aiohttp.TCPConnector(limit=0),
            timeout=aiohttp.ClientTimeout(total=config.timeout),
            headers={"Content-Type": "application/json", **config.headers})
        self._bodies: dict[int, str] = {}

    def _body(self, prompt: Prompt, request_id: str) -> bytes:
        key = id(prompt)
        tail = self._bodies.get(key)
        if tail is None:
            out_len = prompt.output_len or self.config.output_len
            body: dict[str, Any] = {"text_input": prompt.text, "max_tokens": out_len, "stream": True,
                                    "return_num_output_tokens": True, "return_num_input_tokens": True}
            if self.config.exact_output:
                body["min_tokens"] = out_len
            tail = json.dumps(body)[1:]
            self._bodies[key] = tail
        return ('{"id": ' + json.dumps(request_id) + ", " + tail).encode("utf-8")

    async def send(self, prompt: Prompt, request_id: str, level_start: float) -> RequestRecord:
        t0 = time.perf_counter()
        rec = RequestRecord(request_id, t0 - level_start)
        try:
            async with self.session.post(self.path, data=self._body(prompt, request_id)) as resp:
                if resp.status != 200:
                    text = (await resp.text())[:300]
                    try:
                        text = json.loads(text).get("error", text)
                    except (json.JSONDecodeError, AttributeError):
                        pass
                    rec.error = f"HTTP {resp.status}: {' '.join(str(text).split())}"
                else:
                    async for raw in resp.content:
                        if not raw.startswith(b"data:"):
                            continue
                        now = time.perf_counter() - t0
                        data = json.loads(raw[5:])
                        if "error" in data:
                            rec.error = " ".join(str(data["error"]).split())[:300]
                            break
                        if rec.input_tokens is None and "num_input_tokens" in data:
                            rec.input_tokens = _scalar(data["num_input_tokens"])
                        count = _scalar(data["num_output_tokens"]) if "num_output_tokens" in data else None
                        _record_tokens(rec, now, count, bool(data.get("text_output")))
        except TimeoutError:
            rec.error = f"timed out after {self.config.timeout:g} s"
        except Exception as exc:  # aiohttp.ClientError and friends
            rec.error = f"{type(exc).__name__}: {exc}"[:300]
        rec.end = time.perf_counter() - level_start
        return rec

    async def close(self) -> None:
        await self.session.close()


def _scalar(value) -> int:
    while isinstance(value, list):
        value = value[0] if value else 0
    return int(value)


def _grpc_message(exc: Exception, timeout: float) -> str:
    code = getattr(exc, "code", None)
    if callable(code) and getattr(code(), "name", "") == "DEADLINE_EXCEEDED":
        return f"timed out after {timeout:g} s"
    details = getattr(exc, "details", None)
    text = details() if callable(details) else str(exc)
    return " ".join(str(text).split())[:300] or type(exc).__name__


def make_transport(config: BenchConfig):
    return GrpcTransport(config) if config.protocol == "grpc" else HttpTransport(config)


# -- running ---------------------------------------------------------------------------------------------------

#: progress(concurrency, done, total_or_None, output_tokens, errors, elapsed_s)
Progress = Callable[[int, int, int | None, int, int, float], None]


async def run_level(config: BenchConfig, concurrency: int, prompts: list[Prompt], *, transport=None,
                    progress: Progress | None = None) -> LevelResult:
    """Run one concurrency level to completion and summarize it. Creates (and closes) a transport unless one
    is given; must be awaited inside a running event loop."""
    own = transport is None
    transport = transport or make_transport(config)
    total = config.requests_for(concurrency)
    deadline = None if config.duration is None else time.perf_counter() + config.duration
    counter = itertools.count()
    records: list[RequestRecord] = []
    tokens = errors = 0
    run_id = uuid.uuid4().hex[:8]
    cpu0, t0 = time.process_time(), time.perf_counter()

    async def worker() -> None:
        nonlocal tokens, errors
        while True:
            i = next(counter)
            if (total is not None and i >= total) or (deadline is not None and time.perf_counter() >= deadline):
                return
            rid = f"bench-{run_id}-c{concurrency}-{i}-{uuid.uuid4().hex}"
            rec = await transport.send(prompts[i % len(prompts)], rid, t0)
            records.append(rec)
            tokens += rec.output_tokens
            errors += rec.error is not None
            if progress is not None:
                progress(concurrency, len(records), total, tokens, errors, time.perf_counter() - t0)

    try:
        await asyncio.gather(*(worker() for _ in range(concurrency)))
    finally:
        if own:
            await transport.close()
    wall = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    return summarize(concurrency, records, wall, cpu)


async def _run_async(config: BenchConfig, prompts: list[Prompt], progress: Progress | None) -> list[LevelResult]:
    transport = make_transport(config)
    try:
        if config.warmup:
            warm = BenchConfig(**{**asdict(config), "requests": config.warmup, "duration": None})
            await run_level(warm, min(config.warmup, max(config.concurrency)), prompts, transport=transport)
        return [await run_level(config, c, prompts, transport=transport, progress=progress)
                for c in config.concurrency]
    finally:
        await transport.close()


def run(config: BenchConfig, *, prompts: list[Prompt] | None = None, progress: Progress | None = None,
        metadata: dict | None = None, check_ready: bool = True) -> BenchResult:
    """Run every concurrency level of ``config``; metadata (spec, versions) is collected unless given."""
    config.validate()
    meta = metadata if metadata is not None else collect_metadata(config)
    if check_ready:
        require_ready(config)
    if config.exact_output is None:
        inputs = meta.get("model_inputs")
        config.exact_output = not inputs or "min_tokens" in inputs
    if prompts is None:
        prompts, source = load_prompts(config, tokenizer_dir=meta.get("tokenizer_dir"))
        meta["prompts"] = source
    levels = asyncio.run(_run_async(config, prompts, progress))
    return BenchResult(config=config, levels=levels, metadata=meta)


def require_ready(config: BenchConfig) -> None:
    """ClientError unless the model answers ready at the URL (so a wrong port fails fast, not per request)."""
    from .client import LLMClient

    client = LLMClient(config.url, protocol=config.protocol, model=config.model, timeout=10,
                       headers=config.headers)
    if not client.ready():
        raise ClientError(f"model {config.model!r} is not ready at {client.url} ({config.protocol})",
                          hint="start it with `tritongen serve REPO`, or pass --url/--protocol/--model")


# -- metadata ----------------------------------------------------------------------------------------------------


def collect_metadata(config: BenchConfig, *, http_url: str | None = None) -> dict[str, Any]:
    """Spec (from the repository's lock file, else the server's model configs), versions and git revision."""
    from importlib import metadata as md

    from . import __version__

    meta: dict[str, Any] = {
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "target": {"url": config.url, "protocol": config.protocol, "model": config.model},
        "versions": {"tritongen": __version__, "python": platform.python_version(),
                     "platform": platform.platform()},
        "git_revision": git_revision(),
        "spec": None, "spec_source": None, "server": None, "tokenizer_dir": None,
    }
    for dist in ("tritonclient", "grpcio", "aiohttp"):
        try:
            meta["versions"][dist] = md.version(dist)
        except md.PackageNotFoundError:
            pass
    configs = _server_configs(config, http_url)
    if configs.get("server"):
        meta["server"] = configs["server"]
        meta["versions"]["tritonserver"] = configs["server"].get("version")
    lock = None
    if config.repo:
        from .repo.lock import read_lock

        lock = read_lock(Path(config.repo))
    if lock and isinstance(lock.get("spec"), dict):
        meta["spec"] = lock["spec"]
        meta["spec_source"] = f"{Path(config.repo) / 'tritongen.lock.yaml'}"
        # What the spec targets (the NGC image for the GPU host), not necessarily what served this run.
        meta["spec_container"] = lock.get("container")
        model = lock["spec"].get("model") or {}
        tok = model.get("tokenizer_dir") or model.get("checkpoint_dir")
        if tok and Path(tok).is_dir():
            meta["tokenizer_dir"] = str(tok)
    elif configs.get("models"):
        meta["spec"] = {"model_configs": configs["models"]}
        meta["spec_source"] = "server model configuration"
    models = configs.get("models") or {}
    # Whichever served model knows the tokenizer: preprocessing (engine/cpu routes), the target itself (the
    # llmapi route's front), or tensorrt_llm.
    from .client import companion

    for name in (companion(config.model, "preprocessing"), config.model, companion(config.model)):
        if meta["tokenizer_dir"] is not None:
            break
        params = (models.get(name) or {}).get("parameters") or {}
        tok = (params.get("tokenizer_dir") or {}).get("string_value")
        if tok and Path(tok).is_dir():
            meta["tokenizer_dir"] = tok
    target = models.get(config.model) or {}
    meta["model_inputs"] = [i.get("name") for i in target.get("input") or []] or None
    return meta


def _server_configs(config: BenchConfig, http_url: str | None) -> dict[str, Any]:
    """Server metadata and the model configs of the target model and its usual companions ({} when
    unreachable: metadata must never fail a benchmark)."""
    from .client import companion

    names = [config.model] + [n for n in (companion(config.model, role) for role in
                                          ("preprocessing", "tensorrt_llm", "postprocessing")) if n != config.model]
    out: dict[str, Any] = {"models": {}}
    try:
        if config.protocol == "http" or http_url:
            import urllib.request

            base = f"http://{_split_url(http_url or config.url, 8000)}"

            def get(path):
                with urllib.request.urlopen(base + path, timeout=5) as resp:
                    return json.loads(resp.read())

            out["server"] = {k: v for k, v in get("/v2").items() if k in ("name", "version")}
            for name in names:
                try:
                    out["models"][name] = get(f"/v2/models/{name}/config")
                except Exception:  # noqa: BLE001 - a missing companion model is fine
                    continue
        else:
            import tritonclient.grpc as grpcclient

            client = grpcclient.InferenceServerClient(_split_url(config.url, 8001))
            try:
                server = client.get_server_metadata(as_json=True, headers=config.headers)
                out["server"] = {"name": server.get("name"), "version": server.get("version")}
                for name in names:
                    try:
                        out["models"][name] = client.get_model_config(name, as_json=True,
                                                                      headers=config.headers).get("config")
                    except Exception:  # noqa: BLE001
                        continue
            finally:
                client.close()
    except Exception:  # noqa: BLE001 - unreachable server: the readiness check reports it
        return {}
    return out


def git_revision() -> str | None:
    """The git commit of the tritongen source tree (with '-dirty' when it has local changes), if any."""
    from . import proc
    from .errors import MissingDependency as Missing

    here = Path(__file__).resolve().parent
    try:
        rc, out = proc.run(["git", "-C", str(here), "rev-parse", "HEAD"], check=False, tail_lines=2)
        if rc != 0:
            return None
        rev = out.strip().splitlines()[-1]
        rc, status = proc.run(["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"],
                              check=False, tail_lines=1)
        return rev + ("-dirty" if rc == 0 and status.strip() else "")
    except Missing:
        return None


# -- SLOs ----------------------------------------------------------------------------------------------------------

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


# -- output files ---------------------------------------------------------------------------------------------------


def write_results(result: BenchResult, out_dir: Path, *, plot: bool = True) -> dict[str, Path]:
    """results.json, results.csv and (when matplotlib is installed) throughput_latency.png in ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    files = {"json": out_dir / "results.json", "csv": out_dir / "results.csv"}
    files["json"].write_text(json.dumps(result.to_dict(), indent=2, default=str) + "\n")
    rows = [lv.flat() for lv in result.levels]
    context = {"model": result.config.model, "protocol": result.config.protocol,
               "input_len": result.config.input_len, "output_len": result.config.output_len,
               "git_revision": result.metadata.get("git_revision"),
               "tritongen": (result.metadata.get("versions") or {}).get("tritongen"),
               "tritonserver": (result.metadata.get("versions") or {}).get("tritonserver"),
               "spec_source": result.metadata.get("spec_source")}
    with open(files["csv"], "w", newline="") as fh:
        if rows:
            writer = csv.DictWriter(fh, fieldnames=list(rows[0]) + list(context))
            writer.writeheader()
            for row in rows:
                writer.writerow({**row, **context})
    if plot:
        files["png"] = write_plot(result, out_dir / "throughput_latency.png")
    return files


def write_plot(result: BenchResult, path: Path) -> Path:
    """Throughput vs latency, one point per concurrency level (matplotlib, Agg backend)."""
    try:
        import matplotlib

        matplotlib.use("Agg", force=True)
        import matplotlib.pyplot as plt
    except ImportError:
        raise MissingDependency("matplotlib is needed for the plot", hint="pip install 'tritongen[bench]'") from None
    levels = [lv for lv in result.levels if lv.completed]
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.8))
    tps = [lv.output_tokens_per_s for lv in levels]
    for stat, style in (("p50", "o-"), ("p99", "s--")):
        left.plot(tps, [lv.e2e_ms.__dict__[stat] for lv in levels], style, label=f"end-to-end {stat}")
    for lv in levels:
        left.annotate(f"c={lv.concurrency}", (lv.output_tokens_per_s, lv.e2e_ms.p50), textcoords="offset points",
                      xytext=(4, 6), fontsize=8)
    left.set_xlabel("output tokens/s (all requests)")
    left.set_ylabel("request latency (ms)")
    left.set_title("throughput vs latency")
    left.grid(alpha=0.3)
    left.legend()
    conc = [lv.concurrency for lv in levels]
    for attr, stat, style in (("ttft_ms", "p50", "o-"), ("ttft_ms", "p99", "o--"), ("itl_ms", "p50", "s-"),
                              ("itl_ms", "p99", "s--")):
        right.plot(conc, [getattr(lv, attr).__dict__[stat] for lv in levels], style,
                   label=f"{attr.split('_')[0].upper()} {stat}")
    if len(set(conc)) > 1:
        right.set_xscale("log", base=2)
    right.set_xlabel("concurrency")
    right.set_ylabel("ms")
    right.set_title("TTFT and inter-token latency")
    right.grid(alpha=0.3)
    right.legend()
    cfg = result.config
    fig.suptitle(f"{cfg.model} over {cfg.protocol} at {cfg.url}: {cfg.input_len} in / {cfg.output_len} out tokens")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def format_table(levels: list[LevelResult]) -> str:
    """The per-level summary printed at the end of a run."""
    head = (f"{'conc':>5} {'reqs':>6} {'err':>4} {'req/s':>8} {'out tok/s':>10} {'TTFT p50/p99 ms':>17} "
            f"{'ITL p50/p99 ms':>16} {'E2E p50/p99 ms':>17} {'client CPU':>11}")
    lines = [head]

    def pair(s: Stats) -> str:
        return "-" if s.p50 is None else f"{s.p50:.1f}/{s.p99:.1f}"

    for lv in levels:
        cpu = "-" if lv.client_cpu_ms_per_1k_tokens is None else f"{lv.client_cpu_ms_per_1k_tokens:.0f}ms/1k"
        lines.append(f"{lv.concurrency:>5} {lv.requests:>6} {lv.errors:>4} {lv.request_throughput:>8.2f} "
                     f"{lv.output_tokens_per_s:>10.1f} {pair(lv.ttft_ms):>17} {pair(lv.itl_ms):>16} "
                     f"{pair(lv.e2e_ms):>17} {cpu:>11}")
    return "\n".join(lines)

