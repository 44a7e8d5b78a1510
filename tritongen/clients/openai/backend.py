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
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

import numpy as np

from .. import contract_io
from ..contract_io import Inputs
from ..triton import model_output_names
from .mapping import Generation
from .protocol import OpenAIError

log = logging.getLogger("tritongen.openai")


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
    if "guide" in low and any(k in low for k in ("invalid", "is not one of", "needs", "is off", "not json")):
        return OpenAIError(400, text, param="response_format", code="invalid_value")  # structured output
    if "unknown model" in low or "is not found" in low:
        return OpenAIError(503, text, type_="server_error", code="model_unavailable")
    return OpenAIError(500, text, type_="server_error", code="triton_error")


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
            self._counts = [n for n in wanted if n in offered]
        return self._counts

    async def stream(self, request_id: str, gen: Generation) -> AsyncIterator[Piece]:
        """Yield the text pieces of one request. Leaving early (break, exception, task cancellation) cancels the
        gRPC stream and stops the request in the engine."""
        import grpc
        from tritonclient.grpc import InferResult

        counts = await self._count_outputs()
        values = gen.values()
        for name in ("num_input_tokens", "num_output_tokens"):
            if name not in counts:  # no such output (e.g. TensorRT-LLM < 1.0): the ensemble has no such flag either
                values.pop("return_" + name, None)
        request = contract_io.client_inputs(values).infer_request(self.model, request_id, ["text_output", *counts])
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
                text = "" if text_arr is None else contract_io.text_of(text_arr, errors="replace")
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
