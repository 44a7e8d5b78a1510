"""OpenAI's requests in the client contract's terms, and the contract's answers in OpenAI's.

- chat: the messages go to Triton as JSON in text_input with apply_chat_template=true; the repository formats
  them with the tokenizer's chat template.
- sampling follows OpenAI: temperature defaults to 1 and samples (top_p 1 unless given); temperature 0 is greedy.
- stop: sent to the engine as stop_words and also applied to the text here (``StopScanner``), so the reply never
  contains the stop sequence (OpenAI's rule) and ends exactly before it.
- usage: prompt_tokens / completion_tokens are the repository's num_input_tokens / num_output_tokens.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pydantic import BaseModel

from . import logprobs, tools
from .guided import guide_of
from .protocol import (
    ChatChunkChoice,
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChatDelta,
    Completion,
    CompletionChoice,
    CompletionRequest,
    OpenAIError,
    SamplingRequest,
    Usage,
)


@dataclass
class Generation:
    """One request in the client contract's terms."""

    text: str
    chat: bool
    max_tokens: int
    temperature: float | None
    top_p: float | None
    top_k: int | None
    seed: int | None
    stop: list[str]
    presence_penalty: float | None
    frequency_penalty: float | None
    logprobs: bool = False  #: return_log_probs: the chosen tokens' log-probs (output_log_probs)
    top_logprobs: int = 0  #: with logprobs: the k most likely tokens of each step too (cpu route)
    #: Structured output: (guided_decoding_guide_type, guided_decoding_guide), see guided.py.
    guide: tuple[str, str] | None = None
    #: The LoRA adapter the request's model names (adapters.py); None: the base model.
    lora_name: str | None = None

    def values(self) -> dict[str, Any]:
        """The client-contract inputs this request sends (name -> value)."""
        out: dict[str, Any] = {"text_input": self.text, "max_tokens": self.max_tokens, "stream": True,
                               "return_num_input_tokens": True, "return_num_output_tokens": True}
        if self.chat:
            out["apply_chat_template"] = True
        temperature = 1.0 if self.temperature is None else self.temperature
        if temperature > 0:
            # OpenAI samples unless temperature is 0; TensorRT-LLM samples only with top_k > 1 or top_p > 0.
            out["temperature"] = temperature
            out["top_p"] = 1.0 if self.top_p is None else self.top_p
            if self.top_k:
                out["top_k"] = self.top_k
        if self.seed is not None:
            out["seed"] = self.seed
        if self.presence_penalty:
            out["presence_penalty"] = self.presence_penalty
        if self.frequency_penalty:
            out["frequency_penalty"] = self.frequency_penalty
        if self.stop:
            out["stop_words"] = list(self.stop)
        if self.logprobs:
            out["return_log_probs"] = True
            if self.top_logprobs:
                out["top_logprobs"] = self.top_logprobs
        if self.guide:
            out["guided_decoding_guide_type"], guide = self.guide
            if guide:
                out["guided_decoding_guide"] = guide
        if self.lora_name:
            out["lora_name"] = self.lora_name
        return out

    def tensors(self) -> dict[str, tuple[np.ndarray, str]]:
        """The same inputs as arrays (name -> (array, Triton dtype)), shaped [1, 1] / [1, n]."""
        return logprobs.client_inputs(self.values()).arrays()


def _stops(stop: str | list[str] | None) -> list[str]:
    stops = [stop] if isinstance(stop, str) else list(stop or [])
    if len(stops) > 4:
        raise OpenAIError(400, f"stop: at most 4 sequences, got {len(stops)}", param="stop")
    if any(not s for s in stops):
        raise OpenAIError(400, "stop: sequences must not be empty", param="stop")
    return stops


def _common_checks(req: SamplingRequest) -> None:
    if req.logit_bias:
        raise OpenAIError(400, "logit_bias is not supported", param="logit_bias", code="unsupported_parameter")


def completion_generation(req: CompletionRequest, default_max_tokens: int) -> Generation:
    _common_checks(req)
    prompts = [req.prompt] if isinstance(req.prompt, str) else req.prompt
    if len(prompts) != 1:
        raise OpenAIError(400, f"prompt: send exactly one prompt per request (got {len(prompts)})", param="prompt",
                          code="unsupported_value")
    if not prompts[0]:
        raise OpenAIError(400, "prompt must not be empty", param="prompt")
    for name, bad in (("suffix", req.suffix is not None), ("best_of", req.best_of not in (None, 1))):
        if bad:
            raise OpenAIError(400, f"{name} is not supported", param=name, code="unsupported_parameter")
    logprobs.check_completion(req.logprobs, req.echo)
    return Generation(
        text=prompts[0], chat=False, max_tokens=req.max_tokens or default_max_tokens, temperature=req.temperature,
        top_p=req.top_p, top_k=req.top_k, seed=req.seed, stop=_stops(req.stop),
        presence_penalty=req.presence_penalty, frequency_penalty=req.frequency_penalty,
        logprobs=req.logprobs is not None, top_logprobs=req.logprobs or 0,
        guide=guide_of(req, getattr(req, "response_format", None)),
    )


def chat_generation(req: ChatCompletionRequest, default_max_tokens: int) -> Generation:
    _common_checks(req)
    logprobs.check_chat(req.logprobs, req.top_logprobs)
    rendered_tools = tools.check_tools(req.tools, req.tool_choice)
    guide = guide_of(req, req.response_format)
    messages = []
    for i, m in enumerate(req.messages):
        if isinstance(m.content, list):
            parts = []
            for part in m.content:
                if part.type != "text" or part.text is None:
                    raise OpenAIError(400, f"content parts of type {part.type!r} are not supported (text only)",
                                      param=f"messages[{i}].content")
                parts.append(part.text)
            content = "".join(parts)
        else:
            content = m.content or ""
        message = {"role": "system" if m.role == "developer" else m.role, "content": content}
        if m.tool_calls:
            message["tool_calls"] = m.tool_calls
        if m.tool_call_id is not None:
            message["tool_call_id"] = m.tool_call_id
        messages.append(tools.template_message(message))
    # With tools, preprocessing renders them with the chat template (textcodec.chat_prompt's object form).
    conversation: Any = {"messages": messages, "tools": rendered_tools} if rendered_tools else messages
    return Generation(
        text=json.dumps(conversation, ensure_ascii=False), chat=True,
        max_tokens=req.max_completion_tokens or req.max_tokens or default_max_tokens, temperature=req.temperature,
        top_p=req.top_p, top_k=req.top_k, seed=req.seed, stop=_stops(req.stop),
        presence_penalty=req.presence_penalty, frequency_penalty=req.frequency_penalty, logprobs=bool(req.logprobs),
        top_logprobs=req.top_logprobs or 0, guide=guide,
    )


class StopScanner:
    """Cuts streamed text before the first stop sequence, holding back a tail that may be the start of one."""

    def __init__(self, stops: list[str]):
        self.stops = [s for s in stops if s]
        self.pending = ""
        self.hit: str | None = None

    def push(self, text: str) -> str:
        if self.hit is not None:
            return ""
        buf = self.pending + text
        found = [(buf.find(s), s) for s in self.stops if s in buf]
        if found:
            at, self.hit = min(found)
            self.pending = ""
            return buf[:at]
        keep = 0
        for s in self.stops:
            for k in range(min(len(s) - 1, len(buf)), 0, -1):
                if buf.endswith(s[:k]):
                    keep = max(keep, k)
                    break
        self.pending = buf[len(buf) - keep:] if keep else ""
        return buf[: len(buf) - keep]

    def flush(self) -> str:
        out, self.pending = self.pending, ""
        return out


# -- answers ------------------------------------------------------------------------------------------------


def sse(data: BaseModel | dict | str, *, usage: bool = True) -> bytes:
    """One server-sent event."""
    if isinstance(data, BaseModel):
        # OpenAI sends "usage" in chunks only when stream_options.include_usage asks for it.
        data = data.model_dump(exclude=None if usage else {"usage"})
    payload = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return f"data: {payload}\n\n".encode()


@dataclass
class Reply:
    """The OpenAI answer to one request, whole or as the chunks of a stream."""

    model: str
    chat: bool
    request_id: str  #: the Triton request's id; the answer's id is made from it
    include_usage: bool = False  #: stream_options.include_usage
    created: int = field(default_factory=lambda: int(time.time()))
    n: int = 1  #: choices, each its own Triton request (choices.fan_out)
    echo: str = ""  #: completions' echo: the prompt, put before each choice's text
    logprobs: bool = False  #: logprobs asked for: each choice carries them (clients/openai/logprobs.py)
    top_logprobs: bool = False  #: completions' logprobs > 0: each token's top_logprobs are listed
    tool_parser: str | None = None  #: tools given: each chat choice's text is read for tool calls (tools.py)

    @property
    def id(self) -> str:
        return ("chatcmpl-" if self.chat else "cmpl-") + self.request_id

    def choice_request_id(self, index: int) -> str:
        """The Triton request id of choice ``index``: the answer's own for one choice, numbered for several."""
        return self.request_id if self.n == 1 else f"{self.request_id}-{index}"

    def whole(self, choices: list[BaseModel], usage: Usage | None) -> dict:
        """The body of a non-streamed answer, from its ChatChoice / CompletionChoice models (choices.py)."""
        answer = ChatCompletion if self.chat else Completion
        return answer(id=self.id, created=self.created, model=self.model, usage=usage, choices=choices).model_dump()

    def chunk(self, text: str | None, finish: str | None, *, role: bool = False, index: int = 0,
              logprobs: dict | None = None, tool_calls: list[dict] | None = None) -> bytes:
        """A stream's event for choice ``index``: text (None: no content), the finish reason on the last one;
        ``role``: the chat stream's opening event; ``tool_calls``: streamed tool-call deltas."""
        if self.chat:
            delta = ChatDelta(role="assistant", content="") if role else (
                ChatDelta(content=text, tool_calls=tool_calls) if text is not None or tool_calls else ChatDelta())
            return sse(ChatCompletionChunk(id=self.id, created=self.created, model=self.model,
                                           choices=[ChatChunkChoice(index=index, delta=delta, logprobs=logprobs,
                                                                    finish_reason=finish)]),
                       usage=self.include_usage)
        return sse(Completion(id=self.id, created=self.created, model=self.model,
                              choices=[CompletionChoice(index=index, text=text or "", logprobs=logprobs,
                                                        finish_reason=finish)]),
                   usage=self.include_usage)

    def usage_chunk(self, usage: Usage) -> bytes:
        """The event after the last one that carries the usage (stream_options.include_usage)."""
        answer = ChatCompletionChunk if self.chat else Completion
        return sse(answer(id=self.id, created=self.created, model=self.model, choices=[], usage=usage))
