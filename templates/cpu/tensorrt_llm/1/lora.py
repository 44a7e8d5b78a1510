"""cpu route: LoRA adapters (Hugging Face PEFT) applied per sequence by the reference engine.

Rendered by tritongen next to model.py. The ``lora_adapters`` parameter maps each task id to an adapter name and
folder (tritongen's spec, ``lora.adapters``); all adapters are loaded once, into one PeftModel around the base
model. The engine runs each sequence's forward on its own, so each forward names its sequence's adapter
(PEFT's ``adapter_names``); a sequence without a task id runs with ``__base__``, which is the base layers alone,
so base-model output stays exactly what it is without LoRA.

What the TensorRT-LLM backend takes besides a task id - the adapter's weights and config in its own converted
format (lora_weights / lora_config) - cannot be applied to a PyTorch model: such a request is refused with a
message naming the configured adapters. The MOCK engine has no weights to adapt: it ignores LoRA inputs.
"""

from __future__ import annotations

import json

#: PEFT's name for "no adapter" in a mixed batch (peft.tuners.lora: the rows it leaves to the base layer).
BASE_ADAPTER = "__base__"


class Adapters:
    """The configured adapters by task id, and the model that applies them."""

    def __init__(self, table: dict[int, tuple[str, str]]):
        self.table = table  # task id -> (name, folder)
        self.model = None

    @classmethod
    def from_param(cls, text: str) -> Adapters:
        """From the ``lora_adapters`` parameter: JSON {"<task id>": ["name", "folder"], ...} (empty: no LoRA)."""
        data = json.loads(text) if text and text.strip() else {}
        return cls({int(k): (str(v[0]), str(v[1])) for k, v in data.items()})

    def __bool__(self) -> bool:
        return bool(self.table)

    def attach(self, engine) -> None:
        """Wrap the torch engine's model in one PeftModel holding every adapter (loaded once, not merged)."""
        if not self.table:
            return
        from peft import PeftModel

        model = None
        for _, (name, folder) in sorted(self.table.items()):
            if model is None:
                model = PeftModel.from_pretrained(engine.model, folder, adapter_name=name, is_trainable=False)
            else:
                model.load_adapter(folder, adapter_name=name, is_trainable=False)
        model.eval()
        engine.model = model
        self.model = model

    def describe(self) -> str:
        return ", ".join(f"{t} ({n})" for t, (n, _) in sorted(self.table.items())) or "none"

    def adapter_of(self, task_id, weights, config) -> str | None:
        """The adapter name a request row asks for (None: the base model); a ValueError names what is wrong."""
        has_weights = weights is not None and getattr(weights, "size", 0)
        has_config = config is not None and getattr(config, "size", 0)
        if task_id is None:
            if has_weights or has_config:
                raise ValueError("lora_weights/lora_config need a lora_task_id")
            return None
        task_id = int(task_id)
        if has_weights or has_config:
            raise ValueError(f"lora_task_id {task_id}: the cpu engine does not take LoRA weights in TensorRT-LLM's "
                             f"format (lora_weights/lora_config); it serves the adapters of the spec's lora.adapters "
                             f"by task id: {self.describe()}")
        if task_id not in self.table:
            raise ValueError(f"lora_task_id {task_id} is not a LoRA adapter of this model; known task ids: "
                             f"{self.describe()}")
        return self.table[task_id][0]

    def forward_kwargs(self, adapter: str | None) -> dict:
        """Extra arguments of one sequence's forward: the adapter it runs with (nothing when there is no LoRA)."""
        if self.model is None:
            return {}
        return {"adapter_names": [adapter or BASE_ADAPTER]}
