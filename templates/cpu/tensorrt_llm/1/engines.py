"""The cpu route's two engines behind the reference model (model.py): the checkpoint in PyTorch, or the MOCK.

Rendered next to model.py by tritongen. Each takes a model.Sequence (``seq``) through prefill and one step per token;
model.py's loop schedules them, samples, and sends the responses.
"""

from __future__ import annotations

import hashlib
import os

import numpy as np


class TorchEngine:
    """Runs the checkpoint with PyTorch; keeps one KV cache per sequence."""

    def __init__(self, checkpoint_dir, device, dtype, trust_remote_code, threads=0):
        import torch
        from transformers import AutoModelForCausalLM

        self.torch = torch
        # PyTorch takes every core by default; its spinning workers then starve Triton and the pre/post-
        # processing models of the same machine. Leave them one core unless told otherwise.
        torch.set_num_threads(threads if threads > 0 else max(1, (os.cpu_count() or 2) - 1))
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if dtype == "auto":
            dtype = "float16" if device == "cuda" else "float32"
        self.device = torch.device(device)
        self.model = AutoModelForCausalLM.from_pretrained(
            checkpoint_dir, dtype=getattr(torch, dtype), trust_remote_code=trust_remote_code
        ).to(self.device)
        self.model.eval()
        self.vocab_size = self.model.config.vocab_size
        import inspect

        params = inspect.signature(self.model.forward).parameters
        # generate() computes only the last position's logits; doing the same keeps results bit-identical.
        self.keep_arg = "logits_to_keep" if "logits_to_keep" in params else (
            "num_logits_to_keep" if "num_logits_to_keep" in params else None)
        # transformers 5 renamed forward's past_key_values to cache (the old name warns on every call).
        self.cache_arg = "cache" if "cache" in params else "past_key_values"
        self.lora = None  # lora.Adapters once attached: each forward then names its sequence's adapter

    def _new_cache(self):
        from transformers import DynamicCache

        try:
            return DynamicCache(config=self.model.config)  # sized per layer (sliding-window layers too)
        except TypeError:  # transformers 4.x: no config argument
            return DynamicCache()

    def _forward(self, ids, cache, adapter=None):
        torch = self.torch
        # One Cache object per sequence, updated in place by every forward: no legacy tuples, and no reading of
        # the output's deprecated past_key_values attribute.
        cache = cache if cache is not None else self._new_cache()
        kwargs = {"use_cache": True, self.cache_arg: cache}
        if self.keep_arg:
            kwargs[self.keep_arg] = 1
        if self.lora is not None:
            kwargs.update(self.lora.forward_kwargs(adapter))
        with torch.inference_mode():
            out = self.model(input_ids=torch.tensor([ids], device=self.device), **kwargs)
        return out.logits[0, -1].float(), cache

    def prefill(self, seq):
        seq.next_logits, seq.cache = self._forward(seq.prompt, None, seq.lora)

    def step(self, seq, token: int):
        seq.next_logits, seq.cache = self._forward([token], seq.cache, seq.lora)

    def make_generator(self, seed: int):
        gen = self.torch.Generator(device=self.device)
        gen.manual_seed(int(seed) & 0xFFFFFFFFFFFFFFFF)
        return gen


class MockEngine:
    """MOCK engine: no model. Picks token ids deterministically from the tokenizer's ordinary vocabulary."""

    def __init__(self, tokenizer_dir, trust_remote_code, step_ms, echo=False):
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(tokenizer_dir, trust_remote_code=trust_remote_code)
        special = set(tok.all_special_ids)
        words = []
        for token, idx in tok.get_vocab().items():
            if idx in special:
                continue
            text = tok.convert_tokens_to_string([token])
            if text.startswith(" ") and text[1:].isascii() and text[1:].isalpha():
                words.append(idx)
        self.choices = sorted(words) or sorted(i for i in range(len(tok)) if i not in special)
        self.vocab_size = len(tok)
        self.step_s = step_ms / 1000.0
        self.echo = echo
        self.special = special

    def prefill(self, seq):
        digest = hashlib.blake2b(np.asarray(seq.prompt, dtype=np.int64).tobytes(), digest_size=8).digest()
        seq.cache = int.from_bytes(digest, "little")
        seq.next_logits = None

    def step(self, seq, token: int):
        seq.cache = (seq.cache * 6364136223846793005 + 1442695040888963407) & 0xFFFFFFFFFFFFFFFF

    def next_token(self, seq) -> int:
        if self.echo:
            # Repeat the prompt (without its special tokens), so clients see known text streamed back.
            body = [t for t in seq.prompt if t not in self.special] or self.choices[:1]
            return body[len(seq.generated) % len(body)]
        return self.choices[(seq.cache >> 33) % len(self.choices)]

    def make_generator(self, seed: int):
        return None
