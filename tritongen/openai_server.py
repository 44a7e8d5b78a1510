"""An OpenAI-compatible HTTP API in front of a served tritongen repository.

Endpoints: ``GET /v1/models``, ``GET /v1/models/{id}``, ``POST /v1/completions``, ``POST /v1/chat/completions``
(both streamed with server-sent events or not) and ``GET /health``. Run it with ``tritongen openai --triton
grpc://127.0.0.1:8001`` or ``tritongen serve --openai``.

It talks to Triton over gRPC streaming (``ModelStreamInfer``) with the ensemble's client contract (text_input,
max_tokens, stream, stop_words, temperature, top_k, top_p, seed, penalties, apply_chat_template,
return_num_input_tokens/return_num_output_tokens -> text_output, num_input_tokens, num_output_tokens), which every
route serves under the model name ``ensemble``: the engine and cpu routes with Triton's ensemble, the llmapi route
with its front. So it works with any route and any launch mode, including multi-GPU leader mode, where Triton's
own OpenAI frontend does not (it needs TensorRT-LLM in-process).

Mapping and semantics:
- chat: the messages go to Triton as JSON in text_input with apply_chat_template=true; the repository formats
  them with the tokenizer's chat template.
- sampling follows OpenAI: temperature defaults to 1 and samples (top_p 1 unless given); temperature 0 is greedy.
- stop: sent to the engine as stop_words and also applied to the text here, so the reply never contains the stop
  sequence (OpenAI's rule) and ends exactly before it; the Triton request is cancelled once a stop is seen.
- usage: prompt_tokens / completion_tokens are the repository's num_input_tokens / num_output_tokens.
- cancellation: when the HTTP client disconnects, the gRPC stream is cancelled (Triton cancels the request) and a
  TensorRT-LLM ``stop`` for the request id is sent to ``tensorrt_llm``. The second is needed because Triton's
  ensemble scheduler does not pass a cancellation on to a step that is already running (core PR #263 cancels only
  the next step), so without it the engine would keep generating until max_tokens.
- errors use OpenAI's body ``{"error": {"message", "type", "param", "code"}}``: 400 for invalid requests (bad
  types, unsupported options such as n>1, a prompt plus max_tokens beyond the context), 401 for a missing or wrong
  API key, 404 for an unknown model or path, 500/503 when Triton fails or is unreachable.

Only the standard library, pydantic and numpy are imported at module level; FastAPI, uvicorn, grpc and
tritonclient are imported when the server starts, so ``start_background`` and ``demo_call`` stay cheap.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import os
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from .errors import MissingDependency, ServerError

log = logging.getLogger("tritongen.openai")

API_KEY_ENV = "TRITONGEN_OPENAI_API_KEY"
DEFAULT_PORT = 9000
#: Largest request body accepted (--max-body-bytes); a bigger one is refused before it is read or parsed.
DEFAULT_MAX_BODY_BYTES = 8 * 2**20
#: The client contract's integers: max_tokens and top_k go to INT32 tensors (the engine's sizes).
INT32_MAX = 2**31 - 1


# -- request / response schema (OpenAI's) ----------------------------------------------------------------


class _Request(BaseModel):
    # strict: "5" is not an int and true is not a number, as with OpenAI. Unknown fields are ignored. NaN and
    # infinity (Python's json reads them) are no numbers here: the engine would turn them into NaN logits.
    model_config = ConfigDict(extra="ignore", strict=True, allow_inf_nan=False)


class StreamOptions(_Request):
    include_usage: bool = False


class _Sampling(_Request):
    model: str
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    top_k: int | None = Field(None, ge=0, le=INT32_MAX, description="Extension: sample from the k most likely tokens.")
    n: int = Field(1, ge=1, le=128)
    stream: bool = False
    stream_options: StreamOptions | None = None
    stop: str | list[str] | None = None
    seed: int | None = Field(None, ge=0, le=2**64 - 1)
    presence_penalty: float | None = Field(None, ge=-2, le=2)
    frequency_penalty: float | None = Field(None, ge=-2, le=2)
    logit_bias: dict[str, float] | None = None
    user: str | None = None


class CompletionRequest(_Sampling):
    prompt: str | list[str]
    max_tokens: int | None = Field(16, ge=1, le=INT32_MAX)
    echo: bool = False
    logprobs: int | None = None
    best_of: int | None = None
    suffix: str | None = None


class ContentPart(_Request):
    type: str
    text: str | None = None


class ChatMessage(_Request):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[ContentPart] | None = None
    name: str | None = None


class ChatCompletionRequest(_Sampling):
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=1, le=INT32_MAX)
    max_completion_tokens: int | None = Field(None, ge=1, le=INT32_MAX)
    logprobs: bool | None = None
    top_logprobs: int | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: Any = None
    response_format: dict[str, Any] | None = None


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class CompletionChoice(BaseModel):
    index: int = 0
    text: str
    logprobs: None = None
    finish_reason: str | None


class Completion(BaseModel):
    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: Usage | None = None


class ChatMessageOut(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class ChatChoice(BaseModel):
    index: int = 0
    message: ChatMessageOut
    logprobs: None = None
    finish_reason: str | None


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[ChatChoice]
    usage: Usage | None = None


class ChatDelta(BaseModel):
    role: Literal["assistant"] | None = None
    content: str | None = None


class ChatChunkChoice(BaseModel):
    index: int = 0
    delta: ChatDelta
    logprobs: None = None
    finish_reason: str | None = None


class ChatCompletionChunk(BaseModel):
    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChatChunkChoice]
    usage: Usage | None = None


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "tritongen"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorDetail


class OpenAIError(Exception):
    """An error answered in OpenAI's shape."""

    def __init__(self, status: int, message: str, *, type_: str = "invalid_request_error",
                 param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.status = status
        self.body = ErrorResponse(error=ErrorDetail(message=message, type=type_, param=param, code=code))


def error_json(status: int, message: str, **kw) -> tuple[int, dict]:
    err = OpenAIError(status, message, **kw)
    return err.status, err.body.model_dump()


# -- what one request asks for ---------------------------------------------------------------------------


@dataclass
class Generation:
    """One request in the client contract's terms."""

    text: str
    chat: bool
    max_tokens: int
    temperature: float | None
    top_p: float | None
    top_k: int | None
    seed: int | None
    stop: list[str]
    presence_penalty: float | None
    frequency_penalty: float | None

    def tensors(self) -> dict[str, tuple[np.ndarray, str]]:
        """Inputs of the client contract (name -> (value, Triton dtype)), shaped [1, 1] / [1, n]."""
        def one(value, np_dtype, triton):
            return np.array([[value]], dtype=np_dtype), triton

        out = {
            "text_input": one(self.text.encode("utf-8"), object, "BYTES"),
            "max_tokens": one(self.max_tokens, np.int32, "INT32"),
            "stream": one(True, np.bool_, "BOOL"),
            "return_num_input_tokens": one(True, np.bool_, "BOOL"),
            "return_num_output_tokens": one(True, np.bool_, "BOOL"),
        }
        if self.chat:
            out["apply_chat_template"] = one(True, np.bool_, "BOOL")
        temperature = 1.0 if self.temperature is None else self.temperature
        if temperature > 0:
            # OpenAI samples unless temperature is 0; TensorRT-LLM samples only with top_k > 1 or top_p > 0.
            out["temperature"] = one(temperature, np.float32, "FP32")
            out["top_p"] = one(1.0 if self.top_p is None else self.top_p, np.float32, "FP32")
            if self.top_k:
                out["top_k"] = one(self.top_k, np.int32, "INT32")
        if self.seed is not None:
            out["seed"] = one(self.seed, np.uint64, "UINT64")
        if self.presence_penalty:
            out["presence_penalty"] = one(self.presence_penalty, np.float32, "FP32")
        if self.frequency_penalty:
            out["frequency_penalty"] = one(self.frequency_penalty, np.float32, "FP32")
        if self.stop:
            out["stop_words"] = (np.array([[s.encode("utf-8") for s in self.stop]], dtype=object), "BYTES")
        return out


def _stops(stop: str | list[str] | None) -> list[str]:
    stops = [stop] if isinstance(stop, str) else list(stop or [])
    if len(stops) > 4:
        raise OpenAIError(400, f"stop: at most 4 sequences, got {len(stops)}", param="stop")
    if any(not s for s in stops):
        raise OpenAIError(400, "stop: sequences must not be empty", param="stop")
    return stops


def _common_checks(req: _Sampling) -> None:
    if req.n != 1:
        raise OpenAIError(400, f"n: only n=1 is supported (got {req.n}); send n separate requests",
                          param="n", code="unsupported_value")
    if req.logit_bias:
        raise OpenAIError(400, "logit_bias is not supported", param="logit_bias", code="unsupported_parameter")


def completion_generation(req: CompletionRequest, default_max_tokens: int) -> Generation:
    _common_checks(req)
    prompts = [req.prompt] if isinstance(req.prompt, str) else req.prompt
    if len(prompts) != 1:
        raise OpenAIError(400, f"prompt: send exactly one prompt per request (got {len(prompts)})", param="prompt",
                          code="unsupported_value")
    if not prompts[0]:
        raise OpenAIError(400, "prompt must not be empty", param="prompt")
    for name, bad in (("echo", req.echo), ("logprobs", req.logprobs is not None), ("suffix", req.suffix is not None),
                      ("best_of", req.best_of not in (None, 1))):
        if bad:
            raise OpenAIError(400, f"{name} is not supported", param=name, code="unsupported_parameter")
    return Generation(
        text=prompts[0], chat=False, max_tokens=req.max_tokens or default_max_tokens, temperature=req.temperature,
        top_p=req.top_p, top_k=req.top_k, seed=req.seed, stop=_stops(req.stop),
        presence_penalty=req.presence_penalty, frequency_penalty=req.frequency_penalty,
    )


def chat_generation(req: ChatCompletionRequest, default_max_tokens: int) -> Generation:
    _common_checks(req)
    if req.logprobs or req.top_logprobs:
        raise OpenAIError(400, "logprobs is not supported", param="logprobs", code="unsupported_parameter")
    if req.tools:
        raise OpenAIError(400, "tools are not supported", param="tools", code="unsupported_parameter")
    if req.response_format and req.response_format.get("type", "text") != "text":
        raise OpenAIError(400, "response_format: only {\"type\": \"text\"} is supported", param="response_format",
                          code="unsupported_value")
    messages = []
    for i, m in enumerate(req.messages):
        if m.role == "tool":
            raise OpenAIError(400, "tool messages are not supported", param=f"messages[{i}].role")
        if isinstance(m.content, list):
            parts = []
            for part in m.content:
                if part.type != "text" or part.text is None:
                    raise OpenAIError(400, f"content parts of type {part.type!r} are not supported (text only)",
                                      param=f"messages[{i}].content")
                parts.append(part.text)
            content = "".join(parts)
        else:
            content = m.content or ""
        messages.append({"role": "system" if m.role == "developer" else m.role, "content": content})
    return Generation(
        text=json.dumps(messages, ensure_ascii=False), chat=True,
        max_tokens=req.max_completion_tokens or req.max_tokens or default_max_tokens, temperature=req.temperature,
        top_p=req.top_p, top_k=req.top_k, seed=req.seed, stop=_stops(req.stop),
        presence_penalty=req.presence_penalty, frequency_penalty=req.frequency_penalty,
    )


class StopScanner:
    """Cuts streamed text before the first stop sequence, holding back a tail that may be the start of one."""

    def __init__(self, stops: list[str]):
        self.stops = [s for s in stops if s]
        self.pending = ""
        self.hit: str | None = None

    def push(self, text: str) -> str:
        if self.hit is not None:
            return ""
        buf = self.pending + text
        found = [(buf.find(s), s) for s in self.stops if s in buf]
        if found:
            at, self.hit = min(found)
            self.pending = ""
            return buf[:at]
        keep = 0
        for s in self.stops:
            for k in range(min(len(s) - 1, len(buf)), 0, -1):
                if buf.endswith(s[:k]):
                    keep = max(keep, k)
                    break
        self.pending = buf[len(buf) - keep:] if keep else ""
        return buf[: len(buf) - keep]

    def flush(self) -> str:
        out, self.pending = self.pending, ""
        return out


# -- Triton over gRPC ------------------------------------------------------------------------------------


@dataclass
class Piece:
    text: str
    counts: dict[str, int]


def _classify(message: str) -> OpenAIError:
    """A Triton request error as an OpenAI error: the request's fault (400) or the server's (500)."""
    text = " ".join(str(message).split())
    low = text.lower()
    if "max_seq_len" in low or "max_input_len" in low or "longer than" in low:
        return OpenAIError(400, text, param="max_tokens" if "max_tokens" in low else None,
                           code="context_length_exceeded")
    if "text_input is" in low and "bytes" in low:
        return OpenAIError(400, text, param="prompt", code="context_length_exceeded")
    if any(k in low for k in ("is empty", "not supported", "apply_chat_template", "must be", "must not",
                              "chat template", "is not allowed", "too large", "is required")):
        return OpenAIError(400, text, code="invalid_value")
    if "unknown model" in low or "is not found" in low:
        return OpenAIError(503, text, type_="server_error", code="model_unavailable")
    return OpenAIError(500, text, type_="server_error", code="triton_error")


class TritonBackend:
    """Asynchronous gRPC client for one Triton model speaking the client contract; one channel, many streams."""

    def __init__(self, url: str, model: str, *, timeout: float = 300.0, stop_model: str | None = "auto"):
        self.target = url.split("://", 1)[-1].rstrip("/")
        if ":" not in self.target:
            self.target += ":8001"
        self.model = model
        self.timeout = timeout
        from .client import companion

        self.stop_model = companion(model) if stop_model == "auto" else (stop_model or None)
        self._stop_inputs: dict | None = None  # None: not probed yet
        self._counts: list[str] | None = None  # token-count outputs the model carries; None: not asked yet
        self.channel = None
        self.stub = None
        self._tasks: set[asyncio.Task] = set()

    async def start(self) -> None:
        import grpc
        from tritonclient.grpc import service_pb2_grpc

        self.channel = grpc.aio.insecure_channel(
            self.target, options=[("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)])
        self.stub = service_pb2_grpc.GRPCInferenceServiceStub(self.channel)

    async def close(self) -> None:
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=5)
        if self.channel is not None:
            await self.channel.close()

    async def ready(self) -> tuple[bool, str]:
        import grpc
        from tritonclient.grpc import service_pb2

        try:
            live = await self.stub.ServerReady(service_pb2.ServerReadyRequest(), timeout=5)
            if not live.ready:
                return False, "Triton is not ready"
            model = await self.stub.ModelReady(service_pb2.ModelReadyRequest(name=self.model), timeout=5)
            return (True, "ready") if model.ready else (False, f"Triton model {self.model!r} is not ready")
        except grpc.aio.AioRpcError as exc:
            return False, f"Triton at {self.target} is unreachable: {exc.code().name}"

    async def _count_outputs(self) -> list[str]:
        """num_input_tokens / num_output_tokens if the model carries them (serving.optional_outputs may leave
        them out); usage then reads 0."""
        wanted = ["num_input_tokens", "num_output_tokens"]
        if self._counts is None:
            from .client import model_output_names

            offered = await model_output_names(self.stub, self.model, timeout=5)
            if offered is None:
                return wanted  # not known yet (server starting): ask again next time
            self._counts = [n for n in wanted if n in offered]
        return self._counts

    @staticmethod
    def _request(model: str, request_id: str, tensors: dict[str, tuple[np.ndarray, str]], outputs: list[str]):
        from tritonclient.grpc import service_pb2
        from tritonclient.utils import serialize_byte_tensor

        req = service_pb2.ModelInferRequest(model_name=model, id=request_id)
        for name, (array, dtype) in tensors.items():
            tensor = req.inputs.add()
            tensor.name = name
            tensor.datatype = dtype
            tensor.shape.extend(array.shape)
            if dtype == "BYTES":
                raw = serialize_byte_tensor(array)
                req.raw_input_contents.append(raw.item() if raw.size else b"")
            else:
                req.raw_input_contents.append(np.ascontiguousarray(array).tobytes())
        for name in outputs:
            req.outputs.add().name = name
        # An empty final response tells the client the stream is over (decoupled models may end without data).
        req.parameters["triton_enable_empty_final_response"].bool_param = True
        return req

    async def stream(self, request_id: str, gen: Generation) -> AsyncIterator[Piece]:
        """Yield the text pieces of one request. Leaving early (break, exception, task cancellation) cancels the
        gRPC stream and stops the request in the engine."""
        import grpc
        from tritonclient.grpc import InferResult

        counts = await self._count_outputs()
        tensors = gen.tensors()
        for name in ("num_input_tokens", "num_output_tokens"):
            if name not in counts:  # no such output (e.g. TensorRT-LLM < 1.0): the ensemble has no such flag either
                tensors.pop("return_" + name, None)
        request = self._request(self.model, request_id, tensors, ["text_output", *counts])
        done = asyncio.Event()

        async def requests():
            yield request
            await done.wait()  # keep our side of the stream open until the last response

        call = self.stub.ModelStreamInfer(requests())
        finished = False
        try:
            while True:
                try:
                    message = await asyncio.wait_for(call.read(), timeout=self.timeout)
                except asyncio.TimeoutError:
                    raise OpenAIError(504, f"no response from Triton within {self.timeout:.0f} s", type_="server_error",
                                      code="timeout") from None
                except grpc.aio.AioRpcError as exc:
                    if exc.code() == grpc.StatusCode.UNAVAILABLE:
                        raise OpenAIError(503, f"Triton at {self.target} is unavailable", type_="server_error",
                                          code="triton_unavailable") from None
                    raise _classify(exc.details() or exc.code().name) from None
                if message is grpc.aio.EOF:
                    finished = True
                    return
                if message.error_message:
                    finished = True
                    raise _classify(message.error_message)
                response = message.infer_response
                result = InferResult(response)
                text_arr = result.as_numpy("text_output")
                text = "" if text_arr is None else "".join(
                    x.decode("utf-8", "replace") if isinstance(x, bytes) else str(x)
                    for x in np.asarray(text_arr).reshape(-1))
                counts = {}
                for name in ("num_input_tokens", "num_output_tokens"):
                    arr = result.as_numpy(name)
                    if arr is not None and np.asarray(arr).size:
                        counts[name] = int(np.asarray(arr).reshape(-1)[0])
                final = response.parameters.get("triton_final_response")
                is_final = bool(final is not None and final.bool_param)
                if text or counts:
                    yield Piece(text, counts)
                if is_final:
                    finished = True
                    return
        finally:
            done.set()
            if not finished:
                call.cancel()
                self._spawn(self.stop(request_id))

    def _spawn(self, coro) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _stop_request(self):
        """The `stop` request shape the stop model takes (TensorRT-LLM's engine or llmapi model), or None."""
        if self._stop_inputs is not None:
            return self._stop_inputs or None
        from tritonclient.grpc import service_pb2

        self._stop_inputs = {}
        try:
            meta = await self.stub.ModelMetadata(service_pb2.ModelMetadataRequest(name=self.stop_model), timeout=5)
        except Exception:
            return None
        names = {t.name for t in meta.inputs}
        if "stop" not in names:
            return None
        if "input_ids" in names:  # TensorRT-LLM backend contract (engine route, cpu route)
            self._stop_inputs = {
                "input_ids": (np.array([[0]], np.int32), "INT32"),
                "input_lengths": (np.array([[1]], np.int32), "INT32"),
                "request_output_len": (np.array([[1]], np.int32), "INT32"),
                "stop": (np.array([[True]], np.bool_), "BOOL"),
            }
        elif "text_input" in names:  # llmapi model (max_batch_size 0)
            self._stop_inputs = {
                "text_input": (np.array([b""], dtype=object), "BYTES"),
                "stop": (np.array([True], np.bool_), "BOOL"),
            }
        return self._stop_inputs or None

    async def stop(self, request_id: str) -> bool:
        """Best effort: ask the engine model to drop ``request_id`` (TensorRT-LLM's `stop` input)."""
        if not self.stop_model:
            return False
        try:
            inputs = await self._stop_request()
            if not inputs:
                return False
            req = self._request(self.stop_model, request_id, inputs, [])
            done = asyncio.Event()

            async def requests():
                yield req
                await done.wait()

            call = self.stub.ModelStreamInfer(requests())
            try:
                await asyncio.wait_for(call.read(), timeout=10)
            finally:
                done.set()
                call.cancel()
            log.info("request %s: client gone, sent stop to %s", request_id, self.stop_model)
            return True
        except Exception as exc:  # the request may be finished already
            log.info("request %s: stop not delivered (%s)", request_id, exc)
            return False


# -- the app ---------------------------------------------------------------------------------------------


@dataclass
class ServerConfig:
    triton_url: str
    model_name: str
    triton_model: str = "ensemble"
    stop_model: str | None = "auto"  #: "auto": the same repository's tensorrt_llm
    api_key: str | None = None
    default_max_tokens: int = 256
    timeout: float = 300.0
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
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
        self.triton = TritonBackend(cfg.triton_url, cfg.triton_model, timeout=cfg.timeout, stop_model=cfg.stop_model)
        self.stats = Stats()

    def check_model(self, name: str) -> None:
        if name != self.cfg.model_name:
            raise OpenAIError(404, f"The model `{name}` does not exist. This server serves `{self.cfg.model_name}`.",
                              param="model", code="model_not_found")

    async def run(self, gen: Generation, request_id: str) -> AsyncIterator[tuple[str, Any]]:
        """Yield ("text", delta) events, then one ("end", (finish_reason, usage))."""
        scanner = StopScanner(gen.stop)
        counts: dict[str, int] = {}
        self.stats.active += 1
        outcome = "cancelled"
        try:
            async with contextlib.aclosing(self.triton.stream(request_id, gen)) as pieces:
                async for piece in pieces:
                    for key, value in piece.counts.items():
                        counts[key] = max(counts.get(key, 0), value)
                    out = scanner.push(piece.text)
                    if out:
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
            setattr(self.stats, outcome, getattr(self.stats, outcome) + 1)
            if outcome == "cancelled":
                log.info("request %s cancelled (client disconnected)", request_id)


def _sse(data: BaseModel | dict | str, *, usage: bool = True) -> bytes:
    if isinstance(data, BaseModel):
        # OpenAI sends "usage" in chunks only when stream_options.include_usage asks for it.
        data = data.model_dump(exclude=None if usage else {"usage"})
    payload = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return f"data: {payload}\n\n".encode()


def create_app(cfg: ServerConfig):
    """The ASGI application (FastAPI)."""
    try:
        from fastapi import FastAPI
        from fastapi.exceptions import RequestValidationError
        from fastapi.responses import JSONResponse
        from starlette.exceptions import HTTPException as StarletteHTTPException
        from starlette.responses import Response
    except ImportError as exc:
        raise MissingDependency(f"the OpenAI server needs FastAPI and uvicorn ({exc.name} is missing)",
                                hint="pip install 'tritongen[openai]'") from None

    service = Service(cfg)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        await service.triton.start()
        yield
        await service.triton.close()

    app = FastAPI(title="tritongen OpenAI-compatible API", lifespan=lifespan, docs_url=None, redoc_url=None,
                  openapi_url=None)
    app.state.service = service

    def error_response(err: OpenAIError) -> JSONResponse:
        return JSONResponse(err.body.model_dump(), status_code=err.status)

    @app.exception_handler(OpenAIError)
    async def _openai_error(request, exc: OpenAIError):
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request, exc: RequestValidationError):
        errors = exc.errors()
        first = errors[0] if errors else {}
        loc = [str(x) for x in first.get("loc", ()) if x != "body"]
        param = loc[0] if loc else None
        if first.get("type") == "json_invalid":
            message = "We could not parse the JSON body of your request (it must be a JSON object)."
        else:
            message = "; ".join(
                f"{'.'.join(str(x) for x in e.get('loc', ()) if x != 'body') or 'body'}: {e.get('msg')}"
                for e in errors[:5])
        return error_response(OpenAIError(400, message, param=param, code="invalid_type"
                                          if "type" in str(first.get("type", "")) else "invalid_value"))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request, exc: StarletteHTTPException):
        message = ("Unknown request URL: " + request.method + " " + request.url.path) if exc.status_code == 404 \
            else str(exc.detail)
        return error_response(OpenAIError(exc.status_code, message, code="unknown_url" if exc.status_code == 404
                                          else None))

    @app.get("/health")
    async def health():
        ok, why = await service.triton.ready()
        body = {"status": "ok" if ok else "unavailable", "triton": why, "model": cfg.model_name,
                "triton_model": cfg.triton_model, **service.stats.__dict__}
        return JSONResponse(body, status_code=200 if ok else 503)

    @app.get("/v1/models")
    async def list_models() -> ModelList:
        return ModelList(data=[ModelCard(id=cfg.model_name, created=cfg.created)])

    @app.get("/v1/models/{model_id:path}")
    async def get_model(model_id: str) -> ModelCard:
        service.check_model(model_id)
        return ModelCard(id=cfg.model_name, created=cfg.created)

    @app.post("/v1/completions")
    async def completions(body: CompletionRequest):
        service.check_model(body.model)
        gen = completion_generation(body, 16)
        return await respond(gen, body, chat=False)

    @app.post("/v1/chat/completions")
    async def chat_completions(body: ChatCompletionRequest):
        service.check_model(body.model)
        gen = chat_generation(body, cfg.default_max_tokens)
        return await respond(gen, body, chat=True)

    async def respond(gen: Generation, body: _Sampling, *, chat: bool):
        rid = uuid.uuid4().hex
        response_id = ("chatcmpl-" if chat else "cmpl-") + rid
        created = int(time.time())
        if body.stream:
            include_usage = bool(body.stream_options and body.stream_options.include_usage)
            events = service.run(gen, rid)
            try:
                first = await events.__anext__()  # errors before the first token keep their HTTP status
            except StopAsyncIteration:
                first = None
            except OpenAIError:
                await events.aclose()
                raise
            return EventStream(_stream_chunks(first, events, response_id, created, chat, include_usage))
        return DeferredJSON(_complete(gen, rid, response_id, created, chat))

    async def _complete(gen: Generation, rid: str, response_id: str, created: int, chat: bool):
        parts: list[str] = []
        finish, usage = "stop", None
        try:
            async with contextlib.aclosing(service.run(gen, rid)) as events:
                async for kind, value in events:
                    if kind == "text":
                        parts.append(value)
                    else:
                        finish, usage = value
        except OpenAIError as err:
            return err.status, err.body.model_dump()
        text = "".join(parts)
        if chat:
            result: BaseModel = ChatCompletion(id=response_id, created=created, model=cfg.model_name, usage=usage,
                                               choices=[ChatChoice(message=ChatMessageOut(content=text),
                                                                   finish_reason=finish)])
        else:
            result = Completion(id=response_id, created=created, model=cfg.model_name, usage=usage,
                                choices=[CompletionChoice(text=text, finish_reason=finish)])
        return 200, result.model_dump()

    async def _stream_chunks(first, events, response_id: str, created: int, chat: bool, include_usage: bool):
        def chunk(text: str | None, finish: str | None, role: bool = False) -> bytes:
            if chat:
                delta = ChatDelta(role="assistant", content="") if role else (
                    ChatDelta(content=text) if text is not None else ChatDelta())
                return _sse(ChatCompletionChunk(id=response_id, created=created, model=cfg.model_name,
                                                choices=[ChatChunkChoice(delta=delta, finish_reason=finish)]),
                            usage=include_usage)
            return _sse(Completion(id=response_id, created=created, model=cfg.model_name,
                                   choices=[CompletionChoice(text=text or "", finish_reason=finish)]),
                        usage=include_usage)

        try:
            if chat:
                yield chunk(None, None, role=True)
            pending = [first] if first is not None else []
            while True:
                if pending:
                    kind, value = pending.pop()
                else:
                    try:
                        kind, value = await events.__anext__()
                    except StopAsyncIteration:
                        break
                if kind == "text":
                    yield chunk(value, None)
                    continue
                finish, usage = value
                yield chunk(None, finish)
                if include_usage:
                    if chat:
                        yield _sse(ChatCompletionChunk(id=response_id, created=created, model=cfg.model_name,
                                                       choices=[], usage=usage))
                    else:
                        yield _sse(Completion(id=response_id, created=created, model=cfg.model_name, choices=[],
                                              usage=usage))
            yield _sse("[DONE]")
        except OpenAIError as err:
            yield _sse(err.body)
            yield _sse("[DONE]")
        finally:
            await events.aclose()

    class EventStream(Response):
        """Server-sent events that stop, and cancel the Triton request, as soon as the client disconnects."""

        media_type = "text/event-stream"

        def __init__(self, source):
            # Not Response.__init__: it would add "content-length: 0" for the empty body.
            self.status_code = 200
            self.background = None
            self.body = b""
            self.raw_headers = [(b"content-type", b"text/event-stream; charset=utf-8"), (b"cache-control", b"no-cache"),
                                (b"x-accel-buffering", b"no")]
            self.source = source

        async def __call__(self, scope, receive, send):
            await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})

            async def pump():
                try:
                    async for data in self.source:
                        await send({"type": "http.response.body", "body": data, "more_body": True})
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
                finally:
                    await self.source.aclose()

            await _until_disconnect(pump(), receive)

    class DeferredJSON(Response):
        """A JSON answer computed while listening for the client: a disconnect cancels the computation."""

        def __init__(self, producer):
            self.status_code = 200
            self.background = None
            self.body = b""
            self.raw_headers = []
            self.producer = producer

        async def __call__(self, scope, receive, send):
            async def produce():
                status, body = await self.producer
                data = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
                await send({"type": "http.response.start", "status": status,
                            "headers": [(b"content-type", b"application/json"),
                                        (b"content-length", str(len(data)).encode())]})
                await send({"type": "http.response.body", "body": data})

            await _until_disconnect(produce(), receive)

    limited = _BodyLimit(app, cfg.max_body_bytes)
    return _ApiKeyGate(limited, cfg.api_key) if cfg.api_key else limited


async def _until_disconnect(work, receive) -> None:
    """Run ``work`` until it finishes or the client disconnects (then cancel it)."""
    task = asyncio.ensure_future(work)

    async def listen():
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return

    listener = asyncio.ensure_future(listen())
    try:
        await asyncio.wait({task, listener}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        listener.cancel()
        if not task.done():
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError, OSError, Exception):
            await task


class _BodyLimit:
    """ASGI middleware: a request body over ``limit`` bytes gets OpenAI's error shape with 413, before it is parsed
    (FastAPI would read all of it and build its JSON in memory). The declared Content-Length is refused at once; a
    chunked body is read up to the limit and then refused."""

    def __init__(self, app, limit: int):
        self.app = app
        self.limit = limit

    async def _refuse(self, send, size: str) -> None:
        status, body = error_json(413, f"the request body is {size} bytes, more than the {self.limit} bytes this "
                                  "server accepts (tritongen openai --max-body-bytes)", code="request_too_large")
        data = json.dumps(body).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": data})

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or self.limit <= 0:
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            return await self._refuse(send, declared.decode())
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                chunks = None  # disconnected: let the app see it
                break
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.limit:
                return await self._refuse(send, f"over {size}")
            if not message.get("more_body", False):
                break
        replay = [{"type": "http.request", "body": b"".join(chunks), "more_body": False}] if chunks is not None else []

        async def replayed():
            return replay.pop() if replay else await receive()

        await self.app(scope, replayed, send)

    def __getattr__(self, name):  # app.state etc. for tests
        return getattr(self.app, name)


class _ApiKeyGate:
    """ASGI middleware: every HTTP request must carry ``Authorization: Bearer <key>`` (OpenAI's 401 otherwise)."""

    def __init__(self, app, key: str):
        self.app = app
        self.key = key.encode()

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            headers = dict(scope.get("headers") or [])
            auth = headers.get(b"authorization", b"")
            scheme, _, token = auth.partition(b" ")
            if scheme.lower() != b"bearer" or not hmac.compare_digest(token.strip(), self.key):
                message = ("Incorrect API key provided." if auth else
                           "You didn't provide an API key. Send it as 'Authorization: Bearer <key>'.")
                status, body = error_json(401, message, code="invalid_api_key")
                data = json.dumps(body).encode()
                await send({"type": "http.response.start", "status": status,
                            "headers": [(b"content-type", b"application/json"),
                                        (b"content-length", str(len(data)).encode()),
                                        (b"www-authenticate", b"Bearer")]})
                await send({"type": "http.response.body", "body": data})
                return
        await self.app(scope, receive, send)

    def __getattr__(self, name):  # app.state etc. for tests
        return getattr(self.app, name)


def serve(cfg: ServerConfig, *, host: str = "127.0.0.1", port: int = DEFAULT_PORT, log_level: str = "info") -> None:
    """Run the server in the foreground (uvicorn) until interrupted."""
    try:
        import uvicorn
    except ImportError:
        raise MissingDependency("the OpenAI server needs uvicorn", hint="pip install 'tritongen[openai]'") from None
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    app = create_app(cfg)
    uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=True, timeout_graceful_shutdown=5)


# -- background process (tritongen serve --openai, the demo) ---------------------------------------------


def _health(url: str, timeout: float = 2.0) -> int | None:
    headers = {}
    key = os.environ.get(API_KEY_ENV)
    if key:
        headers["Authorization"] = f"Bearer {key}"
    try:
        with urllib.request.urlopen(urllib.request.Request(f"{url}/health", headers=headers), timeout=timeout) as r:
            return r.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (urllib.error.URLError, OSError):
        return None


def _launch(record, port: int, *, timeout: float = 60.0) -> tuple[str, int]:
    """Start ``tritongen openai`` for a ServerRecord in the background; wait until /health says ok."""
    from . import proc
    from .paths import cache_dir
    from .runtime.startup import port_in_use

    if port_in_use("127.0.0.1", port):
        raise ServerError(f"OpenAI port {port} on 127.0.0.1 is already in use",
                          hint="pick another port (--openai PORT / --openai-port)")
    log_path = cache_dir() / "run" / f"{record.name}-openai.log"
    argv = [sys.executable, "-m", "tritongen.cli", "openai", "--triton", f"grpc://{record.grpc_url}",
            "--port", str(port), "--model-name", record.name, "--model", record.model_prefix + "ensemble"]
    child = proc.start(argv, log_path=log_path)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    status = None
    while time.monotonic() < deadline:
        if child.poll() is not None:
            break
        status = _health(url)
        if status == 200:
            return url, child.pid
        time.sleep(0.25)
    proc.stop_pid(child.pid, timeout=10)
    why = "exited" if child.poll() is not None else f"not healthy after {timeout:.0f} s (last /health: {status})"
    raise ServerError(f"the OpenAI server for {record.name!r} {why} (log: {log_path})",
                      detail=proc.tail_file(log_path))


def start_background(record, port: int) -> str:
    """Start the OpenAI server for ``record`` on 127.0.0.1:``port`` in the background, remember its pid in
    ``record.extra["companions"]`` (``tritongen stop`` stops it with the server) and return its base URL."""
    url, pid = _launch(record, port)
    record.extra.setdefault("companions", []).append(pid)
    record.save()
    return url


def demo_call(record, port: int, prompt: str, companions: list) -> str:
    """The demo's OpenAI step: start the server in the background (its pid goes into ``companions``), make one
    chat completion with the official ``openai`` package and return the answer with its usage."""
    url, pid = _launch(record, port)
    companions.append(pid)
    try:
        import openai
    except ImportError:
        raise MissingDependency("the demo's OpenAI step uses the official openai package",
                                hint="pip install openai") from None
    client = openai.OpenAI(base_url=f"{url}/v1", api_key=os.environ.get(API_KEY_ENV) or "unused", max_retries=0,
                           timeout=120)
    reply = client.chat.completions.create(model=record.name, messages=[{"role": "user", "content": prompt}],
                                           max_tokens=48, temperature=0)
    choice = reply.choices[0]
    usage = reply.usage
    return (f"{choice.message.content}\n      (model {reply.model}, finish_reason {choice.finish_reason}, usage: "
            f"{usage.prompt_tokens} prompt + {usage.completion_tokens} completion tokens; {url}/v1)")
