"""The llmapi repository on a real tritonserver: the front (model "ensemble") and the rendered tensorrt_llm loader,
with a FAKE llmapi implementation behind it (tests/fixtures/fake_llmapi: upstream's tensor contract, a
deterministic echo instead of an LLM), because TensorRT-LLM cannot run here.

What is real: the rendered repository (config.pbtxt files, model.yaml, the front's model.py, the loader's model.py
that execs the implementation and reads model.yaml from its own folder), the local tritonserver, the clients.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import FIXTURES, render, with_env
from tritongen.cli import cli
from tritongen.clients.triton import GenerateParams, LLMClient
from tritongen.errors import ClientError

pytestmark = pytest.mark.server

FAKE_IMPL = FIXTURES / "fake_llmapi" / "tensorrt_llm" / "1"
STEP_MS = 10
PROMPT = "The river ran past the old mill"


@pytest.fixture(scope="module")
def llmapi_repo(tiny_dir, session_root):
    return render("tiny", session_root / "repos" / "llmapi-tiny", **{"name": "llmapi-tiny", "route": "llmapi"})


@pytest.fixture(scope="module")
def llmapi_server(llmapi_repo, server_factory):
    """The llmapi repository served with the FAKE implementation (TRITONGEN_LLMAPI_IMPL_DIR)."""
    env = {"TRITONGEN_LLMAPI_IMPL_DIR": str(FAKE_IMPL), "FAKE_LLMAPI_STEP_MS": str(STEP_MS)}
    return with_env(env, lambda: server_factory(llmapi_repo, "test-llmapi"))


@pytest.fixture(scope="module")
def tok(tiny_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_dir)


def echo(tok, prompt: str, n: int) -> str:
    """What the FAKE generates: the prompt's tokens (special tokens dropped), repeated, n of them."""
    body = [i for i in tok(prompt, add_special_tokens=False)["input_ids"] if i not in tok.all_special_ids]
    ids = [body[i % len(body)] for i in range(n)]
    return tok.decode(ids, skip_special_tokens=True)


def _log(server) -> str:
    return Path(server.log).read_text()


def test_the_loader_runs_the_implementation_with_the_rendered_model_yaml(llmapi_server):
    """model.py found the implementation and the implementation read tensorrt_llm/1/model.yaml of the repository."""
    line = next(ln for ln in _log(llmapi_server).splitlines() if "FAKE llmapi: loaded with LLM args" in ln)
    for key in ("model", "backend", "kv_cache_config", "max_seq_len", "scheduler_config", "tensor_parallel_size"):
        assert f"'{key}'" in line
    assert "triton_config" not in line and "(decoupled=True)" in line


def test_streamed_and_whole_text_through_the_front(llmapi_server, tok):
    client = LLMClient(llmapi_server.grpc_url)
    want = echo(tok, PROMPT, 12)
    chunks = list(client.stream(PROMPT, GenerateParams(max_tokens=12, return_num_tokens=True)))
    texts = [c.text for c in chunks]
    assert "".join(texts) == want
    assert len([t for t in texts if t]) >= 6  # deltas of the cumulative llmapi text, token by token
    extras = {k: v for c in chunks for k, v in c.extras.items()}
    assert extras["num_input_tokens"] == [[len(tok(PROMPT)["input_ids"])]]
    assert extras["num_output_tokens"] == [[len(tok(want, add_special_tokens=False)["input_ids"])]]
    whole = client.generate(PROMPT, GenerateParams(max_tokens=12))
    assert whole.text == want and len(whole.chunks) == 1
    http = LLMClient(llmapi_server.http_url, protocol="http")
    assert http.generate(PROMPT, GenerateParams(max_tokens=12)).text == want
    assert "".join(c.text for c in http.stream(PROMPT, GenerateParams(max_tokens=12))) == want


def test_stop_words_and_prompt_in_output(llmapi_server, tok):
    client = LLMClient(llmapi_server.grpc_url)
    full = echo(tok, PROMPT, 16)
    stopped = client.generate(PROMPT, GenerateParams(max_tokens=16, stop=["mill"]), stream=True).text
    assert stopped == full[: full.index("mill")]
    params = GenerateParams(max_tokens=5, exclude_input_in_output=False)
    assert client.generate(PROMPT, params).text == PROMPT + echo(tok, PROMPT, 5)


def test_chat_template_is_applied_by_the_front(llmapi_server, tok):
    client = LLMClient(llmapi_server.grpc_url)
    text = client.generate('[{"role": "user", "content": "Hi there"}]', GenerateParams(max_tokens=40, chat=True)).text
    templated = tok.apply_chat_template([{"role": "user", "content": "Hi there"}], tokenize=False,
                                        add_generation_prompt=True)
    assert text == echo(tok, templated, 40)
    assert "Hi there" in text


def test_sampling_settings_reach_the_llmapi_inputs(llmapi_server, tok):
    """The FAKE ignores sampling, but every forwarded input must be accepted by upstream's contract."""
    client = LLMClient(llmapi_server.grpc_url)
    params = GenerateParams(max_tokens=4, temperature=0.7, top_k=5, top_p=0.9, seed=3, presence_penalty=0.1,
                            frequency_penalty=0.2)
    assert client.generate(PROMPT, params).text == echo(tok, PROMPT, 4)


@pytest.mark.parametrize("params, message", [
    (GenerateParams(max_tokens=4, bad_words=["river"]), "bad_words: not supported by the llmapi route"),
    (GenerateParams(max_tokens=4, return_log_probs=True), "return_log_probs: not supported by the llmapi route"),
    (GenerateParams(max_tokens=4, min_tokens=3), "min_tokens: not supported"),
    (GenerateParams(max_tokens=4000), "exceeds max_seq_len=2048"),
])
def test_what_the_front_refuses(llmapi_server, params, message):
    client = LLMClient(llmapi_server.grpc_url)
    with pytest.raises(ClientError, match=message):
        client.generate(PROMPT, params)
    assert client.generate(PROMPT, GenerateParams(max_tokens=2)).text  # still serving


def test_tritongen_infer_works_unchanged(llmapi_server, tok):
    result = CliRunner().invoke(cli, ["infer", PROMPT, "--url", llmapi_server.grpc_url, "--max-tokens", "6"])
    assert result.exit_code == 0, result.output
    assert echo(tok, PROMPT, 6) in result.output


def test_a_cancelled_stream_stops_the_llmapi_request(llmapi_server):
    """The client drops its stream: the front sees the cancellation and stops the llmapi request by id."""
    client = LLMClient(llmapi_server.grpc_url, stop_model=None)  # only the dropped stream, no client-side stop
    stream = client.stream(PROMPT, GenerateParams(max_tokens=2000), request_id="llmapi-cancel")
    assert all(next(stream).text for _ in range(3))
    stream.close()
    deadline = time.monotonic() + 10
    pattern = re.compile(r"FAKE llmapi: llmapi-cancel aborted \(stop request\) after (\d+) tokens")
    while time.monotonic() < deadline and not pattern.search(_log(llmapi_server)):
        time.sleep(0.1)
    found = pattern.search(_log(llmapi_server))
    assert found, "the llmapi request was never stopped"
    assert int(found.group(1)) < 200  # 2000 tokens would take 20 s
    assert "FAKE llmapi: llmapi-cancel finished" not in _log(llmapi_server)



@pytest.fixture(scope="module")
def unary_server(tiny_dir, session_root, server_factory):
    """serving.streaming=false: neither the front nor the llmapi model is decoupled."""
    repo = render("tiny", session_root / "repos" / "llmapi-unary", **{"name": "llmapi-unary", "route": "llmapi",
                                                                       "serving.streaming": False})
    env = {"TRITONGEN_LLMAPI_IMPL_DIR": str(FAKE_IMPL), "FAKE_LLMAPI_STEP_MS": "20"}
    return with_env(env, lambda: server_factory(repo, "test-llmapi-unary"))


def test_without_streaming_requests_still_run_concurrently(unary_server, tok):
    """The front answers through the response sender in both modes, so one slow request does not hold others."""
    import threading

    client = LLMClient(unary_server.grpc_url)
    want = echo(tok, PROMPT, 25)
    assert client.generate(PROMPT, GenerateParams(max_tokens=25)).text == want  # 25 steps of 20 ms: 0.5 s
    texts: list[str] = []
    threads = [threading.Thread(target=lambda: texts.append(client.generate(PROMPT, GenerateParams(max_tokens=25),
                                                                            stream=True).text)) for _ in range(4)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    elapsed = time.perf_counter() - start
    assert texts == [want] * 4
    assert elapsed < 1.5  # one after another would take 2 s
    http = LLMClient(unary_server.http_url, protocol="http")
    full = echo(tok, PROMPT, 10)
    assert http.generate(PROMPT, GenerateParams(max_tokens=10, stop=["past"])).text == full[: full.index("past")]


def test_the_openai_api_works_on_the_llmapi_route(llmapi_server, tok):
    """The OpenAI server needs nothing route-specific: chat, usage and a dropped stream through the front."""
    import openai

    from conftest import free_ports
    from tritongen import proc
    from tritongen.clients.openai import launch as openai_server

    url, pid = openai_server._launch(llmapi_server, free_ports(1)[0])
    try:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
        messages = [{"role": "user", "content": "Hi there"}]
        reply = client.chat.completions.create(model=llmapi_server.name, messages=messages, max_tokens=30,
                                               temperature=0)
        templated = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        assert reply.choices[0].message.content == echo(tok, templated, 30)
        assert reply.usage.prompt_tokens == len(tok(templated, add_special_tokens=False)["input_ids"])
        assert reply.choices[0].finish_reason == "length"
        stream = client.completions.create(model=llmapi_server.name, prompt=PROMPT, max_tokens=2000, stream=True)
        first = [next(stream) for _ in range(3)]
        stream.close()
        rid = first[0].id.removeprefix("cmpl-")
        pattern = re.compile(rf"FAKE llmapi: {rid} aborted \((stop request|cancelled)\) after (\d+) tokens")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not pattern.search(_log(llmapi_server)):
            time.sleep(0.1)
        found = pattern.search(_log(llmapi_server))
        assert found and int(found.group(2)) < 200
    finally:
        proc.stop_pid(pid, timeout=10)
