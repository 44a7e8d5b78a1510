"""LoRA adapters by name, for preprocessing: a request's ``lora_name`` (or ``lora_task_id``) -> the task id
tensorrt_llm reads. Rendered by tritongen next to model.py; settings from config.pbtxt ``parameters``:
``lora_adapters`` (JSON {name: task id}, tritongen's spec ``lora.adapters``) and ``model_name`` (the base model's
name, which like an empty name means no adapter, as the OpenAI front's model ids do).

A request with neither input gets no OUT_LORA_TASK_ID, so the ensemble leaves tensorrt_llm's lora_task_id unset:
the base model. Without configured adapters this does nothing (the ensemble then passes lora_task_id itself).
"""

from __future__ import annotations

import json

import numpy as np

OUTPUT = "OUT_LORA_TASK_ID"


def _text(value) -> str:
    item = np.asarray(value).reshape(-1)
    if item.size == 0:
        return ""
    v = item[0]
    return v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)


class LoraNames:
    def __init__(self, config: dict):
        params = config.get("parameters", {})

        def param(key):
            return (params.get(key) or {}).get("string_value") or ""

        text = param("lora_adapters")
        self.ids: dict[str, int] = {str(k): int(v) for k, v in json.loads(text).items()} if text.strip() else {}
        self.base = param("model_name")
        self.active = bool(self.ids) and any(o.get("name") == OUTPUT for o in config.get("output", []))

    def known(self) -> str:
        return ", ".join(sorted(self.ids)) or "none"

    def task_ids(self, names, task_ids, batch: int) -> np.ndarray | None:
        """The task id of every row ([batch, 1] uint64), or None when no row names an adapter. An unknown name
        is a ValueError: the request's error response."""
        if not self.active or (names is None and task_ids is None):
            return None
        out, any_set = np.zeros((batch, 1), dtype=np.uint64), False
        for b in range(batch):
            name = _text(names[min(b, len(names) - 1)]) if names is not None else ""
            tid = int(np.asarray(task_ids[min(b, len(task_ids) - 1)]).reshape(-1)[0]) if task_ids is not None else 0
            if name and name != self.base:
                if name not in self.ids:
                    raise ValueError(f"lora_name {name!r} is not a LoRA adapter of this model; known adapters: "
                                     f"{self.known()} (or no lora_name for the base model)")
                if tid and tid != self.ids[name]:
                    raise ValueError(f"lora_name {name!r} is task id {self.ids[name]}, but lora_task_id={tid} "
                                     "was sent too; send one of them")
                tid = self.ids[name]
            if tid:
                out[b, 0], any_set = tid, True
        if not any_set:
            return None
        if (out[:, 0] == 0).any():
            # One output tensor for the whole request: a row without an adapter cannot leave it unset.
            raise ValueError("some rows of this request name a LoRA adapter and some do not; send the base-model "
                             "rows as their own request")
        return out
