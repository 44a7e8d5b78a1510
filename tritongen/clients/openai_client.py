"""A minimal streaming client for an OpenAI-compatible server (a Dynamo frontend): ``/v1/completions`` or
``/v1/chat/completions`` with server-sent events, stdlib only (``tritongen infer --protocol openai``)."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field

from ..errors import ClientError
from .contract_io import split_url


@dataclass
class Delta:
    text: str
    at: float  #: seconds since the request was sent
    usage: dict = field(default_factory=dict)
    finish_reason: str | None = None


def stream(url: str, model: str, prompt: str, *, max_tokens: int, chat: bool = False, timeout: float = 300.0,
           **sampling) -> Iterator[Delta]:
    """Stream one completion; ``sampling``: temperature, top_p, seed, stop ... (None values are left out)."""
    body: dict = {"model": model, "max_tokens": max_tokens, "stream": True, "stream_options": {"include_usage": True},
                  **{k: v for k, v in sampling.items() if v not in (None, [], ())}}
    path = "/v1/chat/completions" if chat else "/v1/completions"
    if chat:
        body["messages"] = [{"role": "user", "content": prompt}]
    else:
        body["prompt"] = prompt
    req = urllib.request.Request(f"http://{split_url(url, 8000)}{path}", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    t0 = time.perf_counter()
    try:
        resp = urllib.request.urlopen(req, timeout=timeout)
    except urllib.error.HTTPError as exc:
        raise ClientError(f"{url}{path}: HTTP {exc.code}: {exc.read()[:300].decode('utf-8', 'replace')}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise ClientError(f"cannot reach {url}: {getattr(exc, 'reason', exc)}",
                          hint="start a graph with `tritongen dynamo up`, or pass --url") from None
    with resp:
        for raw in resp:
            line = raw.strip()
            if not line.startswith(b"data:") or line[5:].strip() == b"[DONE]":
                continue
            data = json.loads(line[5:])
            if "error" in data:
                raise ClientError(f"the server ended the stream: {json.dumps(data['error'])[:300]}")
            choice = (data.get("choices") or [{}])[0]
            text = (choice.get("delta") or {}).get("content") if chat else choice.get("text")
            yield Delta(text or "", time.perf_counter() - t0, data.get("usage") or {}, choice.get("finish_reason"))
