"""Talk to a served repository with the ensemble's client contract (text_input, max_tokens, stream ... ->
text_output), over tritonclient gRPC streaming or Triton's HTTP generate / generate_stream endpoints.

Used by ``tritongen infer``, the demo, the tests, ``bench`` and the OpenAI-compatible server. Every request
carries a unique request id, so that a ``stop`` for an abandoned stream reaches that request alone (streamed
text does not depend on it: see the README's "Streaming text that is exactly right").

    from tritongen.clients.triton import LLMClient, GenerateParams
    client = LLMClient("127.0.0.1:8001")
    for chunk in client.stream("Hello", GenerateParams(max_tokens=32)):
        print(chunk.text, end="", flush=True)
"""

from __future__ import annotations

import json
import queue
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from ..errors import ClientError
from . import contract_io
from .contract_io import Inputs, companion

#: Extra ensemble outputs a result may carry (counts, log probs, timings).
EXTRA_OUTPUTS = ("num_input_tokens", "num_output_tokens", "cum_log_probs", "output_log_probs",
                 "acceptance_rate", "total_accepted_draft_tokens", "total_draft_tokens", "arrival_time_ns",
                 "first_scheduled_time_ns", "first_token_time_ns", "last_token_time_ns")


async def model_output_names(stub, model: str, *, metadata=(), timeout: float = 10.0) -> frozenset[str] | None:
    """A model's output names over an asyncio gRPC stub (None when the server will not say). A repository
    carries only the optional outputs its spec asks for (serving.optional_outputs), and asking for any other
    fails the request, so clients ask only for offered ones."""
    from tritonclient.grpc import service_pb2

    try:
        meta = await stub.ModelMetadata(service_pb2.ModelMetadataRequest(name=model), metadata=metadata,
                                        timeout=timeout)
    except Exception:
        return None
    return frozenset(o.name for o in meta.outputs)


@dataclass
class GenerateParams:
    """Sampling and stopping settings; None leaves the server's default (greedy unless top_k/top_p)."""

    max_tokens: int = 64
    temperature: float | None = None
    top_k: int | None = None
    top_p: float | None = None
    seed: int | None = None
    stop: list[str] = field(default_factory=list)
    bad_words: list[str] = field(default_factory=list)
    chat: bool = False
    min_tokens: int | None = None
    repetition_penalty: float | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    return_log_probs: bool = False
    return_num_tokens: bool = False
    #: Engine timings and speculative-decoding acceptance (the backend's return_perf_metrics).
    return_perf_metrics: bool = False
    exclude_input_in_output: bool | None = None
    #: Structured output: a TensorRT-LLM guide type (json, json_schema, regex, ebnf_grammar, structural_tag) and
    #: its guide text (README "Structured output").
    guide_type: str | None = None
    guide: str | None = None
    #: LoRA adapter by name (spec lora.adapters); None: the base model.
    lora_name: str | None = None

    def inputs(self, prompt: str, stream: bool) -> Inputs:
        """The client-contract inputs of a request for ``prompt``; only what is set is sent."""
        values: dict[str, Any] = {
            "text_input": prompt, "max_tokens": self.max_tokens, "stream": stream,
            "temperature": self.temperature, "top_k": self.top_k, "top_p": self.top_p, "seed": self.seed,
            "min_tokens": self.min_tokens, "repetition_penalty": self.repetition_penalty,
            "presence_penalty": self.presence_penalty, "frequency_penalty": self.frequency_penalty,
            "exclude_input_in_output": self.exclude_input_in_output,
            "stop_words": list(self.stop) or None, "bad_words": list(self.bad_words) or None,
            "apply_chat_template": self.chat or None, "return_log_probs": self.return_log_probs or None,
            "return_num_input_tokens": self.return_num_tokens or None,
            "return_num_output_tokens": self.return_num_tokens or None,
            "return_perf_metrics": self.return_perf_metrics or None,
            "guided_decoding_guide_type": self.guide_type, "guided_decoding_guide": self.guide or None,
            "lora_name": self.lora_name,
        }
        return contract_io.client_inputs(values)


@dataclass
class Chunk:
    text: str
    #: Seconds since the request was sent.
    at: float
    extras: dict[str, Any] = field(default_factory=dict)


@dataclass
class Completion:
    text: str
    chunks: list[Chunk]
    request_id: str
    elapsed: float
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def ttft(self) -> float | None:
        first = next((c for c in self.chunks if c.text), None)
        return first.at if first else None


class LLMClient:
    """A client for one model of a served repository (default ``ensemble``)."""

    def __init__(self, url: str = "127.0.0.1:8001", *, protocol: str = "grpc", model: str = "ensemble",
                 timeout: float = 300.0, headers: dict[str, str] | None = None,
                 stop_model: str | None = "auto"):
        if protocol not in ("grpc", "http"):
            raise ClientError(f"protocol {protocol!r}: use grpc or http")
        self.protocol = protocol
        self.url = contract_io.split_url(url, 8001 if protocol == "grpc" else 8000)
        self.model = model
        self.timeout = timeout
        self.headers = headers or {}
        #: Where an abandoned stream's `stop` goes ("auto": this repository's tensorrt_llm; None: never).
        self.stop_model = companion(model) if stop_model == "auto" else stop_model
        self._offered: frozenset[str] | None = None  # the model's outputs, asked once (gRPC)
        self._stop_request: Inputs | None = None  # the stop model's `stop`, once its inputs are known
        self._stop_probed = False

    # -- public API --------------------------------------------------------------------------------------

    def stream(self, prompt: str, params: GenerateParams | None = None, *, request_id: str | None = None,
               ) -> Iterator[Chunk]:
        """Yield text chunks as the server streams them."""
        params = params or GenerateParams()
        rid = contract_io.request_id(request_id)
        if self.protocol == "grpc":
            yield from self._grpc(prompt, params, rid, stream=True)
        else:
            yield from self._http_stream(prompt, params, rid, stream=True)

    def generate(self, prompt: str, params: GenerateParams | None = None, *, stream: bool = False,
                 request_id: str | None = None) -> Completion:
        """Run one request to completion (streamed or not) and collect the text."""
        params = params or GenerateParams()
        rid = contract_io.request_id(request_id)
        start = time.perf_counter()
        if self.protocol == "grpc":
            chunks = list(self._grpc(prompt, params, rid, stream=stream))
        elif stream:
            chunks = list(self._http_stream(prompt, params, rid, stream=True))
        else:
            chunks = [self._http_generate(prompt, params, rid)]
        extras: dict[str, Any] = {}
        for c in chunks:
            extras.update(c.extras)
        return Completion("".join(c.text for c in chunks), chunks, rid, time.perf_counter() - start, extras)

    def stop(self, request_id: str) -> bool:
        """Stop a running request by id: the TensorRT-LLM backend's `stop` input, sent to ``stop_model``.

        Closing a stream cancels the request in Triton, but Triton's ensemble does not pass that on to a step
        that is already running, so the engine would keep generating until max_tokens. Streams abandoned
        through this client call this automatically. Best effort: returns False when the stop was not accepted
        (finished request, no such model)."""
        if not self.stop_model or not request_id:
            return False
        try:
            stop = self._stop_inputs()
            if stop is None:
                return False
            if self.protocol == "grpc":
                return self._grpc_stop(request_id, stop)
            body = json.dumps(stop.body(request_id)).encode()
            with self._post(f"/v2/models/{self.stop_model}/generate_stream", body) as resp:
                resp.read()
            return True
        except Exception:
            return False

    def _stop_inputs(self) -> Inputs | None:
        """The stop request for the stop model's contract (the engine's or the llmapi model's), picked once from
        the model's metadata; None when the model takes no `stop`."""
        if not self._stop_probed:
            try:
                if self.protocol == "grpc":
                    meta = self._grpc_client().get_model_metadata(self.stop_model, as_json=True, headers=self.headers)
                else:
                    with urllib.request.urlopen(f"http://{self.url}/v2/models/{self.stop_model}", timeout=5) as r:
                        meta = json.loads(r.read())
                names = {i["name"] for i in meta.get("inputs", [])} or None
            except Exception:
                names = None
            self._stop_request = contract_io.stop_inputs(names)
            self._stop_probed = True
        return self._stop_request

    def _grpc_stop(self, request_id: str, stop: Inputs) -> bool:
        done: queue.Queue = queue.Queue()
        client = self._grpc_client()
        try:
            client.start_stream(callback=lambda result, error: done.put(error), headers=self.headers)
            client.async_stream_infer(self.stop_model, stop.infer_inputs(), request_id=request_id,
                                      enable_empty_final_response=True)
            return done.get(timeout=10) is None
        finally:
            client.stop_stream()
            client.close()

    def ready(self) -> bool:
        try:
            if self.protocol == "grpc":
                return bool(self._grpc_client().is_model_ready(self.model, headers=self.headers))
            with urllib.request.urlopen(f"http://{self.url}/v2/models/{self.model}/ready", timeout=5) as r:
                return r.status == 200
        except Exception:
            return False

    # -- gRPC --------------------------------------------------------------------------------------------

    def _grpc_client(self):
        import tritonclient.grpc as grpcclient

        return grpcclient.InferenceServerClient(self.url)

    def _grpc(self, prompt, params, rid, *, stream: bool) -> Iterator[Chunk]:
        import tritonclient.grpc as grpcclient
        from tritonclient.utils import InferenceServerException

        inputs = params.inputs(prompt, stream).infer_inputs()
        client = self._grpc_client()
        offered = self._offered_outputs(client)
        outputs = [grpcclient.InferRequestedOutput("text_output")] + [
            grpcclient.InferRequestedOutput(n) for n in EXTRA_OUTPUTS
            if self._wants(n, params) and (not offered or n in offered)
        ]
        results: queue.Queue = queue.Queue()
        start = time.perf_counter()
        finished = False
        try:
            client.start_stream(callback=lambda result, error: results.put((result, error)),
                                headers=self.headers)
            client.async_stream_infer(self.model, inputs, request_id=rid, outputs=outputs,
                                      enable_empty_final_response=True)
            while True:
                try:
                    result, error = results.get(timeout=self.timeout)
                except queue.Empty:
                    raise ClientError(f"no response from {self.model} at {self.url} within {self.timeout:.0f} s") from None
                if error is not None:
                    raise self._unreachable() or ClientError(_message(error))
                response = result.get_response()
                final = response.parameters.get("triton_final_response")
                chunk = self._grpc_chunk(result, start)
                if chunk is not None:
                    yield chunk
                if final is not None and final.bool_param:
                    finished = True
                    return
        except InferenceServerException as exc:
            raise self._unreachable() or ClientError(_message(exc)) from None
        finally:
            try:
                client.stop_stream(cancel_requests=not finished)
            except TypeError:  # tritonclient before 2.39 has no cancel_requests
                client.stop_stream()
            except Exception:
                pass
            client.close()
            if not finished:
                self.stop(rid)

    def _unreachable(self) -> ClientError | None:
        """The error to report when nothing listens at the address; None when something does.

        Without a server, tritonclient's gRPC stream fails with its own internal text ("stream is no longer in
        valid state"); a plain TCP connect tells the real cause.
        """
        host, _, port = self.url.rpartition(":")
        try:
            with socket.create_connection((host.strip("[]") or "127.0.0.1", int(port)), timeout=2):
                return None
        except (OSError, ValueError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc)
            return ClientError(f"cannot reach {self.url}: {reason}", hint=UNREACHABLE_HINT)

    def _offered_outputs(self, client) -> frozenset[str]:
        """The model's output names (empty when the server will not say). A repository carries only the
        optional outputs its spec asks for (serving.optional_outputs), and asking for any other fails the
        request, so only offered ones are requested."""
        if self._offered is None:
            try:
                meta = client.get_model_metadata(self.model, headers=self.headers)
                self._offered = frozenset(o.name for o in meta.outputs)
            except Exception:
                self._offered = frozenset()
        return self._offered

    def _grpc_chunk(self, result, start) -> Chunk | None:
        text_arr = result.as_numpy("text_output")
        extras = {}
        for name in EXTRA_OUTPUTS:
            arr = result.as_numpy(name)
            if arr is not None:
                extras[name] = arr.tolist()
        if text_arr is None and not extras:
            return None
        text = "" if text_arr is None else contract_io.text_of(text_arr)
        return Chunk(text, time.perf_counter() - start, extras)

    @staticmethod
    def _wants(name: str, params: GenerateParams) -> bool:
        if name in ("num_input_tokens", "num_output_tokens"):
            return params.return_num_tokens
        if name in ("cum_log_probs", "output_log_probs"):
            return params.return_log_probs
        return params.return_perf_metrics

    # -- HTTP generate -----------------------------------------------------------------------------------

    def _http_body(self, prompt, params, rid, stream) -> bytes:
        return json.dumps(params.inputs(prompt, stream).body(rid)).encode()

    def _post(self, path: str, body: bytes):
        req = urllib.request.Request(f"http://{self.url}{path}", data=body, method="POST",
                                     headers={"Content-Type": "application/json", **self.headers})
        try:
            return urllib.request.urlopen(req, timeout=self.timeout)
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode("utf-8", "replace")
            try:
                detail = json.loads(detail).get("error", detail)
            except json.JSONDecodeError:
                pass
            raise ClientError(f"HTTP {exc.code} from {path}: {detail}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ClientError(f"cannot reach {self.url}: {getattr(reason, 'strerror', None) or reason}",
                              hint=UNREACHABLE_HINT) from None

    def _http_generate(self, prompt, params, rid) -> Chunk:
        start = time.perf_counter()
        with self._post(f"/v2/models/{self.model}/generate", self._http_body(prompt, params, rid, False)) as resp:
            data = json.loads(resp.read())
        if "error" in data:
            raise ClientError(str(data["error"]))
        return Chunk(_json_text(data.get("text_output", "")), time.perf_counter() - start,
                     {k: data[k] for k in EXTRA_OUTPUTS if k in data})

    def _http_stream(self, prompt, params, rid, *, stream: bool) -> Iterator[Chunk]:
        start = time.perf_counter()
        resp = self._post(f"/v2/models/{self.model}/generate_stream", self._http_body(prompt, params, rid, stream))
        finished = False
        try:
            yield from self._sse_chunks(resp, start)
            finished = True
        finally:
            resp.close()
            if not finished:
                self.stop(rid)

    def _sse_chunks(self, resp, start) -> Iterator[Chunk]:
        with resp:
            for raw in resp:
                line = raw.decode("utf-8", "replace").strip()
                if not line.startswith("data:"):
                    continue
                data = json.loads(line[5:].strip())
                if "error" in data:
                    raise ClientError(str(data["error"]))
                extras = {k: data[k] for k in EXTRA_OUTPUTS if k in data}
                if "text_output" in data or extras:
                    yield Chunk(_json_text(data.get("text_output", "")), time.perf_counter() - start, extras)


def _json_text(value) -> str:
    if isinstance(value, list):
        return "".join(str(v) for v in value)
    return str(value)


UNREACHABLE_HINT = "is a server running there? `tritongen status` lists them; start one with `tritongen serve REPO`"


def _message(exc) -> str:
    msg = exc.message() if hasattr(exc, "message") and callable(exc.message) else str(exc)
    return " ".join(str(msg).split())
