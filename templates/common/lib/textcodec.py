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


def tokenizer_of(model_config: dict):
    """The tokenizer a model's parameters name (tokenizer_dir, trust_remote_code)."""
    return load_tokenizer(str_param(model_config, "tokenizer_dir"), bool_param(model_config, "trust_remote_code", False))


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
    conversation, a JSON object {"messages": [...], "tools": [...]} as the conversation with the tools the
    template renders (the OpenAI front's tool calling); anything else is one user message."""
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError("this model's tokenizer has no chat template; send plain text without apply_chat_template")
    parsed = None
    stripped = text.strip()
    if stripped[:1] in ("[", "{"):
        try:
            parsed = json.loads(stripped)
        except json.JSONDecodeError:
            parsed = None
    tools = None
    if isinstance(parsed, dict) and set(parsed) == {"messages", "tools"} and isinstance(parsed["tools"], list):
        parsed, tools = parsed["messages"], parsed["tools"] or None
    messages = parsed if isinstance(parsed, list) and parsed and all(
        isinstance(m, dict) and "role" in m and "content" in m for m in parsed) else None
    if messages is None:
        messages = [{"role": "user", "content": text}]
        tools = None
    extra = {"tools": tools} if tools else {}
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True, **extra)


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
            # Drop the finished item now: held until the next one arrives, each idle worker kept its last
            # request alive, inputs included (a 50 MB prompt stayed resident per worker, twice: heap and shm).
            future = fn = args = None


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


# -- request limits: sampling ranges, prompt and word-list sizes -------------------------------------------

INT32_MAX = 2**31 - 1
UINT64_MAX = 2**64 - 1

#: What TensorRT-LLM accepts for each sampling input, by client-contract name: (low, low_inclusive, high,
#: high_inclusive, integer). Source: tensorrt_llm executor SamplingConfig::check* (samplingConfig.cpp):
#: beamWidth > 0, topK >= 0, 0 < topP <= 1, 0 <= topPMin <= 1, topPResetIds >= 0, 0 < topPDecay <= 1,
#: temperature >= 0, minTokens >= 0, repetitionPenalty > 0, beamSearchDiversityRate >= 0,
#: numReturnSequences > 0; presence/frequency/length penalties are unchecked there (any finite value here).
#: top_p = 0 is allowed: the Triton backend treats top_p <= 0 as "not set". Integers also fit the contract's
#: dtype (INT32, seed UINT64); every float must be finite (NaN fails every comparison in the C++ checks, and
#: inf makes logits NaN).
SAMPLING_RANGES: dict[str, tuple] = {
    "max_tokens": (1, True, INT32_MAX, True, True),
    "temperature": (0.0, True, None, False, False),
    "top_p": (0.0, True, 1.0, True, False),
    "top_k": (0, True, INT32_MAX, True, True),
    "min_tokens": (0, True, INT32_MAX, True, True),
    "repetition_penalty": (0.0, False, None, False, False),
    "presence_penalty": (None, False, None, False, False),
    "frequency_penalty": (None, False, None, False, False),
    "length_penalty": (None, False, None, False, False),
    "beam_width": (1, True, INT32_MAX, True, True),
    "num_return_sequences": (1, True, INT32_MAX, True, True),
    "seed": (0, True, UINT64_MAX, True, True),
    "beam_search_diversity_rate": (0.0, True, None, False, False),
    "runtime_top_p_min": (0.0, True, 1.0, True, False),
    "runtime_top_p_decay": (0.0, False, 1.0, True, False),
    "runtime_top_p_reset_ids": (0, True, INT32_MAX, True, True),
}
#: tensorrt_llm input name -> client-contract name, for the inputs whose names differ.
LLM_TO_CLIENT = {"runtime_top_k": "top_k", "runtime_top_p": "top_p", "len_penalty": "length_penalty",
                 "request_output_len": "max_tokens"}


def _num(x) -> str:
    return str(x) if isinstance(x, int) else f"{x:.7g}"  # float32 inputs: 7 digits, not 0.10000000149


def allowed_range(name: str) -> str:
    """The allowed range of a sampling input in words, e.g. ``a finite number in [0, 1]``."""
    low, low_in, high, high_in, integer = SAMPLING_RANGES[name]
    kind = "an integer" if integer else "a finite number"
    if low is not None and high is not None:
        return f"{kind} in {'[' if low_in else '('}{_num(low)}, {_num(high)}{']' if high_in else ')'}"
    if low is not None:
        return f"{kind} {'>=' if low_in else '>'} {_num(low)}"
    return kind


def max_tokens_problem(value) -> str | None:
    """The error for a max_tokens value, or None when it is fine. max_tokens is INT32 (the reference's dtype),
    and Triton's HTTP generate endpoint cuts a JSON number beyond INT32 to 32 bits before any model sees it
    (2**40 arrives as 0, 2**32 + 5 as 5): a value below 1 may be such a number, so the message says so."""
    value = int(value)
    if value > INT32_MAX:
        return f"max_tokens={value} is too large (at most {INT32_MAX})"
    if value < 1:
        return (f"max_tokens must be between 1 and {INT32_MAX}, got {value}; over HTTP generate a number beyond "
                f"{INT32_MAX} reaches the server cut to 32 bits, so a too-large value shows up as this")
    return None


def length_problem(prompt_tokens: int, max_tokens: int, max_seq_len: int) -> str | None:
    """The error for max_tokens itself (:func:`max_tokens_problem`) or for a prompt plus max_tokens beyond
    max_seq_len (0: no limit); None when the request fits."""
    problem = max_tokens_problem(max_tokens)
    if problem:
        return problem
    if max_seq_len and prompt_tokens + max_tokens > max_seq_len:
        return (f"prompt ({prompt_tokens} tokens) + max_tokens ({max_tokens}) exceeds max_seq_len={max_seq_len}; "
                f"ask for at most {max(max_seq_len - prompt_tokens, 0)} tokens")
    return None


def one_of(name: str, value, old_name: str, old_value):
    """The value of an input sent under its name or its pre-1.0 name (seed/random_seed, min_tokens/min_length:
    clients of either tensorrtllm_backend generation), as an int; None when neither was sent. Both with
    different values is the request's error."""
    if value is not None and old_value is not None and int(value) != int(old_value):
        raise ValueError(f"{name}={int(value)} and {old_name}={int(old_value)} differ; send one of them "
                         f"({old_name} is the older name of {name})")
    chosen = value if value is not None else old_value
    return None if chosen is None else int(chosen)


def check_value(name: str, value, shown: str | None = None) -> None:
    """Raise ValueError naming the input (``shown``, default its contract name) and its allowed range when
    ``value`` is outside SAMPLING_RANGES[name]."""
    import math

    low, low_in, high, high_in, integer = SAMPLING_RANGES[name]
    label = shown or name
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        ok = False
    elif integer:
        ok = isinstance(value, int) or (math.isfinite(value) and value.is_integer())
    else:
        ok = math.isfinite(value)
    if ok and high is not None and integer and value > high:
        raise ValueError(f"{label}={_num(value)} is too large (at most {_num(high)})")
    if ok and low is not None:
        ok = value >= low if low_in else value > low
    if ok and high is not None:
        ok = value <= high if high_in else value < high
    if not ok:
        shown_value = _num(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else repr(value)
        raise ValueError(f"{label}={shown_value} is not allowed: it must be {allowed_range(name)}")


def check_sampling(values: dict, names: dict | None = None) -> None:
    """Check every sampling input present in ``values`` (name -> tensor, array or Python number; None or an
    empty tensor is absent). Names are client-contract names or tensorrt_llm names (LLM_TO_CLIENT);
    ``names`` maps a name to the label shown in the error. Raises ValueError on the first bad value."""
    for key, raw in values.items():
        name = LLM_TO_CLIENT.get(key, key)
        if name not in SAMPLING_RANGES or raw is None:
            continue
        arr = np.asarray(raw)
        if arr.size == 0:
            continue
        if arr.dtype == object or arr.dtype.kind in "SUb":
            raise ValueError(f"{(names or {}).get(key, key)} must be a number, got {arr.reshape(-1)[0]!r}")
        for item in arr.reshape(-1).tolist():
            check_value(name, item, (names or {}).get(key, key))


def max_token_bytes(tokenizer) -> int:
    """The most bytes of prompt text one token can stand for, from the vocabulary (computed once per model).

    Byte-level BPE is lossless and unnormalized, so a token covers exactly its bytes; added tokens match their
    own text. Other tokenizers (SentencePiece, WordPiece) may normalize the text first, so their bound gets a
    margin of 4x (Unicode normalization shortens text by less than that)."""
    table = byte_level_table(tokenizer)
    added = [len(str(getattr(t, "content", t)).encode("utf-8"))
             for t in getattr(tokenizer, "added_tokens_decoder", {}).values()]
    if table is not None:
        return max([len(p) for p in table[0]] + added + [1])
    tokens = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
    longest = max([len(t.encode("utf-8")) for t in tokens if t] + added + [1])
    return 4 * longest


def prompt_byte_limit(max_input_len: int, token_bytes: int, configured: int) -> int:
    """The prompt size in bytes beyond which a prompt surely has more than max_input_len tokens: refused before
    tokenizing. ``configured`` (serving.max_prompt_bytes, 0 = derived) wins when it is lower. 0: no bound."""
    derived = max_input_len * token_bytes if max_input_len > 0 else 0
    if configured > 0:
        return min(configured, derived) if derived else configured
    return derived


def chat_template_bytes(tokenizer) -> int:
    """Bytes a chat template adds around the messages (its own source length bounds any one rendering of it)."""
    template = getattr(tokenizer, "chat_template", None)
    return len(template.encode("utf-8")) if isinstance(template, str) else 0


#: Word lists (stop_words, bad_words, embedding_bias_words): at most this many entries and bytes per request.
MAX_WORDS = 256
MAX_WORDS_BYTES = 16384


def prompt_bounds(model_config: dict, tokenizer, max_input_len: int) -> tuple[int, int]:
    """What check_prompt_size needs of a model: the prompt byte bound (from max_input_len, the tokenizer and the
    model's max_prompt_bytes parameter) and the bytes its chat template adds."""
    limit = prompt_byte_limit(max_input_len, max_token_bytes(tokenizer), int_param(model_config, "max_prompt_bytes", 0))
    return limit, chat_template_bytes(tokenizer)


def byte_size(array) -> int:
    """Bytes of text in a BYTES tensor (or one row of it), counted without decoding it."""
    if array is None:
        return 0
    return sum(len(x) if isinstance(x, (bytes, str)) else 0 for x in np.asarray(array, dtype=object).reshape(-1))


def check_words(name: str, array) -> None:
    """Refuse an over-long word list (one request row) before it is decoded or tokenized."""
    if array is None:
        return
    count = int(np.asarray(array, dtype=object).size)
    size = byte_size(array)
    if count > MAX_WORDS or size > MAX_WORDS_BYTES:
        raise ValueError(f"{name} has {count} entries and {size} bytes; at most {MAX_WORDS} entries and "
                         f"{MAX_WORDS_BYTES} bytes are allowed")


def check_prompt_size(size: int, limit: int, max_input_len: int, chat_extra: int = 0) -> None:
    """Refuse a prompt of ``size`` bytes beyond ``limit`` (+ the chat template's own text) without tokenizing."""
    if limit and size > limit + chat_extra:
        raise ValueError(f"text_input is {size} bytes, more than the {limit + chat_extra} bytes a prompt of at most "
                         f"max_input_len={max_input_len} tokens can have (serving.max_prompt_bytes); shorten it")
