"""Tiny PEFT LoRA adapters for the tests, trained offline on the tiny model in seconds.

Each adapter is a few optimizer steps of LoRA on one fixed sentence (seeded, single-threaded), with a learning
rate high enough that greedy output on any prompt moves towards that sentence: two adapters trained on different
sentences then answer differently from each other and from the base model.
"""

from __future__ import annotations

from pathlib import Path

#: Adapter name -> (the sentence it learns, rank, target modules).
ADAPTERS = {
    "pirate": ("arr matey the sea is wide and the ship sails on", 4, ["q_proj", "v_proj"]),
    "chef": ("salt pepper butter garlic and onions in the hot pan", 8, ["q_proj", "k_proj", "v_proj", "o_proj",
                                                                         "gate_proj", "up_proj", "down_proj"]),
}


def train_adapter(base_dir: Path, out: Path, text: str, rank: int, modules: list[str], seed: int = 0,
                  steps: int = 30) -> Path:
    """Train one LoRA adapter on ``text`` and save it (adapter_config.json + adapter_model.safetensors)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(seed)
        tok = AutoTokenizer.from_pretrained(base_dir)
        model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
        model = get_peft_model(model, LoraConfig(r=rank, lora_alpha=2 * rank, target_modules=modules,
                                                 lora_dropout=0.0, task_type="CAUSAL_LM"))
        ids = torch.tensor([tok(text)["input_ids"] * 3])
        opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=3e-2)
        model.train()
        for _ in range(steps):
            loss = model(input_ids=ids, labels=ids).loss
            loss.backward()
            opt.step()
            opt.zero_grad()
        model.save_pretrained(out)
    finally:
        torch.set_num_threads(threads)
    return Path(out)


def train_all(base_dir: Path, root: Path) -> dict[str, Path]:
    """Every adapter of ADAPTERS under ``root``/<name>."""
    return {name: train_adapter(base_dir, root / name, text, rank, modules, seed=i)
            for i, (name, (text, rank, modules)) in enumerate(ADAPTERS.items())}


def merged_generate(base_dir: Path, adapter: Path | None, prompt_ids: list[int], max_new: int) -> list[int]:
    """PEFT's own greedy generate with the adapter merged into the weights (None: the base model)."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    if adapter is not None:
        model = PeftModel.from_pretrained(model, adapter).merge_and_unload()
    model.eval()
    with torch.inference_mode():
        out = model.generate(torch.tensor([prompt_ids]), max_new_tokens=max_new, do_sample=False,
                             attention_mask=torch.ones(1, len(prompt_ids), dtype=torch.long), eos_token_id=None,
                             pad_token_id=0)
    return out[0, len(prompt_ids):].tolist()


def standin_adapter(path: Path, rank: int = 8, modules: tuple[str, ...] = ("q_proj", "v_proj"),
                    peft_type: str = "LORA") -> Path:
    """A STAND-IN adapter folder: a real adapter_config.json and an empty weights file (for planning and
    rendering, which read the config only)."""
    import json

    path.mkdir(parents=True, exist_ok=True)
    (path / "adapter_config.json").write_text(json.dumps({
        "peft_type": peft_type, "r": rank, "lora_alpha": 2 * rank, "target_modules": list(modules),
        "task_type": "CAUSAL_LM"}, indent=2))
    (path / "adapter_model.safetensors").write_bytes(b"")
    return path
