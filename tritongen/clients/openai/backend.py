"""The Triton side of the OpenAI front: one asynchronous gRPC channel, a ModelStreamInfer stream per request.

It sends the ensemble's client contract (``contract_io``), which every route serves under the model name
``ensemble`` (the engine and cpu routes with Triton's ensemble, the llmapi route with its front), so it works with
any route and any launch mode. A request whose client is gone is cancelled in Triton and also stopped in the
engine with TensorRT-LLM's ``stop``: Triton's ensemble scheduler does not pass a cancellation on to a step that is
already running (core PR #263 cancels only the next step), so without it the engine would keep generating until
max_tokens.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

import numpy as np

from .. import contract_io
from ..contract_io import Inputs
from ..triton import model_output_names
from . import logprobs
from .mapping import Generation
from .protocol import OpenAIError

log = logging.getLogger("tritongen.openai")


@dataclass
class Piece:
    text: str
    counts: dict[str, int]
    logprobs: list[float] | None = None  #: output_log_probs of this response's tokens, when asked for
    tops: list[list[tuple[str, float]]] | None = None  #: per token, the most likely (text, log-prob) (cpu route)


def _tops(result) -> list[list[tuple[str, float]]]:
    """top_tokens / top_log_probs ([1, tokens, k]) as (text, log-prob) lists, without the padding (-inf)."""
    texts, lps = result.as_numpy("top_tokens"), result.as_numpy("top_log_probs")
    if texts is None or lps is None or not np.asarray(lps).size:
        return []
    k = lps.shape[-1]
    texts, lps = np.asarray(texts).reshape(-1, k), np.asarray(lps, dtype=np.float64).reshape(-1, k)
    return [[(t.decode("utf-8", "replace") if isinstance(t, bytes) else str(t), float(v))
             for t, v in zip(row_t, row_v) if v != -np.inf] for row_t, row_v in zip(texts, lps)]


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
    if "guide" in low and any(k in low for k in ("invalid", "is not one of", "needs", "is off", "not json")):
        return OpenAIError(400, text, param="response_format", code="invalid_value")  # structured output
    if "unknown model" in low or "is not found" in low:
        return OpenAIError(503, text, type_="server_error", code="model_unavailable")
    return OpenAIError(500, text, type_="server_error", code="triton_error")


def log_probs(result) -> list[float]:
    """output_log_probs of one response: its tokens' log-probs."""
    arr = result.as_numpy("output_log_probs")
    # [beam, tokens] per response, or [1, beam, tokens]: beam 0 is the only one with n separate requests.
    a = np.asarray(arr if arr is not None else [], dtype=np.float64)
    return a.reshape(-1)[: a.shape[-1]].tolist() if a.size else []


def token_counts(result) -> dict[str, int]:
    """num_input_tokens / num_output_tokens of one response (those it carries)."""
    out = {}
    for name in ("num_input_tokens", "num_output_tokens"):
        arr = result.as_numpy(name)
        if arr is not None and np.asarray(arr).size:
            out[name] = int(np.asarray(arr).reshape(-1)[0])
    return out


class TritonBackend:
    """Asynchronous gRPC client for one Triton model speaking the client contract; one channel, many streams."""

    def __init__(self, url: str, model: str, *, timeout: float = 300.0, stop_model: str | None = "auto"):
        self.target = contract_io.split_url(url, 8001)
        self.model = model
        self.timeout = timeout
        self.stop_model = contract_io.companion(model) if stop_model == "auto" else (stop_model or None)
        self._stop_request: Inputs | None = None
        self._stop_probed = False
        self._counts: list[str] | None = None  # token-count outputs the model carries; None: not asked yet
        self._offered: set[str] | None = None  # every output the model carries; None: not known yet
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
            offered = await model_output_names(self.stub, self.model, timeout=5)
            if offered is None:
                return wanted  # not known yet (server starting): ask again next time
            self._offered = set(offered)
            self._counts = [n for n in wanted if n in offered]
        return self._counts

    def _log_prob_outputs(self, gen: Generation) -> list[str]:
        """The outputs logprobs / top_logprobs need (400 when the repository does not carry them)."""
        if not gen.logprobs:
            return []
        if self._offered is not None and "output_log_probs" not in self._offered:
            raise OpenAIError(400, f"logprobs: Triton model {self.model!r} does not return output_log_probs (the "
                              "repository's serving.optional_outputs leaves out log_probs)", param="logprobs",
                              code="unsupported_parameter")
        extra = ["output_log_probs"]
        if gen.top_logprobs:
            if self._offered is not None and "top_log_probs" not in self._offered:
                raise logprobs.unavailable("top_logprobs" if gen.chat else "logprobs")
            extra += ["top_tokens", "top_log_probs"]
        return extra

    def _encode(self, request_id: str, gen: Generation, counts: list[str]):
        """The gRPC request for one generation: the ensemble's client contract (direct.py: the engine's)."""
        values = gen.values()
        for name in ("num_input_tokens", "num_output_tokens"):
            if name not in counts:  # no such output (e.g. TensorRT-LLM < 1.0): the ensemble has no such flag either
                values.pop("return_" + name, None)
        outputs = ["text_output", *counts, *self._log_prob_outputs(gen)]
        return logprobs.client_inputs(values).infer_request(self.model, request_id, outputs)

    async def stream(self, request_id: str, gen: Generation) -> AsyncIterator[Piece]:
        """Yield the text pieces of one request. Leaving early (break, exception, task cancellation) cancels the
        gRPC stream and stops the request in the engine."""
        from tritonclient.grpc import InferResult

        async with contextlib.aclosing(self._messages(request_id, gen)) as messages:
            async for message, _final in messages:
                result = InferResult(message.infer_response)
                text_arr = result.as_numpy("text_output")
                text = "" if text_arr is None else contract_io.text_of(text_arr, errors="replace")
                counts = token_counts(result)
                lps = log_probs(result) if gen.logprobs else None
                tops = _tops(result) if gen.logprobs and gen.top_logprobs else None
                if text or counts or lps:
                    yield Piece(text, counts, lps, tops)

    async def _messages(self, request_id: str, gen: Generation):
        """Yield (stream response, is it the final one) for one request; errors become OpenAIError. Leaving early
        cancels the gRPC stream and stops the request in the engine."""
        import grpc

        counts = await self._count_outputs()
        request = self._encode(request_id, gen, counts)
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
                final = message.infer_response.parameters.get("triton_final_response")
                is_final = bool(final is not None and final.bool_param)
                if is_final:
                    finished = True
                yield message, is_final
                if is_final:
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

    async def _stop_inputs(self) -> Inputs | None:
        """The `stop` request the stop model takes (TensorRT-LLM's engine or the llmapi model), asked once; None
        when it takes none or will not say."""
        if not self._stop_probed:
            from tritonclient.grpc import service_pb2

            self._stop_probed = True
            try:
                meta = await self.stub.ModelMetadata(service_pb2.ModelMetadataRequest(name=self.stop_model), timeout=5)
            except Exception:
                return None
            self._stop_request = contract_io.stop_inputs({t.name for t in meta.inputs})
        return self._stop_request

    async def stop(self, request_id: str) -> bool:
        """Best effort: ask the engine model to drop ``request_id`` (TensorRT-LLM's `stop` input)."""
        if not self.stop_model:
            return False
        try:
            stop = await self._stop_inputs()
            if stop is None:
                return False
            req = stop.infer_request(self.stop_model, request_id, [])
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
