"""The ``tiny`` model: a small Llama built offline, deterministically, and cached.

A byte-level BPE tokenizer is trained on text bundled with tritongen (``data/tiny_corpus.txt``), wrapped as a
``PreTrainedTokenizerFast`` with a Llama-3-style chat template, and a 2-layer Llama (hidden 64) is trained on the
same text for a few hundred steps so that it answers in English-looking words. Everything is seeded and runs
single-threaded, so the same tritongen version builds byte-identical files. The build writes into a temporary
folder and renames it into place, so an interrupted build leaves nothing half-made.

Needs torch and tokenizers (``pip install 'tritongen[cpu]'``); imported only by the commands that build it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from .errors import MissingDependency, TritongenError

#: Bump when the recipe changes: a cached build with another recipe id is rebuilt.
RECIPE = "tiny-v1"
VOCAB_SIZE = 1024
SPECIALS = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<|start_header_id|>{{ m['role'] }}<|end_header_id|>\n\n"
    "{{ m['content'] }}<|eot_id|>{% endfor %}"
    "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}"
)
SHAPE = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
             num_key_value_heads=2, head_dim=16, max_position_embeddings=2048)
TRAIN_STEPS = 300
MARKER = "tritongen-tiny.json"


def corpus_text() -> str:
    return (Path(__file__).parent / "data" / "tiny_corpus.txt").read_text(encoding="utf-8")


def recipe_id() -> str:
    blob = json.dumps([RECIPE, VOCAB_SIZE, SPECIALS, CHAT_TEMPLATE, SHAPE, TRAIN_STEPS, corpus_text()])
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def is_built(path: Path) -> bool:
    marker = Path(path) / MARKER
    try:
        return json.loads(marker.read_text()).get("recipe") == recipe_id()
    except (OSError, json.JSONDecodeError):
        return False


def build(dest: Path, *, echo: Callable[[str], None] = lambda m: None, force: bool = False) -> Path:
    """Build the tiny model into ``dest`` (atomically); a no-op when an identical build is there."""
    dest = Path(dest)
    if is_built(dest) and not force:
        return dest
    try:
        import torch
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
        from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast
    except ImportError as exc:
        raise MissingDependency(
            f"building the tiny model needs torch, tokenizers and transformers ({exc.name} is missing)",
            hint="pip install torch==2.13.0 'tritongen[cpu]'",
        ) from exc

    start = time.monotonic()
    # Measured: 14 s on an idle 2-core machine, 24-98 s on a busy one.
    echo(f"building the tiny model into {dest} (offline, once per cache: 15-100 s depending on the CPU)...")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}-build-", dir=dest.parent))
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)  # determinism: the same bytes on every machine
        text = corpus_text()

        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=VOCAB_SIZE, special_tokens=SPECIALS, show_progress=False,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        )
        tok.train_from_iterator([line for line in text.splitlines() if line.strip()], trainer)
        bos = tok.token_to_id("<|begin_of_text|>")
        tok.post_processor = processors.TemplateProcessing(
            single="<|begin_of_text|> $A", pair="<|begin_of_text|> $A <|begin_of_text|> $B",
            special_tokens=[("<|begin_of_text|>", bos)],
        )
        fast = PreTrainedTokenizerFast(
            tokenizer_object=tok, bos_token="<|begin_of_text|>", eos_token="<|eot_id|>",
            pad_token="<|end_of_text|>", clean_up_tokenization_spaces=False,
        )
        fast.chat_template = CHAT_TEMPLATE
        fast.save_pretrained(tmp)

        eos = tok.token_to_id("<|eot_id|>")
        config = LlamaConfig(vocab_size=tok.get_vocab_size(), bos_token_id=bos, eos_token_id=eos,
                             pad_token_id=tok.token_to_id("<|end_of_text|>"), tie_word_embeddings=False,
                             rope_theta=10000.0, **SHAPE)
        torch.manual_seed(0)
        model = LlamaForCausalLM(config)
        _train(model, fast, text, torch, echo)
        model.eval()
        model.generation_config.pad_token_id = config.pad_token_id
        model.save_pretrained(tmp, safe_serialization=True)
        (tmp / MARKER).write_text(json.dumps({"recipe": recipe_id(), "built_by": "tritongen"}, indent=2) + "\n")
        os.chmod(tmp, 0o755)
        for f in tmp.iterdir():  # readable by a container's non-root user (safetensors writes 0600)
            os.chmod(f, 0o644)
        if dest.exists():
            shutil.rmtree(dest)
        os.rename(tmp, dest)
    except Exception as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, TritongenError):
            raise
        raise TritongenError(f"building the tiny model failed: {exc}") from exc
    finally:
        torch.set_num_threads(threads)
    echo(f"tiny model ready in {time.monotonic() - start:.1f} s")
    return dest


def _train(model, tokenizer, text: str, torch, echo) -> None:
    """A few hundred steps of next-token training on the corpus, so the output looks like words."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    data = torch.tensor(ids, dtype=torch.long)
    seq, batch = 64, 16
    gen = torch.Generator().manual_seed(0)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    model.train()
    for step in range(TRAIN_STEPS):
        starts = torch.randint(0, len(data) - seq - 1, (batch,), generator=gen)
        x = torch.stack([data[s : s + seq] for s in starts])
        loss = model(input_ids=x, labels=x).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 100 == 99:
            echo(f"  tiny: step {step + 1}/{TRAIN_STEPS}, loss {loss.item():.2f}")


def ensure_model(spec, *, echo: Callable[[str], None] = lambda m: None) -> None:
    """For the cpu route: build ``tiny`` if it is the model and missing; fail clearly on a missing checkpoint."""
    ckpt = spec.checkpoint_dir
    needs_weights = spec.cpu.engine.value == "torch"
    if spec.model.name == "tiny" and spec.model.checkpoint_dir is None:
        build(ckpt, echo=echo)
        return
    if needs_weights and not (Path(ckpt) / "config.json").is_file():
        raise TritongenError(
            f"model.checkpoint_dir: no Hugging Face checkpoint at {ckpt} (config.json missing)",
            hint="give --checkpoint DIR with a local checkpoint, or use MODEL=tiny",
        )
    tok_dir = spec.tokenizer_dir
    if not any((Path(tok_dir) / f).is_file() for f in ("tokenizer.json", "tokenizer_config.json", "tokenizer.model")):
        raise TritongenError(f"model.tokenizer_dir: no tokenizer files in {tok_dir}",
                             hint="give --tokenizer DIR")
