"""The reference clients' own calls, and old clients' names, against served cpu-route repositories.

tensorrtllm_backend ships clients that people run unchanged: inflight_batcher_llm/client/
inflight_batcher_llm_client.py (talks to tensorrt_llm directly; ``--stop-after-ms`` stops a request with a
second request carrying ``stop``) and tools/inflight_batcher_llm/end_to_end_test.py (calls preprocessing,
tensorrt_llm and postprocessing one by one, then the ensemble and tensorrt_llm_bls, and compares). The tests
here make the calls those clients make - the same tensor names, shapes and dtypes, the same model names, and
the same way of reading results - as read in tensorrtllm_backend v0.19.0 and in the TensorRT-LLM 1.x copy of
end_to_end_test.py. They do not import or copy the clients.

Clients written for TensorRT-LLM <= 0.19 send ``random_seed`` and ``min_length``; newer ones ``seed`` and
``min_tokens``. Both are accepted on every container, and reach the engine in the name its release reads.
"""

from __future__ import annotations

import queue
import time
from functools import partial

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException, np_to_triton_dtype

from conftest import render

pytestmark = pytest.mark.server

OLD_IMAGE = "nvcr.io/nvidia/tritonserver:25.05-trtllm-python-py3"  # TensorRT-LLM 0.19.0


@pytest.fixture(scope="module")
def servers(tiny_dir, session_root, server_factory):
    """One tritonserver with three repositories:

    - unprefixed, non-decoupled (end_to_end_test.py calls the models by their plain names with infer()),
      TensorRT-LLM 1.2 contract, with tensorrt_llm_bls;
    - ``old-``: pinned to 25.05 (TensorRT-LLM 0.19 contract), streaming, with tensorrt_llm_bls;
    - ``stop-``: the MOCK engine at 20 ms a token, so a request is still running when its stop arrives.
    """
    root = session_root / "repos"
    e2e = render("tiny", root / "ref-e2e", **{"name": "ref-e2e", "serving.streaming": False, "serving.bls": True})
    old = render("tiny", root / "ref-old", **{"name": "ref-old", "container.image": OLD_IMAGE, "serving.bls": True,
                                             "serving.model_prefix": "old-"})
    stop = render("tiny", root / "ref-stop", **{"name": "ref-stop", "cpu.engine": "mock", "cpu.mock_step_ms": 20,
                                               "serving.model_prefix": "stop-"})
    return server_factory([e2e, old, stop], "test-reference-clients")


@pytest.fixture(scope="module")
def tokenizer(tiny_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_dir)


def prepare_tensor(name, array):
    """How the reference clients build an input: shape and dtype from the numpy array."""
    t = grpcclient.InferInput(name, array.shape, np_to_triton_dtype(array.dtype))
    t.set_data_from_numpy(array)
    return t


# -- inflight_batcher_llm_client.py --stop-after-ms ----------------------------------------------------------


def _llm_inputs(tokenizer, prompt: str, output_len: int) -> list:
    """The tensors inflight_batcher_llm_client.py always sends to tensorrt_llm (its prepare_inputs)."""
    ids = [tokenizer.encode(prompt)]
    return [
        prepare_tensor("input_ids", np.array(ids, dtype=np.int32)),
        prepare_tensor("input_lengths", np.array([[len(ids[0])]], dtype=np.int32)),
        prepare_tensor("request_output_len", np.array([[output_len]], dtype=np.int32)),
        prepare_tensor("beam_width", np.array([[1]], dtype=np.int32)),
        prepare_tensor("temperature", np.array([[1.0]], dtype=np.float32)),
        prepare_tensor("streaming", np.array([[True]], dtype=bool)),
        prepare_tensor("end_id", np.array([[tokenizer.eos_token_id]], dtype=np.int32)),
        prepare_tensor("pad_id", np.array([[tokenizer.pad_token_id]], dtype=np.int32)),
        prepare_tensor("runtime_top_k", np.array([[1]], dtype=np.int32)),
        prepare_tensor("runtime_top_p", np.array([[0.0]], dtype=np.float32)),
    ]


def _stop_inputs() -> list:
    """The client's prepare_stop_signals(): an uninitialised input_ids, zero lengths, stop=True."""
    inputs = [
        grpcclient.InferInput("input_ids", [1, 1], "INT32"),
        grpcclient.InferInput("input_lengths", [1, 1], "INT32"),
        grpcclient.InferInput("request_output_len", [1, 1], "INT32"),
        grpcclient.InferInput("stop", [1, 1], "BOOL"),
    ]
    inputs[0].set_data_from_numpy(np.empty([1, 1], dtype=np.int32))
    inputs[1].set_data_from_numpy(np.zeros([1, 1], dtype=np.int32))
    inputs[2].set_data_from_numpy(np.array([[0]], dtype=np.int32))
    inputs[3].set_data_from_numpy(np.array([[True]], dtype="bool"))
    return inputs


def _run_stop_after_ms(url, model, inputs, request_id: str, stop_after_ms: int):
    """The client's streaming branch with --stop-after-ms: one stream, the request, a pause, the stop on the
    same stream with the same request id, stop_stream(), then its reading loop. Returns (tokens, acks):
    the streamed token ids and the number of responses without output_ids ("Got cancellation response")."""
    completed: queue.Queue = queue.Queue()

    def callback(user_data, result, error):
        user_data.put(error if error else result)

    client = grpcclient.InferenceServerClient(url=url)
    client.start_stream(callback=partial(callback, completed))
    client.async_stream_infer(model, inputs, outputs=None, request_id=request_id)
    time.sleep(stop_after_ms / 1000.0)
    client.async_stream_infer(model, _stop_inputs(), request_id=request_id, parameters={"Streaming": True})
    client.stop_stream(cancel_requests=False)
    tokens, acks = [], 0
    while True:
        try:
            result = completed.get(block=False)
        except queue.Empty:
            break
        if isinstance(result, InferenceServerException):
            # The client prints "Request is cancelled" for CANCELLED and raises on anything else.
            if result.status() != "StatusCode.CANCELLED":
                raise result
            continue
        output_ids = result.as_numpy("output_ids")
        if output_ids is None:
            acks += 1
            continue
        seq_len = result.as_numpy("sequence_length")[0][0]
        if seq_len > 0:
            tokens += list(output_ids[0][0])
    client.close()
    return tokens, acks


def _full_generation(url, model, tokenizer, prompt, n) -> list[int]:
    """The same request left to finish (one stream, no stop): what the engine makes for ``n`` tokens."""
    done: queue.Queue = queue.Queue()
    client = grpcclient.InferenceServerClient(url=url)
    client.start_stream(callback=lambda result, error: done.put(error or result))
    client.async_stream_infer(model, _llm_inputs(tokenizer, prompt, n))
    client.stop_stream()
    tokens = []
    while not done.empty():
        result = done.get()
        assert not isinstance(result, InferenceServerException), result
        tokens += list(result.as_numpy("output_ids")[0][0])
    client.close()
    return tokens


def test_stop_after_ms_ends_the_request_with_the_tokens_so_far(servers, tokenizer):
    """The stop ends the running request the way the TensorRT-LLM backend does: a final response with the
    tokens made so far (the client then checks it got fewer than request_output_len), and the stop itself is
    answered with a response without outputs - no error the client would raise."""
    request_output_len = 500  # 10 s at 20 ms a token: still running when the stop arrives
    prompt = "The river ran past"
    tokens, acks = _run_stop_after_ms(servers.grpc_url, "stop-tensorrt_llm",
                                      _llm_inputs(tokenizer, prompt, request_output_len), "ref-stop-1", 300)
    assert 0 < len(tokens) < request_output_len
    assert acks == 1
    # What was streamed before the stop is exactly what the engine makes: a prefix, nothing lost or repeated.
    assert tokens == _full_generation(servers.grpc_url, "stop-tensorrt_llm", tokenizer, prompt, len(tokens))


def test_stop_without_a_request_id_is_answered_not_an_error(servers, tokenizer):
    """The client sends its stop with request_id='' unless --request-id is given. Without an id the stop
    cannot name the request, so nothing stops and the request completes; the stop is answered with a
    response without outputs (which the client prints as "Got cancellation response from server"), not an
    error (on which it would raise before reading the tokens)."""
    n = 15
    tokens, acks = _run_stop_after_ms(servers.grpc_url, "stop-tensorrt_llm",
                                      _llm_inputs(tokenizer, "The river ran past", n), "", 100)
    assert acks == 1
    assert len(tokens) == n


# -- end_to_end_test.py: preprocessing -> tensorrt_llm -> postprocessing, then ensemble and BLS ---------------


def test_end_to_end_test_calls_each_model_and_matches_the_ensemble_and_bls(servers):
    """test_functionality_ifb of end_to_end_test.py over gRPC, with its own model names and tensors."""
    client = grpcclient.InferenceServerClient(url=servers.grpc_url)
    for i, (prompt, output_len) in enumerate([("The river ran past", 12), ("Good tools explain themselves.", 7)]):
        input0 = [[prompt]]
        input0_data = np.array(input0).astype(object)
        output0_len = np.ones_like(input0).astype(np.int32) * output_len
        bad_words_list = np.array([[""]], dtype=object)
        stop_words_list = np.array([[""]], dtype=object)
        result = client.infer("preprocessing", [
            prepare_tensor("QUERY", input0_data), prepare_tensor("BAD_WORDS_DICT", bad_words_list),
            prepare_tensor("STOP_WORDS_DICT", stop_words_list), prepare_tensor("REQUEST_OUTPUT_LEN", output0_len),
        ], request_id=str(i))
        input_id = result.as_numpy("INPUT_ID")
        input_len = result.as_numpy("REQUEST_INPUT_LEN")
        out_len = result.as_numpy("REQUEST_OUTPUT_LEN")
        decoder_input_id = result.as_numpy("DECODER_INPUT_ID")
        end_id = result.as_numpy("OUT_END_ID")
        pad_id = result.as_numpy("OUT_PAD_ID")
        # The reference outputs a decoder-only model gets: one pad token, length 1 (the engine ignores them).
        assert decoder_input_id.tolist() == pad_id.tolist()
        assert result.as_numpy("REQUEST_DECODER_INPUT_LEN").tolist() == [[1]]
        assert {"BAD_WORDS_IDS", "STOP_WORDS_IDS"} <= {o.name for o in result.get_response().outputs}
        assert input_len.tolist() == [[input_id.shape[1]]] and out_len.tolist() == [[output_len]]

        result = client.infer("tensorrt_llm", [
            prepare_tensor("input_ids", input_id), prepare_tensor("decoder_input_ids", decoder_input_id),
            prepare_tensor("input_lengths", input_len), prepare_tensor("request_output_len", out_len),
            prepare_tensor("end_id", end_id), prepare_tensor("pad_id", pad_id),
        ], request_id=str(i))
        output_ids = result.as_numpy("output_ids").astype(np.int32)
        seq_lengths = result.as_numpy("sequence_length")
        assert 0 < int(seq_lengths.reshape(-1)[0]) <= output_len

        result = client.infer("postprocessing", [prepare_tensor("TOKENS_BATCH", output_ids),
                                                 prepare_tensor("SEQUENCE_LENGTH", seq_lengths)], request_id=str(i))
        output0 = result.as_numpy("OUTPUT")

        outputs = [grpcclient.InferRequestedOutput("text_output")]  # utils.prepare_outputs(protocol)
        for model in ("ensemble", "tensorrt_llm_bls"):
            result = client.infer(model, [
                prepare_tensor("text_input", input0_data), prepare_tensor("max_tokens", output0_len),
                prepare_tensor("bad_words", bad_words_list), prepare_tensor("stop_words", stop_words_list),
            ], outputs=outputs, request_id=str(i))
            assert output0 == result.as_numpy("text_output"), model  # the client's own comparison
        assert output0.reshape(-1)[0].decode()  # really generated text
    client.close()


# -- old and new names on both contracts -------------------------------------------------------------------


def _generate(url, model, stream: bool, prompt: str = "The river ran past", **extra) -> str:
    """One request the way end_to_end_grpc_client.py sends it (a [1, 1] tensor per input, streamed when the
    model is decoupled); the text, or 'ERROR <message>'."""
    inputs = [prepare_tensor("text_input", np.array([[prompt]]).astype(object)),
              prepare_tensor("max_tokens", np.array([[12]], dtype=np.int32))]
    inputs += [prepare_tensor(name, value) for name, value in extra.items()]
    client = grpcclient.InferenceServerClient(url=url)
    try:
        if not stream:
            try:
                out = client.infer(model, inputs, outputs=[grpcclient.InferRequestedOutput("text_output")])
            except InferenceServerException as exc:
                return f"ERROR {exc.message()}"
            return b"".join(out.as_numpy("text_output").reshape(-1)).decode()
        results: queue.Queue = queue.Queue()
        client.start_stream(callback=lambda result, error: results.put(error or result))
        client.async_stream_infer(model, inputs + [prepare_tensor("stream", np.array([[True]]))])
        client.stop_stream()
        texts = []
        while not results.empty():
            item = results.get()
            if isinstance(item, InferenceServerException):
                return f"ERROR {item.message()}"
            texts.append(b"".join(item.as_numpy("text_output").reshape(-1)).decode())
        return "".join(texts)
    finally:
        client.close()


SAMPLING = {"top_k": np.array([[50]], dtype=np.int32), "temperature": np.array([[2.0]], dtype=np.float32)}


@pytest.mark.parametrize("model, stream", [("ensemble", False), ("tensorrt_llm_bls", False),
                                           ("old-ensemble", True), ("old-tensorrt_llm_bls", True)])
def test_seed_and_random_seed_are_one_input(servers, model, stream):
    """The same seed under either name gives the same sample, another seed another sample - on the 1.2
    contract (seed reaches tensorrt_llm as seed) and the 0.19 one (as random_seed)."""
    url = servers.grpc_url

    def seed(name, value):
        return _generate(url, model, stream, **SAMPLING, **{name: np.array([[value]], dtype=np.uint64)})

    new_7, old_7, new_8 = seed("seed", 7), seed("random_seed", 7), seed("seed", 8)
    assert not new_7.startswith("ERROR") and new_7 == old_7 != new_8
    both = _generate(url, model, stream, **SAMPLING, seed=np.array([[7]], dtype=np.uint64),
                     random_seed=np.array([[8]], dtype=np.uint64))
    assert both.startswith("ERROR") and "seed=7 and random_seed=8 differ; send one of them" in both


def _first_greedy_token(url, prompt: str) -> int:
    """The token the tiny model makes first for ``prompt`` (preprocessing, then tensorrt_llm for one token)."""
    client = grpcclient.InferenceServerClient(url=url)
    pre = client.infer("preprocessing", [prepare_tensor("QUERY", np.array([[prompt]]).astype(object)),
                                         prepare_tensor("REQUEST_OUTPUT_LEN", np.array([[1]], dtype=np.int32))])
    out = client.infer("tensorrt_llm", [prepare_tensor("input_ids", pre.as_numpy("INPUT_ID")),
                                        prepare_tensor("input_lengths", pre.as_numpy("REQUEST_INPUT_LEN")),
                                        prepare_tensor("request_output_len", np.array([[1]], dtype=np.int32))])
    client.close()
    return int(out.as_numpy("output_ids").reshape(-1)[0])


@pytest.mark.parametrize("model, stream", [("ensemble", False), ("old-ensemble", True)])
def test_min_tokens_and_min_length_are_one_input(servers, model, stream):
    """With the first token it would make as the end id, a request ends at once - unless held to a minimum,
    under either name."""
    url, prompt = servers.grpc_url, "The river ran past"
    end = {"end_id": np.array([[_first_greedy_token(url, prompt)]], dtype=np.int32)}
    assert _generate(url, model, stream, prompt, **end) == ""
    by_new = _generate(url, model, stream, prompt, **end, min_tokens=np.array([[6]], dtype=np.int32))
    by_old = _generate(url, model, stream, prompt, **end, min_length=np.array([[6]], dtype=np.int32))
    assert by_new == by_old and by_new and not by_new.startswith("ERROR")
    clash = _generate(url, model, stream, prompt, min_tokens=np.array([[12]], dtype=np.int32),
                      min_length=np.array([[5]], dtype=np.int32))
    assert "min_tokens=12 and min_length=5 differ" in clash


def test_the_old_contract_carries_no_token_counts(servers):
    """On the 0.19 contract the ensemble has no return_num_*_tokens input (Triton refuses it by name) and no
    num_*_tokens output; on 1.2 it has both."""
    client = grpcclient.InferenceServerClient(url=servers.grpc_url)
    old = client.get_model_metadata("old-ensemble")
    new = client.get_model_metadata("ensemble")
    assert "return_num_output_tokens" not in {i.name for i in old.inputs}
    assert "num_output_tokens" not in {o.name for o in old.outputs}
    assert "return_num_output_tokens" in {i.name for i in new.inputs}
    assert "num_output_tokens" in {o.name for o in new.outputs}
    refused = _generate(servers.grpc_url, "old-ensemble", True, return_num_output_tokens=np.array([[True]]))
    assert "return_num_output_tokens" in refused and refused.startswith("ERROR")
    client.close()


def test_bench_against_an_old_container_repository(servers, tmp_path):
    """tritongen's own bench sends the token-count flags only where the ensemble has them (before TensorRT-LLM
    1.0 Triton would refuse every request naming them)."""
    import json

    from click.testing import CliRunner

    from tritongen.cli import cli

    out = tmp_path / "results"
    result = CliRunner().invoke(cli, ["bench", "--url", servers.grpc_url, "--model", "old-ensemble", "--concurrency",
                                      "1", "--requests", "2", "--input-len", "8", "--output-len", "4", "--no-plot",
                                      "--out", str(out)])
    assert result.exit_code == 0, result.output
    level = json.loads((out / "results.json").read_text())["levels"][0]
    assert (level["completed"], level["errors"]) == (2, 0)
    assert level["token_count_source"] != "num_output_tokens"


def test_the_cpu_engine_takes_either_name_when_called_directly(servers, tokenizer):
    """inflight_batcher_llm_client.py-style calls on tensorrt_llm itself, with 0.19's and 1.2's seed names."""
    client = grpcclient.InferenceServerClient(url=servers.grpc_url)
    ids = [tokenizer.encode("The river ran past")]

    def sample(**seed):
        inputs = [prepare_tensor("input_ids", np.array(ids, dtype=np.int32)),
                  prepare_tensor("input_lengths", np.array([[len(ids[0])]], dtype=np.int32)),
                  prepare_tensor("request_output_len", np.array([[10]], dtype=np.int32)),
                  prepare_tensor("runtime_top_k", np.array([[50]], dtype=np.int32)),
                  prepare_tensor("temperature", np.array([[2.0]], dtype=np.float32))]
        inputs += [prepare_tensor(k, np.array([[v]], dtype=np.uint64)) for k, v in seed.items()]
        return client.infer("tensorrt_llm", inputs).as_numpy("output_ids").reshape(-1).tolist()

    assert sample(seed=3) == sample(random_seed=3) != sample(seed=4)
    with pytest.raises(InferenceServerException, match="seed=3 and random_seed=4 differ"):
        sample(seed=3, random_seed=4)
    client.close()
