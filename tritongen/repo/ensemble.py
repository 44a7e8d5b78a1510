"""Ensemble wiring, checked tensor by tensor the way tritonserver does when it loads an ensemble: names, dtypes,
dims, required inputs, unused tensors, and the decoupled stream each tensor comes from."""

from __future__ import annotations

from dataclasses import dataclass

from .report import RepoCheck, dtype_name


@dataclass
class _Tensor:
    dtype: int
    dims: tuple[int, ...]
    origin: str | None  # nearest decoupled model this tensor came from (None: none)
    where: str


def _dims_compatible(a: tuple[int, ...], b: tuple[int, ...]) -> bool:
    if len(a) != len(b):
        return False
    return all(x == y or x == -1 or y == -1 for x, y in zip(a, b))


def check_ensemble(ctx: RepoCheck, name: str, cfg) -> None:
    path = ctx.repo / name / "config.pbtxt"
    models = ctx.report.models
    tensors: dict[str, _Tensor] = {
        t.name: _Tensor(t.data_type, tuple(t.dims), None, "ensemble input") for t in cfg.input
    }
    consumed: set[str] = set()
    produced_by: dict[str, str] = {}
    steps = list(cfg.ensemble_scheduling.step)
    if not steps:
        ctx.add(path, "ensemble_scheduling", "has no steps", "add the steps")
        return
    pending = list(enumerate(steps))
    # Steps may be listed in any order; resolve them as their inputs become available.
    for _ in range(len(steps) + 1):
        progressed = False
        for idx, step in list(pending):
            if all(v in tensors for v in step.input_map.values()):
                _check_step(ctx, path, idx, step, models, tensors, consumed, produced_by)
                pending.remove((idx, step))
                progressed = True
        if not pending or not progressed:
            break
    for idx, step in pending:
        missing = sorted(v for v in step.input_map.values() if v not in tensors)
        ctx.add(path, f"step {idx} ({step.model_name}).input_map",
                f"tensor(s) {', '.join(missing)} are neither ensemble inputs nor produced by any step",
                "map them from an ensemble input or an earlier step's output_map")
    outputs = {t.name: t for t in cfg.output}
    for out_name, out in outputs.items():
        src = tensors.get(out_name)
        if out_name not in produced_by:
            ctx.add(path, f"output {out_name}", "no step produces it",
                    "add an output_map whose value is this name, or remove the output")
            continue
        if not src.dtype:  # produced by a model that is missing or does not parse: already reported
            continue
        if src.dtype != out.data_type:
            ctx.add(path, f"output {out_name}", f"declared {dtype_name(out.data_type)} but step "
                    f"{produced_by[out_name]} produces {dtype_name(src.dtype)}", "make the dtypes agree")
        if not _dims_compatible(tuple(out.dims), src.dims):
            ctx.add(path, f"output {out_name}", f"dims {list(out.dims)} incompatible with {list(src.dims)} from "
                    f"{produced_by[out_name]}", "make the dims agree")
    for t in cfg.input:
        if t.name not in consumed:
            ctx.add(path, f"input {t.name}", "is not used by any step; Triton refuses unused ensemble tensors",
                    "map it into a step or remove it")
    for tname, producer in produced_by.items():
        if tname not in consumed and tname not in outputs:
            ctx.add(path, f"output_map {tname}", f"produced by {producer} but never used; Triton refuses unused "
                    "ensemble tensors", "consume it in a later step, expose it as an output, or drop the mapping")


def _check_step(ctx, path, idx, step, models, tensors, consumed, produced_by) -> None:
    label = f"step {idx} ({step.model_name})"
    model = models.get(step.model_name)
    if model is None:
        if step.model_name not in ctx.unparsable:
            ctx.add(path, f"{label}.model_name", f"no model {step.model_name!r} in the repository",
                    "add the model or fix the name")
        # Its tensors' types are unknown (dtype 0): nothing downstream is checked against them.
        for value in step.input_map.values():
            consumed.add(value)
        for value in step.output_map.values():
            tensors[value] = _Tensor(0, (), None, label)
            produced_by[value] = step.model_name
        return
    if model.max_batch_size and ctx.report.models.get(path.parent.name) is not None:
        ens = ctx.report.models[path.parent.name]
        if ens.max_batch_size > model.max_batch_size:
            ctx.add(path, "max_batch_size", f"{ens.max_batch_size} exceeds {step.model_name}'s "
                    f"max_batch_size {model.max_batch_size}", "lower it to the smallest composing model's")
    inputs = {t.name: t for t in model.input}
    # Triton refuses a step fed from two streams, where "no decoupled model" (the request itself) counts as
    # one too: checked against tritonserver 2.51, which rejects mixing an ensemble input or a preprocessing
    # output with a decoupled step's output.
    origins: set[str | None] = set()
    for key, value in step.input_map.items():
        consumed.add(value)
        src = tensors[value]
        origins.add(src.origin)
        decl = inputs.get(key)
        if decl is None:
            ctx.add(path, f"{label}.input_map {key}", f"{step.model_name} has no input {key!r}",
                    f"inputs are: {', '.join(sorted(inputs)) or 'none'}")
            continue
        if src.dtype and src.dtype != decl.data_type:
            ctx.add(path, f"{label}.input_map {key}", f"{value} is {dtype_name(src.dtype)} ({src.where}) but "
                    f"{step.model_name}.{key} expects {dtype_name(decl.data_type)}", "make the dtypes agree")
        elif src.dims and not _dims_compatible(src.dims, tuple(decl.dims)):
            ctx.add(path, f"{label}.input_map {key}", f"{value} has dims {list(src.dims)} ({src.where}) but "
                    f"{step.model_name}.{key} expects {list(decl.dims)}", "make the dims agree")
    for in_name, decl in inputs.items():
        if not decl.optional and in_name not in step.input_map:
            ctx.add(path, f"{label}.input_map", f"required input {in_name!r} of {step.model_name} is not mapped",
                    "map it from an ensemble input or an earlier step")
    if len(origins) > 1:
        names = sorted(o or "the request" for o in origins)
        ctx.add(path, f"{label}.input_map", f"receives tensors from different decoupled models "
                f"({', '.join(names)}); Triton refuses this ensemble", "feed the step from one stream")
    # A decoupled step starts a new stream; any other step's outputs belong to the stream it was fed from.
    decoupled = model.model_transaction_policy.decoupled
    streams = sorted(o for o in origins if o)
    own_origin = step.model_name if decoupled else (streams[0] if streams else None)
    outputs = {t.name: t for t in model.output}
    for key, value in step.output_map.items():
        decl = outputs.get(key)
        if decl is None:
            ctx.add(path, f"{label}.output_map {key}", f"{step.model_name} has no output {key!r}",
                    f"outputs are: {', '.join(sorted(outputs)) or 'none'}")
            tensors[value] = _Tensor(0, (), own_origin, label)
        else:
            if value in produced_by:
                ctx.add(path, f"{label}.output_map {key}", f"{value} is already produced by {produced_by[value]}",
                        "give each ensemble tensor one producer")
            tensors[value] = _Tensor(decl.data_type, tuple(decl.dims), own_origin, f"{step.model_name}.{key}")
        produced_by[value] = step.model_name
