"""LoRA adapters by name, for preprocessing: a request's ``lora_name`` (or ``lora_task_id``) -> the task id
tensorrt_llm reads. Rendered by tritongen next to model.py; settings from config.pbtxt ``parameters``:
``lora_adapters`` (JSON {name: task id}, tritongen's spec ``lora.adapters``) and ``model_name`` (the base model's
name, which like an empty name means no adapter, as the OpenAI front's model ids do).

A request with neither input gets no OUT_LORA_TASK_ID, so the ensemble leaves tensorrt_llm's lora_task_id unset:
the base model. Without configured adapters this does nothing (the ensemble then passes lora_task_id itself).

Engine route without prefetching (parameter ``lora_weights_dir``: the build's <engine>/lora_tasks): the first
request of each adapter in this instance also carries the adapter's weights and config (model.lora_weights.npy /
model.lora_config.npy), which the backend then keeps in its LoRA cache; weights a client sends are passed on.
"""

from __future__ import annotations

import json

import numpy as np

OUTPUT = "OUT_LORA_TASK_ID"
WEIGHTS_OUTPUT, CONFIG_OUTPUT = "OUT_LORA_WEIGHTS", "OUT_LORA_CONFIG"


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
        self.weights_dir = param("lora_weights_dir")
        self.sent: set[int] = set()  # task ids whose weights this instance has sent

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

    def weights(self, task_ids, client_weights, client_config) -> list[tuple[str, np.ndarray]]:
        """The OUT_LORA_WEIGHTS / OUT_LORA_CONFIG tensors of a request: what the client sent, else the adapter's
        converted files on its first use here, else none (the backend has it cached)."""
        if not self.weights_dir:
            return []
        if client_weights is not None or client_config is not None:
            if client_weights is None or client_config is None:
                raise ValueError("lora_weights and lora_config go together; send both (or neither)")
            return [(WEIGHTS_OUTPUT, np.asarray(client_weights, dtype=np.float16)),
                    (CONFIG_OUTPUT, np.asarray(client_config, dtype=np.int32))]
        if task_ids is None:
            return []
        ids = {int(t) for t in task_ids[:, 0]}
        if len(ids) != 1 or next(iter(ids)) in self.sent or next(iter(ids)) not in self.ids.values():
            return []
        tid = next(iter(ids))
        folder = f"{self.weights_dir}/{tid}"
        try:
            weights = np.load(f"{folder}/model.lora_weights.npy")
            config = np.load(f"{folder}/model.lora_config.npy")
        except OSError as exc:
            raise ValueError(f"LoRA task {tid}: its converted weights are not in {folder} ({exc}); rebuild the "
                             "engine with `tritongen engine`") from None
        rows = task_ids.shape[0]
        self.sent.add(tid)
        # The converted files hold one adapter as [1, modules x layers, size]: the same for every row.
        return [(WEIGHTS_OUTPUT, np.repeat(weights.astype(np.float16), rows, axis=0)),
                (CONFIG_OUTPUT, np.repeat(config.astype(np.int32), rows, axis=0))]
