"""Log-probabilities in OpenAI's two shapes, from the client contract's ``output_log_probs`` and, on the cpu
route, the engine's ``top_tokens`` / ``top_log_probs`` (tritongen.contract.TOP_LOGPROBS_OUTPUTS).

TensorRT-LLM's backend (engine route) returns the chosen token's log-prob only, so ``top_logprobs`` above 0
(chat) and ``logprobs`` above 0 (completions, which asks for that many alternatives) are refused there; the cpu
route's engine returns the k most likely tokens too. A chosen token's text is the text its response carried:
each streamed response carries one token on the cpu route and on the engine route without speculative decoding;
when one response carries several tokens, the first gets the response's text and the others ''. A stop
sequence cuts the text, not the log-probs: the token in which the stop sequence begins is still listed.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from ... import contract
from .. import contract_io
from .protocol import OpenAIError


class Token(NamedTuple):
    """One chosen token."""

    text: str
    logprob: float
    top: tuple[tuple[str, float], ...] = ()  #: the most likely (text, log-prob) at its step, when asked for


def check_chat(logprobs: bool | None, top_logprobs: int | None) -> None:
    """OpenAI's rules for chat's logprobs / top_logprobs."""
    if top_logprobs is not None:
        if not 0 <= top_logprobs <= 20:
            raise OpenAIError(400, f"top_logprobs must be between 0 and 20 (got {top_logprobs})",
                              param="top_logprobs")
        if not logprobs:
            raise OpenAIError(400, "top_logprobs needs logprobs: true", param="top_logprobs")


def check_completion(logprobs: int | None, echo: bool) -> None:
    """OpenAI's rules for the completions logprobs (0..5 alternatives), and what the contract can answer."""
    if logprobs is None:
        return
    if not 0 <= logprobs <= 5:
        raise OpenAIError(400, f"logprobs must be between 0 and 5 (got {logprobs})", param="logprobs")
    if echo:
        raise OpenAIError(400, "echo with logprobs is not supported (the prompt's log-probs are not returned)",
                          param="echo", code="unsupported_value")


def client_inputs(values: dict[str, Any]) -> contract_io.Inputs:
    """The client-contract inputs of ``values``, with the cpu route's top_logprobs when asked for."""
    extra = (contract.TOP_LOGPROBS_INPUT,) if values.get("top_logprobs") else ()
    return contract_io.Inputs({k: v for k, v in values.items() if v is not None},
                              contract_io.CLIENT_REQUEST_INPUTS + extra)


def unavailable(param: str) -> OpenAIError:
    """The answer to top_logprobs where the repository has no top-k outputs."""
    return OpenAIError(400, f"{param}: only the cpu route returns the most likely tokens (TensorRT-LLM's backend "
                       "returns the chosen token's log-prob only); ask for 0", param=param, code="unsupported_value")


def tokens_of(text: str, logprobs: list[float], tops: list[list[tuple[str, float]]] | None = None) -> list[Token]:
    """The tokens of one response: its text goes to the first (see the module's docstring)."""
    tops = tops or []
    return [Token(text if i == 0 else "", float(lp), tuple(tops[i]) if i < len(tops) else ())
            for i, lp in enumerate(logprobs)]


def _token(tok) -> Token:
    return tok if isinstance(tok, Token) else Token(*tok)


def chat(tokens: list) -> dict:
    """Chat's ``logprobs``: {"content": [{token, logprob, bytes, top_logprobs}], "refusal": null}."""
    content = []
    for tok in map(_token, tokens):
        top = [{"token": t, "logprob": lp, "bytes": list(t.encode())} for t, lp in tok.top]
        content.append({"token": tok.text, "logprob": tok.logprob, "bytes": list(tok.text.encode()),
                        "top_logprobs": top})
    return {"content": content, "refusal": None}


def completion(tokens: list, offset: int = 0, top: bool = False) -> dict:
    """The completions ``logprobs``: parallel lists, text_offset counted from ``offset`` (characters of the choice's
    text before these tokens); ``top``: logprobs > 0 asked for the most likely tokens of each step."""
    tokens = [_token(t) for t in tokens]
    offsets = []
    for tok in tokens:
        offsets.append(offset)
        offset += len(tok.text)
    return {"tokens": [t.text for t in tokens], "token_logprobs": [t.logprob for t in tokens],
            "top_logprobs": [dict(t.top) for t in tokens] if top else None, "text_offset": offsets}
