"""cpu route: the k most likely tokens of a step with their log-probs (OpenAI's top_logprobs), from the same
distribution the chosen token's log-prob comes from (tritongen.contract.TOP_LOGPROBS_OUTPUTS).

Rendered by tritongen next to the reference engine (model.py), which calls it only when a request asks for
top_logprobs > 0 with return_log_probs: the engine route's TensorRT-LLM backend has no such output.
"""

from __future__ import annotations

import numpy as np

#: OpenAI's largest top_logprobs.
MAX_K = 20


def requested(value) -> int:
    """The request's top_logprobs as a count, refused outside OpenAI's 0..20."""
    k = int(value or 0)
    if not 0 <= k <= MAX_K:
        raise ValueError(f"top_logprobs={k} must be between 0 and {MAX_K}")
    return k


class TokenText:
    """Each token id's text on its own (what OpenAI lists as a top_logprobs token), loaded once per engine."""

    def __init__(self, tokenizer_dir: str, trust_remote_code: bool):
        from transformers import AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir, trust_remote_code=trust_remote_code)
        self._cache: dict[int, str] = {}

    def __call__(self, token: int) -> str:
        text = self._cache.get(token)
        if text is None:
            text = self._cache[token] = self.tokenizer.decode([token], skip_special_tokens=False)
        return text


def top(logprobs, k: int, text: TokenText) -> list[tuple[str, float]]:
    """The k most likely (text, log-prob) of a torch vector of log-probs; -inf ones (cut by top-k / top-p
    sampling) are left out."""
    import torch

    values, ids = torch.topk(logprobs, min(k, logprobs.shape[0]))
    return [(text(int(i)), float(v)) for v, i in zip(values.tolist(), ids.tolist()) if v != float("-inf")]


def tensors(steps: list[list[tuple[str, float]]], k: int) -> tuple[np.ndarray, np.ndarray]:
    """top_tokens [1, steps, k] (bytes) and top_log_probs [1, steps, k] (float32); a step with fewer than k
    candidates is padded with '' and -inf."""
    texts = np.full((1, len(steps), k), b"", dtype=object)
    lps = np.full((1, len(steps), k), -np.inf, dtype=np.float32)
    for i, step in enumerate(steps):
        for j, (t, lp) in enumerate(step[:k]):
            texts[0, i, j] = t.encode("utf-8", "replace")
            lps[0, i, j] = lp
    return texts, lps
