"""Text <-> token helpers shared by preprocessing, postprocessing and tensorrt_llm_bls.

tritongen copies this file next to each model.py (Triton's python backend puts the model's version folder on
sys.path), so the rendered repository is self-contained: it needs only numpy and transformers, both present in
the NGC TensorRT-LLM container.
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict

import numpy as np


def str_param(model_config: dict, key: str, default: str = "") -> str:
    """A ``parameters`` string from config.pbtxt (unset values give ``default``)."""
    value = model_config.get("parameters", {}).get(key, {}).get("string_value", default)
    return default if value is None else value


def bool_param(model_config: dict, key: str, default: bool) -> bool:
    value = str_param(model_config, key, "")
    if value == "":
        return default
    return value.strip().lower() in ("true", "1", "yes", "on")


def int_param(model_config: dict, key: str, default: int) -> int:
    value = str_param(model_config, key, "")
    return int(value) if value.strip() else default


def output_names(model_config: dict) -> frozenset[str]:
    """The model's own output names: a repository's client contract (serving.optional_outputs)."""
    return frozenset(o.get("name") for o in model_config.get("output", []))


def strings(array) -> list[str]:
    """A BYTES tensor (or one row of it) as Python strings; empty strings are dropped."""
    if array is None:
        return []
    out = []
    for item in np.asarray(array).reshape(-1):
        text = item.decode("utf-8", "replace") if isinstance(item, bytes) else str(item)
        if text:
            out.append(text)
    return out


def scalar(array, default=None):
    """The first value of a tensor (or one row of it) as a Python scalar; ``default`` when absent or empty."""
    if array is None:
        return default
    arr = np.asarray(array)
    if arr.size == 0:
        return default
    return arr.reshape(-1)[0].item()


def load_tokenizer(tokenizer_dir: str, trust_remote_code: bool = False):
    """Load the fast tokenizer; pad falls back to eos so batched outputs always have a pad id."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tokenizer_dir, trust_remote_code=trust_remote_code, use_fast=True)
    if tok.pad_token_id is None and tok.eos_token_id is not None:
        tok.pad_token = tok.eos_token
    return tok


def decode(tokenizer, ids, skip_special_tokens: bool) -> str:
    """Full decode. Tokenization-space cleanup is off everywhere so streamed chunks and full decodes agree."""
    return tokenizer.decode(ids, skip_special_tokens=skip_special_tokens, clean_up_tokenization_spaces=False)


def word_variants(tokenizer, word: str) -> list[list[int]]:
    """Token sequences that spell ``word``: as written, and after a space (how it appears mid-sentence)."""
    seqs: list[list[int]] = []
    base = tokenizer.encode(word, add_special_tokens=False)
    if base:
        seqs.append(list(base))
    if word and not word[0].isspace():
        spaced = tokenizer.encode(" " + word, add_special_tokens=False)
        if spaced and spaced != base and decode(tokenizer, spaced, False).strip() == word.strip():
            seqs.append(list(spaced))
    return seqs


def to_word_list(tokenizer, words: list[str]) -> np.ndarray:
    """Stop/bad words in the TensorRT-LLM ``[2, len]`` format: row 0 the concatenated ids, row 1 the end
    offset of each sequence, padded with 0 / -1. An empty list gives ``[[0], [-1]]`` (no words)."""
    flat: list[int] = []
    offsets: list[int] = []
    for word in words:
        for seq in word_variants(tokenizer, word):
            flat.extend(seq)
            offsets.append(len(flat))
    if not flat:
        return np.array([[0], [-1]], dtype=np.int32)
    width = max(len(flat), len(offsets))
    out = np.zeros((2, width), dtype=np.int32)
    out[1, :] = -1
    out[0, : len(flat)] = flat
    out[1, : len(offsets)] = offsets
    return out


def chat_prompt(tokenizer, text: str) -> str:
    """Format ``text`` with the model's chat template: a JSON list of {role, content} messages is used as the
    conversation; anything else is one user message."""
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError("this model's tokenizer has no chat template; send plain text without apply_chat_template")
    messages = None
    stripped = text.strip()
    if stripped.startswith("["):
        try:
            parsed = json.loads(stripped)
        except json.JSONDecodeError:
            parsed = None
        if isinstance(parsed, list) and parsed and all(
            isinstance(m, dict) and "role" in m and "content" in m for m in parsed
        ):
            messages = parsed
    if messages is None:
        messages = [{"role": "user", "content": text}]
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def _bytes_to_unicode() -> dict[int, str]:
    """The byte <-> printable-character map of GPT-2-style byte-level BPE vocabularies."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("\u00a1"), ord("\u00ac") + 1)) + \
        list(range(ord("\u00ae"), ord("\u00ff") + 1))
    chars = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + extra)
            extra += 1
    return dict(zip(printable, (chr(c) for c in chars)))


_TABLES: dict[int, tuple] = {}


def byte_level_table(tokenizer):
    """(bytes per token id, special ids) when the tokenizer decodes byte-level BPE, else None.

    For these tokenizers every id maps to the same bytes wherever it appears, so text can be decoded token by
    token with an incremental UTF-8 decoder and match a full decode exactly.
    """
    key = id(tokenizer)
    if key in _TABLES:
        return _TABLES[key][0]
    table = None
    try:
        spec = json.loads(tokenizer.backend_tokenizer.to_str())
    except Exception:
        spec = {}
    decoder = spec.get("decoder") or {}
    # Only the decoder matters here: normalizers and pre-tokenizers shape encoding, not decoding.
    if decoder.get("type") == "ByteLevel":
        char_to_byte = {c: b for b, c in _bytes_to_unicode().items()}
        pieces = []
        for token in tokenizer.convert_ids_to_tokens(list(range(len(tokenizer)))):
            if token is None:
                pieces.append(b"")
                continue
            try:
                pieces.append(bytes(char_to_byte[c] for c in token))
            except KeyError:  # added tokens are not byte-mapped: their text is used as is
                pieces.append(token.encode("utf-8"))
        special = {i for i, t in getattr(tokenizer, "added_tokens_decoder", {}).items() if getattr(t, "special", False)}
        table = (pieces, frozenset(special))
    _TABLES[key] = (table, tokenizer)  # keep the tokenizer alive so its id() stays unique
    return table


_FALLBACK: dict[int, tuple] = {}


def _has_byte_fallback(decoder: dict) -> bool:
    if decoder.get("type") == "ByteFallback":
        return True
    return any(_has_byte_fallback(d) for d in decoder.get("decoders") or [] if isinstance(d, dict))


def byte_fallback_ids(tokenizer) -> frozenset:
    """Ids of the byte tokens (``<0xNN>``) when the tokenizer decodes with ByteFallback (SentencePiece-style
    models), else none.

    ByteFallback decodes a run of consecutive byte tokens as a whole: its text when the run's bytes are valid
    UTF-8, else one U+FFFD per token - even for the characters of the run that were complete. A run's text is
    therefore known only once the run has ended.
    """
    key = id(tokenizer)
    if key in _FALLBACK:
        return _FALLBACK[key][0]
    ids: frozenset = frozenset()
    try:
        spec = json.loads(tokenizer.backend_tokenizer.to_str())
    except Exception:
        spec = {}
    if _has_byte_fallback(spec.get("decoder") or {}):
        hexdigits = set("0123456789abcdefABCDEF")
        ids = frozenset(
            i for t, i in tokenizer.get_vocab().items()
            if len(t) == 6 and t.startswith("<0x") and t.endswith(">") and set(t[3:5]) <= hexdigits
        )
    _FALLBACK[key] = (ids, tokenizer)  # keep the tokenizer alive so its id() stays unique
    return ids


class _ByteLevelDecoder:
    """Exact, O(1) per token: bytes of each token through an incremental UTF-8 decoder."""

    __slots__ = ("_pieces", "_special", "_skip", "_utf8", "last_used")

    def __init__(self, table, skip_special_tokens: bool):
        import codecs

        self._pieces, self._special = table
        self._skip = skip_special_tokens
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.last_used = time.monotonic()

    def push(self, new_ids) -> str:
        self.last_used = time.monotonic()
        pieces, n = self._pieces, len(self._pieces)
        data = b"".join(
            pieces[i] for i in (int(x) for x in new_ids)
            if 0 <= i < n and not (self._skip and i in self._special)
        )
        return self._utf8.decode(data, final=False) if data else ""

    def flush(self) -> str:
        """The bytes held back, as the full decode shows them: an incomplete character gives U+FFFD as
        ``tokenizers``' byte-level decoder does (both replace each maximal invalid subsequence by one)."""
        return self._utf8.decode(b"", final=True)


class _WindowDecoder:
    """Any tokenizer: decode a short window (a few tokens of context plus the new ones) and emit the growth.

    Text that ends inside a multi-byte character (decode ends with U+FFFD) is held back until it completes
    (bounded: without byte-level BPE a character spans at most 4 byte-fallback tokens), and so is an open run
    of byte-fallback tokens (see byte_fallback_ids): a later byte can still turn the whole run into U+FFFD in the
    full decode, so its text is final only when a token of another kind follows, or at ``flush``.
    """

    __slots__ = ("_tok", "_skip", "_ids", "_prefix", "_read", "_bytes", "last_used")

    MAX_PENDING = 16
    KEEP = 8

    def __init__(self, tokenizer, skip_special_tokens: bool):
        self._tok = tokenizer
        self._skip = skip_special_tokens
        self._ids: list[int] = []
        self._prefix = 0
        self._read = 0
        self._bytes = byte_fallback_ids(tokenizer)
        self.last_used = time.monotonic()

    def push(self, new_ids) -> str:
        self.last_used = time.monotonic()
        self._ids.extend(int(i) for i in new_ids)
        if len(self._ids) == self._read or self._ids[-1] in self._bytes:
            return ""
        prefix_text = decode(self._tok, self._ids[self._prefix : self._read], self._skip)
        full_text = decode(self._tok, self._ids[self._prefix :], self._skip)
        if full_text.endswith("\ufffd") and len(self._ids) - self._read < self.MAX_PENDING:
            return ""
        delta = full_text[len(prefix_text) :] if len(full_text) > len(prefix_text) else ""
        self._advance()
        return delta

    def flush(self) -> str:
        """The rest of the full decode: what is held back, as the full decode shows it (U+FFFD included)."""
        if len(self._ids) == self._read:
            return ""
        prefix_text = decode(self._tok, self._ids[self._prefix : self._read], self._skip)
        full_text = decode(self._tok, self._ids[self._prefix :], self._skip)
        self._advance()
        return full_text[len(prefix_text) :]

    def _advance(self) -> None:
        self._prefix = self._read
        self._read = len(self._ids)
        # The context must show some text: a window opening on skipped special tokens would let the decoder
        # strip the next word's leading space as if it began the text.
        while self._prefix > 0 and not decode(self._tok, self._ids[self._prefix : self._read], self._skip):
            self._prefix -= 1
        if self._prefix > self.KEEP:
            drop = self._prefix - self.KEEP
            del self._ids[:drop]
            self._prefix -= drop
            self._read -= drop


def IncrementalDecoder(tokenizer, skip_special_tokens: bool = True):  # noqa: N802 - a factory used like a class
    """A decoder whose ``push(ids)`` chunks concatenate (with ``flush()``) to exactly the full decode: the
    exact O(1) byte-level path when the tokenizer allows it, else the windowed path."""
    table = byte_level_table(tokenizer)
    if table is not None:
        return _ByteLevelDecoder(table, skip_special_tokens)
    return _WindowDecoder(tokenizer, skip_special_tokens)


class DaemonPool:
    """A fixed pool of daemon worker threads (``submit`` returns a ``concurrent.futures.Future``).

    concurrent.futures.ThreadPoolExecutor joins its workers when the interpreter exits, so one worker blocked on
    an inner stream at shutdown keeps the backend stub alive after tritonserver is gone; daemon workers do not.
    """

    def __init__(self, workers: int, name: str):
        import queue
        import threading

        self._queue: queue.Queue = queue.Queue()
        self._closed = False
        for i in range(workers):
            threading.Thread(target=self._work, name=f"{name}-{i}", daemon=True).start()

    def submit(self, fn, *args):
        from concurrent.futures import Future

        future: Future = Future()
        if self._closed:
            future.set_exception(RuntimeError("pool is shut down"))
            return future
        self._queue.put((future, fn, args))
        return future

    def shutdown(self) -> None:
        self._closed = True

    def _work(self) -> None:
        while True:
            future, fn, args = self._queue.get()
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(fn(*args))
            except BaseException as exc:  # the caller's future carries it
                future.set_exception(exc)


class StreamTable:
    """Incremental decoders keyed by stream, bounded in size and idle time. A stream that ends through
    ``finish`` leaves at once; one that never does (its client went away mid-stream) is evicted when idle or
    least-recently-used first."""

    def __init__(self, tokenizer, skip_special_tokens: bool, max_streams: int = 16384, idle_s: float = 600.0):
        self._tok = tokenizer
        self._skip = skip_special_tokens
        self._max = max_streams
        self._idle = idle_s
        self._streams: OrderedDict = OrderedDict()

    def __len__(self) -> int:
        return len(self._streams)

    def push(self, key: str, ids) -> str:
        dec = self._streams.get(key)
        if dec is None:
            dec = IncrementalDecoder(self._tok, self._skip)
            self._streams[key] = dec
        else:
            self._streams.move_to_end(key)
        return dec.push(ids)

    def finish(self, key, ids) -> str:
        """The stream's last chunk: its new ids and whatever the decoder still holds, so the chunks add up to
        exactly the full decode (U+FFFD for a character that max_tokens cut, as the full decode shows). The
        stream's state goes with it: a key used again later starts clean."""
        dec = self._streams.pop(key, None)
        if dec is None:
            dec = IncrementalDecoder(self._tok, self._skip)
        return dec.push(ids) + dec.flush()

    def evict(self) -> None:
        now = time.monotonic()
        while self._streams:
            key, dec = next(iter(self._streams.items()))
            if len(self._streams) > self._max or now - dec.last_used > self._idle:
                del self._streams[key]
            else:
                break
