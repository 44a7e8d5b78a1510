"""Structured output on a real tritonserver (cpu route, tiny model, serving.guided_decoding=xgrammar).

The tiny model is trained on English prose, never on JSON: left alone it writes no valid JSON at all (checked
below), so every output that parses and validates is the grammar's doing. The schemas bound their outputs
(maxLength, enums, integer ranges, maxItems) so that generations end well within max_tokens; an unbounded string
would also be valid, just long.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import openai
import pytest
from click.testing import CliRunner

from conftest import render
from tritongen import proc
from tritongen.cli import cli
from tritongen.clients.openai import launch as openai_server
from tritongen.clients.triton import GenerateParams, LLMClient
from tritongen.errors import ClientError

pytestmark = pytest.mark.server

PROMPTS = ["The river ran past", "A server listens on a port and", "Once there was a keeper of"]

PERSON = {"type": "object", "properties": {
    "name": {"type": "string", "maxLength": 12},
    "age": {"type": "integer", "minimum": 0, "maximum": 120},
    "active": {"type": "boolean"}}, "required": ["name", "age", "active"]}
COLOR = {"type": "object", "properties": {"color": {"enum": ["red", "green", "blue"]}}, "required": ["color"]}
FLAGS = {"type": "array", "items": {"type": "boolean"}, "minItems": 1, "maxItems": 4}
NESTED = {"type": "object", "properties": {
    "point": {"type": "object", "properties": {"x": {"type": "integer", "minimum": -50, "maximum": 50},
                                               "y": {"type": "integer", "minimum": -50, "maximum": 50}},
              "required": ["x", "y"]},
    "tags": {"type": "array", "items": {"enum": ["a", "b", "c"]}, "maxItems": 3}}, "required": ["point", "tags"]}
SCHEMAS = {"person": PERSON, "enum": COLOR, "array": FLAGS, "nested": NESTED}

#: Prompts after which the tiny model closes a json_object (greedy): see test_json_object_regex_and_ebnf.
OBJECT_PROMPTS = ["The cat", "Good tools explain themselves.", "A server listens on a port and"]
REGEX = r"[0-9]{3}-[a-z]{2,4}"
#: A bounded expression language: "(" term [op term] ")", terms a digit or x.
EBNF = 'root ::= "(" term (op term)? ")"\nterm ::= [0-9] | "x"\nop ::= "+" | "*"'
EBNF_LANGUAGE = r"\([0-9x]([+*][0-9x])?\)"


@pytest.fixture(scope="module")
def guided_server(tiny_dir, session_root, server_factory):
    repo = render("tiny", session_root / "repos" / "guided", **{"name": "guided", "serving.bls": True,
                                                                  "serving.guided_decoding": "xgrammar"})
    return server_factory(repo, "test-guided")


@pytest.fixture(scope="module")
def client(guided_server):
    return LLMClient(guided_server.grpc_url)


def _gen(client, prompt, kind, guide="", *, stream=False, max_tokens=96):
    params = GenerateParams(max_tokens=max_tokens, guide_type=kind, guide=guide or None)
    return client.generate(prompt, params, stream=stream).text


def test_without_a_guide_the_tiny_model_writes_no_json(client):
    """The control: what the constraint is measured against."""
    for prompt in PROMPTS:
        text = client.generate(prompt, GenerateParams(max_tokens=40)).text
        with pytest.raises(json.JSONDecodeError):
            json.loads(text)


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_every_output_validates_against_its_schema(client, stream):
    results = []
    for name, schema in SCHEMAS.items():
        for prompt in PROMPTS:
            text = _gen(client, prompt, "json_schema", json.dumps(schema), stream=stream)
            jsonschema.validate(json.loads(text), schema)  # raises on the first invalid output
            results.append((name, text))
    assert len(results) == len(SCHEMAS) * len(PROMPTS)
    # Not one canned answer: the model's own choices show within the schema.
    assert len({t for n, t in results if n == "person"}) > 1 or len({t for _, t in results}) > len(SCHEMAS)


def test_json_object_regex_and_ebnf(client):
    # json_object bounds nothing: the tiny model, never trained on JSON, may open a key and write prose into it
    # until max_tokens ("The river ran past" does). These prompts close their object; the test of the others is
    # that they are cut by length, not that they leave the grammar.
    for prompt in OBJECT_PROMPTS:
        assert isinstance(json.loads(_gen(client, prompt, "json")), dict)
    unbounded = client.generate(PROMPTS[0], GenerateParams(max_tokens=24, guide_type="json", return_num_tokens=True))
    assert unbounded.text.startswith('{"') and unbounded.extras["num_output_tokens"] == [[24]]
    for prompt in PROMPTS:
        assert re.fullmatch(REGEX, _gen(client, prompt, "regex", REGEX))
        assert re.fullmatch(EBNF_LANGUAGE, _gen(client, prompt, "ebnf_grammar", EBNF, stream=True))


def test_the_bls_passes_guides_on(guided_server):
    bls = LLMClient(guided_server.grpc_url, model="tensorrt_llm_bls")
    for prompt in PROMPTS:
        text = _gen(bls, prompt, "json_schema", json.dumps(PERSON), stream=True)
        jsonschema.validate(json.loads(text), PERSON)


def test_http_generate_takes_the_guide(guided_server):
    http = LLMClient(guided_server.http_url, protocol="http")
    assert json.loads(_gen(http, PROMPTS[0], "json_schema", json.dumps(COLOR)))["color"] in ("red", "green", "blue")


def test_bad_guides_are_clear_errors_and_the_server_keeps_serving(client):
    cases = [
        ("json_schema", '{"type": "object", "properties": ', "json_schema guide is not JSON"),
        ("json_schema", '{"type": "no-such-type"}', "invalid json_schema guide"),
        ("regex", "[0-9", "invalid regex guide"),
        ("ebnf_grammar", "root ::= missing_rule", "invalid ebnf_grammar guide"),
        ("yaml", "a: 1", "guided_decoding_guide_type 'yaml' is not one of json, json_schema"),
        ("regex", "", "needs guided_decoding_guide"),
    ]
    for kind, guide, message in cases:
        with pytest.raises(ClientError, match=re.escape(message)):
            client.generate("Hello", GenerateParams(max_tokens=8, guide_type=kind, guide=guide or None))
        assert json.loads(_gen(client, "Hello", "json_schema", json.dumps(COLOR)))  # still serving, still guided


def test_a_repository_without_guided_decoding_refuses_guides(tiny_server):
    with pytest.raises(ClientError, match=r"guided decoding is off in this repository"):
        LLMClient(tiny_server.grpc_url).generate("Hi", GenerateParams(max_tokens=4, guide_type="json"))


def test_mock_engine_follows_the_grammar(tiny_dir, session_root, server_factory):
    """The MOCK picks among the tokens the grammar allows (and ends as soon as it may)."""
    repo = render("tiny", session_root / "repos" / "guided-mock", **{
        "name": "guided-mock", "cpu.engine": "mock", "serving.guided_decoding": "xgrammar"})
    mock = LLMClient(server_factory(repo, "test-guided-mock").grpc_url)
    for prompt in PROMPTS:
        jsonschema.validate(json.loads(_gen(mock, prompt, "json_schema", json.dumps(NESTED))), NESTED)
        assert re.fullmatch(REGEX, _gen(mock, prompt, "regex", REGEX, stream=True))


# -- through the OpenAI front, with the official client ----------------------------------------------------------


@pytest.fixture(scope="module")
def oai(guided_server):
    from conftest import free_ports

    url = openai_server.start_background(guided_server, free_ports(1)[0])
    yield openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=60)
    for pid in list(guided_server.extra.get("companions", [])):
        proc.stop_pid(pid, timeout=10)
    guided_server.extra["companions"] = []
    assert Path(guided_server.path).is_file()


def _chat(oai, model, fmt, *, stream, content="Describe a person.", **extra):
    messages = [{"role": "user", "content": content}]
    if not stream:
        reply = oai.chat.completions.create(model=model, messages=messages, max_tokens=96, temperature=0,
                                            response_format=fmt, extra_body=extra or None)
        return reply.choices[0].message.content
    chunks = oai.chat.completions.create(model=model, messages=messages, max_tokens=96, temperature=0,
                                         response_format=fmt, stream=True, extra_body=extra or None)
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_openai_response_format(oai, guided_server, stream):
    model = guided_server.name
    for name, schema in SCHEMAS.items():
        fmt = {"type": "json_schema", "json_schema": {"name": name, "schema": schema, "strict": True}}
        jsonschema.validate(json.loads(_chat(oai, model, fmt, stream=stream)), schema)
    # json_object on a prompt after which the tiny model closes its object (test_json_object_regex_and_ebnf).
    done = oai.completions.create(model=model, prompt=OBJECT_PROMPTS[0], max_tokens=64, temperature=0,
                                  stream=stream, extra_body={"response_format": {"type": "json_object"}})
    text = done.choices[0].text if not stream else "".join(c.choices[0].text for c in done if c.choices)
    assert isinstance(json.loads(text), dict)
    # Sampling (OpenAI's default temperature 1) stays inside the grammar too.
    reply = oai.chat.completions.create(model=model, messages=[{"role": "user", "content": "Hi"}], max_tokens=96,
                                        seed=7, response_format={"type": "json_schema", "json_schema": {
                                            "name": "p", "schema": PERSON}})
    jsonschema.validate(json.loads(reply.choices[0].message.content), PERSON)


def test_openai_vllm_extras_and_errors(oai, guided_server):
    model = guided_server.name
    done = oai.completions.create(model=model, prompt="The code is", max_tokens=16, temperature=0,
                                  extra_body={"guided_regex": REGEX})
    assert re.fullmatch(REGEX, done.choices[0].text)
    choice = _chat(oai, model, None, stream=False, guided_choice=["yes (sure)", "no"])
    assert choice in ("yes (sure)", "no")
    with pytest.raises(openai.BadRequestError, match="invalid json_schema guide"):
        _chat(oai, model, {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "nope"}}},
              stream=False)
    with pytest.raises(openai.BadRequestError, match="response_format"):
        _chat(oai, model, {"type": "json_schema"}, stream=False)
    with pytest.raises(openai.BadRequestError, match="not supported"):
        _chat(oai, model, {"type": "yaml"}, stream=False)
    fmt = {"type": "json_schema", "json_schema": {"name": "c", "schema": COLOR}}
    assert json.loads(_chat(oai, model, fmt, stream=True))["color"] in ("red", "green", "blue")


def test_tritongen_infer_takes_a_guide(guided_server, tmp_path):
    schema = tmp_path / "person.schema.json"
    schema.write_text(json.dumps(PERSON))
    for extra in (["--no-stream"], []):
        result = CliRunner().invoke(cli, ["infer", PROMPTS[1], "--url", guided_server.grpc_url, "--max-tokens", "96",
                                          "--guide-type", "json_schema", "--guide", f"@{schema}", *extra])
        assert result.exit_code == 0, result.output
        jsonschema.validate(json.loads(result.stdout.strip().splitlines()[0]), PERSON)
    refused = CliRunner().invoke(cli, ["infer", "Hi", "--url", guided_server.grpc_url, "--guide-type", "regex"])
    assert refused.exit_code != 0 and "--guide-type regex needs --guide" in refused.output
