"""serving.stream_interval: fewer, bigger streamed responses, with the text unchanged.

The spec rules and what each route renders run without a server; the cpu route's engine is then checked on a real
tritonserver: with stream_interval=4 a request's responses carry 4 tokens each (the first token alone, so TTFT is
unchanged), and the streamed text through the ensemble and the BLS equals the non-streamed answer, byte for byte.
"""

from __future__ import annotations

import pytest

from conftest import render
from tritongen.errors import SpecError
from tritongen.spec import load_spec


def _params(repo, model="tensorrt_llm") -> dict[str, str]:
    from tritongen.repo.report import params_of, parse_config

    return params_of(parse_config(repo / model / "config.pbtxt"))


def test_default_is_every_token():
    spec = load_spec("tiny")
    assert spec.serving.stream_interval == 1 and spec.serving.stream_interval_ms == 0


@pytest.mark.parametrize("options, message", [
    ({"route": "engine", "serving.stream_interval": 4}, "TensorRT-LLM backend sends a response for every token"),
    ({"route": "llmapi", "serving.stream_interval": 4, "serving.stream_interval_ms": 5}, "cpu route only"),
    ({"serving.stream_interval_ms": 5}, "has no effect with serving.stream_interval=1"),
    ({"serving.stream_interval": 0}, "0 must be >= 1"),
])
def test_rules(options, message):
    with pytest.raises(SpecError, match=message):
        load_spec("llama3-8b" if options.get("route") in ("engine", "llmapi") else "tiny",
                  options={"route": "cpu", **options})


def test_cpu_route_renders_the_interval(tmp_path):
    repo = render("tiny", tmp_path / "r", **{"serving.stream_interval": 4, "serving.stream_interval_ms": 50})
    params = _params(repo)
    assert params["stream_interval"] == "4" and float(params["stream_interval_ms"]) == 50


def test_llmapi_model_yaml_carries_it():
    from tritongen.routes.llmapi.model_yaml import llm_args

    assert "stream_interval" not in llm_args(load_spec("llama3-8b", options={"route": "llmapi"}))
    spec = load_spec("llama3-8b", options={"route": "llmapi", "serving.stream_interval": 8})
    assert llm_args(spec)["stream_interval"] == 8


@pytest.fixture(scope="module")
def interval_server(tiny_dir, session_root, server_factory):
    repo = render("tiny", session_root / "repos" / "interval", **{
        "name": "interval", "cpu.engine": "mock", "cpu.mock_echo": True, "serving.bls": True,
        "serving.stream_interval": 4})
    return server_factory([repo], "test-interval")


@pytest.mark.server
@pytest.mark.parametrize("model", ["ensemble", "tensorrt_llm_bls"])
def test_streamed_text_is_exact_in_chunks_of_four(interval_server, model, tiny_dir):
    from test_server_streams import BASES, body_len, echoed, grpc_arrays
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_dir)
    for i, base in enumerate(BASES):
        text = f"{i}. {base}"
        n = body_len(tok, text) - i  # several end inside a chunk
        arrays = grpc_arrays(interval_server.grpc_url, model, text, n)
        streamed = "".join(a[0].decode("utf-8") for a in arrays)
        whole = "".join(a[0].decode("utf-8") for a in grpc_arrays(interval_server.grpc_url, model, text, n,
                                                                  stream=False))
        assert streamed == whole == echoed(tok, text, n)
        chunks = [a for a in arrays if a[0]]
        # 1 token first, then 4 per response: ceil((n - 1) / 4) more (the BLS may merge an empty final).
        assert 1 + -(-(n - 1) // 4) - 1 <= len(chunks) <= 1 + -(-(n - 1) // 4), (len(chunks), n)


@pytest.mark.server
def test_engine_sends_four_tokens_per_response(interval_server, tiny_dir):
    """The engine itself: output_ids of 1, 4, 4, ... tokens; the last response holds the rest."""
    import queue

    import numpy as np
    import tritonclient.grpc as grpcclient

    from tritongen.clients import contract_io

    n = 19
    inputs = contract_io.llm_inputs({"input_ids": list(range(5, 40)), "input_lengths": 35, "request_output_len": n,
                                     "min_tokens": n, "streaming": True})
    client = grpcclient.InferenceServerClient(interval_server.grpc_url)
    results: queue.Queue = queue.Queue()
    client.start_stream(callback=lambda result, error: results.put((result, error)))
    try:
        client.async_stream_infer("tensorrt_llm", inputs.infer_inputs(), enable_empty_final_response=True)
        sizes = []
        while True:
            result, error = results.get(timeout=60)
            assert error is None, error
            ids = result.as_numpy("output_ids")
            if ids is not None and np.asarray(ids).size:
                sizes.append(int(np.asarray(ids).size))
            if result.get_response().parameters["triton_final_response"].bool_param:
                break
    finally:
        client.stop_stream()
        client.close()
    assert sizes == [1, 4, 4, 4, 4, 2], sizes
