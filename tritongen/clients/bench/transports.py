"""The two ways requests go out: gRPC ModelStreamInfer (grpc.aio) and HTTP generate_stream (aiohttp)."""

from __future__ import annotations

import json
import struct
import time
from typing import Any

from .. import contract_io
from .config import BenchConfig, Prompt
from .results import RequestRecord, record_tokens

_FINAL = "triton_final_response"


def request_values(config: BenchConfig, prompt: Prompt, offered: frozenset[str] = frozenset()) -> dict[str, Any]:
    """The client-contract values of one benchmark request: a stream with token counts, exactly ``output_len``
    tokens long when ``exact_output`` (min_tokens = max_tokens). ``offered``: the model's outputs, if known."""
    out_len = prompt.output_len or config.output_len
    values: dict[str, Any] = {"text_input": prompt.text, "max_tokens": out_len,
                              "min_tokens": out_len if config.exact_output else None, "stream": True}
    # Containers before TensorRT-LLM 1.0 have no token counts: their ensemble refuses the flags by name.
    for name in ("num_output_tokens", "num_input_tokens"):
        if not offered or name in offered:
            values["return_" + name] = True
    return values


class GrpcTransport:
    """gRPC ModelStreamInfer, one stream per request, on one shared HTTP/2 channel."""

    def __init__(self, config: BenchConfig):
        import grpc
        from tritonclient.grpc import service_pb2, service_pb2_grpc

        self._pb = service_pb2
        self.config = config
        self.url = contract_io.split_url(config.url, 8001)
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
            from ..triton import model_output_names

            self._offered = await model_output_names(self.stub, self.config.model, metadata=self.metadata) or frozenset()
        return self._offered

    def _template(self, prompt: Prompt):
        """The prompt's request, built once and copied for every send (only its id changes)."""
        key = id(prompt)
        if key not in self._templates:
            self._templates[key] = self._request(prompt)
        return self._templates[key]

    def _request(self, prompt: Prompt):
        offered = self._offered or frozenset()
        outputs = [n for n in ("text_output", "num_output_tokens", "num_input_tokens")
                   if n == "text_output" or not offered or n in offered]
        inputs = contract_io.client_inputs(request_values(self.config, prompt, offered))
        return inputs.infer_request(self.config.model, "", outputs)

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
                record_tokens(rec, now, count, has_text)
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
        self.base = f"http://{contract_io.split_url(config.url, 8000)}"
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
            # Encoded once per prompt, the id put in front per request: the client's own CPU is part of the result.
            tail = json.dumps(contract_io.client_inputs(request_values(self.config, prompt)).body())[1:]
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
                        record_tokens(rec, now, count, bool(data.get("text_output")))
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
    if config.protocol == "openai":
        from .openai_transport import OpenAITransport

        return OpenAITransport(config)
    return GrpcTransport(config) if config.protocol == "grpc" else HttpTransport(config)
