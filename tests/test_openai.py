"""The OpenAI-compatible server without Triton: request mapping, stop handling, error shapes, the API key.
tests/test_openai_server.py drives it against a real tritonserver with the official openai package."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner
from starlette.testclient import TestClient

from tritongen.cli import cli
from tritongen.clients.openai.app import create_app
from tritongen.clients.openai.backend import _classify
from tritongen.clients.openai.mapping import StopScanner, chat_generation, completion_generation
from tritongen.clients.openai.protocol import ChatCompletionRequest, CompletionRequest, OpenAIError
from tritongen.clients.openai.serving import ServerConfig


def _chat(**kw):
    return ChatCompletionRequest.model_validate({"model": "m", "messages": [{"role": "user", "content": "hi"}], **kw})


def test_stop_scanner_cuts_across_chunks_and_holds_back_prefixes():
    s = StopScanner(["lo w", "END"])
    assert s.push("Hel") == "He"  # "l" may be the start of "lo w"
    assert s.push("lo") == "l"
    assert s.push(" wo") == ""
    assert s.hit == "lo w"
    s = StopScanner(["lo w"])
    assert s.push("Hello") == "Hel"
    assert s.push("!") == "lo!"
    assert s.flush() == "" and s.hit is None
    s = StopScanner(["E"])
    assert s.push("abc") == "abc" and s.flush() == ""
    s = StopScanner([])
    assert s.push("x") == "x"


def test_chat_request_maps_onto_the_client_contract():
    gen = chat_generation(_chat(messages=[{"role": "developer", "content": "be brief"},
                                          {"role": "user", "content": [{"type": "text", "text": "a"},
                                                                       {"type": "text", "text": "b"}]}],
                                max_completion_tokens=7, max_tokens=9, stop="\n", seed=5), 256)
    t = gen.tensors()
    assert t["text_input"][0][0, 0].decode() == '[{"role": "system", "content": "be brief"}, {"role": "user", ' \
                                                '"content": "ab"}]'
    assert t["apply_chat_template"] == (np.array([[True]]), "BOOL")
    assert t["max_tokens"][0][0, 0] == 7 and t["max_tokens"][1] == "INT32"
    assert t["stop_words"][0].tolist() == [[b"\n"]] and t["stop_words"][1] == "BYTES"
    assert t["seed"][0].dtype == np.uint64 and t["seed"][0][0, 0] == 5
    assert t["return_num_input_tokens"][0][0, 0] and t["return_num_output_tokens"][0][0, 0]
    assert t["stream"][0][0, 0]
    # OpenAI's default temperature is 1 (sampling); TensorRT-LLM samples only with top_p/top_k set.
    assert t["temperature"][0][0, 0] == 1.0 and t["top_p"][0][0, 0] == 1.0
    assert chat_generation(_chat(), 256).max_tokens == 256


def test_temperature_zero_is_greedy_and_top_p_passes():
    greedy = chat_generation(_chat(temperature=0), 16).tensors()
    assert "temperature" not in greedy and "top_p" not in greedy and "top_k" not in greedy
    sampled = chat_generation(_chat(temperature=0.5, top_p=0.9, top_k=4, presence_penalty=0.5), 16).tensors()
    assert sampled["temperature"][0][0, 0] == pytest.approx(0.5)
    assert sampled["top_p"][0][0, 0] == pytest.approx(0.9) and sampled["top_k"][0][0, 0] == 4
    assert sampled["presence_penalty"][0][0, 0] == pytest.approx(0.5)


def test_completion_request_defaults():
    gen = completion_generation(CompletionRequest.model_validate({"model": "m", "prompt": ["once"]}), 16)
    assert gen.text == "once" and gen.max_tokens == 16 and not gen.chat and "apply_chat_template" not in gen.tensors()


@pytest.mark.parametrize("kw, param", [
    ({"tools": [{"type": "function"}]}, "tools[0]"), ({"top_logprobs": 21, "logprobs": True}, "top_logprobs"),
    ({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]}, "messages[0].content"),
    ({"stop": ["a", "b", "c", "d", "e"]}, "stop"), ({"response_format": {"type": "yaml"}}, "response_format"),
    ({"logit_bias": {"1": 2.0}}, "logit_bias"),
])
def test_unsupported_chat_options_are_400(kw, param):
    with pytest.raises(OpenAIError) as err:
        chat_generation(_chat(**kw), 16)
    assert err.value.status == 400 and err.value.body.error.param == param


@pytest.mark.parametrize("kw, param", [
    ({"prompt": ["a", "b"]}, "prompt"), ({"echo": True, "logprobs": 0}, "echo"), ({"best_of": 2}, "best_of"),
    ({"logprobs": 6}, "logprobs"),
    ({"suffix": "x"}, "suffix"), ({"prompt": ""}, "prompt"),
])
def test_unsupported_completion_options_are_400(kw, param):
    with pytest.raises(OpenAIError) as err:
        completion_generation(CompletionRequest.model_validate({"model": "m", "prompt": "p", **kw}), 16)
    assert err.value.status == 400 and err.value.body.error.param == param


def test_triton_errors_become_openai_errors():
    e = _classify("in ensemble 'ensemble', prompt (16 tokens) + max_tokens (5000) exceeds max_seq_len=2048")
    assert (e.status, e.body.error.code, e.body.error.param) == (400, "context_length_exceeded", "max_tokens")
    assert _classify("bad_words: not supported by the llmapi route").status == 400
    assert _classify("Request for unknown model: 'ensemble' is not found").status == 503
    e = _classify("tensorrt_llm (cpu) engine error: boom")
    assert (e.status, e.body.error.type) == (500, "server_error")


def _client(api_key=None) -> TestClient:
    # Nothing listens on port 9: Triton calls fail, everything answered before them is testable.
    cfg = ServerConfig(triton_url="grpc://127.0.0.1:9", model_name="tiny", api_key=api_key, timeout=5)
    return TestClient(create_app(cfg))


def _shape(body: dict) -> dict:
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}, body
    return body["error"]


def test_models_and_openai_error_shapes():
    with _client() as c:
        listed = c.get("/v1/models").json()
        assert listed["object"] == "list" and [m["id"] for m in listed["data"]] == ["tiny"]
        assert c.get("/v1/models/tiny").json()["id"] == "tiny"
        r = c.get("/v1/models/other")
        assert r.status_code == 404 and _shape(r.json())["code"] == "model_not_found"
        r = c.post("/v1/chat/completions", json={"model": "gpt-4", "messages": [{"role": "user", "content": "x"}]})
        assert r.status_code == 404
        err = _shape(r.json())
        assert (err["type"], err["param"], err["code"]) == ("invalid_request_error", "model", "model_not_found")
        r = c.post("/v1/completions", json={"model": "tiny", "prompt": "x", "max_tokens": "lots"})
        assert r.status_code == 400 and _shape(r.json())["param"] == "max_tokens"
        r = c.post("/v1/completions", json={"model": "tiny", "prompt": "x", "temperature": True})
        assert r.status_code == 400 and _shape(r.json())["param"] == "temperature"
        r = c.post("/v1/completions", json={"model": "tiny", "prompt": "x", "max_tokens": 0})
        assert r.status_code == 400 and _shape(r.json())["param"] == "max_tokens"
        r = c.post("/v1/chat/completions", json={"model": "tiny"})
        assert r.status_code == 400 and _shape(r.json())["param"] == "messages"
        r = c.post("/v1/chat/completions", content=b"{not json", headers={"content-type": "application/json"})
        assert r.status_code == 400 and "JSON" in _shape(r.json())["message"]
        r = c.post("/v1/chat/completions", json={"model": "tiny", "n": 129, "messages": [{"role": "user",
                                                                                           "content": "x"}]})
        assert r.status_code == 400 and _shape(r.json())["param"] == "n"
        r = c.get("/v1/nothing-here")
        assert r.status_code == 404 and _shape(r.json())["code"] == "unknown_url"
        r = c.get("/health")
        assert r.status_code == 503 and r.json()["status"] == "unavailable"
        r = c.post("/v1/completions", json={"model": "tiny", "prompt": "x", "max_tokens": 3})
        assert r.status_code == 503 and _shape(r.json())["code"] == "triton_unavailable"


@pytest.mark.parametrize("body, param", [
    (b'{"model": "tiny", "prompt": "x", "temperature": NaN}', "temperature"),
    (b'{"model": "tiny", "prompt": "x", "temperature": Infinity}', "temperature"),
    (b'{"model": "tiny", "prompt": "x", "presence_penalty": -Infinity}', "presence_penalty"),
    (b'{"model": "tiny", "prompt": "x", "top_p": NaN}', "top_p"),
    (b'{"model": "tiny", "prompt": "x", "top_k": 1099511627776}', "top_k"),
    (b'{"model": "tiny", "prompt": "x", "max_tokens": 1099511627776}', "max_tokens"),
    (b'{"model": "tiny", "prompt": "x", "seed": -1}', "seed"),
    (b'{"model": "tiny", "messages": [{"role": "user", "content": "x"}], "max_completion_tokens": 4294967296}',
     "max_completion_tokens"),
])
def test_sampling_values_out_of_range_are_openai_400s(body, param):
    """Python's json reads NaN and Infinity; they and numbers beyond the engine's INT32 are refused by name."""
    path = "/v1/chat/completions" if b"messages" in body else "/v1/completions"
    with _client() as c:
        r = c.post(path, content=body, headers={"content-type": "application/json"})
    err = _shape(r.json())
    assert r.status_code == 400 and err["param"] == param and err["type"] == "invalid_request_error", err


def test_a_body_over_the_limit_is_refused_before_it_is_parsed():
    cfg = ServerConfig(triton_url="grpc://127.0.0.1:9", model_name="tiny", timeout=5, max_body_bytes=1000)
    big = b'{"model": "tiny", "prompt": "' + b"x" * 5000 + b'"}'
    with TestClient(create_app(cfg)) as c:
        r = c.post("/v1/completions", content=big, headers={"content-type": "application/json"})
        err = _shape(r.json())
        assert r.status_code == 413 and err["code"] == "request_too_large"
        assert f"{len(big)} bytes" in err["message"] and "1000 bytes" in err["message"]

        def chunks():  # no Content-Length: counted while it is read
            yield big[:3000]
            yield big[3000:]

        r = c.post("/v1/completions", content=chunks(), headers={"content-type": "application/json"})
        assert r.status_code == 413 and _shape(r.json())["code"] == "request_too_large"
        # A body under the limit still reaches the routes (here: refused for its content, not its size).
        r = c.post("/v1/completions", json={"model": "tiny", "prompt": "x", "max_tokens": 0})
        assert r.status_code == 400 and _shape(r.json())["param"] == "max_tokens"


def test_api_key_is_checked_on_every_request():
    with _client(api_key="s3cret") as c:
        for method, path in (("get", "/v1/models"), ("get", "/health"), ("post", "/v1/chat/completions")):
            r = getattr(c, method)(path)
            assert r.status_code == 401 and _shape(r.json())["code"] == "invalid_api_key"
        r = c.get("/v1/models", headers={"Authorization": "Bearer wrong"})
        assert r.status_code == 401 and "Incorrect API key" in r.json()["error"]["message"]
        assert c.get("/v1/models", headers={"Authorization": "Bearer s3cret"}).status_code == 200


def test_command_module_imports_only_click_and_the_stdlib():
    code = ("import sys, tritongen.commands.openai; heavy = [m for m in ('fastapi', 'uvicorn', 'grpc', 'numpy', "
            "'pydantic', 'tritonclient', 'torch', 'transformers') if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_openai_command_help():
    result = CliRunner().invoke(cli, ["openai", "--help"])
    assert result.exit_code == 0
    for option in ("--triton", "--api-key", "--model-name", "--port", "--host"):
        assert option in result.output
