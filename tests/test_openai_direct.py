"""The OpenAI front's direct path (``tritongen openai --direct``): tokenizer in the front, the repository's
tensorrt_llm model in Triton, no ensemble. Against a real tritonserver, with the official ``openai`` client, the
direct front must answer exactly what the front over the ensemble answers: the same text (streamed and whole),
the same usage, the same stop-sequence cuts and the same errors.
"""

from __future__ import annotations

import openai
import pytest

from conftest import free_ports, render
from tritongen import proc
from tritongen.clients.openai import launch as openai_server

pytestmark = pytest.mark.server

CHAT = [{"role": "user", "content": "Tell me about the river and the old mill."}]
ECHOES = [
    "Café, élève, déjà vu, Straße, Grüße, mañana, niño, naïve façade.",
    "日本語の文章も少しあります。東京は大きな都市です。中文也有一些：你好，世界。",
    "Emoji carry meaning: 🙂 😀 🎉🚀 ❤️ 👍🏽 👨‍👩‍👧 🍎🍐🍊🍋 done.",
]


def _fronts(record):
    """(front over the ensemble, direct front) clients for one server, stopped at the end."""
    pids, clients = [], []
    for direct in (False, True):
        url, pid = openai_server._launch(record, free_ports(1)[0], direct=direct)
        pids.append(pid)
        clients.append(openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=60))
    return clients, pids


@pytest.fixture(scope="module")
def torch_fronts(tiny_server):
    clients, pids = _fronts(tiny_server)
    yield clients
    for pid in pids:
        proc.stop_pid(pid, timeout=10)


@pytest.fixture(scope="module")
def echo_fronts(tiny_dir, session_root, server_factory):
    repo = render("tiny", session_root / "repos" / "direct-echo", **{
        "name": "direct-echo", "cpu.engine": "mock", "cpu.mock_echo": True, "serving.model_prefix": "e-"})
    record = server_factory(repo, "direct-echo")
    clients, pids = _fronts(record)
    yield record, clients
    for pid in pids:
        proc.stop_pid(pid, timeout=10)


def _streamed(client, model, **kwargs) -> str:
    chunks = client.completions.create(model=model, stream=True, **kwargs)
    return "".join(c.choices[0].text for c in chunks if c.choices)


def test_completion_and_chat_match_the_ensemble(torch_fronts, tiny_server):
    ensemble, direct = torch_fronts
    name = tiny_server.name
    for kwargs in ({"prompt": "The river ran past", "max_tokens": 24, "temperature": 0},
                   {"prompt": "The river ran past", "max_tokens": 40, "temperature": 0, "stop": ["the", "."]}):
        a, b = (c.completions.create(model=name, **kwargs) for c in (ensemble, direct))
        assert b.choices[0].text == a.choices[0].text and a.choices[0].text
        assert b.choices[0].finish_reason == a.choices[0].finish_reason
        assert (b.usage.prompt_tokens, b.usage.completion_tokens) == (a.usage.prompt_tokens, a.usage.completion_tokens)
        assert _streamed(direct, name, **kwargs) == a.choices[0].text
    a, b = (c.chat.completions.create(model=name, messages=CHAT, max_tokens=24, temperature=0)
            for c in (ensemble, direct))
    assert b.choices[0].message.content == a.choices[0].message.content and a.choices[0].message.content
    assert b.usage.prompt_tokens == a.usage.prompt_tokens > 10  # the chat template was applied here too


def test_streamed_multibyte_text_is_exact(echo_fronts):
    """The MOCK echoes the prompt's tokens, so every cut (inside a character too) is checked against the
    ensemble's answer and against the whole answer."""
    record, (ensemble, direct) = echo_fronts
    for text in ECHOES:
        for max_tokens in (7, 13, 40):
            whole = ensemble.completions.create(model=record.name, prompt=text, max_tokens=max_tokens).choices[0].text
            assert _streamed(direct, record.name, prompt=text, max_tokens=max_tokens) == whole
            assert _streamed(ensemble, record.name, prompt=text, max_tokens=max_tokens) == whole


def test_errors_are_the_same(torch_fronts, tiny_server):
    ensemble, direct = torch_fronts
    errors = []
    for client in (ensemble, direct):
        with pytest.raises(openai.BadRequestError) as info:
            client.completions.create(model=tiny_server.name, prompt="word " * 5000, max_tokens=8)
        errors.append(info.value.body)
    assert errors[0]["code"] == errors[1]["code"] == "context_length_exceeded", errors
