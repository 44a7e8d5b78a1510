"""OpenAI's request and response bodies (pydantic models), and its error shape.

Requests are strict as OpenAI's are (no "5" for 5), and unknown fields are ignored; the answers keep OpenAI's
field order.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

#: The client contract's integers: max_tokens and top_k go to INT32 tensors (the engine's sizes).
INT32_MAX = 2**31 - 1


class _Request(BaseModel):
    # strict: "5" is not an int and true is not a number, as with OpenAI. Unknown fields are ignored. NaN and
    # infinity (Python's json reads them) are no numbers here: the engine would turn them into NaN logits.
    model_config = ConfigDict(extra="ignore", strict=True, allow_inf_nan=False)


class StreamOptions(_Request):
    include_usage: bool = False


class SamplingRequest(_Request):
    """What completions and chat completions share: the model, sampling, stopping, streaming."""

    model: str
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    top_k: int | None = Field(None, ge=0, le=INT32_MAX, description="Extension: sample from the k most likely tokens.")
    n: int = Field(1, ge=1, le=128)
    stream: bool = False
    stream_options: StreamOptions | None = None
    stop: str | list[str] | None = None
    seed: int | None = Field(None, ge=0, le=2**64 - 1)
    presence_penalty: float | None = Field(None, ge=-2, le=2)
    frequency_penalty: float | None = Field(None, ge=-2, le=2)
    logit_bias: dict[str, float] | None = None
    user: str | None = None
    # vLLM's structured-output extras (tritongen/clients/openai/guided.py); response_format is the OpenAI way.
    guided_json: dict[str, Any] | str | None = None
    guided_regex: str | None = None
    guided_grammar: str | None = None
    guided_choice: list[str] | None = None


class CompletionRequest(SamplingRequest):
    prompt: str | list[str]
    response_format: dict[str, Any] | None = None  # an extension (vLLM's): structured output on completions
    max_tokens: int | None = Field(16, ge=1, le=INT32_MAX)
    echo: bool = False
    logprobs: int | None = None
    best_of: int | None = None
    suffix: str | None = None


class ContentPart(_Request):
    type: str
    text: str | None = None


class ChatMessage(_Request):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_calls: list[dict[str, Any]] | None = None  #: an assistant's earlier calls
    tool_call_id: str | None = None  #: a tool message's answer to that call


class ChatCompletionRequest(SamplingRequest):
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=1, le=INT32_MAX)
    max_completion_tokens: int | None = Field(None, ge=1, le=INT32_MAX)
    logprobs: bool | None = None
    top_logprobs: int | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: Any = None
    response_format: dict[str, Any] | None = None


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


def _choice(name: str, content: str, content_type: Any, finish_reason: Any = ...) -> Any:
    """An answer's choice model: index (of n), the content under OpenAI's name for it (text, message, delta),
    logprobs (null unless asked for: clients/openai/logprobs.py) and finish_reason, in OpenAI's order."""
    return create_model(name, index=(int, 0), **{content: (content_type, ...)}, logprobs=(Any, None),
                        finish_reason=(str | None, finish_reason))


CompletionChoice = _choice("CompletionChoice", "text", str)


class _Answer(BaseModel):
    """The fields (in OpenAI's order) of every answer: a completion, a chat completion, a chunk of either."""

    id: str
    object: str
    created: int
    model: str
    choices: list[Any]
    usage: Usage | None = None


class Completion(_Answer):
    object: Literal["text_completion"] = "text_completion"
    choices: list[CompletionChoice]


class ChatMessageOut(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str | None
    # Left out unless there are calls (exclude_if), as OpenAI does.
    tool_calls: list[dict[str, Any]] | None = Field(None, exclude_if=lambda v: v is None)


ChatChoice = _choice("ChatChoice", "message", ChatMessageOut)


class ChatCompletion(_Answer):
    object: Literal["chat.completion"] = "chat.completion"
    choices: list[ChatChoice]


class ChatDelta(BaseModel):
    role: Literal["assistant"] | None = None
    content: str | None = None
    tool_calls: list[dict[str, Any]] | None = Field(None, exclude_if=lambda v: v is None)


ChatChunkChoice = _choice("ChatChunkChoice", "delta", ChatDelta, finish_reason=None)


class ChatCompletionChunk(_Answer):
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    choices: list[ChatChunkChoice]


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "tritongen"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorDetail


class OpenAIError(Exception):
    """An error answered in OpenAI's shape."""

    def __init__(self, status: int, message: str, *, type_: str = "invalid_request_error",
                 param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.status = status
        self.body = ErrorResponse(error=ErrorDetail(message=message, type=type_, param=param, code=code))


def error_json(status: int, message: str, **kw) -> tuple[int, dict]:
    err = OpenAIError(status, message, **kw)
    return err.status, err.body.model_dump()
