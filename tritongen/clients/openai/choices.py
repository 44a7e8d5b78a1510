"""An answer's choices: ``n`` of them, each its own Triton request, with what each carries besides its text
(completions' echo, log-probs, tool calls), whole or streamed.

n > 1 runs n requests side by side rather than TensorRT-LLM's num_return_sequences: every route takes them (the
cpu engine and the llmapi route return one sequence per request), and each has its own finish reason and token
count. Each choice samples with its own seed: ``seed + index`` when the request gives one (reproducible), random
ones when it does not (TensorRT-LLM's default seed is 0 for every request, so n unseeded requests would all
sample the same text).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field, replace

from . import logprobs as lp
from . import tools
from .mapping import Generation, Reply
from .protocol import ChatChoice, ChatMessageOut, CompletionChoice, CompletionRequest, OpenAIError, Usage

SEED_SPACE = 2**64


def fan_out(gen: Generation, n: int) -> list[Generation]:
    """The n requests of an answer with n choices."""
    if n == 1:
        return [gen]
    seeds = [(gen.seed + i) % SEED_SPACE for i in range(n)] if gen.seed is not None else \
        [secrets.randbits(63) for _ in range(n)]
    return [replace(gen, seed=s) for s in seeds]


def total_usage(usages: list[Usage | None]) -> Usage | None:
    """One answer's usage: the prompt once (every choice had the same one), the completions added up."""
    known = [u for u in usages if u is not None]
    if not known:
        return None
    prompt, completion = known[0].prompt_tokens, sum(u.completion_tokens for u in known)
    return Usage(prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion)


def reply_options(body, tool_parser: str | None) -> dict:
    """Reply's per-request fields (n, echo, logprobs, tool_parser) for a completions or chat request."""
    # chat's logprobs is true/false, the completions' a count (0: the chosen token's only)
    out = {"n": body.n, "logprobs": body.logprobs is not None and body.logprobs is not False}
    if isinstance(body, CompletionRequest):
        out["top_logprobs"] = bool(body.logprobs)
        if body.echo:
            out["echo"] = body.prompt if isinstance(body.prompt, str) else body.prompt[0]
        return out
    if tools.check_tools(body.tools, body.tool_choice):
        if not tool_parser:
            raise OpenAIError(400, "tools: this server knows no tool-call parser for its model (start `tritongen "
                              "openai` with --tool-parser)", param="tools", code="unsupported_parameter")
        out["tool_parser"] = tool_parser
    return out


@dataclass
class Outcome:
    """One choice, generated to its end."""

    parts: list[str] = field(default_factory=list)
    tokens: list[lp.Token] = field(default_factory=list)
    finish: str = "stop"
    usage: Usage | None = None

    def add(self, kind: str, value) -> None:
        """Take one of Service.run's events."""
        if kind == "text":
            self.parts.append(value)
        elif kind == "logprobs":
            self.tokens.extend(value)
        else:
            self.finish, self.usage = value


def whole_choices(reply: Reply, outcomes: list[Outcome]) -> list:
    """The choice models of a non-streamed answer."""
    out = []
    for i, o in enumerate(outcomes):
        text, finish = "".join(o.parts), o.finish
        if reply.chat:
            calls: list[tools.ToolCall] = []
            if reply.tool_parser:
                content, calls = tools.parse(reply.tool_parser, text)
                text = content if calls else text
            message = ChatMessageOut(content=(text or None) if calls else text,
                                     tool_calls=[c.openai() for c in calls] or None)
            out.append(ChatChoice(index=i, message=message, logprobs=lp.chat(o.tokens) if reply.logprobs else None,
                                  finish_reason="tool_calls" if calls else finish))
        else:
            out.append(CompletionChoice(index=i, text=reply.echo + text, finish_reason=finish,
                                        logprobs=lp.completion(o.tokens, len(reply.echo), reply.top_logprobs)
                                        if reply.logprobs else None))
    return out


class ChoiceStream:
    """One choice of a streamed answer: its events in, its server-sent events out."""

    def __init__(self, reply: Reply, index: int):
        self.reply = reply
        self.index = index
        self.tools = tools.ToolStream(reply.tool_parser) if reply.chat and reply.tool_parser else None
        self.pending: list[lp.Token] = []  # log-probs not sent yet: they go with the next event of this choice
        self.offset = len(reply.echo)  # completions' text_offset

    def opening(self) -> list[bytes]:
        """The events before any text: chat's role, completions' echo."""
        if self.reply.chat:
            return [self.reply.chunk(None, None, role=True, index=self.index)]
        return [self.reply.chunk(self.reply.echo, None, index=self.index)] if self.reply.echo else []

    def _logprobs(self) -> dict | None:
        if not self.reply.logprobs:
            return None
        tokens, self.pending = self.pending, []
        if self.reply.chat:
            return lp.chat(tokens)
        out = lp.completion(tokens, self.offset, self.reply.top_logprobs)
        self.offset += sum(len(t) for t in out["tokens"])
        return out

    def event(self, kind: str, value) -> list[bytes]:
        """The events for one of Service.run's events ("text", "logprobs", "end")."""
        if kind == "logprobs":
            self.pending.extend(value)
            return []
        if kind == "text":
            text = self.tools.push(value) if self.tools else value
            return [self.reply.chunk(text, None, index=self.index, logprobs=self._logprobs())] if text else []
        finish, _usage = value
        out = []
        calls: list[tools.ToolCall] = []
        if self.tools:
            content, calls = self.tools.finish()
            if content:
                out.append(self.reply.chunk(content, None, index=self.index))
            for k, call in enumerate(calls):
                # OpenAI's shape: the call's id, type and name first, then its arguments as they come.
                head = call.openai(k)
                head["function"] = {"name": call.name, "arguments": ""}
                out.append(self.reply.chunk(None, None, index=self.index, tool_calls=[head]))
                out.append(self.reply.chunk(None, None, index=self.index,
                                            tool_calls=[{"index": k, "function": {"arguments": call.arguments}}]))
        out.append(self.reply.chunk(None, "tool_calls" if calls else finish, index=self.index,
                                    logprobs=self._logprobs() if self.pending else None))
        return out
