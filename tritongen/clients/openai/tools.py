"""Tool calling: which parser reads a model family's tool calls, the request's tools for the chat template, and
the parsers themselves (whole texts and streams).

The formats and parser names are those of vLLM's tool parsers (docs.vllm.ai, "Tool Calling"), which read the
same models' output:

- ``llama3_json`` (Llama 3.1 / 3.2 / 3.3): ``{"name": ..., "parameters": {...}}``, optionally after
  ``<|python_tag|>``, several separated by ``;``.
- ``hermes`` (Qwen 2.5): ``<tool_call>{"name": ..., "arguments": {...}}</tool_call>`` blocks, text around them is
  the message's content.
- ``mistral`` (Mistral 7B Instruct v0.3, Mixtral): ``[TOOL_CALLS][{"name": ..., "arguments": {...}}, ...]``.

Special tokens (``<|python_tag|>``, ``[TOOL_CALLS]``) are dropped by postprocessing's skip_special_tokens, so each
parser also takes its format without them.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .protocol import OpenAIError

#: Model family (ModelInfo.family: the architecture without ForCausalLM, lower case) -> tool parser. The family
#: is what the catalogue's entries differ by: llama3-8b / llama3-70b / llama3.2-1b (LlamaForCausalLM, Llama 3.x
#: Instruct: llama3_json), qwen2.5-7b (Qwen2ForCausalLM: hermes), mistral-7b / mixtral-8x7b (mistral).
FAMILY_PARSERS: dict[str, str] = {"llama": "llama3_json", "qwen2": "hermes", "mistral": "mistral",
                                  "mixtral": "mistral"}
PARSERS = ("llama3_json", "hermes", "mistral")


def parser_for_family(family: str | None) -> str | None:
    """The tool parser of a model family, None when the catalogue knows of none."""
    return FAMILY_PARSERS.get((family or "").lower())


def parser_for_repo(repo: str | Path | None) -> str | None:
    """The tool parser of a served repository, from the architecture its lock file records."""
    if not repo:
        return None
    from ...repo.lock import read_lock
    from ...spec.model import ModelInfo

    model = ((read_lock(Path(repo)) or {}).get("spec") or {}).get("model") or {}
    arch = model.get("architecture")
    if not arch:
        return None
    return parser_for_family(ModelInfo.model_construct(architecture=arch).family)


@dataclass
class ToolCall:
    name: str
    arguments: str  #: JSON text, as OpenAI sends it
    id: str = ""

    def __post_init__(self):
        self.id = self.id or "call_" + secrets.token_hex(12)

    def openai(self, index: int | None = None) -> dict:
        """The call in OpenAI's message shape (with ``index``: a stream delta's)."""
        out: dict[str, Any] = {} if index is None else {"index": index}
        out.update(id=self.id, type="function", function={"name": self.name, "arguments": self.arguments})
        return out


def _call(obj: Any, args_key: str) -> ToolCall | None:
    if not isinstance(obj, dict) or not isinstance(obj.get("name"), str):
        return None
    args = obj.get(args_key, obj.get("arguments", obj.get("parameters", {})))
    text = args if isinstance(args, str) else json.dumps(args, ensure_ascii=False)
    return ToolCall(obj["name"], text)


def _json_values(text: str) -> tuple[list[Any], str] | None:
    """The JSON values ``text`` is made of (separated by whitespace or ``;``), and what follows them; None when it
    does not start with one."""
    decoder = json.JSONDecoder()
    values, at = [], 0
    while True:
        while at < len(text) and (text[at].isspace() or text[at] == ";"):
            at += 1
        if at >= len(text):
            break
        try:
            value, at = decoder.raw_decode(text, at)
        except json.JSONDecodeError:
            break
        values.append(value)
    return (values, text[at:]) if values else None


def _llama3_json(text: str) -> tuple[str, list[ToolCall]]:
    body = text.strip().removeprefix("<|python_tag|>").lstrip()
    if not body.startswith("{"):
        return text, []
    parsed = _json_values(body)
    if parsed is None or parsed[1].strip():
        return text, []
    calls = [_call(v, "parameters") for v in parsed[0]]
    return (text, []) if any(c is None for c in calls) else ("", calls)


def _hermes(text: str) -> tuple[str, list[ToolCall]]:
    content, calls, rest = [], [], text
    while "<tool_call>" in rest:
        before, _, after = rest.partition("<tool_call>")
        body, closed, rest = after.partition("</tool_call>")
        parsed = _json_values(body)
        call = _call(parsed[0][0], "arguments") if parsed and len(parsed[0]) == 1 else None
        if call is None or not (closed or not rest):
            return text, []
        content.append(before)
        calls.append(call)
    content.append(rest)
    return ("".join(content).strip() if calls else text), calls


def _mistral(text: str) -> tuple[str, list[ToolCall]]:
    body = text.strip().removeprefix("[TOOL_CALLS]").lstrip()
    if not body.startswith("["):
        return text, []
    parsed = _json_values(body)
    if parsed is None or parsed[1].strip() or len(parsed[0]) != 1 or not isinstance(parsed[0][0], list):
        return text, []
    calls = [_call(v, "arguments") for v in parsed[0][0]]
    return (text, []) if not calls or any(c is None for c in calls) else ("", calls)


_PARSE = {"llama3_json": _llama3_json, "hermes": _hermes, "mistral": _mistral}
#: What a tool call's text starts with, per parser: streamed text that may be one is held back until the end.
_OPENERS = {"llama3_json": ("<|python_tag|>", "{"), "hermes": ("<tool_call>",), "mistral": ("[TOOL_CALLS]", "[")}


def parse(parser: str, text: str) -> tuple[str, list[ToolCall]]:
    """(content, tool calls) of a model's whole answer; text that is not a tool call is all content."""
    return _PARSE[parser](text)


class ToolStream:
    """Streamed text through a tool parser: content passes as it comes until it may be a tool call; from there it
    is held back, and :meth:`finish` parses the rest."""

    def __init__(self, parser: str):
        self.parser = parser
        self.held = ""
        self.content = False  # llama3_json / mistral: the answer began as ordinary text, so it is no tool call
        self.calling = False  # hermes: a <tool_call> began, everything from it is held

    def push(self, text: str) -> str:
        """The part of ``text`` that is content for sure (may be '')."""
        if self.content:
            return text
        self.held += text
        if self.calling:
            return ""
        if self.parser != "hermes":
            # A llama3_json or mistral call is the whole answer: its first non-blank characters decide.
            probe = self.held.lstrip()
            if not probe or any(o.startswith(probe) or probe.startswith(o) for o in _OPENERS[self.parser]):
                return ""
            self.content = True
            out, self.held = self.held, ""
            return out
        opener = _OPENERS["hermes"][0]
        at = self.held.find(opener)
        if at >= 0:
            self.calling = True
            out, self.held = self.held[:at], self.held[at:]
            return out
        # Keep back a tail that may be the start of the opener.
        keep = next((k for k in range(min(len(opener) - 1, len(self.held)), 0, -1)
                     if self.held.endswith(opener[:k])), 0)
        cut = len(self.held) - keep
        out, self.held = self.held[:cut], self.held[cut:]
        return out

    def finish(self) -> tuple[str, list[ToolCall]]:
        """(the content not passed on yet, the tool calls) at the end of the stream."""
        held, self.held = self.held, ""
        if self.content or not held:
            return held, []
        content, calls = parse(self.parser, held)
        return (content, calls) if calls else (held, [])


# -- the request side ---------------------------------------------------------------------------------------


def check_tools(tools: list[dict] | None, tool_choice: Any) -> list[dict] | None:
    """The tools to render into the prompt (None: none), after OpenAI's checks; tool_choice "none" renders none.
    "required" and a named function are refused: nothing here can force the model to call one."""
    if not tools:
        if tool_choice not in (None, "none", "auto"):
            raise OpenAIError(400, "tool_choice is set but no tools are given", param="tool_choice")
        return None
    for i, tool in enumerate(tools):
        fn = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(tool, dict) or tool.get("type") != "function" or not isinstance(fn, dict) \
                or not isinstance(fn.get("name"), str) or not fn["name"]:
            raise OpenAIError(400, f"tools[{i}]: expected {{\"type\": \"function\", \"function\": {{\"name\": ...}}}}",
                              param=f"tools[{i}]")
    if tool_choice == "none":
        return None
    if tool_choice not in (None, "auto"):
        raise OpenAIError(400, "tool_choice: only \"auto\" and \"none\" are supported (a call cannot be forced "
                          "without guided decoding)", param="tool_choice", code="unsupported_value")
    return [{"type": "function", "function": t["function"]} for t in tools]


def template_message(message: dict) -> dict:
    """An OpenAI chat message as Hugging Face chat templates take it: an assistant's tool calls with their
    arguments as objects (the templates serialise them with tojson), a tool result with its call id."""
    out = dict(message)
    calls = out.pop("tool_calls", None)
    if calls:
        converted = []
        for call in calls:
            fn = dict(call.get("function") or {})
            try:
                fn["arguments"] = json.loads(fn.get("arguments") or "{}")
            except (TypeError, json.JSONDecodeError):
                pass  # not JSON: the template gets the text as it is
            converted.append({"id": call.get("id"), "type": "function", "function": fn})
        out["tool_calls"] = converted
    return out
