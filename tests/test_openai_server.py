"""The OpenAI-compatible server against a real local tritonserver serving the cpu route, driven by the official
``openai`` package: chat and completions, streamed and not, stop sequences, usage, errors in OpenAI's shape, the
API key, concurrent requests, and a dropped stream that stops the engine.

The servers run as ``tritongen openai`` subprocesses started the way ``tritongen serve --openai`` starts them.
"""

from __future__ import annotations

import os
import re
import threading
import time
from pathlib import Path

import httpx
import openai
import pytest

from conftest import render
from tritongen import proc
from tritongen.clients.openai import launch as openai_server
from tritongen.clients.triton import GenerateParams, LLMClient

pytestmark = pytest.mark.server

KEY = "test-key-0123456789"
CHAT = [{"role": "user", "content": "Tell me about the river and the old mill."}]
PROMPT = "The river ran past"


@pytest.fixture(scope="module")
def openai_url(tiny_server):
    """``start_background`` on the shared tiny (PyTorch engine) server: what `tritongen serve --openai` does."""
    url = openai_server.start_background(tiny_server, _free_port())
    pids = list(tiny_server.extra.get("companions", []))
    assert pids and Path(tiny_server.path).is_file()
    yield url
    for pid in pids:
        proc.stop_pid(pid, timeout=10)
    tiny_server.extra["companions"] = []


@pytest.fixture(scope="module")
def oai(openai_url, tiny_server):
    return openai.OpenAI(base_url=f"{openai_url}/v1", api_key="unused", max_retries=0, timeout=60)


@pytest.fixture(scope="module")
def mock_server(tiny_dir, session_root, server_factory):
    """A MOCK engine (fake tokens, 20 ms a step): long generations whose cancellation is easy to see."""
    repo = render("tiny", session_root / "repos" / "openai-mock", **{"name": "openai-mock", "cpu.engine": "mock",
                                                                      "cpu.mock_step_ms": 20})
    return server_factory(repo, "test-openai-mock")


@pytest.fixture(scope="module")
def keyed_url(mock_server):
    """An OpenAI server on the MOCK engine that requires an API key (given in the environment, not argv)."""
    saved = os.environ.get(openai_server.API_KEY_ENV)
    os.environ[openai_server.API_KEY_ENV] = KEY
    try:
        url, pid = openai_server._launch(mock_server, _free_port())
    finally:
        if saved is None:
            os.environ.pop(openai_server.API_KEY_ENV, None)
        else:
            os.environ[openai_server.API_KEY_ENV] = saved
    yield url
    proc.stop_pid(pid, timeout=10)


def _free_port() -> int:
    from conftest import free_ports

    return free_ports(1)[0]


def test_models_are_listed(oai, tiny_server):
    assert [m.id for m in oai.models.list().data] == [tiny_server.name]
    assert oai.models.retrieve(tiny_server.name).id == tiny_server.name


def test_chat_completion_applies_the_chat_template(oai, tiny_server):
    reply = oai.chat.completions.create(model=tiny_server.name, messages=CHAT, max_tokens=24, temperature=0)
    want = LLMClient(tiny_server.grpc_url).generate(
        '[{"role": "user", "content": "Tell me about the river and the old mill."}]',
        GenerateParams(max_tokens=24, chat=True, return_num_tokens=True))
    assert reply.object == "chat.completion" and reply.id.startswith("chatcmpl-")
    assert reply.choices[0].message.role == "assistant"
    assert reply.choices[0].message.content == want.text
    assert reply.usage.prompt_tokens == want.extras["num_input_tokens"][0][0]
    assert reply.usage.completion_tokens == want.extras["num_output_tokens"][0][0]
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens
    assert reply.choices[0].finish_reason == ("length" if reply.usage.completion_tokens == 24 else "stop")


def test_completion_streamed_and_not_agree(oai, tiny_server):
    want = LLMClient(tiny_server.grpc_url).generate(PROMPT, GenerateParams(max_tokens=20)).text
    whole = oai.completions.create(model=tiny_server.name, prompt=PROMPT, max_tokens=20, temperature=0)
    assert whole.object == "text_completion" and whole.choices[0].text == want
    assert whole.choices[0].finish_reason == "length" and whole.usage.completion_tokens == 20
    chunks = list(oai.completions.create(model=tiny_server.name, prompt=PROMPT, max_tokens=20, temperature=0,
                                         stream=True, stream_options={"include_usage": True}))
    texts = [c.choices[0].text for c in chunks if c.choices]
    assert "".join(texts) == want and len([t for t in texts if t]) > 5  # streamed token by token
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 20


def test_chat_streamed_equals_chat_whole(oai, tiny_server):
    whole = oai.chat.completions.create(model=tiny_server.name, messages=CHAT, max_tokens=24, temperature=0)
    chunks = list(oai.chat.completions.create(model=tiny_server.name, messages=CHAT, max_tokens=24, temperature=0,
                                              stream=True, stream_options={"include_usage": True}))
    assert chunks[0].choices[0].delta.role == "assistant"
    assert all(c.object == "chat.completion.chunk" and c.id == chunks[0].id for c in chunks)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    assert chunks[-1].usage.prompt_tokens == whole.usage.prompt_tokens
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens
    without_usage = list(oai.chat.completions.create(model=tiny_server.name, messages=CHAT, max_tokens=4,
                                                     temperature=0, stream=True))
    assert all(c.usage is None for c in without_usage)


def test_stop_sequences_end_the_text_before_them(oai, tiny_server):
    full = oai.completions.create(model=tiny_server.name, prompt=PROMPT, max_tokens=30, temperature=0).choices[0].text
    words = full.split()
    stop = words[len(words) // 2]
    want = full[: full.index(stop)]
    whole = oai.completions.create(model=tiny_server.name, prompt=PROMPT, max_tokens=30, temperature=0, stop=[stop])
    assert whole.choices[0].text == want and whole.choices[0].finish_reason == "stop"
    streamed = list(oai.completions.create(model=tiny_server.name, prompt=PROMPT, max_tokens=30, temperature=0,
                                           stop=stop, stream=True))
    assert "".join(c.choices[0].text for c in streamed if c.choices) == want
    assert streamed[-1].choices[0].finish_reason == "stop"


def test_sampling_with_a_seed_is_reproducible(oai, tiny_server):
    def sample(seed):
        return oai.completions.create(model=tiny_server.name, prompt=PROMPT, max_tokens=16, temperature=1.0,
                                      top_p=0.95, seed=seed).choices[0].text

    assert sample(7) == sample(7)


def _error(exc: openai.APIStatusError) -> dict:
    body = exc.body
    assert set(body) == {"message", "type", "param", "code"}, body  # the openai package unwraps {"error": ...}
    return body


def test_errors_come_in_openais_shape(oai, tiny_server):
    with pytest.raises(openai.NotFoundError) as err:
        oai.chat.completions.create(model="gpt-4o", messages=CHAT, max_tokens=4)
    assert _error(err.value)["code"] == "model_not_found" and err.value.status_code == 404
    with pytest.raises(openai.BadRequestError) as err:
        oai.chat.completions.create(model=tiny_server.name, messages=CHAT, max_tokens="lots")
    assert _error(err.value)["param"] == "max_tokens" and _error(err.value)["type"] == "invalid_request_error"
    with pytest.raises(openai.BadRequestError) as err:
        oai.chat.completions.create(model=tiny_server.name, messages=CHAT, max_tokens=4, n=129)
    assert _error(err.value)["param"] == "n"
    with pytest.raises(openai.BadRequestError) as err:  # prompt + max_tokens beyond the context (2048)
        oai.completions.create(model=tiny_server.name, prompt=PROMPT, max_tokens=5000)
    assert _error(err.value)["code"] == "context_length_exceeded"
    with pytest.raises(openai.BadRequestError) as err:  # the same error before any streamed byte
        oai.completions.create(model=tiny_server.name, prompt=PROMPT, max_tokens=5000, stream=True)
    assert _error(err.value)["code"] == "context_length_exceeded"
    assert oai.completions.create(model=tiny_server.name, prompt=PROMPT, max_tokens=2).choices[0].text


def test_concurrent_requests(oai, tiny_server):
    want = oai.completions.create(model=tiny_server.name, prompt=PROMPT, max_tokens=12, temperature=0).choices[0].text
    results: list[str] = []

    def one():
        results.append(oai.completions.create(model=tiny_server.name, prompt=PROMPT, max_tokens=12,
                                              temperature=0).choices[0].text)

    threads = [threading.Thread(target=one) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert results == [want] * 6


def test_health(openai_url, tiny_server):
    body = httpx.get(f"{openai_url}/health").json()
    assert body["status"] == "ok" and body["model"] == tiny_server.name and body["triton_model"] == "ensemble"


def test_api_key_is_enforced(keyed_url, mock_server):
    anonymous = openai.OpenAI(base_url=f"{keyed_url}/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as err:
        anonymous.models.list()
    assert err.value.status_code == 401 and _error(err.value)["code"] == "invalid_api_key"
    assert httpx.get(f"{keyed_url}/health").status_code == 401
    client = openai.OpenAI(base_url=f"{keyed_url}/v1", api_key=KEY, max_retries=0)
    reply = client.completions.create(model=mock_server.name, prompt="Hello there", max_tokens=5)
    assert reply.usage.completion_tokens == 5 and reply.choices[0].text


def test_a_disconnected_stream_stops_the_engine(keyed_url, mock_server):
    """2000 tokens at 20 ms would take 40 s; after the client drops the stream the engine logs that it stopped."""
    client = openai.OpenAI(base_url=f"{keyed_url}/v1", api_key=KEY, max_retries=0)
    stream = client.chat.completions.create(model=mock_server.name, messages=CHAT, max_tokens=2000, stream=True)
    first = [next(stream) for _ in range(3)]
    stream.close()  # closes the HTTP connection
    request_id = first[0].id.removeprefix("chatcmpl-")
    log = Path(mock_server.log)
    pattern = re.compile(rf"request '{request_id}' cancelled after (\d+) tokens")
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and not pattern.search(log.read_text()):
        time.sleep(0.1)
    found = pattern.search(log.read_text())
    assert found, "the engine never stopped the abandoned request"
    assert int(found.group(1)) < 200
    health = httpx.get(f"{keyed_url}/health", headers={"Authorization": f"Bearer {KEY}"}).json()
    assert health["cancelled"] >= 1 and health["active"] == 0
