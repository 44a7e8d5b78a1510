"""Structured output in the OpenAI front: ``response_format`` (and vLLM's ``guided_*`` extras) as the client
contract's guided_decoding_guide_type / guided_decoding_guide (TensorRT-LLM's guide types).

- ``{"type": "text"}`` (or none): no guide.
- ``{"type": "json_object"}``: guide type ``json`` (any JSON object).
- ``{"type": "json_schema", "json_schema": {"name": ..., "schema": {...}, "strict": ...}}``: ``json_schema`` with the
  schema as JSON text. ``strict`` is accepted either way: the grammar always holds the output to the schema.
- vLLM's extras, one at a time: ``guided_json`` (a schema, object or JSON text), ``guided_regex``,
  ``guided_grammar`` (EBNF in xgrammar's GBNF dialect), ``guided_choice`` (a list of strings: a regex of the
  alternatives).

Whether the schema, pattern or grammar compiles is for the engine to say; its error comes back as a 400.
"""

from __future__ import annotations

import json
import re
from typing import Any

from .protocol import OpenAIError

#: vLLM's request extras and the guide type each becomes.
VLLM_EXTRAS = {"guided_json": "json_schema", "guided_regex": "regex", "guided_grammar": "ebnf_grammar",
               "guided_choice": "regex"}


def _literal(text: str) -> str:
    """``text`` as a regex matching itself (only the metacharacters escaped: xgrammar's regex dialect has no
    escapes for the others, which Python's re.escape also writes)."""
    return re.sub(r"([\\.^$|?*+()\[\]{}])", r"\\\1", text)


def _bad(message: str, param: str) -> OpenAIError:
    return OpenAIError(400, message, param=param, code="invalid_value")


def _schema_text(schema: Any, param: str) -> str:
    if isinstance(schema, str):
        try:
            schema = json.loads(schema)
        except json.JSONDecodeError as exc:
            raise _bad(f"{param}: not JSON ({exc.msg})", param) from None
    if not isinstance(schema, (dict, bool)):
        raise _bad(f"{param}: a JSON schema is an object", param)
    return json.dumps(schema, ensure_ascii=False)


def from_response_format(fmt: dict[str, Any] | None) -> tuple[str, str] | None:
    """The guide of an OpenAI ``response_format``; None for text."""
    if not fmt:
        return None
    kind = fmt.get("type", "text")
    if kind == "text":
        return None
    if kind == "json_object":
        return "json", ""
    if kind == "json_schema":
        spec = fmt.get("json_schema")
        if not isinstance(spec, dict) or "schema" not in spec:
            raise _bad('response_format: json_schema needs {"json_schema": {"name": ..., "schema": {...}}}',
                       "response_format.json_schema")
        return "json_schema", _schema_text(spec["schema"], "response_format.json_schema.schema")
    raise OpenAIError(400, f"response_format: type {kind!r} is not supported (text, json_object, json_schema)",
                      param="response_format", code="unsupported_value")


def from_vllm_extras(req) -> tuple[str, str] | None:
    """The guide of vLLM's ``guided_*`` request extras; None when none is set, an error when several are."""
    given = {name: getattr(req, name, None) for name in VLLM_EXTRAS}
    given = {k: v for k, v in given.items() if v is not None}
    if not given:
        return None
    if len(given) > 1:
        raise _bad(f"send one of {', '.join(sorted(given))}, not several", sorted(given)[0])
    name, value = next(iter(given.items()))
    if name == "guided_json":
        return "json_schema", _schema_text(value, name)
    if name == "guided_choice":
        if not isinstance(value, list) or not value or not all(isinstance(c, str) and c for c in value):
            raise _bad("guided_choice: a list of non-empty strings", name)
        return "regex", "|".join(f"({_literal(c)})" for c in value)
    if not isinstance(value, str) or not value:
        raise _bad(f"{name}: a non-empty string", name)
    return VLLM_EXTRAS[name], value


def guide_of(req, response_format: dict[str, Any] | None = None) -> tuple[str, str] | None:
    """The request's one guide (response_format or a vLLM extra), or None."""
    a = from_response_format(response_format)
    b = from_vllm_extras(req)
    if a and b:
        raise _bad("send response_format or a guided_* extra, not both", "response_format")
    return a or b
