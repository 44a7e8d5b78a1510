"""Streamed text on a real tritonserver: exact for every client, whatever request ids they send.

Clients the way the reference scripts write them (raw tritonclient, Triton's HTTP generate_stream): without a
request id, all with the same id, or reusing ids once their requests end, many at once. The MOCK engine echoes
each prompt's tokens, so the expected text is the tokenizer's own decode of known ids, and max_tokens can end a
response anywhere, inside a multi-byte character too.
"""

from __future__ import annotations

import json
import queue
import threading
import urllib.request

import numpy as np
import pytest
import tritonclient.grpc as grpcclient

from conftest import render
from tritongen.contract import STREAM_TO_POST

pytestmark = pytest.mark.server

MODELS = ("ensemble", "tensorrt_llm_bls")

BASES = [
    "Café, élève, déjà vu, Straße, Grüße, mañana, niño, naïve façade.",
    "日本語の文章も少しあります。東京は大きな都市です。中文也有一些：你好，世界。",
    "Emoji carry meaning: 🙂 😀 🎉🚀 ❤️ 👍🏽 👨‍👩‍👧 🍎🍐🍊🍋 done.",
    "한국어도 조금 있습니다: 안녕하세요. Ελληνικά και ქართული: გამარჯობა.",
]


@pytest.fixture(scope="module")
def streams_server(tiny_dir, sentencepiece_style_dir, session_root, server_factory):
    """One server, two echo repositories: t- with tiny's byte-level BPE, s- with a SentencePiece-style
    tokenizer (byte fallback)."""
    repos = []
    for prefix, tok_dir in (("t-", tiny_dir), ("s-", sentencepiece_style_dir), ("n-", tiny_dir)):
        repos.append(render("tiny", session_root / "repos" / f"streams-{prefix[0]}", **{
            "name": f"streams-{prefix[0]}", "serving.model_prefix": prefix, "cpu.engine": "mock",
            "cpu.mock_echo": True, "model.tokenizer_dir": tok_dir, "serving.bls": prefix != "n-"}))
    # n-: the engine route's wiring (the TensorRT-LLM C++ backend sends no stream key), on the cpu engine.
    config = repos[-1] / "n-ensemble" / "config.pbtxt"
    lines = config.read_text().splitlines(keepends=True)
    keyless = [ln for ln in lines if not any(f'"{name}"' in ln for name in (*STREAM_TO_POST, *STREAM_TO_POST.values()))]
    assert len(lines) - len(keyless) == 2 * len(STREAM_TO_POST)
    config.write_text("".join(keyless))
    return server_factory(repos, "test-streams")


@pytest.fixture(scope="module")
def tokenizers(tiny_dir, sentencepiece_style_dir):
    from transformers import AutoTokenizer

    return {"t-": AutoTokenizer.from_pretrained(tiny_dir), "s-": AutoTokenizer.from_pretrained(sentencepiece_style_dir)}


def echoed(tok, text: str, max_tokens: int) -> str:
    """What the echo engine answers: the prompt's ids without special tokens, cut at max_tokens, decoded."""
    body = [i for i in tok(text)["input_ids"] if i not in tok.all_special_ids]
    assert max_tokens <= len(body)
    return tok.decode(body[:max_tokens], skip_special_tokens=True, clean_up_tokenization_spaces=False)


def body_len(tok, text: str) -> int:
    return len([i for i in tok(text)["input_ids"] if i not in tok.all_special_ids])


def grpc_arrays(url, model, text, max_tokens, request_id=None, stream=True) -> list[np.ndarray]:
    """text_output of every response, sent as tritonclient users do (request_id only when given)."""
    client = grpcclient.InferenceServerClient(url)
    inputs = []
    for name, value, dtype in (("text_input", np.array([[text.encode()]], dtype=object), "BYTES"),
                               ("max_tokens", np.array([[max_tokens]], np.int32), "INT32"),
                               ("stream", np.array([[stream]], bool), "BOOL")):
        inp = grpcclient.InferInput(name, list(value.shape), dtype)
        inp.set_data_from_numpy(value)
        inputs.append(inp)
    results: queue.Queue = queue.Queue()
    client.start_stream(callback=lambda result, error: results.put((result, error)))
    kwargs = {} if request_id is None else {"request_id": request_id}
    client.async_stream_infer(model, inputs, enable_empty_final_response=True, **kwargs)
    arrays = []
    try:
        while True:
            result, error = results.get(timeout=60)
            assert error is None, error
            arr = result.as_numpy("text_output")
            if arr is not None:
                arrays.append(arr)
            if result.get_response().parameters["triton_final_response"].bool_param:
                return arrays
    finally:
        client.stop_stream()
        client.close()


def grpc_text(url, model, text, max_tokens, request_id=None, stream=True) -> str:
    # The reference client's read: text_output[0] is the chunk's bytes.
    return "".join(a[0].decode("utf-8") for a in grpc_arrays(url, model, text, max_tokens, request_id, stream))


def http_events(url, model, text, max_tokens, request_id=None) -> list[dict]:
    """Triton's generate_stream endpoint, body as curl users write it (an "id" only when given)."""
    body = {"text_input": text, "max_tokens": max_tokens, "stream": True}
    if request_id is not None:
        body["id"] = request_id
    req = urllib.request.Request(f"http://{url}/v2/models/{model}/generate_stream", data=json.dumps(body).encode(),
                                 method="POST", headers={"Content-Type": "application/json"})
    events = []
    with urllib.request.urlopen(req, timeout=60) as resp:
        for raw in resp:
            line = raw.decode("utf-8").strip()
            if line.startswith("data:"):
                events.append(json.loads(line[5:]))
    assert events and not any("error" in e for e in events), events
    return events


def http_text(url, model, text, max_tokens, request_id=None) -> str:
    return "".join(e.get("text_output", "") for e in http_events(url, model, text, max_tokens, request_id))


SEND = {"grpc": lambda server: (server.grpc_url, grpc_text), "http": lambda server: (server.http_url, http_text)}


def _jobs(tok, n: int) -> list[tuple[str, int]]:
    """n distinct prompts and max_tokens, several cut inside a character."""
    jobs = []
    for i in range(n):
        text = f"{i}. {BASES[i % len(BASES)]}"
        jobs.append((text, body_len(tok, text) - (i % 5)))
    return jobs


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("protocol", ["grpc", "http"])
@pytest.mark.parametrize("ids", ["none", "same", "reused"])
def test_concurrent_streams_never_share_a_decoder(streams_server, tokenizers, model, protocol, ids):
    """16 streams at once, with no request id, all with id "1", or 8 clients reusing their id for 3 requests
    in turn: each stream's text is exactly the full decode of its own tokens."""
    tok = tokenizers["t-"]
    url, send = SEND[protocol](streams_server)
    workers, rounds = (8, 3) if ids == "reused" else (16, 1)
    jobs = _jobs(tok, workers * rounds)
    got: dict[int, str] = {}
    errors: list[BaseException] = []
    start = threading.Barrier(workers)

    def run(w):
        try:
            start.wait(30)
            for r in range(rounds):
                k = w * rounds + r
                rid = {"none": None, "same": "1", "reused": str(w)}[ids]
                got[k] = send(url, "t-" + model, jobs[k][0], jobs[k][1], rid)
        except BaseException as exc:  # reported below, with the others' results
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(w,)) for w in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    want = {k: echoed(tok, text, n) for k, (text, n) in enumerate(jobs)}
    assert any(w.endswith("\ufffd") for w in want.values()), "precondition: some responses end mid-character"
    assert got == want


def _cuts(tok, text: str, count: int) -> list[int]:
    """max_tokens values that end the response inside a multi-byte character, spread over the text."""
    inside = [n for n in range(1, body_len(tok, text) + 1) if echoed(tok, text, n).endswith("\ufffd")]
    assert inside, "precondition: the text has characters split across tokens"
    return inside[:: max(1, len(inside) // count)][:count]


@pytest.mark.parametrize("prefix", ["t-", "s-"])
def test_a_response_cut_inside_a_character_streams_what_the_full_decode_shows(streams_server, tokenizers, prefix):
    """max_tokens ends the answer mid-character: the last streamed chunk carries the U+FFFD the full decode
    (and the non-streamed answer) shows, for byte-level BPE and byte-fallback tokenizers alike."""
    tok = tokenizers[prefix]
    text = BASES[2] + " " + BASES[3]
    for n in _cuts(tok, text, 5):
        want = echoed(tok, text, n)
        for model in MODELS:
            name = prefix + model
            assert grpc_text(streams_server.grpc_url, name, text, n, stream=False) == want, (name, n)
            assert grpc_text(streams_server.grpc_url, name, text, n) == want, (name, n)
            assert http_text(streams_server.http_url, name, text, n) == want, (name, n)


@pytest.mark.parametrize("model", MODELS)
def test_text_output_is_one_string_per_sequence_as_the_reference_returns(streams_server, model):
    """The reference's postprocessing returns text_output as [batch * beams]: its end_to_end_grpc_client reads
    ``result.as_numpy("text_output")[0].decode()``."""
    name = "t-" + model
    for stream in (True, False):
        arrays = grpc_arrays(streams_server.grpc_url, name, BASES[0], 8, stream=stream)
        assert arrays and all(a.shape == (1,) and isinstance(a[0], bytes) for a in arrays), (stream, arrays)
    events = http_events(streams_server.http_url, name, BASES[0], 8)
    assert all(isinstance(e["text_output"], str) for e in events), events


def test_without_a_stream_key_requests_sharing_an_id_never_share_a_decoder(streams_server, tokenizers):
    """The engine route's ensemble (no stream key): 16 streams with request id "1" at once each get their own
    tokens decoded chunk by chunk, as the reference postprocessing does, and nobody else's; logged once."""
    from pathlib import Path

    tok = tokenizers["t-"]
    jobs = _jobs(tok, 16)
    got: dict[int, str] = {}
    start = threading.Barrier(len(jobs))

    def run(k):
        start.wait(30)
        got[k] = grpc_text(streams_server.grpc_url, "n-ensemble", jobs[k][0], jobs[k][1], "1")

    threads = [threading.Thread(target=run, args=(k,)) for k in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    # The MOCK sends one token per streamed response: each chunk is one token's own decode.
    want = {}
    for k, (text, n) in enumerate(jobs):
        body = [i for i in tok(text)["input_ids"] if i not in tok.all_special_ids][:n]
        want[k] = "".join(tok.decode([i], skip_special_tokens=True, clean_up_tokenization_spaces=False) for i in body)
    assert got == want
    log = Path(streams_server.log).read_text()
    assert log.count("sends no stream key") == 1
