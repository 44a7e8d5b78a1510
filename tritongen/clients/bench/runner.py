"""Running the levels: closed-loop workers per concurrency level, warm-up, the readiness check."""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict

from ...errors import ClientError
from .. import contract_io
from .config import BenchConfig, Prompt
from .metadata import collect_metadata
from .prompts import load_prompts
from .results import BenchResult, LevelResult, RequestRecord, summarize
from .transports import make_transport

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
            rid = contract_io.request_id(prefix=f"bench-{run_id}-c{concurrency}-{i}-")
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
    if config.protocol == "openai":
        from .openai_transport import require_ready as openai_ready

        return openai_ready(config)
    from ..triton import LLMClient

    client = LLMClient(config.url, protocol=config.protocol, model=config.model, timeout=10,
                       headers=config.headers)
    if not client.ready():
        raise ClientError(f"model {config.model!r} is not ready at {client.url} ({config.protocol})",
                          hint="start it with `tritongen serve REPO`, or pass --url/--protocol/--model")
