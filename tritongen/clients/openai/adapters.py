"""LoRA adapters as OpenAI models (as vLLM serves them): ``/v1/models`` lists the base model and each adapter of
the repository, and a request's ``model`` picks one - an adapter's name sends it as ``lora_name``, the base name
sends none.

The adapters are the repository's own (spec ``lora.adapters``): read once from the preprocessing model's
``lora_adapters`` parameter over Triton's gRPC ModelConfig call, so the front needs no option for them. A
repository without adapters (or a route without that model, such as llmapi) serves the base model only.
"""

from __future__ import annotations

import json

from .. import contract_io


async def discover(stub, model: str, *, timeout: float = 5.0) -> tuple[str, ...] | None:
    """The adapter names of the repository whose front model is ``model`` (None: Triton not answering yet)."""
    import grpc
    from tritonclient.grpc import service_pb2

    name = contract_io.companion(model, "preprocessing")
    try:
        reply = await stub.ModelConfig(service_pb2.ModelConfigRequest(name=name), timeout=timeout)
    except grpc.aio.AioRpcError as exc:
        if exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
            return None
        return ()  # no such model (llmapi route, a foreign repository): no adapters
    text = reply.config.parameters["lora_adapters"].string_value if "lora_adapters" in reply.config.parameters else ""
    try:
        return tuple(sorted(json.loads(text))) if text.strip() else ()
    except ValueError:
        return ()
