"""Log-probabilities in OpenAI's two shapes, from the client contract's ``output_log_probs``.

The contract returns the chosen token's log-prob only (TensorRT-LLM's output_log_probs; cum_log_probs is their
sum), so ``top_logprobs`` above 0 (chat) and ``logprobs`` above 0 (completions, which asks for that many
alternatives) are refused. A token's text is the text its response carried: each streamed response carries one
token on the cpu route and on the engine route without speculative decoding; when one response carries several
tokens, the first gets the response's text and the others ''. A stop sequence cuts the text, not the log-probs:
the token in which the stop sequence begins is still listed.
"""

from __future__ import annotations

from .protocol import OpenAIError

#: One chosen token: (its text, its log-prob).
Token = tuple[str, float]


def check_chat(logprobs: bool | None, top_logprobs: int | None) -> None:
    """OpenAI's rules for chat's logprobs / top_logprobs, and what the contract can answer."""
    if top_logprobs is not None:
        if not 0 <= top_logprobs <= 20:
            raise OpenAIError(400, f"top_logprobs must be between 0 and 20 (got {top_logprobs})",
                              param="top_logprobs")
        if not logprobs:
            raise OpenAIError(400, "top_logprobs needs logprobs: true", param="top_logprobs")
        if top_logprobs > 0:
            raise OpenAIError(400, "top_logprobs: only 0 is supported (the TensorRT-LLM tensor contract returns the "
                              "chosen token's log-prob, not the alternatives)", param="top_logprobs",
                              code="unsupported_value")


def check_completion(logprobs: int | None, echo: bool) -> None:
    """OpenAI's rules for the completions logprobs (0..5 alternatives), and what the contract can answer."""
    if logprobs is None:
        return
    if not 0 <= logprobs <= 5:
        raise OpenAIError(400, f"logprobs must be between 0 and 5 (got {logprobs})", param="logprobs")
    if logprobs > 0:
        raise OpenAIError(400, "logprobs: only 0 is supported (the chosen token's log-prob; the TensorRT-LLM tensor "
                          "contract returns no alternatives)", param="logprobs", code="unsupported_value")
    if echo:
        raise OpenAIError(400, "echo with logprobs is not supported (the prompt's log-probs are not returned)",
                          param="echo", code="unsupported_value")


def tokens_of(text: str, logprobs: list[float]) -> list[Token]:
    """The tokens of one response: its text goes to the first (see the module's docstring)."""
    return [(text if i == 0 else "", float(lp)) for i, lp in enumerate(logprobs)]


def chat(tokens: list[Token]) -> dict:
    """Chat's ``logprobs``: {"content": [{token, logprob, bytes, top_logprobs}], "refusal": null}."""
    return {"content": [{"token": t, "logprob": lp, "bytes": list(t.encode()), "top_logprobs": []}
                        for t, lp in tokens], "refusal": None}


def completion(tokens: list[Token], offset: int = 0) -> dict:
    """The completions ``logprobs``: parallel lists, text_offset counted from ``offset`` (characters of the choice's
    text before these tokens)."""
    offsets = []
    for t, _ in tokens:
        offsets.append(offset)
        offset += len(t)
    return {"tokens": [t for t, _ in tokens], "token_logprobs": [lp for _, lp in tokens], "top_logprobs": None,
            "text_offset": offsets}
