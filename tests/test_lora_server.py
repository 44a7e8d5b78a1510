"""LoRA adapters per request on a real tritonserver (cpu route, PyTorch engine with PEFT on the tiny model).

Two tiny adapters are trained offline (tests/lora_adapters.py). Greedy output with an adapter must equal PEFT's own
generate() with that adapter merged into the weights; the base model's must equal plain transformers; two
adapters and the base model in one concurrent batch each keep their own output.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from lora_adapters import merged_generate, train_all

from conftest import render
from tritongen.clients.triton import GenerateParams, LLMClient
from tritongen.errors import ClientError

pytestmark = pytest.mark.server

PROMPTS = ["The river ran past", "Once there was a keeper of", "The baker sold warm rolls"]
MAX_NEW = 12


@pytest.fixture(scope="module")
def adapters(tiny_dir, session_root):
    return train_all(tiny_dir, session_root / "lora-adapters")


@pytest.fixture(scope="module")
def lora_server(tiny_dir, adapters, session_root, server_factory):
    repo = render("tiny", session_root / "repos" / "tiny-lora",
                  **{"serving.bls": True, "lora.adapters": {k: str(v) for k, v in adapters.items()}})
    return server_factory(repo, "test-lora")


@pytest.fixture(scope="module")
def expected(tiny_dir, adapters):
    """(adapter or None, prompt) -> the text PEFT's merged model generates (greedy)."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_dir)
    out = {}
    for name in (None, *adapters):
        for prompt in PROMPTS:
            ids = merged_generate(tiny_dir, adapters.get(name) if name else None, tok(prompt)["input_ids"], MAX_NEW)
            if tok.eos_token_id in ids:
                ids = ids[: ids.index(tok.eos_token_id)]
            out[name, prompt] = tok.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)
    return out


def _generate(server, name, prompt, *, model="ensemble", stream=True):
    client = LLMClient(server.grpc_url, model=model)
    return client.generate(prompt, GenerateParams(max_tokens=MAX_NEW, lora_name=name), stream=stream).text


def test_adapter_output_equals_peft_merged(lora_server, expected):
    for name in ("pirate", "chef"):
        for prompt in PROMPTS:
            assert _generate(lora_server, name, prompt) == expected[name, prompt], (name, prompt)
    # The adapters change the text (else the comparison above would prove nothing).
    assert expected["pirate", PROMPTS[0]] != expected[None, PROMPTS[0]] != expected["chef", PROMPTS[0]]


def test_base_model_stays_exact(lora_server, expected):
    for prompt in PROMPTS:
        assert _generate(lora_server, None, prompt) == expected[None, prompt]
        assert _generate(lora_server, "", prompt) == expected[None, prompt]


def test_two_adapters_and_base_in_one_concurrent_batch(lora_server, expected):
    jobs = [(name, prompt) for _ in range(2) for name in (None, "pirate", "chef") for prompt in PROMPTS]
    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        got = list(pool.map(lambda job: _generate(lora_server, *job), jobs))
    assert got == [expected[job] for job in jobs]
    assert len({expected[n, PROMPTS[1]] for n in (None, "pirate", "chef")}) == 3


def test_llm_metrics_are_labelled_with_the_adapter(lora_server, expected):
    """Triton's metrics port: the tokens each adapter generated, through the ensemble (the cpu engine passes the
    task id on) and through the BLS (its lora_name input), under lora_adapter; the base model's without it."""
    import re
    import time
    import urllib.request

    def series(text, name):
        out = {}
        for line in text.splitlines():
            m = re.match(rf"{name}\{{([^}}]*)\}} ([0-9.e+]+)$", line)
            if m:
                out[tuple(sorted(re.findall(r'(\w+)="([^"]*)"', m.group(1))))] = float(m.group(2))
        return out

    def scrape():
        url = f"http://{lora_server.host}:{lora_server.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.read().decode()

    time.sleep(1.0)  # what earlier tests sent reaches Triton first (flushed every 0.25 s)
    before = series(scrape(), "tritongen_requests_total")
    for model in ("ensemble", "tensorrt_llm_bls"):
        for name in (None, "pirate", "chef"):
            assert _generate(lora_server, name, PROMPTS[0], model=model) == expected[name, PROMPTS[0]]
    time.sleep(1.0)  # the metrics thread flushes every 0.25 s
    after = series(scrape(), "tritongen_requests_total")
    for model in ("ensemble", "tensorrt_llm_bls"):
        for name in ("pirate", "chef", None):
            labels = {"model": model, **({"lora_adapter": name} if name else {})}
            done = {k: v - before.get(k, 0) for k, v in after.items() if dict(k).get("model") == model
                    and dict(k).get("lora_adapter") == (name or None) and "finish_reason" in dict(k)}
            assert sum(done.values()) == 1, (labels, after)


def test_bls_takes_the_adapter_name_too(lora_server, expected):
    assert _generate(lora_server, "chef", PROMPTS[2], model="tensorrt_llm_bls") == expected["chef", PROMPTS[2]]


def test_unknown_adapter_is_a_clear_error(lora_server):
    with pytest.raises(ClientError, match=r"lora_name 'nope' is not a LoRA adapter of this model; known "
                                          r"adapters: chef, pirate"):
        _generate(lora_server, "nope", PROMPTS[0])
    # The server keeps serving after the refusal.
    assert _generate(lora_server, "pirate", PROMPTS[0])


# -- the OpenAI front: adapters are models ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def oai(lora_server):
    import openai

    from conftest import free_ports
    from tritongen import proc
    from tritongen.clients.openai import launch

    url, pid = launch._launch(lora_server, free_ports(1)[0])
    yield openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=60)
    proc.stop_pid(pid, timeout=10)


def test_openai_lists_the_adapters_as_models(oai, lora_server):
    assert [m.id for m in oai.models.list().data] == [lora_server.name, "chef", "pirate"]
    assert oai.models.retrieve("pirate").id == "pirate"


def test_openai_model_chooses_the_adapter(oai, lora_server, expected):
    for name in (None, "pirate", "chef"):
        for stream in (False, True):
            kwargs = dict(model=name or lora_server.name, prompt=PROMPTS[0], max_tokens=MAX_NEW, temperature=0)
            if stream:
                text = "".join(c.choices[0].text for c in oai.completions.create(stream=True, **kwargs))
            else:
                reply = oai.completions.create(**kwargs)
                text = reply.choices[0].text
                assert reply.model == (name or lora_server.name)
            assert text == expected[name, PROMPTS[0]], (name, stream)


def test_openai_unknown_model_is_a_404_naming_the_adapters(oai, lora_server):
    import openai

    with pytest.raises(openai.NotFoundError, match=r"The model `nope` does not exist. This server serves "
                                                   rf"`{lora_server.name}`, `chef`, `pirate`"):
        oai.completions.create(model="nope", prompt=PROMPTS[0], max_tokens=4)


def test_infer_command_takes_the_adapter_name(lora_server, expected):
    from click.testing import CliRunner

    from tritongen.cli import cli

    result = CliRunner().invoke(cli, ["infer", PROMPTS[1], "--url", lora_server.grpc_url, "--lora", "chef",
                                      "--max-tokens", str(MAX_NEW), "--no-stream"])
    assert result.exit_code == 0, result.output
    assert result.output.rstrip("\n") == expected["chef", PROMPTS[1]]


def test_http_generate_and_a_client_sent_task_id_pick_the_adapter_too(lora_server, expected):
    http = LLMClient(lora_server.http_url, protocol="http")
    assert http.generate(PROMPTS[0], GenerateParams(max_tokens=MAX_NEW, lora_name="chef")).text == \
        expected["chef", PROMPTS[0]]
    # tensorrtllm_backend's clients send the task id themselves (chef is task id 2: second in the spec).
    from tritongen.clients import contract_io

    values = GenerateParams(max_tokens=MAX_NEW).inputs(PROMPTS[0], False).values
    inputs = contract_io.client_inputs({**values, "lora_task_id": 2})
    import tritonclient.grpc as grpcclient

    client = grpcclient.InferenceServerClient(lora_server.grpc_url)
    got = []
    client.start_stream(callback=lambda result, error: got.append(error or result.as_numpy("text_output")))
    client.async_stream_infer("ensemble", inputs.infer_inputs())
    client.stop_stream()
    assert len(got) == 1 and got[0][0].decode() == expected["chef", PROMPTS[0]]


@pytest.fixture(scope="module")
def mock_lora_server(adapters, session_root, server_factory):
    repo = render("tiny", session_root / "repos" / "tiny-lora-mock",
                  **{"name": "tiny-lora-mock", "cpu.engine": "mock",
                     "lora.adapters": {k: str(v) for k, v in adapters.items()}})
    return server_factory(repo, "test-lora-mock")


def test_the_mock_engine_accepts_and_ignores_adapters(mock_lora_server):
    base = _generate(mock_lora_server, None, PROMPTS[0])
    assert base and _generate(mock_lora_server, "pirate", PROMPTS[0]) == base  # a MOCK: same fake tokens
    with pytest.raises(ClientError, match="lora_name 'nope' is not a LoRA adapter"):
        _generate(mock_lora_server, "nope", PROMPTS[0])  # preprocessing still knows the names
