"""The ASGI pieces around the routes: errors in OpenAI's shape, answers that end (and cancel the Triton request)
when the client leaves, the request-body limit and the API key check."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging

from starlette.responses import JSONResponse, Response

from .protocol import OpenAIError, error_json


def error_response(err: OpenAIError) -> JSONResponse:
    """``err`` in OpenAI's error body, with its status."""
    return JSONResponse(err.body.model_dump(), status_code=err.status)


async def openai_error(request, exc: OpenAIError):
    """Exception handler: an OpenAIError raised anywhere under a route."""
    return error_response(exc)


async def invalid_request(request, exc):
    """Exception handler: a body that fails the protocol's models (FastAPI's RequestValidationError) -> 400."""
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


async def http_error(request, exc):
    """Exception handler: starlette's HTTP errors (unknown path, wrong method) in OpenAI's shape."""
    message = ("Unknown request URL: " + request.method + " " + request.url.path) if exc.status_code == 404 \
        else str(exc.detail)
    return error_response(OpenAIError(exc.status_code, message, code="unknown_url" if exc.status_code == 404
                                      else None))


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

        await until_disconnect(pump(), receive)


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

        await until_disconnect(produce(), receive)


async def until_disconnect(work, receive) -> None:
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
        elif not task.cancelled() and task.exception() is not None:
            # A bug, not a disconnect: say what it was (the client gets a 500 from the server either way).
            exc = task.exception()
            logging.getLogger("tritongen.openai").error("request failed: %s", exc, exc_info=exc)
        with contextlib.suppress(asyncio.CancelledError, OSError, Exception):
            await task


class BodyLimit:
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


class ApiKeyGate:
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
