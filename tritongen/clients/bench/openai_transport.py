"""Benchmark requests to an OpenAI-compatible server (``--protocol openai``): streamed ``/v1/completions``, as
Dynamo's frontend (or tritongen's own OpenAI front) serves them.

Each streamed chunk that carries a choice is one generation step; the final chunk's ``usage`` (asked for with
``stream_options.include_usage``) gives the exact token count, which wins when it is larger.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

from ...errors import ClientError
from .. import contract_io
from .config import BenchConfig, Prompt
from .results import RequestRecord, record_tokens


def served_models(url: str, timeout: float = 5.0) -> list[str]:
    """Model ids listed at ``http://URL/v1/models`` ([] when it does not answer)."""
    try:
        with urllib.request.urlopen(f"http://{contract_io.split_url(url, 8000)}/v1/models", timeout=timeout) as r:
            return [m["id"] for m in json.loads(r.read()).get("data", [])]
    except (urllib.error.URLError, OSError, ValueError, KeyError, TypeError):
        return []


def require_ready(config: BenchConfig) -> None:
    models = served_models(config.url)
    if config.model not in models:
        raise ClientError(f"model {config.model!r} is not served at http://{config.url}/v1 "
                          f"(it lists {', '.join(models) or 'nothing'})",
                          hint="pass --model with one of those, or start the server (tritongen dynamo up)")


class OpenAITransport:
    """Streamed /v1/completions with one aiohttp session."""

    def __init__(self, config: BenchConfig):
        import aiohttp

        self.config = config
        self.session = aiohttp.ClientSession(
            f"http://{contract_io.split_url(config.url, 8000)}", connector=aiohttp.TCPConnector(limit=0),
            timeout=aiohttp.ClientTimeout(total=config.timeout),
            headers={"Content-Type": "application/json", **config.headers})

    def _body(self, prompt: Prompt) -> bytes:
        out_len = prompt.output_len or self.config.output_len
        body = {"model": self.config.model, "prompt": prompt.text, "max_tokens": out_len, "stream": True,
                "stream_options": {"include_usage": True}}
        if self.config.exact_output:
            body["min_tokens"] = out_len  # an extension vLLM-style servers (Dynamo among them) accept
        return json.dumps(body).encode("utf-8")

    async def send(self, prompt: Prompt, request_id: str, level_start: float) -> RequestRecord:
        t0 = time.perf_counter()
        rec = RequestRecord(request_id, t0 - level_start)
        done = False
        try:
            async with self.session.post("/v1/completions", data=self._body(prompt),
                                         headers={"X-Request-Id": request_id}) as resp:
                if resp.status != 200:
                    rec.error = f"HTTP {resp.status}: {' '.join((await resp.text())[:300].split())}"
                else:
                    async for raw in resp.content:
                        line = raw.strip()
                        if not line.startswith(b"data:"):
                            continue
                        payload = line[5:].strip()
                        if payload == b"[DONE]":
                            done = True
                            break
                        now = time.perf_counter() - t0
                        data = json.loads(payload)
                        if "error" in data:
                            rec.error = " ".join(str(data["error"]).split())[:300]
                            break
                        if data.get("choices"):
                            record_tokens(rec, now, None, True)
                        usage = data.get("usage") or {}
                        if usage.get("prompt_tokens") is not None:
                            rec.input_tokens = int(usage["prompt_tokens"])
                        if usage.get("completion_tokens") is not None:
                            record_tokens(rec, now, int(usage["completion_tokens"]), False)
                    if not done and rec.error is None:
                        rec.error = "stream ended before [DONE]"
        except TimeoutError:
            rec.error = f"timed out after {self.config.timeout:g} s"
        except Exception as exc:  # aiohttp.ClientError and friends: recorded, the run goes on
            rec.error = f"{type(exc).__name__}: {exc}"[:300]
        rec.end = time.perf_counter() - level_start
        return rec

    async def close(self) -> None:
        await self.session.close()
