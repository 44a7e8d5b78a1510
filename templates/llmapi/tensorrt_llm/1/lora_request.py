"""llmapi route: a request's LoRA adapter, by name, as TensorRT-LLM's LLM-API LoRARequest(name, id, path).

Rendered by tritongen next to model.py when the spec has ``lora.adapters``. The container's llmapi model (NVIDIA's
all_models/llmapi) calls ``LLM.generate_async(prompt, sampling_params, streaming)`` without a LoRA request, so
model.py hooks in at two points of it: ``_convert_request`` (where the request is read) picks the adapter named by
the ``lora_name`` input, and the engine's ``generate_async`` gets it as ``lora_request``. The two run in the same
asyncio task for a request, so a context variable carries the choice from one to the other without touching
other requests. The adapters are loaded by the LLM itself (model.yaml ``lora_config``).

Checked by rendering only: tritongen's tests have no TensorRT-LLM.
"""

from __future__ import annotations

import contextvars
import json

import numpy as np

_CHOSEN: contextvars.ContextVar = contextvars.ContextVar("tritongen_lora_request", default=None)


class LoraRequests:
    def __init__(self, text: str):
        """``text``: the ``tritongen_lora_adapters`` parameter, JSON {name: [task id, adapter folder]}."""
        data = json.loads(text) if text and text.strip() else {}
        self.table = {str(name): (int(v[0]), str(v[1])) for name, v in data.items()}

    def __bool__(self) -> bool:
        return bool(self.table)

    def select(self, request, pb_utils) -> None:
        """Choose this request's adapter (no lora_name, or an empty one: the base model)."""
        tensor = pb_utils.get_input_tensor_by_name(request, "lora_name")
        name = ""
        if tensor is not None:
            values = np.asarray(tensor.as_numpy()).reshape(-1)
            if values.size:
                name = values[0].decode("utf-8", "replace") if isinstance(values[0], bytes) else str(values[0])
        if not name:
            _CHOSEN.set(None)
            return
        if name not in self.table:
            raise pb_utils.TritonModelException(
                f"lora_name {name!r} is not a LoRA adapter of this model; known adapters: "
                f"{', '.join(sorted(self.table))} (or no lora_name for the base model)")
        from tensorrt_llm.executor.request import LoRARequest

        task_id, path = self.table[name]
        _CHOSEN.set(LoRARequest(name, task_id, path))

    def wrap(self, llm) -> None:
        """Make ``llm.generate_async`` pass the chosen adapter (upstream's call names none)."""
        original = llm.generate_async

        def generate_async(*args, **kwargs):
            if kwargs.get("lora_request") is None:
                kwargs["lora_request"] = _CHOSEN.get()
            return original(*args, **kwargs)

        llm.generate_async = generate_async
