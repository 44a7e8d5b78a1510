"""The OpenAI-compatible HTTP API (FastAPI): ``GET /v1/models``, ``GET /v1/models/{id}``, ``POST /v1/completions``,
``POST /v1/chat/completions`` (both streamed with server-sent events or not), ``GET /health`` and ``GET /metrics``
(clients/openai/metrics.py). Run it with
``tritongen openai --triton grpc://127.0.0.1:8001`` or ``tritongen serve --openai``.

Errors use OpenAI's body ``{"error": {"message", "type", "param", "code"}}``: 400 for invalid requests (bad
types, unsupported options such as n>1, a prompt plus max_tokens beyond the context), 401 for a missing or wrong
API key, 404 for an unknown model or path, 413 for a body over the limit, 500/503 when Triton fails or is
unreachable. When the HTTP client disconnects, its Triton request is cancelled and stopped (backend.py).

FastAPI, starlette and uvicorn are imported when the app is made, so a missing one is reported as such.
"""

from __future__ import annotations

import contextlib
import logging

from ...errors import MissingDependency
from .. import contract_io
from . import choices
from .mapping import Generation, Reply, chat_generation, completion_generation
from .protocol import (
    ChatCompletionRequest,
    CompletionRequest,
    ModelCard,
    ModelList,
    OpenAIError,
    SamplingRequest,
)
from .serving import DEFAULT_PORT, ServerConfig, Service


def create_app(cfg: ServerConfig):
    """The ASGI application: the routes, behind the request-body limit and (with an API key) the key check."""
    try:
        from fastapi import FastAPI
        from fastapi.exceptions import RequestValidationError
        from starlette.exceptions import HTTPException as StarletteHTTPException

        from . import asgi
    except ImportError as exc:
        raise MissingDependency(f"the OpenAI server needs FastAPI and uvicorn ({exc.name} is missing)",
                                hint="pip install 'tritongen[openai]'") from None
    service = Service(cfg)
    from . import metrics as front_metrics

    service.metrics = front_metrics.make(cfg.model_name)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        await service.triton.start()
        yield
        await service.triton.close()

    app = FastAPI(title="tritongen OpenAI-compatible API", lifespan=lifespan, docs_url=None, redoc_url=None,
                  openapi_url=None)
    app.state.service = service
    app.add_exception_handler(OpenAIError, asgi.openai_error)
    app.add_exception_handler(RequestValidationError, asgi.invalid_request)
    app.add_exception_handler(StarletteHTTPException, asgi.http_error)
    _add_routes(app, service)
    limited = asgi.BodyLimit(app, cfg.max_body_bytes)
    gated = asgi.ApiKeyGate(limited, cfg.api_key) if cfg.api_key else limited
    # Outermost, so refused requests (401, 413) are counted too; /metrics itself stays behind the key.
    return front_metrics.Measured(gated, service.metrics) if service.metrics else gated


def _add_routes(app, service: Service) -> None:
    from fastapi.responses import JSONResponse

    cfg = service.cfg

    @app.get("/health")
    async def health():
        ok, why = await service.triton.ready()
        body = {"status": "ok" if ok else "unavailable", "triton": why, "model": cfg.model_name,
                "triton_model": cfg.triton_model, **service.stats.__dict__}
        return JSONResponse(body, status_code=200 if ok else 503)

    if service.metrics is not None:
        from fastapi.responses import Response

        @app.get("/metrics")
        async def metrics():
            body, content_type = service.metrics.exposition()
            return Response(body, media_type=content_type)

    @app.get("/v1/models")
    async def list_models() -> ModelList:
        return ModelList(data=[ModelCard(id=m, created=cfg.created) for m in await service.model_ids()])

    @app.get("/v1/models/{model_id:path}")
    async def get_model(model_id: str) -> ModelCard:
        await service.adapter_for(model_id)
        return ModelCard(id=model_id, created=cfg.created)

    @app.post("/v1/completions")
    async def completions(body: CompletionRequest):
        gen = completion_generation(body, 16)
        gen.lora_name = await service.adapter_for(body.model)
        return await _respond(service, gen, body, chat=False)

    @app.post("/v1/chat/completions")
    async def chat_completions(body: ChatCompletionRequest):
        gen = chat_generation(body, cfg.default_max_tokens)
        gen.lora_name = await service.adapter_for(body.model)
        return await _respond(service, gen, body, chat=True)


async def _respond(service: Service, gen: Generation, body: SamplingRequest, *, chat: bool):
    """A streamed answer (server-sent events) or a whole one, either ending when the client disconnects."""
    from .asgi import DeferredJSON, EventStream

    include_usage = bool(body.stream_options and body.stream_options.include_usage)
    # The model it was asked for: the base model's name or an adapter's.
    reply = Reply(gen.lora_name or service.cfg.model_name, chat, contract_io.request_id(), include_usage=include_usage,
                  **choices.reply_options(body, service.cfg.tool_parser))
    gens = choices.fan_out(gen, body.n)
    if body.stream:
        return EventStream(await service.stream(gens, reply))
    return DeferredJSON(service.whole(gens, reply))


def serve(cfg: ServerConfig, *, host: str = "127.0.0.1", port: int = DEFAULT_PORT, log_level: str = "info") -> None:
    """Run the server in the foreground (uvicorn) until interrupted."""
    try:
        import uvicorn
    except ImportError:
        raise MissingDependency("the OpenAI server needs uvicorn", hint="pip install 'tritongen[openai]'") from None
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    app = create_app(cfg)
    uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=True, timeout_graceful_shutdown=5)
