"""The rest of the OpenAI API against a real tritonserver, with the official ``openai`` package: n choices, seed,
stop lists, logprobs, echo and stream_options.include_usage on the cpu route's PyTorch engine (the tiny model),
and tools end to end on a MOCK echo engine whose chat template turns the request's tools into a tool call that
the engine then streams back (the tiny model does not call tools by itself).

The OpenAI fronts run as ``tritongen openai`` subprocesses started the way ``tritongen serve --openai`` starts
them, so ``--tool-parser auto`` picks the parser from the served repository's model family.
"""

from __future__ import annotations

import json
import math

import openai
import pytest

from conftest import free_ports, render
from tritongen import proc
from tritongen.clients.openai import launch as openai_server

pytestmark = pytest.mark.server

CHAT = [{"role": "user", "content": "Tell me about the river and the old mill."}]
PROMPT = "The river ran past"
WEATHER = {"type": "function", "function": {"name": "get_weather", "description": "Weather in a city",
                                            "parameters": {"type": "object",
                                                           "properties": {"city": {"type": "string"}}}}}
#: A MOCK's chat template: with tools, the prompt is a Llama 3.x JSON tool call built from the first tool's name
#: and the user's message; the echo engine streams the prompt back, so the answer is that call.
TOOL_TEMPLATE = ('{{ bos_token }}{% if tools %}{"name": "{{ tools[0].function.name }}", "parameters": '
                 '{{ messages[-1].content }}}{% else %}{{ messages[-1].content }}{% endif %}')


def _front(record):
    url, pid = openai_server._launch(record, free_ports(1)[0])
    return url, pid


@pytest.fixture(scope="module")
def oai(tiny_server):
    url, pid = _front(tiny_server)
    yield openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=120)
    proc.stop_pid(pid, timeout=10)


@pytest.fixture(scope="module")
def tool_tokenizer(tiny_dir, session_root):
    from transformers import AutoTokenizer

    out = session_root / "tokenizers" / "tool-echo"
    tok = AutoTokenizer.from_pretrained(tiny_dir)
    tok.chat_template = TOOL_TEMPLATE
    tok.save_pretrained(out)
    return AutoTokenizer.from_pretrained(out), out


@pytest.fixture(scope="module")
def tool_server(tool_tokenizer, session_root, server_factory):
    repo = render("tiny", session_root / "repos" / "openai-tools", **{
        "name": "openai-tools", "cpu.engine": "mock", "cpu.mock_echo": True,
        "model.tokenizer_dir": str(tool_tokenizer[1])})
    return server_factory(repo, "test-openai-tools")


@pytest.fixture(scope="module")
def tool_oai(tool_server):
    url, pid = _front(tool_server)
    yield openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=120)
    proc.stop_pid(pid, timeout=10)


def test_n_choices_each_sample_with_their_own_seed(oai, tiny_server):
    kw = dict(model=tiny_server.name, messages=CHAT, max_tokens=12, temperature=1.0, seed=11)
    whole = oai.chat.completions.create(n=3, **kw)
    assert [c.index for c in whole.choices] == [0, 1, 2]
    texts = [c.message.content for c in whole.choices]
    # choice i is the request with seed + i: reproducible, and the same as asking for it alone
    assert texts == [c.message.content for c in oai.chat.completions.create(n=3, **kw).choices]
    alone = [oai.chat.completions.create(**{**kw, "seed": 11 + i}).choices[0].message.content for i in range(3)]
    assert texts == alone and len(set(texts)) > 1
    assert whole.usage.completion_tokens == sum(
        oai.chat.completions.create(**{**kw, "seed": 11 + i}).usage.completion_tokens for i in range(3))
    chunks = list(oai.chat.completions.create(n=3, stream=True, stream_options={"include_usage": True}, **kw))
    streamed = ["".join(c.choices[0].delta.content or "" for c in chunks if c.choices and c.choices[0].index == i)
                for i in range(3)]
    assert streamed == texts
    finishes = [c.choices[0] for c in chunks if c.choices and c.choices[0].finish_reason]
    assert sorted(f.index for f in finishes) == [0, 1, 2]
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == whole.usage.completion_tokens


def test_an_error_in_any_choice_is_the_answers_error(oai, tiny_server):
    """n requests fail as one: before the first streamed byte the status is kept, and the others are cancelled."""
    for stream in (False, True):
        with pytest.raises(openai.BadRequestError) as err:
            oai.completions.create(model=tiny_server.name, prompt=PROMPT, max_tokens=5000, n=3, stream=stream)
        assert err.value.body["code"] == "context_length_exceeded"
    assert oai.completions.create(model=tiny_server.name, prompt=PROMPT, max_tokens=2, n=2).choices[1].text


def _counter(oai, name: str) -> float:
    import httpx

    text = httpx.get(str(oai.base_url).removesuffix("/v1/") + "/metrics", timeout=10).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name + "{"))


def test_the_fronts_token_counters_equal_the_usage_of_n_choices(oai, tiny_server):
    before = [_counter(oai, f"tritongen_openai_{k}_tokens_total") for k in ("prompt", "completion")]
    reply = oai.completions.create(model=tiny_server.name, prompt=PROMPT, max_tokens=5, n=3, temperature=1.0)
    after = [_counter(oai, f"tritongen_openai_{k}_tokens_total") for k in ("prompt", "completion")]
    assert after[0] - before[0] == reply.usage.prompt_tokens > 0  # the prompt once, as the usage has it
    assert after[1] - before[1] == reply.usage.completion_tokens == 15


def test_n_unseeded_choices_differ(oai, tiny_server):
    # (A chat prompt: the tiny model continues its training text almost surely, whatever the seed.)
    reply = oai.chat.completions.create(model=tiny_server.name, messages=CHAT, max_tokens=12, temperature=1.0, n=4)
    assert len({c.message.content for c in reply.choices}) > 1


def test_stop_list_and_include_usage(oai, tiny_server):
    full = oai.completions.create(model=tiny_server.name, prompt=PROMPT, max_tokens=30, temperature=0).choices[0].text
    words = full.split()
    first, later = words[len(words) // 3], words[2 * len(words) // 3]
    want = full[: min(full.index(first), full.index(later))]
    whole = oai.completions.create(model=tiny_server.name, prompt=PROMPT, max_tokens=30, temperature=0,
                                   stop=[later, "never-there", first])
    assert whole.choices[0].text == want and whole.choices[0].finish_reason == "stop"
    chunks = list(oai.chat.completions.create(model=tiny_server.name, messages=CHAT, max_tokens=6, temperature=0,
                                              stream=True, stream_options={"include_usage": True}))
    assert all(c.usage is None for c in chunks[:-1]) and chunks[-1].usage.completion_tokens == 6
    plain = list(oai.chat.completions.create(model=tiny_server.name, messages=CHAT, max_tokens=6, temperature=0,
                                             stream=True, stream_options={"include_usage": False}))
    assert all(c.usage is None for c in plain)


def test_chat_logprobs_are_the_chosen_tokens(oai, tiny_server, tiny_dir):
    whole = oai.chat.completions.create(model=tiny_server.name, messages=CHAT, max_tokens=10, temperature=0,
                                        logprobs=True, top_logprobs=0)
    c = whole.choices[0]
    tokens = c.logprobs.content
    assert "".join(t.token for t in tokens) == c.message.content
    assert len(tokens) == whole.usage.completion_tokens == 10
    assert all(t.logprob <= 0 and t.bytes == list(t.token.encode()) and t.top_logprobs == [] for t in tokens)
    # The same log-probs as the model gives, worked out here with transformers on the same prompt.
    want = _reference_logprobs(tiny_dir, CHAT, 10)
    assert [round(t.logprob, 3) for t in tokens] == [round(x, 3) for x in want]
    chunks = list(oai.chat.completions.create(model=tiny_server.name, messages=CHAT, max_tokens=10, temperature=0,
                                              logprobs=True, stream=True))
    streamed = [t for ch in chunks if ch.choices and ch.choices[0].logprobs for t in ch.choices[0].logprobs.content]
    assert [(t.token, round(t.logprob, 4)) for t in streamed] == [(t.token, round(t.logprob, 4)) for t in tokens]
    assert whole.choices[0].message.content and not any(math.isnan(t.logprob) for t in tokens)


def test_top_logprobs_on_the_cpu_route(oai, tiny_server, tiny_dir):
    """The cpu engine's k most likely tokens (tritongen.contract.TOP_LOGPROBS_OUTPUTS): greedy picks the first of
    them, and they are the model's own (transformers on the same prompt)."""
    whole = oai.chat.completions.create(model=tiny_server.name, messages=CHAT, max_tokens=6, temperature=0,
                                        logprobs=True, top_logprobs=3)
    tokens = whole.choices[0].logprobs.content
    assert len(tokens) == 6 and all(len(t.top_logprobs) == 3 for t in tokens)
    for t in tokens:
        assert t.top_logprobs[0].token == t.token and abs(t.top_logprobs[0].logprob - t.logprob) < 1e-4
        assert [x.logprob for x in t.top_logprobs] == sorted((x.logprob for x in t.top_logprobs), reverse=True)
    want = _reference_top(tiny_dir, CHAT, 6, 3)
    assert [[(x.token, round(x.logprob, 3)) for x in t.top_logprobs] for t in tokens] == \
        [[(tok, round(lp, 3)) for tok, lp in step] for step in want]
    chunks = list(oai.chat.completions.create(model=tiny_server.name, messages=CHAT, max_tokens=6, temperature=0,
                                              logprobs=True, top_logprobs=3, stream=True))
    streamed = [t for c in chunks if c.choices and c.choices[0].logprobs for t in c.choices[0].logprobs.content]
    assert [[x.token for x in t.top_logprobs] for t in streamed] == [[x.token for x in t.top_logprobs] for t in tokens]
    completion = oai.completions.create(model=tiny_server.name, prompt=PROMPT, max_tokens=4, temperature=0,
                                        logprobs=2).choices[0].logprobs
    assert len(completion.top_logprobs) == 4 and all(len(d) == 2 for d in completion.top_logprobs)
    assert all(tok in d for tok, d in zip(completion.tokens, completion.top_logprobs))


def _reference_generate(tiny_dir, messages, n: int):
    """transformers' greedy generate() on the chat prompt: (the tokenizer, the output with per-step scores, the
    prompt's length)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_dir, dtype=torch.float32).eval()
    prompt = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    ids = tok(prompt, add_special_tokens=False, return_tensors="pt").input_ids
    with torch.inference_mode():
        out = model.generate(ids, max_new_tokens=n, do_sample=False, output_scores=True, return_dict_in_generate=True,
                             pad_token_id=tok.eos_token_id)
    return tok, out, ids.shape[1]


def _reference_top(tiny_dir, messages, n: int, k: int) -> list[list[tuple[str, float]]]:
    import torch

    tok, out, _ = _reference_generate(tiny_dir, messages, n)
    steps = []
    for scores in out.scores:
        values, top = torch.topk(torch.log_softmax(scores[0].float(), -1), k)
        steps.append([(tok.decode([int(i)]), float(v)) for v, i in zip(values, top)])
    return steps


def _reference_logprobs(tiny_dir, messages, n: int) -> list[float]:
    import torch

    _, out, prompt_len = _reference_generate(tiny_dir, messages, n)
    new = out.sequences[0, prompt_len:]
    return [float(torch.log_softmax(s[0].float(), -1)[t]) for s, t in zip(out.scores, new)]


def test_completion_logprobs_and_echo(oai, tiny_server):
    plain = oai.completions.create(model=tiny_server.name, prompt=PROMPT, max_tokens=8, temperature=0).choices[0]
    scored = oai.completions.create(model=tiny_server.name, prompt=PROMPT, max_tokens=8, temperature=0,
                                    logprobs=0).choices[0]
    lp = scored.logprobs
    assert "".join(lp.tokens) == scored.text == plain.text and len(lp.token_logprobs) == 8
    assert lp.text_offset == [sum(len(t) for t in lp.tokens[:i]) for i in range(8)]
    echoed = oai.completions.create(model=tiny_server.name, prompt=PROMPT, max_tokens=8, temperature=0, echo=True)
    assert echoed.choices[0].text == PROMPT + plain.text
    chunks = list(oai.completions.create(model=tiny_server.name, prompt=PROMPT, max_tokens=8, temperature=0,
                                         echo=True, stream=True))
    assert chunks[0].choices[0].text == PROMPT
    assert "".join(c.choices[0].text for c in chunks if c.choices) == PROMPT + plain.text
    with pytest.raises(openai.BadRequestError) as err:
        oai.completions.create(model=tiny_server.name, prompt=PROMPT, max_tokens=4, logprobs=6)  # OpenAI's 0..5
    assert err.value.body["param"] == "logprobs"


def _tool_max_tokens(tool_tokenizer, content: str) -> int:
    """How many tokens the echo engine streams back for one pass over the rendered prompt."""
    tok = tool_tokenizer[0]
    prompt = tok.apply_chat_template([{"role": "user", "content": content}], tools=[WEATHER], tokenize=False,
                                     add_generation_prompt=True)
    special = set(tok.all_special_ids)
    return len([t for t in tok(prompt, add_special_tokens=False).input_ids if t not in special])


def test_tool_calls_end_to_end(tool_oai, tool_server, tool_tokenizer):
    args = '{"city": "Paris"}'
    kw = dict(model=tool_server.name, messages=[{"role": "user", "content": args}], tools=[WEATHER],
              max_tokens=_tool_max_tokens(tool_tokenizer, args))
    whole = tool_oai.chat.completions.create(**kw)
    choice = whole.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    (call,) = choice.message.tool_calls
    assert call.type == "function" and call.id.startswith("call_") and call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris"}

    chunks = list(tool_oai.chat.completions.create(stream=True, **kw))
    deltas = [tc for c in chunks if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
    assert deltas[0].function.name == "get_weather" and deltas[0].id.startswith("call_")
    assert json.loads("".join(d.function.arguments or "" for d in deltas)) == {"city": "Paris"}
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"
    assert not "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)

    # tool_choice "none": the template gets no tools and the echo is the message itself, as content.
    plain = tool_oai.chat.completions.create(**{**kw, "tool_choice": "none", "max_tokens": 3})
    assert plain.choices[0].message.tool_calls is None and plain.choices[0].finish_reason == "length"
    assert plain.choices[0].message.content and args.startswith(plain.choices[0].message.content)

    # The conversation goes on: the assistant's call and the tool's answer are part of the next prompt.
    follow = tool_oai.chat.completions.create(model=tool_server.name, max_tokens=2, messages=[
        {"role": "user", "content": args},
        {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
        {"role": "tool", "tool_call_id": call.id, "content": "Sunny"}])
    assert follow.choices[0].message.content == "Sunny"[: len(follow.choices[0].message.content)]
    assert follow.choices[0].message.content
