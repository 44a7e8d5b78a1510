"""The prompts a run sends: a JSONL file, synthetic prompts of an exact token length, or the bundled corpus."""

from __future__ import annotations

import json
from pathlib import Path

from ...errors import MissingDependency, UsageError
from .config import BenchConfig, Prompt


def load_prompts(config: BenchConfig, *, count: int = 64, tokenizer_dir: str | None = None) -> tuple[list[Prompt], str]:
    """Prompts for the run and a description of where they came from."""
    if config.prompts_file:
        return _prompts_from_file(Path(config.prompts_file)), f"file:{config.prompts_file}"
    tok_dir = config.tokenizer_dir or tokenizer_dir
    if tok_dir:
        return synthetic_prompts(tok_dir, config.input_len, count), f"synthetic:{tok_dir}"
    words = _corpus_words()
    prompts = [Prompt(" ".join(words[(i * 37 + j) % len(words)] for j in range(config.input_len)))
               for i in range(count)]
    return prompts, "words (no tokenizer found: prompt lengths in tokens are approximate)"


def _prompts_from_file(path: Path) -> list[Prompt]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise UsageError(f"{path}: cannot read prompts file ({exc.strerror})") from None
    prompts = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UsageError(f"{path}:{n}: not valid JSON ({exc.msg})") from None
        if isinstance(item, str):
            item = {"text": item}
        text = next((item[k] for k in ("text", "prompt", "text_input") if isinstance(item, dict) and k in item), None)
        if not isinstance(text, str):
            raise UsageError(f"{path}:{n}: expected a string or an object with \"text\" (or \"prompt\")")
        out = item.get("output_len", item.get("max_tokens"))
        prompts.append(Prompt(text, None, int(out) if out else None))
    if not prompts:
        raise UsageError(f"{path}: no prompts")
    return prompts


def _corpus_text() -> str:
    from importlib import resources

    return (resources.files("tritongen") / "data" / "tiny_corpus.txt").read_text(encoding="utf-8")


def _corpus_words() -> list[str]:
    return _corpus_text().split()


def synthetic_prompts(tokenizer_dir: str, length: int, count: int) -> list[Prompt]:
    """``count`` different prompts of exactly ``length`` tokens (without special tokens) for this tokenizer:
    windows of tritongen's bundled corpus, re-encoded and trimmed until the count is exact."""
    try:
        from transformers import AutoTokenizer
    except ImportError:
        raise MissingDependency("transformers is needed to make prompts of a given token length") from None
    try:
        tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    except Exception as exc:  # noqa: BLE001 - any loading failure is a usage problem here
        raise UsageError(f"cannot load a tokenizer from {tokenizer_dir}: {exc}".splitlines()[0]) from None
    ids = tok.encode(_corpus_text(), add_special_tokens=False)
    if not ids:
        raise UsageError(f"the tokenizer in {tokenizer_dir} produced no tokens")
    while len(ids) < length * 2:
        ids = ids + ids
    prompts = []
    for i in range(count):
        start = (i * 7919) % (len(ids) - length)
        window = ids[start:start + length]
        text = tok.decode(window, skip_special_tokens=True)
        for _ in range(8):  # decoding and re-encoding may merge or split tokens at the edges
            again = tok.encode(text, add_special_tokens=False)
            if len(again) == length:
                break
            if len(again) > length:
                text = tok.decode(again[:length], skip_special_tokens=True)
            else:
                extra = ids[(start + length) % len(ids):][: length - len(again)] or ids[: length - len(again)]
                text = tok.decode(again + extra, skip_special_tokens=True)
        prompts.append(Prompt(text, len(tok.encode(text, add_special_tokens=False))))
    return prompts
