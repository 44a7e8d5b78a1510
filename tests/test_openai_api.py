"""The rest of the OpenAI API without Triton: tool-call parsers on the model families' outputs
(tests/fixtures/tool_calls/), streamed tool-call deltas, tools in the chat template, n choices, logprobs and
echo shapes. tests/test_openai_api_server.py drives them against a real tritonserver with the openai package."""

from __future__ import annotations

import json
import random
from pathlib import Path

import openai.types as oai_types
import pytest
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from tritongen.clients.openai import choices, logprobs, tools
from tritongen.clients.openai.mapping import Reply, chat_generation, completion_generation
from tritongen.clients.openai.protocol import ChatCompletionRequest, CompletionRequest, OpenAIError, Usage

FIXTURES = Path(__file__).parent / "fixtures" / "tool_calls"
CASES = [(parser, case) for parser in tools.PARSERS
         for case in json.loads((FIXTURES / f"{parser}.json").read_text())]
WEATHER = {"type": "function", "function": {"name": "get_weather", "description": "Weather in a city",
                                            "parameters": {"type": "object",
                                                           "properties": {"city": {"type": "string"}}}}}


def _calls(calls: list[tools.ToolCall]) -> list[dict]:
    return [{"name": c.name, "arguments": json.loads(c.arguments)} for c in calls]


@pytest.mark.parametrize("parser, case", CASES, ids=[f"{p}-{i}" for i, (p, _) in enumerate(CASES)])
def test_recorded_outputs_parse_whole(parser, case):
    content, calls = tools.parse(parser, case["text"])
    assert _calls(calls) == case["calls"]
    assert content == ((case["content"] or "") if calls else case["text"])
    assert all(c.id.startswith("call_") for c in calls) and len({c.id for c in calls}) == len(calls)


@pytest.mark.parametrize("parser, case", CASES, ids=[f"{p}-{i}" for i, (p, _) in enumerate(CASES)])
def test_recorded_outputs_parse_streamed_in_any_chunking(parser, case):
    """Streamed text cut anywhere gives the same content and calls as the whole text; content that is no call
    is passed on before the end (not held back to the last event)."""
    text = case["text"]
    rng = random.Random(len(text))
    for _ in range(20):
        cuts = sorted(rng.sample(range(1, len(text)), min(len(text) - 1, rng.randint(1, 12))))
        pieces = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)])]
        stream = tools.ToolStream(parser)
        passed = "".join(stream.push(p) for p in pieces)
        rest, calls = stream.finish()
        assert _calls(calls) == case["calls"]
        if calls:
            assert (passed + rest).strip() == (case["content"] or "")
        else:
            assert passed + rest == text
    if not case["calls"] and not text.lstrip().startswith(("{", "[", "<")):
        stream = tools.ToolStream(parser)
        assert stream.push(text) == text  # plain prose streams as it comes


def test_hermes_stream_passes_content_before_the_call_and_holds_a_partial_opener():
    stream = tools.ToolStream("hermes")
    assert stream.push("Checking <tool") == "Checking "
    assert stream.push("_call>\n{\"name\": \"f\", ") == ""
    assert stream.push("\"arguments\": {}}\n</tool_call>") == ""
    content, calls = stream.finish()
    assert content == "" and [(c.name, c.arguments) for c in calls] == [("f", "{}")]


def test_every_catalogue_model_has_a_tool_parser_from_its_family():
    from tritongen.spec import load_spec

    want = {"llama3-8b": "llama3_json", "llama3-70b": "llama3_json", "llama3.2-1b": "llama3_json",
            "qwen2.5-7b": "hermes", "mistral-7b": "mistral", "mixtral-8x7b": "mistral", "tiny": "llama3_json"}
    names = sorted(p.stem for p in (Path(tools.__file__).parents[2] / "catalog" / "models").glob("*.yaml"))
    assert names == sorted(want)
    for name in names:
        assert tools.parser_for_family(load_spec(name).model.family) == want[name], name
    assert tools.parser_for_family("gpt2") is None


def test_parser_for_repo_reads_the_lock_file(tmp_path):
    from conftest import render

    repo = render("qwen2.5-7b", tmp_path / "qwen")
    assert tools.parser_for_repo(repo) == "hermes"
    assert tools.parser_for_repo(tmp_path / "missing") is None and tools.parser_for_repo(None) is None


def _chat(**kw):
    return ChatCompletionRequest.model_validate({"model": "m", "messages": [{"role": "user", "content": "hi"}], **kw})


def test_tools_and_tool_messages_go_to_the_chat_template():
    history = [{"role": "user", "content": "Weather in Paris?"},
               {"role": "assistant", "content": None, "tool_calls": [
                   {"id": "call_1", "type": "function",
                    "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}}]},
               {"role": "tool", "tool_call_id": "call_1", "content": "18 C"}]
    gen = chat_generation(_chat(messages=history, tools=[WEATHER]), 16)
    sent = json.loads(gen.text)
    assert sent["tools"] == [WEATHER]
    assert sent["messages"][1]["tool_calls"][0]["function"]["arguments"] == {"city": "Paris"}  # an object
    assert sent["messages"][2] == {"role": "tool", "content": "18 C", "tool_call_id": "call_1"}
    # tool_choice "none": the tools are not rendered, the conversation is the plain list
    assert isinstance(json.loads(chat_generation(_chat(tools=[WEATHER], tool_choice="none"), 16).text), list)


@pytest.mark.parametrize("kw, param", [
    ({"tools": [WEATHER], "tool_choice": "required"}, "tool_choice"),
    ({"tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "get_weather"}}}, "tool_choice"),
    ({"tool_choice": "required"}, "tool_choice"),
    ({"tools": [{"type": "function", "function": {}}]}, "tools[0]"),
    ({"top_logprobs": 1}, "top_logprobs"),  # without logprobs: true
    ({"logprobs": True, "top_logprobs": 21}, "top_logprobs"),
])
def test_tool_and_logprob_requests_that_cannot_be_answered_are_400(kw, param):
    with pytest.raises(OpenAIError) as err:
        chat_generation(_chat(**kw), 16)
    assert err.value.status == 400 and err.value.body.error.param == param


def test_a_server_without_a_tool_parser_refuses_tools():
    with pytest.raises(OpenAIError) as err:
        choices.reply_options(_chat(tools=[WEATHER]), None)
    assert err.value.status == 400 and "--tool-parser" in err.value.body.error.message
    assert choices.reply_options(_chat(tools=[WEATHER]), "hermes")["tool_parser"] == "hermes"
    assert "tool_parser" not in choices.reply_options(_chat(tools=[WEATHER], tool_choice="none"), "hermes")


def test_chat_prompt_renders_tools_with_the_models_template():
    """textcodec.chat_prompt (preprocessing, the llmapi front) takes the object form and passes the tools to the
    tokenizer's template; the plain list form is unchanged."""
    import sys

    from conftest import sentencepiece_style_tokenizer

    sys.path.insert(0, str(Path(tools.__file__).parents[3] / "templates" / "common" / "lib"))
    try:
        import textcodec
    finally:
        sys.path.pop(0)
    tok = sentencepiece_style_tokenizer()  # built offline in a moment; only its chat template matters here
    tok.chat_template = ("{% if tools %}TOOLS:{{ tools | map(attribute='function') | map(attribute='name') | "
                         "join(',') }}\n{% endif %}{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n"
                         "{% endfor %}")
    gen = chat_generation(_chat(tools=[WEATHER]), 16)
    assert textcodec.chat_prompt(tok, gen.text) == "TOOLS:get_weather\nuser: hi\n"
    assert textcodec.chat_prompt(tok, chat_generation(_chat(), 16).text) == "user: hi\n"
    # An object that is not the front's form is a user message like any other text.
    assert textcodec.chat_prompt(tok, '{"a": 1}') == 'user: {"a": 1}\n'


def test_n_choices_get_their_own_seeds():
    gen = chat_generation(_chat(seed=7, temperature=0.8), 16)
    assert [g.seed for g in choices.fan_out(gen, 3)] == [7, 8, 9]
    assert choices.fan_out(gen, 1) == [gen]
    unseeded = choices.fan_out(chat_generation(_chat(temperature=0.8), 16), 4)
    assert len({g.seed for g in unseeded}) == 4 and all(g.seed is not None for g in unseeded)
    assert choices.fan_out(chat_generation(_chat(seed=2**64 - 1), 16), 2)[1].seed == 0
    usage = choices.total_usage([Usage(prompt_tokens=5, completion_tokens=3, total_tokens=8),
                                 Usage(prompt_tokens=5, completion_tokens=4, total_tokens=9)])
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (5, 7, 12)


def test_whole_answers_validate_as_openai_types():
    reply = Reply("m", True, "r1", n=2, logprobs=True, tool_parser="hermes")
    plain = choices.Outcome(parts=["Hello", " there"], tokens=[("Hello", -0.5), (" there", -1.25)], finish="length",
                            usage=Usage(prompt_tokens=3, completion_tokens=2, total_tokens=5))
    call = choices.Outcome(parts=['<tool_call>\n{"name": "get_weather", "arguments": {"city": "Oslo"}}\n</tool_call>'],
                           tokens=[("<tool_call>", -0.1)], finish="stop",
                           usage=Usage(prompt_tokens=3, completion_tokens=9, total_tokens=12))
    body = reply.whole(choices.whole_choices(reply, [plain, call]), choices.total_usage([plain.usage, call.usage]))
    answer = ChatCompletion.model_validate(body)
    first, second = answer.choices
    assert (first.index, first.message.content, first.finish_reason) == (0, "Hello there", "length")
    assert [(t.token, t.logprob, t.bytes) for t in first.logprobs.content] == [
        ("Hello", -0.5, list(b"Hello")), (" there", -1.25, list(b" there"))]
    assert second.index == 1 and second.finish_reason == "tool_calls" and second.message.content is None
    fn = second.message.tool_calls[0].function
    assert (fn.name, json.loads(fn.arguments)) == ("get_weather", {"city": "Oslo"})
    assert "tool_calls" not in body["choices"][0]["message"]  # left out, as OpenAI does, when there are none
    assert answer.usage.completion_tokens == 11

    reply = Reply("m", False, "r2", echo="Once ", logprobs=True)
    done = choices.Outcome(parts=["upon", " a"], tokens=[("upon", -1.0), (" a", -2.0)], finish="length")
    completion = oai_types.Completion.model_validate(reply.whole(choices.whole_choices(reply, [done]), None))
    c = completion.choices[0]
    assert c.text == "Once upon a"
    assert (c.logprobs.tokens, c.logprobs.token_logprobs, c.logprobs.text_offset) == (
        ["upon", " a"], [-1.0, -2.0], [5, 9])


def _events(stream: choices.ChoiceStream, events) -> list[dict]:
    out = []
    for data in stream.opening():
        out.append(json.loads(data.decode().removeprefix("data: ")))
    for kind, value in events:
        out.extend(json.loads(d.decode().removeprefix("data: ")) for d in stream.event(kind, value))
    return out


def test_streamed_tool_calls_have_openais_delta_shape():
    reply = Reply("m", True, "r3", n=2, tool_parser="llama3_json")
    text = '{"name": "get_weather", "parameters": {"city": "Rome"}}'
    end = ("end", ("length", Usage(prompt_tokens=1, completion_tokens=1, total_tokens=2)))
    chunks = [ChatCompletionChunk.model_validate(c) for c in _events(
        choices.ChoiceStream(reply, 1), [("text", text[:10]), ("text", text[10:]), end])]
    assert chunks[0].choices[0].delta.role == "assistant" and all(c.choices[0].index == 1 for c in chunks)
    deltas = [tc for c in chunks for tc in (c.choices[0].delta.tool_calls or [])]
    assert deltas[0].id.startswith("call_") and deltas[0].type == "function"
    assert deltas[0].function.name == "get_weather" and deltas[0].function.arguments == ""
    assert all(d.index == 0 for d in deltas)
    assert json.loads("".join(d.function.arguments for d in deltas)) == {"city": "Rome"}
    assert chunks[-1].choices[0].finish_reason == "tool_calls"
    assert not any(c.choices[0].delta.content for c in chunks)


def test_streamed_logprobs_and_echo():
    reply = Reply("m", False, "r4", echo="Hi ", logprobs=True)
    end = ("end", ("stop", None))
    got = _events(choices.ChoiceStream(reply, 0), [("logprobs", [("yo", -0.5)]), ("text", "yo"),
                                                    ("logprobs", [(" x", -1.5)]), ("text", " x"), end])
    # (openai's Completion type allows no null finish_reason, which its stream reader does not check)
    parsed = [g["choices"][0] for g in got]
    assert [p["text"] for p in parsed] == ["Hi ", "yo", " x", ""]
    assert parsed[1]["logprobs"]["text_offset"] == [3] and parsed[2]["logprobs"]["text_offset"] == [5]
    assert parsed[2]["logprobs"]["token_logprobs"] == [-1.5] and parsed[-1]["finish_reason"] == "stop"
    assert parsed[0]["logprobs"] is None
    chat = Reply("m", True, "r5", logprobs=True)
    got = _events(choices.ChoiceStream(chat, 0), [("logprobs", [("a", -0.25)]), ("text", "a"), end])
    chunk = ChatCompletionChunk.model_validate(got[1])
    assert chunk.choices[0].logprobs.content[0].token == "a" and chunk.choices[0].logprobs.content[0].logprob == -0.25


def test_completion_echo_and_logprobs_map():
    req = CompletionRequest.model_validate({"model": "m", "prompt": "p", "logprobs": 0})
    assert completion_generation(req, 16).values()["return_log_probs"] is True
    assert choices.reply_options(req, None)["logprobs"] is True  # 0 asks for them too (the chosen token's)
    assert choices.reply_options(_chat(logprobs=False), None)["logprobs"] is False
    assert "return_log_probs" not in completion_generation(
        CompletionRequest.model_validate({"model": "m", "prompt": "p", "echo": True}), 16).values()
    assert choices.reply_options(CompletionRequest.model_validate({"model": "m", "prompt": "p", "echo": True}),
                                 None) == {"n": 1, "logprobs": False, "top_logprobs": False, "echo": "p"}
    assert [t[:2] for t in logprobs.tokens_of("ab", [-1.0, -2.0])] == [("ab", -1.0), ("", -2.0)]
    top = CompletionRequest.model_validate({"model": "m", "prompt": "p", "logprobs": 3})
    assert completion_generation(top, 16).values()["top_logprobs"] == 3
    assert completion_generation(top, 16).tensors()["top_logprobs"][0][0, 0] == 3  # the cpu route's extension
    assert chat_generation(_chat(logprobs=True, top_logprobs=2), 16).values()["top_logprobs"] == 2
    assert "top_logprobs" not in chat_generation(_chat(logprobs=True, top_logprobs=0), 16).values()


def test_top_logprobs_shapes():
    tokens = logprobs.tokens_of("a", [-0.1], [[("a", -0.1), ("b", -2.5)]])
    chat = ChatCompletion.model_validate({
        "id": "x", "object": "chat.completion", "created": 0, "model": "m", "choices": [{
            "index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "a"},
            "logprobs": logprobs.chat(tokens)}]})
    top = chat.choices[0].logprobs.content[0].top_logprobs
    assert [(t.token, t.logprob, t.bytes) for t in top] == [("a", -0.1, [97]), ("b", -2.5, [98])]
    assert logprobs.completion(tokens, 0, top=True)["top_logprobs"] == [{"a": -0.1, "b": -2.5}]
    assert logprobs.completion(tokens, 0)["top_logprobs"] is None


class _ScriptedService:
    """A stand-in for Service.run: each choice's events are scripted ("wait" sleeps until cancelled), so the
    fan-out of n choices is tested without Triton."""

    @staticmethod
    def make(scripts):
        from tritongen.clients.openai.serving import ServerConfig, Service

        class Scripted(Service):
            closed: list[int] = []

            async def run(self, gen, request_id, *, index=0):
                import asyncio

                try:
                    for ev in scripts[index]:
                        if isinstance(ev, Exception):
                            raise ev
                        if ev == "wait":
                            await asyncio.sleep(30)
                        yield ev
                finally:
                    self.closed.append(index)

        service = Scripted(ServerConfig(triton_url="grpc://127.0.0.1:9", model_name="m"))
        service.closed = []
        return service


def _end(n_out: int, finish="length"):
    return ("end", (finish, Usage(prompt_tokens=4, completion_tokens=n_out, total_tokens=4 + n_out)))


def test_n_choices_are_merged_and_fail_as_one():
    import asyncio
    import time

    gens = choices.fan_out(chat_generation(_chat(seed=1), 16), 3)
    service = _ScriptedService.make([[("text", "a"), ("text", "b"), _end(2)], [("text", "c"), _end(1, "stop")],
                                     [("text", "d"), ("text", "e"), ("text", "f"), _end(3)]])
    status, body = asyncio.run(service.whole(gens, Reply("m", True, "r", n=3)))
    assert status == 200 and [c["message"]["content"] for c in body["choices"]] == ["ab", "c", "def"]
    assert [c["finish_reason"] for c in body["choices"]] == ["length", "stop", "length"]
    assert body["usage"] == {"prompt_tokens": 4, "completion_tokens": 6, "total_tokens": 10}

    for failure, want in ((OpenAIError(400, "too long", code="context_length_exceeded"), 400),
                          (RuntimeError("boom"), 500)):
        service = _ScriptedService.make([[("text", "a"), "wait", _end(1)], [failure], ["wait", _end(1)]])
        started = time.monotonic()
        status, body = asyncio.run(service.whole(gens, Reply("m", True, "r", n=3)))
        assert status == want and time.monotonic() - started < 10  # the waiting choices were cancelled
        assert sorted(service.closed) == [0, 1, 2]

    async def streamed():
        service = _ScriptedService.make([[("text", "a"), _end(1)], [("text", "b"), _end(1)]])
        events = await service.stream(gens[:2], Reply("m", True, "r", n=2, include_usage=True))
        return [e async for e in events]

    data = [d.decode() for d in asyncio.run(streamed())]
    chunks = [ChatCompletionChunk.model_validate(json.loads(d.removeprefix("data: "))) for d in data[:-1]]
    assert data[-1] == "data: [DONE]\n\n" and chunks[-1].usage.completion_tokens == 2
    per_choice = {i: "".join(c.choices[0].delta.content or "" for c in chunks if c.choices and c.choices[0].index == i)
                  for i in (0, 1)}
    assert per_choice == {0: "a", 1: "b"}


def test_only_the_cpu_routes_ensemble_carries_the_top_logprobs(tmp_path):
    from conftest import render

    def carries(model, **options):
        repo = render(model, tmp_path / f"{model}-{len(options)}", **options)
        text = (repo / "ensemble" / "config.pbtxt").read_text()
        return {name in text for name in ('"top_logprobs"', '"top_tokens"', '"top_log_probs"')}

    assert carries("tiny", **{"cpu.engine": "mock"}) == {True}
    assert carries("tiny", **{"cpu.engine": "mock", "serving.optional_outputs": ["token_counts"]}) == {False}
    assert carries("llama3-8b") == {False}


@pytest.mark.parametrize("offered, kw, param", [
    ({"text_output"}, {"logprobs": True}, "logprobs"),  # serving.optional_outputs without log_probs
    ({"text_output", "output_log_probs"}, {"logprobs": True, "top_logprobs": 2}, "top_logprobs"),  # engine route
])
def test_logprobs_a_repository_does_not_return_are_400(offered, kw, param):
    """Refused before anything is sent: the model's outputs (asked once per server) lack them."""
    import asyncio

    from tritongen.clients.openai.backend import TritonBackend

    backend = TritonBackend("grpc://127.0.0.1:9", "ensemble")
    backend._counts, backend._offered = [], offered

    async def first():
        return await backend.stream("r", chat_generation(_chat(**kw), 4)).__anext__()

    with pytest.raises(OpenAIError) as err:
        asyncio.run(first())
    assert err.value.status == 400 and err.value.body.error.param == param
