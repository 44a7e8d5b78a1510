"""Structured output without a server: the cpu engine's grammar matcher on the tiny model, the spec switch and
what each route renders for it, the engine route's tokenizer-info file, the llmapi mapping onto
GuidedDecodingParams, and the OpenAI front's response_format mapping. The served path: test_guided_server.py."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import jsonschema
import pytest
import yaml

from conftest import REPO_ROOT, render
from tritongen import routes
from tritongen.clients.openai import guided as oai_guided
from tritongen.clients.openai.mapping import chat_generation, completion_generation
from tritongen.clients.openai.protocol import ChatCompletionRequest, CompletionRequest, OpenAIError
from tritongen.errors import TritongenError
from tritongen.render import write_repo
from tritongen.repo.report import params_of, parse_config
from tritongen.repo.validate import validate_repo
from tritongen.resolve import resolve
from tritongen.routes import guided as route_guided
from tritongen.spec import load_spec

ENGINE_FIXED = {"model.checkpoint_dir": "/models/llama3-8b", "engine.dir": "/engines/llama3-8b"}
SCHEMA = {"type": "object", "properties": {"name": {"type": "string", "maxLength": 10},
                                           "n": {"type": "integer", "minimum": 0, "maximum": 9}},
          "required": ["name", "n"]}


def _load(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def cpu_guided():
    return _load(REPO_ROOT / "templates" / "cpu" / "tensorrt_llm" / "1" / "guided.py", "cpu_guided_under_test")


@pytest.fixture(scope="module")
def tiny_lm(tiny_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_dir), AutoModelForCausalLM.from_pretrained(tiny_dir).eval()


def _decode(guides, tiny_lm, prompt, kind, guide, max_new=80):
    """The cpu engine's greedy loop with the guide applied, as model.py runs it."""
    import torch

    tok, model = tiny_lm
    g = guides.open(kind, guide, tok.eos_token_id)
    ids, out = tok(prompt)["input_ids"], []
    with torch.inference_mode():
        for _ in range(max_new):
            logits = model(torch.tensor([ids + out])).logits[0, -1].float()
            g.mask(logits)
            token = int(torch.argmax(logits))
            assert token in g.allowed()  # the bitmask, applied on a CPU tensor, left only allowed tokens
            g.accept(token)
            if token == tok.eos_token_id:
                break
            out.append(token)
            if g.terminated:
                break
    return tok.decode(out), g.terminated


def test_the_matcher_constrains_the_tiny_model(cpu_guided, tiny_dir, tiny_lm):
    guides = cpu_guided.Guides(str(tiny_dir), False, tiny_lm[1].config.vocab_size)
    for prompt in ("The river ran past", "Good tools explain themselves."):
        text, done = _decode(guides, tiny_lm, prompt, "json_schema", json.dumps(SCHEMA))
        assert done
        jsonschema.validate(json.loads(text), SCHEMA)
        text, done = _decode(guides, tiny_lm, prompt, "regex", r"[a-c]{2}[0-9]")
        assert done and re.fullmatch(r"[a-c]{2}[0-9]", text)
    # Compiled once per (type, guide).
    assert guides.compiled("regex", r"[a-c]{2}[0-9]") is guides.compiled("regex", r"[a-c]{2}[0-9]")


def test_request_guides_are_checked(cpu_guided, tiny_dir):
    import numpy as np

    def arr(*values):
        return np.array([[v.encode()] for v in values], dtype=object)

    assert cpu_guided.request_guide(None, None, 0) is None
    assert cpu_guided.request_guide(arr("json"), None, 0) == ("json", "")
    assert cpu_guided.request_guide(arr("JSON_Schema", "regex"), arr("{}", "a+"), 1) == ("regex", "a+")
    for types, guides, message in [
        (arr("yaml"), arr("a"), "'yaml' is not one of json, json_schema, regex, ebnf_grammar, structural_tag"),
        (arr("regex"), None, "needs guided_decoding_guide"),
        (None, arr("a+"), "guided_decoding_guide_type is not"),
    ]:
        with pytest.raises(ValueError, match=re.escape(message)):
            cpu_guided.request_guide(types, guides, 0)
    guides = cpu_guided.Guides(str(tiny_dir), False, 1024)
    with pytest.raises(ValueError, match="json_schema guide is not JSON"):
        guides.compiled("json_schema", "{")
    with pytest.raises(ValueError, match=r"^invalid regex guide: (?!\[)"):  # xgrammar's "[time] file:line" cut
        guides.compiled("regex", "(")
    # structural_tag in TensorRT-LLM's form: free text until a trigger, then the tagged schema.
    tag = {"structures": [{"begin": "<f>", "schema": {"type": "object", "properties": {"a": {"type": "integer"}},
                                                      "required": ["a"]}, "end": "</f>"}], "triggers": ["<f>"]}
    assert guides.open("structural_tag", json.dumps(tag), 4).matcher.accept_string('hi <f>{"a": 1}</f>')
    assert not guides.open("structural_tag", json.dumps(tag), 4).matcher.accept_string('hi <f>{"b": 1}')


# -- the spec switch and what the routes render ------------------------------------------------------------------


def test_cpu_route_renders_the_switch(tiny_dir, tmp_path):
    on = render("tiny", tmp_path / "on", **{"serving.guided_decoding": "xgrammar"})
    assert params_of(parse_config(on / "tensorrt_llm" / "config.pbtxt"))["guided_decoding_backend"] == "xgrammar"
    assert (on / "tensorrt_llm" / "1" / "guided.py").is_file()
    off = render("tiny", tmp_path / "off")
    assert "guided_decoding_backend" not in params_of(parse_config(off / "tensorrt_llm" / "config.pbtxt"))
    with pytest.raises(TritongenError, match="guided_decoding"):
        load_spec("tiny", options={"serving.guided_decoding": "outlines"})


def test_engine_route_parameters_and_tokenizer_info(tiny_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("TRITONGEN_CACHE", str(tmp_path / "cache"))
    spec = load_spec("llama3-8b", options={**ENGINE_FIXED, "model.tokenizer_dir": str(tiny_dir),
                                           "serving.guided_decoding": "xgrammar"})
    warnings = []
    routes.for_spec(spec).prepare(resolve(spec), build=False, echo=lambda m: None, warn=warnings.append)
    llm = params_of(parse_config(write_repo(spec, tmp_path / "r") / "tensorrt_llm" / "config.pbtxt"))
    assert llm["guided_decoding_backend"] == "xgrammar"
    info_path = Path(llm["xgrammar_tokenizer_info_path"])
    assert info_path == route_guided.tokenizer_info_path(spec) and info_path.is_relative_to(tmp_path / "cache")
    # The three fields TensorRT-LLM's backend reads (model_instance_state.cc), as its generator writes them.
    info = json.loads(info_path.read_text())
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_dir)
    assert set(info) == {"encoded_vocab", "tokenizer_str", "stop_token_ids"}
    assert info["encoded_vocab"] == [t for t, _ in sorted(tok.get_vocab().items(), key=lambda kv: kv[1])]
    assert json.loads(info["tokenizer_str"])["model"]["type"] == "BPE" and info["stop_token_ids"] == [tok.eos_token_id]
    # A tokenizer that is not on this machine: rendered all the same, with a warning naming the file to write.
    far = load_spec("llama3-8b", options={**ENGINE_FIXED, "serving.guided_decoding": "xgrammar"})
    routes.for_spec(far).prepare(resolve(far), build=False, echo=lambda m: None, warn=warnings.append)
    assert any("generate_xgrammar_tokenizer_info.py" in w for w in warnings)
    # validate says so too: the backend would refuse to load without the file.
    assert not [p for p in validate_repo(tmp_path / "r").problems if "xgrammar" in p.field]
    far_info = route_guided.tokenizer_info_path(far)
    assert not far_info.exists()
    found = [p for p in validate_repo(write_repo(far, tmp_path / "f")).problems if "xgrammar" in p.field]
    assert [(p.severity, str(far_info) in p.message) for p in found] == [("warning", True)]
    off = params_of(parse_config(write_repo(load_spec("llama3-8b", options=ENGINE_FIXED), tmp_path / "o")
                                 / "tensorrt_llm" / "config.pbtxt"))
    assert not {"guided_decoding_backend", "xgrammar_tokenizer_info_path"} & set(off)


def test_engine_route_refuses_a_backend_without_guided_inputs(tmp_path):
    spec = load_spec("llama3-8b", options={**ENGINE_FIXED, "serving.guided_decoding": "xgrammar",
                                           "container.image": "nvcr.io/nvidia/tritonserver:25.03-trtllm-python-py3"})
    with pytest.raises(TritongenError, match=r"TensorRT-LLM 0\.18\.0 .* has no guided-decoding inputs"):
        write_repo(spec, tmp_path / "r")


def test_llmapi_route_model_yaml_and_the_guide_mapping(tmp_path):
    fixed = {"route": "llmapi", "model.checkpoint_dir": "/models/llama3-8b"}
    on = write_repo(load_spec("llama3-8b", options={**fixed, "serving.guided_decoding": "xgrammar"}), tmp_path / "a")
    assert yaml.safe_load((on / "tensorrt_llm" / "1" / "model.yaml").read_text())["guided_decoding_backend"] == \
        "xgrammar"
    llm = parse_config(on / "tensorrt_llm" / "config.pbtxt")
    assert {"guided_decoding_guide_type", "guided_decoding_guide"} <= {t.name for t in llm.input}
    assert params_of(parse_config(on / "ensemble" / "config.pbtxt"))["guided_decoding"] == "xgrammar"
    assert "guided_decoding_guide" in (on / "ensemble" / "1" / "contract_tables.py").read_text()
    off = write_repo(load_spec("llama3-8b", options=fixed), tmp_path / "b")
    assert "guided_decoding_backend" not in yaml.safe_load((off / "tensorrt_llm" / "1" / "model.yaml").read_text())

    mapping = _load(on / "tensorrt_llm" / "1" / "llmapi_guided.py", "llmapi_guided_under_test")

    class StandInGuidedDecodingParams:  # a stand-in for tensorrt_llm.sampling_params.GuidedDecodingParams
        def __init__(self, **kwargs):
            self.kwargs = kwargs

    import numpy as np

    def request(kind, guide):
        return {"guided_decoding_guide_type": None if kind is None else np.array([kind.encode()], dtype=object),
                "guided_decoding_guide": None if guide is None else np.array([guide.encode()], dtype=object)}

    wrapped = mapping.with_guide(lambda req: {"max_tokens": 8}, lambda req, name: req[name],
                                 lambda: StandInGuidedDecodingParams)
    assert wrapped(request(None, None)) == {"max_tokens": 8}
    for kind, guide, kwargs in [("json", None, {"json_object": True}), ("json_schema", "{}", {"json": "{}"}),
                                ("regex", "a+", {"regex": "a+"}), ("ebnf_grammar", "root ::= \"a\"",
                                                                     {"grammar": "root ::= \"a\""}),
                                ("structural_tag", "{}", {"structural_tag": "{}"})]:
        assert wrapped(request(kind, guide))["guided_decoding"].kwargs == kwargs
    with pytest.raises(ValueError, match="'toml' is not one of"):
        wrapped(request("toml", "x"))


# -- the OpenAI front ------------------------------------------------------------------------------------------


def test_openai_response_format_becomes_the_guide():
    assert oai_guided.from_response_format(None) is None
    assert oai_guided.from_response_format({"type": "text"}) is None
    assert oai_guided.from_response_format({"type": "json_object"}) == ("json", "")
    fmt = {"type": "json_schema", "json_schema": {"name": "p", "schema": SCHEMA, "strict": True}}
    assert oai_guided.from_response_format(fmt) == ("json_schema", json.dumps(SCHEMA))
    for bad, message in [({"type": "json_schema"}, "json_schema needs"), ({"type": "yaml"}, "not supported"),
                         ({"type": "json_schema", "json_schema": {"schema": "{"}}, "not JSON"),
                         ({"type": "json_schema", "json_schema": {"schema": [1]}}, "is an object")]:
        with pytest.raises(OpenAIError, match=message) as err:
            oai_guided.from_response_format(bad)
        assert err.value.status == 400

    chat = ChatCompletionRequest(model="m", messages=[{"role": "user", "content": "hi"}], response_format=fmt)
    values = chat_generation(chat, 16).values()
    assert values["guided_decoding_guide_type"] == "json_schema" and json.loads(values["guided_decoding_guide"]) == \
        SCHEMA
    assert "guided_decoding_guide" not in chat_generation(ChatCompletionRequest(
        model="m", messages=[{"role": "user", "content": "hi"}], response_format={"type": "json_object"}),
        16).values()


def test_openai_vllm_extras():
    def completion(**extra):
        return completion_generation(CompletionRequest(model="m", prompt="p", **extra), 16).guide

    assert completion() is None
    assert completion(guided_regex="[0-9]+") == ("regex", "[0-9]+")
    assert completion(guided_grammar='root ::= "a"') == ("ebnf_grammar", 'root ::= "a"')
    assert completion(guided_json=SCHEMA) == ("json_schema", json.dumps(SCHEMA))
    assert completion(guided_json=json.dumps(SCHEMA)) == ("json_schema", json.dumps(SCHEMA))
    kind, pattern = completion(guided_choice=["a.b", "c (d)"])
    assert kind == "regex" and pattern == r"(a\.b)|(c \(d\))"
    assert re.fullmatch(pattern, "c (d)") and not re.fullmatch(pattern, "axb")
    assert completion(response_format={"type": "json_object"}) == ("json", "")
    for extra, message in [({"guided_regex": "a", "guided_grammar": "b"}, "not several"),
                           ({"guided_choice": []}, "non-empty"),
                           ({"guided_regex": "a", "response_format": {"type": "json_object"}}, "not both")]:
        with pytest.raises(OpenAIError, match=message):
            completion(**extra)


def test_the_triton_client_sends_the_guide():
    from tritongen.clients.triton import GenerateParams

    sent = GenerateParams(max_tokens=4, guide_type="regex", guide="a+").inputs("p", stream=False).arrays()
    assert sent["guided_decoding_guide_type"][1] == "BYTES" and sent["guided_decoding_guide"][0].tolist() == \
        [[b"a+"]]
    assert "guided_decoding_guide" not in GenerateParams(guide_type="json").inputs("p", stream=False).arrays()




def test_the_mask_fits_logits_wider_or_narrower_than_the_vocabulary(cpu_guided, tiny_dir):
    """A checkpoint's logits can be padded past the tokenizer's vocabulary (or, rarely, shorter)."""
    import torch

    guide = cpu_guided.Guides(str(tiny_dir), False, 1024).open("regex", "[0-9]+", 4)
    allowed = guide.allowed()
    assert 0 < len(allowed) < 100
    for width in (1024, 1100, 1000):
        logits = torch.zeros(width)
        guide.mask(logits)
        assert torch.nonzero(logits == 0).flatten().tolist() == [t for t in allowed if t < width]
        assert bool(torch.isinf(logits[1024:]).all())
