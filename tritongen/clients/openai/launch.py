"""The OpenAI server as a background process of a tritongen server (``tritongen serve --openai``, the demo).

Only the standard library is imported here, so starting it stays cheap: the child process imports the rest.
"""

from __future__ import annotations

import os
import sys
import time
import urllib.error
import urllib.request

from ...errors import MissingDependency, ServerError

#: The API key a background server requires (``tritongen openai --api-key`` reads the same variable).
API_KEY_ENV = "TRITONGEN_OPENAI_API_KEY"


def _health(url: str, timeout: float = 2.0) -> int | None:
    headers = {}
    key = os.environ.get(API_KEY_ENV)
    if key:
        headers["Authorization"] = f"Bearer {key}"
    try:
        with urllib.request.urlopen(urllib.request.Request(f"{url}/health", headers=headers), timeout=timeout) as r:
            return r.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (urllib.error.URLError, OSError):
        return None


def _launch(record, port: int, *, timeout: float = 60.0, direct: bool = False) -> tuple[str, int]:
    """Start ``tritongen openai`` for a ServerRecord in the background (``direct``: with --direct and the record's
    repository); wait until /health says ok."""
    from ... import proc
    from ...paths import cache_dir
    from ...runtime.startup import port_in_use

    if port_in_use("127.0.0.1", port):
        raise ServerError(f"OpenAI port {port} on 127.0.0.1 is already in use",
                          hint="pick another port (--openai PORT / --openai-port)")
    log_path = cache_dir() / "run" / f"{record.name}-openai.log"
    argv = [sys.executable, "-m", "tritongen.cli", "openai", "--triton", f"grpc://{record.grpc_url}",
            "--port", str(port), "--model-name", record.name, "--model", record.model_prefix + "ensemble"]
    if direct:
        argv += ["--direct", "--repo", str(record.repo)]
    child = proc.start(argv, log_path=log_path)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    status = None
    while time.monotonic() < deadline:
        if child.poll() is not None:
            break
        status = _health(url)
        if status == 200:
            return url, child.pid
        time.sleep(0.25)
    proc.stop_pid(child.pid, timeout=10)
    why = "exited" if child.poll() is not None else f"not healthy after {timeout:.0f} s (last /health: {status})"
    raise ServerError(f"the OpenAI server for {record.name!r} {why} (log: {log_path})",
                      detail=proc.tail_file(log_path))


def start_background(record, port: int) -> str:
    """Start the OpenAI server for ``record`` on 127.0.0.1:``port`` in the background, remember its pid in
    ``record.extra["companions"]`` (``tritongen stop`` stops it with the server) and return its base URL."""
    url, pid = _launch(record, port)
    record.extra.setdefault("companions", []).append(pid)
    record.save()
    return url


def demo_call(record, port: int, prompt: str, companions: list) -> str:
    """The demo's OpenAI step: start the server in the background (its pid goes into ``companions``), make one
    chat completion with the official ``openai`` package and return the answer with its usage."""
    url, pid = _launch(record, port)
    companions.append(pid)
    try:
        import openai
    except ImportError:
        raise MissingDependency("the demo's OpenAI step uses the official openai package",
                                hint="pip install openai") from None
    client = openai.OpenAI(base_url=f"{url}/v1", api_key=os.environ.get(API_KEY_ENV) or "unused", max_retries=0,
                           timeout=120)
    reply = client.chat.completions.create(model=record.name, messages=[{"role": "user", "content": prompt}],
                                           max_tokens=48, temperature=0)
    choice = reply.choices[0]
    usage = reply.usage
    return (f"{choice.message.content}\n      (model {reply.model}, finish_reason {choice.finish_reason}, usage: "
            f"{usage.prompt_tokens} prompt + {usage.completion_tokens} completion tokens; {url}/v1)")
