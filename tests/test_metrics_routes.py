"""The LLM metrics on the routes tests/test_metrics_server.py does not serve: the llmapi front (with the FAKE llmapi
implementation of tests/fixtures/fake_llmapi, as in test_llmapi_server.py) and the metrics switch turned off, on a
real tritonserver, read straight from Triton's metrics port."""

from __future__ import annotations

import urllib.request

import pytest

from conftest import FIXTURES, render, with_env
from tritongen.clients import metrics as m
from tritongen.clients.triton import GenerateParams, LLMClient

pytestmark = pytest.mark.server

FAKE_IMPL = FIXTURES / "fake_llmapi" / "tensorrt_llm" / "1"


def _families(server) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{server.metrics_port}/metrics", timeout=10) as resp:
        return m.parse(resp.read().decode())


def _value(samples, name: str, **labels) -> float:
    want = tuple(sorted(labels.items()))
    return samples.get((name, want), 0.0)


@pytest.fixture(scope="module")
def llmapi_server(tiny_dir, session_root, server_factory):
    repo = render("tiny", session_root / "repos" / "metrics-llmapi", **{"name": "metrics-llmapi", "route": "llmapi"})
    env = {"TRITONGEN_LLMAPI_IMPL_DIR": str(FAKE_IMPL), "FAKE_LLMAPI_STEP_MS": "10"}
    return with_env(env, lambda: server_factory(repo, "test-metrics-llmapi"))


def test_the_llmapi_front_measures_its_requests(llmapi_server):
    import time

    client = LLMClient(llmapi_server.grpc_url)
    done = [client.generate("The river ran past the old mill", GenerateParams(max_tokens=n, return_num_tokens=True),
                            stream=True) for n in (4, 6)]
    with pytest.raises(Exception):  # noqa: B017 - the front refuses it; the error's type is the client's
        client.generate("x", GenerateParams(max_tokens=3, bad_words=["y"]))
    tokens = sum(int(str(r.extras["num_output_tokens"]).strip("[]")) for r in done)
    deadline = time.monotonic() + 10
    while True:
        s = _families(llmapi_server)
        if _value(s, "tritongen_requests_total", finish_reason="error", model="ensemble") == 1 or \
                time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert _value(s, "tritongen_requests_total", finish_reason="length", model="ensemble") == 2
    assert _value(s, "tritongen_requests_total", finish_reason="error", model="ensemble") == 1
    assert _value(s, "tritongen_generation_tokens_total", model="ensemble") == tokens == 10
    assert _value(s, "tritongen_prompt_tokens_total", model="ensemble") > 0
    assert _value(s, "tritongen_time_to_first_token_seconds_count", model="ensemble") == 2
    ttft = _value(s, "tritongen_time_to_first_token_seconds_sum", model="ensemble") / 2
    assert 0 < ttft <= max(r.ttft for r in done)
    assert _value(s, "tritongen_requests_in_flight", model="ensemble") == 0


def test_metrics_off_exports_none(tiny_dir, session_root, server_factory):
    repo = render("tiny", session_root / "repos" / "metrics-off-served", **{
        "name": "metrics-off-served", "cpu.engine": "mock", "serving.bls": True, "serving.metrics.enabled": False})
    server = server_factory(repo, "test-metrics-off")
    for model in ("ensemble", "tensorrt_llm_bls"):
        result = LLMClient(server.grpc_url, model=model).generate("Hello", GenerateParams(max_tokens=5), stream=True)
        assert result.text
    names = {name for name, _ in _families(server)}
    assert not [n for n in names if n.startswith("tritongen_")]
    assert "nv_inference_request_success" in names
