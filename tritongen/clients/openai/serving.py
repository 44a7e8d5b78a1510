"""What the routes call: the server's configuration, its counters, and one request run to its answer, with stop
sequences cut and cancellation when the client leaves."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from . import adapters as lora_adapters
from . import choices, logprobs
from .backend import TritonBackend
from .mapping import Generation, Reply, StopScanner, sse
from .protocol import OpenAIError, Usage

log = logging.getLogger("tritongen.openai")

DEFAULT_PORT = 9000
#: Largest request body accepted (--max-body-bytes); a bigger one is refused before it is read or parsed.
DEFAULT_MAX_BODY_BYTES = 8 * 2**20


@dataclass
class ServerConfig:
    triton_url: str
    model_name: str
    triton_model: str = "ensemble"
    stop_model: str | None = "auto"  #: "auto": the same repository's tensorrt_llm
    api_key: str | None = None
    tool_parser: str | None = None  #: tools.PARSERS; None: requests with tools are refused
    default_max_tokens: int = 256
    timeout: float = 300.0
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    #: The direct path (direct.py): this repository's tokenizer in the front, its tensorrt_llm model in Triton.
    direct_repo: str | None = None
    #: serving.model_prefix of that repository.
    model_prefix: str = ""
    created: int = field(default_factory=lambda: int(time.time()))


@dataclass
class Stats:
    active: int = 0
    completed: int = 0
    cancelled: int = 0
    failed: int = 0


class Service:
    """What the routes call: request validation, generation with stop handling, response building."""

    def __init__(self, cfg: ServerConfig):
        self.cfg = cfg
        if cfg.direct_repo:
            from pathlib import Path

            from .direct import DirectBackend

            self.triton = DirectBackend(cfg.triton_url, Path(cfg.direct_repo), cfg.model_prefix, timeout=cfg.timeout)
        else:
            self.triton = TritonBackend(cfg.triton_url, cfg.triton_model, timeout=cfg.timeout,
                                        stop_model=cfg.stop_model)
        self.stats = Stats()
        #: The front's /metrics (clients/openai/metrics.py), when prometheus-client is installed.
        self.metrics = None
        self._adapters: tuple[str, ...] | None = None  # the repository's LoRA adapters, once Triton answered

    async def adapters(self) -> tuple[str, ...]:
        """The LoRA adapters served besides the base model (adapters.py), asked of Triton until it answers."""
        if self._adapters is None and self.triton.stub is not None:
            self._adapters = await lora_adapters.discover(self.triton.stub, self.cfg.triton_model)
        return self._adapters or ()

    async def model_ids(self) -> list[str]:
        """What /v1/models lists: the base model, then each adapter."""
        return [self.cfg.model_name, *await self.adapters()]

    async def adapter_for(self, name: str) -> str | None:
        """The adapter a request's ``model`` names (None: the base model); an unknown name is a 404."""
        if name == self.cfg.model_name:
            return None
        if name in await self.adapters():
            return name
        served = ", ".join(f"`{m}`" for m in await self.model_ids())
        raise OpenAIError(404, f"The model `{name}` does not exist. This server serves {served}.",
                          param="model", code="model_not_found")

    async def run(self, gen: Generation, request_id: str, *, index: int = 0) -> AsyncIterator[tuple[str, Any]]:
        """Yield ("text", delta) and ("logprobs", tokens) events, then one ("end", (finish_reason, usage)).
        ``index``: the choice's; the prompt of an answer with n choices is counted once, with choice 0."""
        scanner = StopScanner(gen.stop)
        counts: dict[str, int] = {}
        self.stats.active += 1
        outcome = "cancelled"
        metrics, n_in, n_out = self.metrics, 0, 0
        started = metrics.started() if metrics else 0.0
        try:
            async with contextlib.aclosing(self.triton.stream(request_id, gen)) as pieces:
                async for piece in pieces:
                    for key, value in piece.counts.items():
                        counts[key] = max(counts.get(key, 0), value)
                    if piece.logprobs:
                        yield "logprobs", logprobs.tokens_of(piece.text, piece.logprobs, piece.tops)
                    out = scanner.push(piece.text)
                    if out:
                        if metrics and started:
                            metrics.first_text(started)
                            started = 0.0
                        yield "text", out
                    if scanner.hit is not None:
                        break  # closing the stream cancels the rest
            if scanner.hit is None:
                tail = scanner.flush()
                if tail:
                    yield "text", tail
            n_in, n_out = counts.get("num_input_tokens", 0), counts.get("num_output_tokens", 0)
            finish = "stop" if scanner.hit is not None or n_out < gen.max_tokens else "length"
            outcome = "completed"
            yield "end", (finish, Usage(prompt_tokens=n_in, completion_tokens=n_out, total_tokens=n_in + n_out))
        except OpenAIError:
            outcome = "failed"
            raise
        finally:
            self.stats.active -= 1
            if metrics:
                metrics.ended(n_in if index == 0 else 0, n_out) if outcome == "completed" else metrics.ended()
            setattr(self.stats, outcome, getattr(self.stats, outcome) + 1)
            if outcome == "cancelled":
                log.info("request %s cancelled (client disconnected)", request_id)

    async def _choices(self, gens: list[Generation], reply: Reply) -> AsyncIterator[tuple[int, str, Any]]:
        """The events of every choice, as (index, kind, value) in the order they come. The first error ends them
        all (the other requests are cancelled)."""
        if len(gens) == 1:
            async with contextlib.aclosing(self.run(gens[0], reply.choice_request_id(0))) as events:
                async for kind, value in events:
                    yield 0, kind, value
            return
        queue: asyncio.Queue = asyncio.Queue()

        async def pump(i: int, gen: Generation) -> None:
            try:
                async with contextlib.aclosing(self.run(gen, reply.choice_request_id(i), index=i)) as events:
                    async for kind, value in events:
                        queue.put_nowait((i, kind, value))
            except OpenAIError as err:
                queue.put_nowait((i, "error", err))
            except Exception as exc:  # a bug in one choice must fail the answer, not leave it a choice short
                log.exception("request %s failed", reply.choice_request_id(i))
                queue.put_nowait((i, "error", OpenAIError(500, f"choice {i} failed: {exc}", type_="server_error")))
            finally:
                queue.put_nowait((i, "done", None))

        tasks = [asyncio.ensure_future(pump(i, g)) for i, g in enumerate(gens)]
        try:
            running = len(tasks)
            while running:
                i, kind, value = await queue.get()
                if kind == "done":
                    running -= 1
                elif kind == "error":
                    raise value
                else:
                    yield i, kind, value
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def whole(self, gens: list[Generation], reply: Reply) -> tuple[int, dict]:
        """(HTTP status, body) of a non-streamed answer; an error becomes OpenAI's error body."""
        outcomes = [choices.Outcome() for _ in gens]
        try:
            async with contextlib.aclosing(self._choices(gens, reply)) as events:
                async for i, kind, value in events:
                    outcomes[i].add(kind, value)
        except OpenAIError as err:
            return err.status, err.body.model_dump()
        return 200, reply.whole(choices.whole_choices(reply, outcomes), choices.total_usage(
            [o.usage for o in outcomes]))

    async def stream(self, gens: list[Generation], reply: Reply) -> AsyncIterator[bytes]:
        """The server-sent events of a streamed answer. The first event is awaited here, so that an error before
        the first token is raised (and answered with its HTTP status) rather than sent as an event."""
        events = self._choices(gens, reply)
        try:
            first = await events.__anext__()
        except StopAsyncIteration:
            first = None
        except OpenAIError:
            await events.aclose()
            raise
        return self._chunks(first, events, reply, len(gens))

    async def _chunks(self, first, events, reply: Reply, n: int) -> AsyncIterator[bytes]:
        streams = [choices.ChoiceStream(reply, i) for i in range(n)]
        usages: list[Usage | None] = [None] * n
        try:
            for s in streams:
                for data in s.opening():
                    yield data
            pending = [first] if first is not None else []
            while True:
                if pending:
                    i, kind, value = pending.pop()
                else:
                    try:
                        i, kind, value = await events.__anext__()
                    except StopAsyncIteration:
                        break
                if kind == "end":
                    usages[i] = value[1]
                for data in streams[i].event(kind, value):
                    yield data
            if reply.include_usage:
                yield reply.usage_chunk(choices.total_usage(usages))
            yield sse("[DONE]")
        except OpenAIError as err:
            yield sse(err.body)
            yield sse("[DONE]")
        finally:
            await events.aclose()
