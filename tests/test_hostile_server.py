"""Hostile input on a real tritonserver (127.0.0.1): every kind gets one clear error naming what the client sent,
and the server keeps serving. The cpu route with the MOCK engine: the checks live in the python models, not in a
model. Figures (time to refusal, memory, latency beside it) come from benchmarks/hostile_prompt.py."""

from __future__ import annotations

import json
import queue
import urllib.error
import urllib.request

import numpy as np
import pytest
import tritonclient.grpc as grpcclient

from conftest import render
from tritongen.clients.triton import GenerateParams, LLMClient

pytestmark = pytest.mark.server

FRONTS = ("ensemble", "tensorrt_llm_bls")
DTYPES = {"BYTES": object, "INT32": np.int32, "INT64": np.int64, "FP32": np.float32, "BOOL": np.bool_,
          "UINT64": np.uint64}


@pytest.fixture(scope="module")
def server(tiny_dir, session_root, server_factory):
    repo = render("tiny", session_root / "repos" / "hostile", **{"name": "hostile", "cpu.engine": "mock",
                                                                  "serving.bls": True})
    return server_factory(repo, "test-hostile")


@pytest.fixture(scope="module")
def prompt_limit(tiny_dir):
    from test_textcodec import textcodec
    from transformers import AutoTokenizer

    return 1024 * textcodec.max_token_bytes(AutoTokenizer.from_pretrained(tiny_dir))  # tiny: max_input_len 1024


def grpc_stream(server, model: str, inputs: dict) -> str:
    """One streamed gRPC request with these inputs (name -> (value, dtype)); the error text, or "" if it
    succeeded with some output."""
    client = grpcclient.InferenceServerClient(server.grpc_url)
    results: queue.Queue = queue.Queue()
    tensors = []
    for name, (value, dtype) in inputs.items():
        arr = np.array(value, dtype=DTYPES[dtype])
        t = grpcclient.InferInput(name, list(arr.shape), dtype)
        t.set_data_from_numpy(arr)
        tensors.append(t)
    client.start_stream(callback=lambda result, error: results.put((result, error)))
    try:
        client.async_stream_infer(model, tensors, request_id="hostile", enable_empty_final_response=True)
        while True:
            result, error = results.get(timeout=60)
            if error is not None:
                return " ".join(str(error).split())
            final = result.get_response().parameters.get("triton_final_response")
            if final is not None and final.bool_param:
                return ""
    finally:
        client.stop_stream(cancel_requests=True)
        client.close()


def http_generate(server, model: str, body: bytes) -> tuple[int, str]:
    req = urllib.request.Request(f"http://{server.http_url}/v2/models/{model}/generate", data=body, method="POST",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=120) as resp:
            return resp.status, json.loads(resp.read()).get("error", "")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read()).get("error", "")


def prompt(text="Hello there"):
    return {"text_input": ([[text.encode()]], "BYTES"), "max_tokens": ([[4]], "INT32"), "stream": ([[True]], "BOOL")}


def still_serving(server):
    for model in FRONTS:
        assert LLMClient(server.grpc_url, model=model).generate("The river", GenerateParams(max_tokens=3)).text


@pytest.mark.parametrize("model", FRONTS)
def test_an_over_long_prompt_is_refused_by_its_size_naming_the_limit(server, prompt_limit, model):
    big = "word " * 200_000  # 1 MB; tokenizing it would take seconds and hundreds of MB
    want = (f"text_input is 1000000 bytes, more than the {prompt_limit} bytes a prompt of at most "
            "max_input_len=1024 tokens can have")
    status, error = http_generate(server, model, json.dumps({"text_input": big, "max_tokens": 4}).encode())
    assert status == 400 and want in error, error
    assert want in grpc_stream(server, model, prompt(big))
    # Just under the bound the prompt is tokenized and refused by its token count, as before.
    near = "word " * (prompt_limit // 5)
    assert "longer than max_input_len=1024" in grpc_stream(server, model, prompt(near))
    still_serving(server)


@pytest.mark.parametrize("model", [*FRONTS, "tensorrt_llm"])
@pytest.mark.parametrize("name, dtype, value, message", [
    ("temperature", "FP32", float("nan"), "temperature=nan is not allowed: it must be a finite number >= 0"),
    ("temperature", "FP32", float("inf"), "temperature=inf is not allowed: it must be a finite number >= 0"),
    ("temperature", "FP32", -1.0, "temperature=-1 is not allowed"),
    ("top_p", "FP32", 1.5, "top_p=1.5 is not allowed: it must be a finite number in [0, 1]"),
    ("top_k", "INT32", -1, "top_k=-1 is not allowed: it must be an integer in [0, 2147483647]"),
    ("repetition_penalty", "FP32", 0.0, "repetition_penalty=0 is not allowed: it must be a finite number > 0"),
    ("presence_penalty", "FP32", float("-inf"), "presence_penalty=-inf is not allowed"),
    ("frequency_penalty", "FP32", float("nan"), "frequency_penalty=nan is not allowed"),
    ("length_penalty", "FP32", float("inf"), "length_penalty=inf is not allowed"),
    ("min_tokens", "INT32", -2, "min_tokens=-2 is not allowed: it must be an integer in [0, 2147483647]"),
    ("beam_width", "INT32", 0, "beam_width=0 is not allowed: it must be an integer in [1, 2147483647]"),
    ("num_return_sequences", "INT32", 0, "num_return_sequences=0 is not allowed"),
])
def test_every_sampling_input_is_checked_for_range_and_finiteness(server, model, name, dtype, value, message):
    llm_name = {"top_k": "runtime_top_k", "top_p": "runtime_top_p", "length_penalty": "len_penalty"}.get(name, name)
    if model != "tensorrt_llm_bls" and llm_name != name:
        # Through the ensemble the check is the engine's (no python step sees sampling inputs), which names the
        # input both ways: the ensemble's client sent top_k, a client of tensorrt_llm runtime_top_k.
        message = message.replace(f"{name}=", f"{name}/{llm_name}=")
    if model == "tensorrt_llm":  # the engine's own contract, as a TensorRT-LLM backend client sends it
        inputs = {"input_ids": ([[5, 6, 7]], "INT32"), "input_lengths": ([[3]], "INT32"),
                  "request_output_len": ([[4]], "INT32"), "streaming": ([[True]], "BOOL"),
                  llm_name: ([[value]], dtype)}
    else:
        inputs = {**prompt(), name: ([[value]], dtype)}
    error = grpc_stream(server, model, inputs)
    assert message in error, error


@pytest.mark.parametrize("model", FRONTS)
def test_nan_over_http_generate_is_refused(server, model):
    status, error = http_generate(server, model, b'{"text_input": "Hello", "max_tokens": 4, "temperature": NaN}')
    assert status == 400 and "temperature=nan is not allowed: it must be a finite number >= 0" in error


@pytest.mark.parametrize("model", FRONTS)
def test_max_tokens_too_large_is_named(server, model):
    # max_tokens is INT32, the reference's dtype (its clients send INT32 and Triton checks dtypes strictly).
    # Over HTTP generate Triton cuts a larger JSON number to 32 bits before any model sees it: 2**40 arrives as
    # 0, and the message says that a too-large number shows up so.
    status, error = http_generate(server, model, b'{"text_input": "Hello", "max_tokens": 1099511627776}')
    assert status == 400 and "max_tokens must be between 1 and 2147483647, got 0" in error, error
    assert "a number beyond 2147483647 reaches the server cut to 32 bits" in error
    # Over gRPC a client cannot put 2**40 into the contract's INT32; a wider dtype is Triton's own dtype error.
    wide = grpc_stream(server, model, {**prompt(), "max_tokens": ([[2**40]], "INT64")})
    assert "'max_tokens'" in wide and "INT32" in wide, wide
    status, error = http_generate(server, model, b'{"text_input": "Hello", "max_tokens": 0}')
    assert status == 400 and "max_tokens must be between 1 and 2147483647, got 0" in error


@pytest.mark.parametrize("model", FRONTS)
def test_missing_inputs_are_errors_naming_the_clients_tensors(server, model):
    internal = ("QUERY", "REQUEST_OUTPUT_LEN", "END_ID", "OUT_END_ID")
    no_text = {"max_tokens": ([[4]], "INT32"), "stream": ([[True]], "BOOL")}
    no_max = {"text_input": ([[b"Hello"]], "BYTES"), "stream": ([[True]], "BOOL")}
    for inputs, message in ((no_text, "text_input is required"), (no_max, "max_tokens is required")):
        error = grpc_stream(server, model, inputs)  # it used to be an empty answer without an error
        assert message in error and not any(name in error for name in internal), error
    status, error = http_generate(server, model, b'{"max_tokens": 4}')
    assert status == 400 and "text_input is required" in error
    error = grpc_stream(server, model, {**prompt(), "end_id": ([[999999]], "INT32")})
    assert "end_id=999999 is not a token id of this model: it must be in [-1, 1023]" in error
    assert not any(name in error for name in internal)


@pytest.mark.parametrize("model", FRONTS)
def test_word_lists_are_bounded(server, model):
    many = [[f"w{i}".encode() for i in range(300)]]
    error = grpc_stream(server, model, {**prompt(), "stop_words": (many, "BYTES")})
    assert "stop_words has 300 entries" in error and "at most 256 entries" in error
    huge = [[b"x" * 20000]]
    error = grpc_stream(server, model, {**prompt(), "bad_words": (huge, "BYTES")})
    assert "bad_words has 1 entries and 20000 bytes" in error
    error = grpc_stream(server, model, {**prompt(), "embedding_bias_words": ([[b"river"]], "BYTES"),
                                        "embedding_bias_weights": ([[float("nan")]], "FP32")})
    assert "embedding_bias_weights must be finite" in error
    still_serving(server)
