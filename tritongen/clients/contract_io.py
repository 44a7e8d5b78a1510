"""Requests in the wire forms Triton takes, built from contract.py's tables in this one place.

Every client of tritongen (``LLMClient``, ``bench``, the OpenAI front, the benchmark scripts) names the values it
sends; the names, Triton dtypes and shapes come from the contract (``contract.CLIENT_INPUTS`` for the ensemble,
``contract.LLM_INPUTS`` for tensorrt_llm), so a client cannot send a dtype the model refuses. One request's
values become numpy arrays, tritonclient ``InferInput`` objects, a raw gRPC ``ModelInferRequest`` or the JSON
body of Triton's generate endpoints. Here too: the `stop` request for an abandoned stream, request ids and
server addresses.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import contract
from ..contract import Tensor

_NUMPY = {"BOOL": np.bool_, "INT32": np.int32, "INT64": np.int64, "UINT64": np.uint64, "FP16": np.float16,
          "FP32": np.float32, "BYTES": np.object_}


def split_url(url: str, default_port: int | None = None) -> str:
    """``host:port`` of a server address given as ``grpc://host:port/``, ``host:port`` or ``host`` (then
    ``default_port`` is added, when there is one)."""
    address = url.split("://", 1)[-1].rstrip("/")
    return address if default_port is None or ":" in address else f"{address}:{default_port}"


def request_id(given: str | None = None, *, prefix: str = "") -> str:
    """``given``, else a new id: every request gets its own, so that a `stop` for an abandoned stream reaches
    that request alone."""
    return given or prefix + uuid.uuid4().hex


def wire_dtype(tensor: Tensor) -> str:
    """The datatype a request names for ``tensor`` (Triton's config says TYPE_STRING, its protocol BYTES)."""
    if tensor.dtype == "TYPE_STRING":
        return "BYTES"
    if tensor.dtype == "logits":
        raise ValueError(f"{tensor.name}: its dtype follows serving.logits_dtype; clients do not send it")
    return tensor.dtype.removeprefix("TYPE_")


@functools.lru_cache(maxsize=8)
def _by_name(tensors: tuple[Tensor, ...]) -> dict[str, Tensor]:
    return {t.name: t for t in tensors}


def _array(tensor: Tensor, value: Any, batched: bool) -> tuple[np.ndarray, str]:
    if len(tensor.dims) > 1 and isinstance(value, np.ndarray) and value.ndim == len(tensor.dims):
        # A word list ([ids; offsets]) made by the repository's textcodec, for the engine's contract.
        dtype = wire_dtype(tensor)
        array = value.astype(_NUMPY[dtype])
        return (array[np.newaxis] if batched else array), dtype
    if len(tensor.dims) != 1:
        raise ValueError(f"{tensor.name}: tensors of {len(tensor.dims)} dimensions are not sent by clients")
    items = list(value) if isinstance(value, list | tuple) else [value]
    if tensor.dims[0] not in (-1, len(items)):
        raise ValueError(f"{tensor.name} takes {tensor.dims[0]} value(s), got {len(items)}")
    dtype = wire_dtype(tensor)
    if dtype == "BYTES":
        items = [s.encode("utf-8") if isinstance(s, str) else s for s in items]
    array = np.array(items, dtype=_NUMPY[dtype])
    return (array[np.newaxis] if batched else array), dtype


#: What a client may send the ensemble (or tensorrt_llm_bls): the client contract, and lora_name, which only
#: repositories with LoRA adapters declare (a request names it only for them).
CLIENT_REQUEST_INPUTS: tuple[Tensor, ...] = (*contract.CLIENT_INPUTS, contract.LORA_NAME)


@dataclass(frozen=True)
class Inputs:
    """One request's input values (name -> value; a list for a tensor of variable length) for one contract."""

    values: dict[str, Any]
    contract: tuple[Tensor, ...] = CLIENT_REQUEST_INPUTS
    #: The model batches (max_batch_size > 0): every tensor gets a leading batch dimension of 1.
    batched: bool = True

    def __post_init__(self) -> None:
        known = _by_name(self.contract)
        unknown = [name for name in self.values if name not in known]
        if unknown:
            raise ValueError(f"not inputs of the contract: {', '.join(unknown)}")

    def arrays(self) -> dict[str, tuple[np.ndarray, str]]:
        """name -> (array, Triton datatype): [1, 1] for a value, [1, n] for a list ([1] / [n] unbatched)."""
        known = _by_name(self.contract)
        return {name: _array(known[name], value, self.batched) for name, value in self.values.items()}

    def infer_inputs(self, protocol: str = "grpc") -> list:
        """tritonclient ``InferInput`` objects (``tritonclient.grpc`` or ``tritonclient.http``) holding the values."""
        if protocol == "grpc":
            import tritonclient.grpc as tc
        else:
            import tritonclient.http as tc

        out = []
        for name, (array, dtype) in self.arrays().items():
            tensor = tc.InferInput(name, list(array.shape), dtype)
            tensor.set_data_from_numpy(array)
            out.append(tensor)
        return out

    def infer_request(self, model: str, request_id: str, outputs: list[str], *, empty_final_response: bool = True):
        """A raw gRPC ``ModelInferRequest`` (for ``grpc.aio`` streams without tritonclient's client)."""
        from tritonclient.grpc import service_pb2
        from tritonclient.utils import serialize_byte_tensor

        req = service_pb2.ModelInferRequest(model_name=model, id=request_id)
        for name, (array, dtype) in self.arrays().items():
            tensor = req.inputs.add()
            tensor.name = name
            tensor.datatype = dtype
            tensor.shape.extend(array.shape)
            if dtype == "BYTES":
                raw = serialize_byte_tensor(array)
                req.raw_input_contents.append(raw.item() if raw.size else b"")
            else:
                req.raw_input_contents.append(np.ascontiguousarray(array).tobytes())
        for name in outputs:
            req.outputs.add().name = name
        if empty_final_response:
            # An empty final response tells the client the stream is over (decoupled models may end without data).
            req.parameters["triton_enable_empty_final_response"].bool_param = True
        return req

    def body(self, request_id: str | None = None) -> dict[str, Any]:
        """The JSON body of Triton's generate / generate_stream endpoints (which map each key to an input)."""
        head = {} if request_id is None else {"id": request_id}
        return {**head, **self.values}


def client_inputs(values: Mapping[str, Any]) -> Inputs:
    """The ensemble's client-contract inputs for ``values``; a value of None is not sent."""
    return Inputs({name: value for name, value in values.items() if value is not None})


def llm_inputs(values: Mapping[str, Any]) -> Inputs:
    """Inputs for the tensorrt_llm model itself (the TensorRT-LLM backend's contract: token ids in)."""
    return Inputs(dict(values), contract.LLM_INPUTS)


# -- the stop request -------------------------------------------------------------------------------------------


def companion(model: str, role: str = "tensorrt_llm") -> str:
    """A sibling model of the same repository, by role: ``llama-ensemble`` -> ``llama-tensorrt_llm`` (repositories
    rendered with serving.model_prefix name every model ``<prefix><role>``)."""
    for front in ("tensorrt_llm_bls", "ensemble"):
        if model.endswith(front):
            return model[: -len(front)] + role
    return role


def stop_inputs(model_inputs: Collection[str] | None) -> Inputs | None:
    """The `stop` request for a stop model with these input names (None: not known, so TensorRT-LLM's engine, the
    usual stop model), or None when the model takes no `stop`.

    Closing a stream cancels the request in Triton, but Triton's ensemble does not pass that on to a step that is
    already running, so the engine would generate until max_tokens; TensorRT-LLM's `stop` input, sent with the
    request's id, ends it."""
    if model_inputs is None or ("stop" in model_inputs and "input_ids" in model_inputs):
        # The engine and cpu routes: the inputs the backend requires, with placeholders, and the flag.
        return llm_inputs({"input_ids": [0], "input_lengths": 1, "request_output_len": 1, "stop": True})
    if "stop" in model_inputs and "text_input" in model_inputs:
        return Inputs({"text_input": "", "stop": True}, contract.LLMAPI_STOP_INPUTS, batched=False)
    return None


def text_of(array, errors: str = "strict") -> str:
    """The text of a text_output array (its elements joined)."""
    return "".join(x.decode("utf-8", errors) if isinstance(x, bytes) else str(x) for x in np.asarray(array).reshape(-1))
