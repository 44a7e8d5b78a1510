"""Guided decoding (structured output) for the cpu reference engine, with xgrammar's CPU matcher.

Copied next to model.py by tritongen. The request inputs are the TensorRT-LLM backend's:
``guided_decoding_guide_type`` (json, json_schema, regex, ebnf_grammar, structural_tag) and
``guided_decoding_guide`` (the schema, pattern or grammar text; not needed for ``json``). Each sequence with a
guide gets a GrammarMatcher: before a token is chosen, the tokens the grammar does not allow are masked out of
the logits (xgrammar's bitmask, applied in place on the CPU tensor); the chosen token is then fed to the
matcher; the sequence ends when the matcher has accepted the end id (or ends without one, as the grammar says).

Compiled grammars are cached by (type, guide), so a schema sent by every request is compiled once.

JSON is generated without free whitespace (``any_whitespace=False``: ``{"a":1}``): a model that is not trained
for the format, like the tiny test model, could otherwise fill its whole budget with spaces and newlines. The
``json`` type (OpenAI's ``json_object``) is any JSON object under the same rule.

xgrammar is imported on the first guided request only: a repository whose requests never carry a guide needs
no xgrammar installed (``pip install 'tritongen[guided]'`` and ``xgrammar --no-deps``, see pyproject.toml).
"""

from __future__ import annotations

import json
import re
import threading
from collections import OrderedDict

import numpy as np

GUIDE_TYPES = ("json", "json_schema", "regex", "ebnf_grammar", "structural_tag")
#: Compiled grammars kept (least recently used dropped first).
CACHE_SIZE = 128
#: The longest guide text taken: a bound on compile time and memory per request.
MAX_GUIDE_BYTES = 256 * 1024
_SOURCE_PREFIX = re.compile(r"^\[[0-9:]+\]\s+\S+:[0-9]+:\s*")


def _text(array, row):
    """Row ``row`` of a TYPE_STRING input as str, or None when absent/empty."""
    if array is None:
        return None
    arr = np.asarray(array, dtype=object)
    if arr.size == 0:
        return None
    flat = arr.reshape(arr.shape[0], -1)[min(row, arr.shape[0] - 1)] if arr.ndim else arr.reshape(1)
    value = flat[0]
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="strict")
    return str(value)


def request_guide(guide_types, guides, row):
    """The (guide_type, guide) of batch row ``row``, or None when the request asks for no guided decoding.
    Raises ValueError for an unknown type or a missing guide, naming the input."""
    kind = _text(guide_types, row)
    guide = _text(guides, row)
    if not kind:
        if guide:
            raise ValueError("guided_decoding_guide is set but guided_decoding_guide_type is not; send one of "
                             + ", ".join(GUIDE_TYPES))
        return None
    kind = kind.strip().lower()
    if kind not in GUIDE_TYPES:
        raise ValueError(f"guided_decoding_guide_type {kind!r} is not one of {', '.join(GUIDE_TYPES)}")
    if kind != "json" and not guide:
        raise ValueError(f"guided_decoding_guide_type {kind} needs guided_decoding_guide (the schema, pattern or "
                         "grammar)")
    if guide and len(guide.encode("utf-8")) > MAX_GUIDE_BYTES:
        raise ValueError(f"guided_decoding_guide is longer than {MAX_GUIDE_BYTES} bytes")
    return kind, guide or ""


class Guides:
    """The grammar compiler for one tokenizer and its cache of compiled grammars."""

    def __init__(self, tokenizer_dir, trust_remote_code, vocab_size):
        self.tokenizer_dir = tokenizer_dir
        self.trust_remote_code = trust_remote_code
        self.vocab_size = vocab_size
        self._lock = threading.Lock()
        self._compiler = None
        self._xgr = None
        self._cache: OrderedDict = OrderedDict()

    def _setup(self):
        if self._compiler is not None:
            return
        try:
            import xgrammar as xgr
        except ImportError as exc:
            raise ValueError(f"guided decoding needs the xgrammar package in the server's Python ({exc}); "
                             "install tritongen[guided] and xgrammar (--no-deps)") from None
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(self.tokenizer_dir, trust_remote_code=self.trust_remote_code)
        info = xgr.TokenizerInfo.from_huggingface(tok, vocab_size=self.vocab_size)
        self._xgr = xgr
        self._compiler = xgr.GrammarCompiler(info, max_threads=1)

    def _compile(self, kind, guide):
        comp = self._compiler
        if kind == "json":
            return comp.compile_json_schema('{"type": "object"}', any_whitespace=False, strict_mode=False)
        if kind == "json_schema":
            try:
                schema = json.loads(guide)
            except json.JSONDecodeError as exc:
                raise ValueError(f"json_schema guide is not JSON: {exc}") from None
            if not isinstance(schema, (dict, bool)):
                raise ValueError("json_schema guide must be a JSON object (a JSON schema)")
            return comp.compile_json_schema(guide, any_whitespace=False)
        if kind == "regex":
            return comp.compile_regex(guide)
        if kind == "ebnf_grammar":
            return comp.compile_grammar(guide)
        # structural_tag: TensorRT-LLM's format {"structures": [{"begin", "schema", "end"}], "triggers": [...]}.
        try:
            tag = json.loads(guide)
        except json.JSONDecodeError as exc:
            raise ValueError(f"structural_tag guide is not JSON: {exc}") from None
        if isinstance(tag, dict) and "structures" in tag:
            items = [self._xgr.StructuralTagItem(begin=s["begin"], schema=json.dumps(s.get("schema", {})),
                                                 end=s["end"]) for s in tag["structures"]]
            return comp.compile_structural_tag(items, list(tag.get("triggers", [])))
        return comp.compile_structural_tag(guide)

    def compiled(self, kind, guide):
        """The compiled grammar for (kind, guide), from the cache when it was compiled before."""
        key = (kind, guide)
        with self._lock:
            self._setup()
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
                return hit
            try:
                grammar = self._compile(kind, guide)
            except ValueError:
                raise
            except Exception as exc:  # xgrammar reports a bad schema/regex/grammar as RuntimeError and others
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                first = _SOURCE_PREFIX.sub("", first)  # "[21:23:16] /project/cpp/x.cc:5082: Unsupported ..."
                raise ValueError(f"invalid {kind} guide: {first[:300]}") from None
            self._cache[key] = grammar
            while len(self._cache) > CACHE_SIZE:
                self._cache.popitem(last=False)
            return grammar

    def open(self, kind, guide, end_id):
        """A new :class:`Guide` for one sequence; the grammar ends on ``end_id`` (or without a stop token when
        the request has no end id)."""
        grammar = self.compiled(kind, guide)
        return Guide(self._xgr, grammar, self.vocab_size, end_id)


class Guide:
    """One sequence's matcher and token bitmask."""

    __slots__ = ("xgr", "matcher", "bitmask", "vocab_size", "end_id", "terminated")

    def __init__(self, xgr, grammar, vocab_size, end_id):
        self.xgr = xgr
        if 0 <= end_id < vocab_size:
            self.matcher = xgr.GrammarMatcher(grammar, override_stop_tokens=[int(end_id)])
        else:
            self.matcher = xgr.GrammarMatcher(grammar, terminate_without_stop_token=True)
        self.bitmask = xgr.allocate_token_bitmask(1, vocab_size)
        self.vocab_size = vocab_size
        self.end_id = end_id
        self.terminated = False

    def mask(self, logits):
        """Set the logits of the tokens the grammar does not allow next to -inf (in place, 1-D CPU tensor)."""
        self.matcher.fill_next_token_bitmask(self.bitmask)
        n = logits.shape[0]
        if n == self.vocab_size:
            self.xgr.apply_token_bitmask_inplace(logits, self.bitmask)
        else:  # the model's logits are wider or narrower than the tokenizer's vocabulary
            view = logits[: min(n, self.vocab_size)]
            self.xgr.apply_token_bitmask_inplace(view, self.bitmask, vocab_size=view.shape[0])
            if n > self.vocab_size:
                logits[self.vocab_size:] = float("-inf")

    def allowed(self):
        """The token ids the grammar allows next (the MOCK engine picks among them)."""
        import torch

        self.matcher.fill_next_token_bitmask(self.bitmask)
        probe = torch.zeros(self.vocab_size)
        self.xgr.apply_token_bitmask_inplace(probe, self.bitmask)
        return torch.nonzero(probe == 0).flatten().tolist()

    def accept(self, token):
        """Feed the chosen token; a token the grammar refuses (only possible when other masks, like min_tokens
        on the end id, removed every allowed one) ends the sequence."""
        if self.terminated:
            return
        if not self.matcher.accept_token(int(token)):
            self.terminated = True
            return
        self.terminated = self.matcher.is_terminated()
