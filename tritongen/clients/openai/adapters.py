"""LoRA adapters as OpenAI models (as vLLM serves them): ``/v1/models`` lists the base model and each adapter of
the repository, and a request's ``model`` picks one - an adapter's name sends it as ``lora_name``, the base name
sends none.

The adapters are the repository's own (spec ``lora.adapters``): read once over Triton's gRPC ModelConfig call from
the preprocessing model's ``lora_adapters`` parameter (llmapi route: its tensorrt_llm model's
``tritongen_lora_adapters``), so the front needs no option for them. Without adapters it serves the base model only.
"""

from __future__ import annotations

import json

from .. import contract_io


async def discover(stub, model: str, *, timeout: float = 5.0) -> tuple[str, ...] | None:
    """The adapter names of the repository whose front model is ``model`` (None: Triton not answering yet)."""
    import grpc
    from tritonclient.grpc import service_pb2

    # Engine and cpu routes: preprocessing maps the names; llmapi: its tensorrt_llm wrapper does.
    for role, key in (("preprocessing", "lora_adapters"), ("tensorrt_llm", "tritongen_lora_adapters")):
        try:
            reply = await stub.ModelConfig(service_pb2.ModelConfigRequest(name=contract_io.companion(model, role)),
                                           timeout=timeout)
        except grpc.aio.AioRpcError as exc:
            if exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                return None
            continue  # no such model (a foreign repository): try the next
        params = reply.config.parameters
        text = params[key].string_value if key in params else ""
        if text.strip():
            try:
                return tuple(sorted(json.loads(text)))
            except ValueError:
                return ()
        if role == "preprocessing":
            return ()  # an ensemble repository without adapters
    return ()
