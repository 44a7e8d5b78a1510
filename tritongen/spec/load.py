"""Resolving a spec from its sources, and saying clearly what is wrong with it.

Sources merge in a fixed order, later wins: catalogue entry < YAML file (``--spec``) < ``--plan`` file <
command-line options < ``--set key=value``. Options arrive typed (an int, a path, a list of GPU ids) and are
merged as they are; only ``--set`` is text, read as YAML. Each invalid value is reported on its own line naming
the field and what is allowed.
"""

from __future__ import annotations

import copy
import difflib
import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from ..errors import SpecError
from ..names import name_problem, safe_name_from, shorten, show_path
from .fields import path_value
from .model import Spec, submodel
from .rules import CROSS_MARK, adopt_engine


def deep_merge(base: dict, override: dict) -> dict:
    """Recursive dict merge; ``override`` wins; lists and scalars are replaced, not merged."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def parse_set(assignment: str) -> tuple[list[str], Any]:
    """Parse ``a.b.c=value``; the value is read as a YAML scalar/flow value (``true``, ``64``, ``[0,1]``)."""
    if "=" not in assignment:
        raise SpecError([f"--set {assignment!r}: expected key=value, e.g. limits.max_batch_size=32"])
    key, _, raw = assignment.partition("=")
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise SpecError([f"--set {assignment!r}: empty key"])
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key.split("."), value


def apply_sets(data: dict, assignments: list[str]) -> dict:
    """Apply ``--set`` assignments to a spec dict, checking each key against the spec's fields."""
    out = copy.deepcopy(data)
    for assignment in assignments:
        path, value = parse_set(assignment)
        _assign(out, path, value, assignment)
    return out


def apply_options(data: dict, options: dict[str, Any]) -> dict:
    """Apply typed option values (dotted field -> value; None means not given) to a spec dict, the way
    ``--set`` would: a path becomes its text and a tuple a list, as a spec file would hold them."""
    out = copy.deepcopy(data)
    for key, value in options.items():
        if value is None:
            continue
        if isinstance(value, os.PathLike):
            value = os.fspath(value)
        elif isinstance(value, tuple):
            value = list(value)
        _assign(out, key.split("."), value, f"{key}={value}")
    return out


def _assign(data: dict, path: list[str], value: Any, assignment: str) -> None:
    if path == ["precision"] and not isinstance(value, dict):
        path = ["precision", "format"]  # the shorthand the --precision option also is
    _check_path(path, assignment)
    node = data
    for part in path[:-1]:
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node = node[part]
    node[path[-1]] = value


def _check_path(path: list[str], assignment: str) -> None:
    model: type[BaseModel] = Spec
    for i, part in enumerate(path):
        fields = model.model_fields
        if part not in fields:
            where = ".".join(path[:i]) or "the spec"
            guess = _did_you_mean(path[: i + 1])
            raise SpecError([f"--set {assignment}: unknown field {'.'.join(path[: i + 1])!r}"
                             f"{guess or ';'} fields of {where}: {', '.join(fields)}"])
        annotation = fields[part].annotation
        sub = submodel(annotation)
        if sub is None and i == len(path) - 2 and getattr(annotation, "__origin__", None) is dict:
            return  # one entry of a mapping (lora.adapters.<name>=<dir>): the model checks the key
        if i < len(path) - 1 and sub is None:
            raise SpecError([f"--set {assignment}: {'.'.join(path[: i + 1])} is a value, not a section"])
        model = sub or model


def load_yaml_file(path: Path) -> dict:
    """Read a YAML mapping, with a one-line error for missing files or bad YAML."""
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise SpecError([f"{show_path(path)}: cannot read spec file ({exc.strerror})"]) from None
    except ValueError as exc:  # a NUL byte in the path
        raise SpecError([f"{show_path(path)}: cannot read spec file ({exc})"]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark else ""
        raise SpecError([f"{show_path(path)}{where}: not valid YAML ({getattr(exc, 'problem', exc)})"]) from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise SpecError([f"{show_path(path)}: a spec file must be a YAML mapping, got {type(data).__name__}"])
    return data


def build_spec(data: dict, *, source: str = "spec") -> Spec:
    """Validate a merged spec dict; every problem becomes one line ``field: what is wrong (allowed: ...)``."""
    try:
        return Spec.model_validate(data)
    except ValidationError as exc:
        raise SpecError(format_validation_error(exc), hint=f"see `tritongen spec --reference` ({source})") from None


def format_validation_error(exc: ValidationError) -> list[str]:
    lines: list[str] = []
    for err in exc.errors(include_url=False):
        msg = err.get("msg", "")
        if CROSS_MARK in msg:
            lines.extend(msg.split(CROSS_MARK, 1)[1].splitlines())
            continue
        loc = "".join(f"[{x}]" if isinstance(x, int) else f".{x}" for x in err.get("loc", ())).lstrip(".")
        if err.get("type") == "extra_forbidden":
            guess = _did_you_mean(list(err.get("loc", ())))
            lines.append(f"{loc}: unknown field{guess or ';'} check the spelling (`tritongen spec --reference` "
                         "lists every field)")
            continue
        lines.append(f"{loc or 'spec'}: {_describe(err)}")
    return lines


def _did_you_mean(loc: list) -> str:
    """'; did you mean X?' for an unknown field, from the fields of the section it is in ('' when nothing close)."""
    model: type[BaseModel] | None = Spec
    for part in loc[:-1]:
        field = model.model_fields.get(str(part)) if model else None
        model = submodel(field.annotation) if field else None
    if model is None or not loc:
        return ""
    close = difflib.get_close_matches(str(loc[-1]), list(model.model_fields), n=1, cutoff=0.6)
    return f"; did you mean {close[0]}?" if close else ""  # the caller's next words follow


def _describe(err: dict) -> str:
    kind = err.get("type", "")
    value = err.get("input")
    ctx = err.get("ctx") or {}
    shown = shorten(value) if not isinstance(value, dict) else "a mapping"
    if isinstance(value, bool):
        shown = "true" if value else "false"
    if kind == "extra_forbidden":
        return "unknown field (check the spelling; `tritongen spec --reference` lists every field)"
    if kind == "missing":
        return "required field is missing"
    if kind == "enum":
        return f"{shown} is not allowed; allowed: {ctx.get('expected', '').replace(' or ', ', ')}"
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        op = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<", "less_than_equal": "<="}[kind]
        bound = next(iter(ctx.values()), "?")
        return f"{shown} must be {op} {bound}"
    if kind in ("string_too_long", "too_long"):
        limit = ctx.get("max_length", "?")
        return f"{shown} is longer than {limit} {'characters' if kind == 'string_too_long' else 'items'}"
    if kind == "string_pattern_mismatch":
        return f"{shown} does not match {ctx.get('pattern', '?')}"
    if kind.endswith("_parsing") or kind.endswith("_type"):
        expected = kind.split("_")[0]
        return f"{shown} is not a valid {expected}"
    if kind == "value_error":  # a validator's own message, already one line
        return str(ctx.get("error", err.get("msg", "invalid")))
    return f"{shown}: {err.get('msg', 'invalid')}"


def dump_spec(spec: Spec) -> dict:
    """A plain, YAML-friendly dict of the spec (enums as values, paths as strings)."""
    return spec.model_dump(mode="json")


def load_spec(
    model: str | None = None,
    *,
    spec_file: Path | list[Path] | None = None,
    options: dict[str, Any] | None = None,
    sets: list[str] | None = None,
) -> Spec:
    """Resolve a deployment spec: catalogue entry < ``spec_file`` (one, or several merged in order, e.g. a spec
    then a plan from `tritongen plan --write-spec`) < ``options`` (CLI flags: dotted field -> typed value) < ``sets``
    (``--set key=value``). ``model`` is a catalogue name, or any name when the checkpoint is given (its
    config.json then supplies the shape facts)."""
    from .. import catalog

    files = [spec_file] if isinstance(spec_file, (str, Path)) else list(spec_file or [])
    file_data: dict = {}
    for path in files:
        file_data = deep_merge(file_data, load_yaml_file(Path(path)))
    spec_file = files[-1] if files else None
    cli_data = apply_options({}, options or {})
    cli_data = apply_sets(cli_data, sets or [])
    if model is not None and name_problem(model):
        raise SpecError([f"model: {name_problem(model)}"], hint="see `tritongen models` for the catalogue's names")
    name = model or (file_data.get("model") or {}).get("name") or (cli_data.get("model") or {}).get("name")
    checkpoint = ((cli_data.get("model") or {}).get("checkpoint_dir")
                  or (file_data.get("model") or {}).get("checkpoint_dir"))
    if checkpoint is not None:
        try:
            path_value(checkpoint)
        except ValueError as exc:
            raise SpecError([f"model.checkpoint_dir: {exc}"]) from None
    if name is not None and name_problem(name):
        # Before the catalogue lookup and the file system see it (a 10 MB name, a path).
        raise SpecError([f"model.name: {name_problem(name)}"])
    if not name:
        if checkpoint:
            # A folder name may hold anything (spaces, '+'); the model name becomes cache folder names.
            name = safe_name_from(Path(str(checkpoint)).name)
        else:
            raise SpecError(["model: give a catalogue model name (see `tritongen models`), a spec file with "
                             "model.name, or --checkpoint DIR"])
    base: dict = {}
    if name in catalog.model_names():
        base = catalog.model_entry(name)
    elif not checkpoint and not (file_data.get("model") or {}).get("architecture"):
        catalog.model_entry(name)  # raises the unknown-model error with suggestions
    merged = deep_merge(deep_merge(base, file_data), cli_data)
    # The positional MODEL is a command-line value, so it names the model over the catalogue and file.
    merged.setdefault("model", {})["name"] = model or merged["model"].get("name") or name
    if checkpoint and Path(str(checkpoint)).joinpath("config.json").is_file():
        # Facts from the checkpoint fill what the catalogue/spec did not say; an explicit value still wins.
        explicit = deep_merge(file_data.get("model") or {}, cli_data.get("model") or {})
        facts = catalog.model_info_from_checkpoint(Path(str(checkpoint)),
                                                   given=set(explicit) | set(base.get("model") or {}))
        for key, value in facts.items():
            if key not in explicit:
                merged["model"][key] = value
    _limits_within_context(merged)
    adopted = adopt_engine(merged, explicit=_dotted_keys(deep_merge(file_data, cli_data)))
    spec = build_spec(merged, source=str(spec_file) if spec_file else "catalogue + options")
    spec._from_engine = adopted
    return spec


def _limits_within_context(merged: dict) -> None:
    """Lower the ``limits`` defaults (max_seq_len 4096, max_input_len 2048) that no source set to what the
    model's context allows, so a 2k-context model is usable without overrides; a value given anywhere stays
    (and is still checked against the context)."""
    from .model import Limits

    ctx = (merged.get("model") or {}).get("context_length")
    lim = merged.get("limits", {})
    if not isinstance(ctx, int) or isinstance(ctx, bool) or ctx < 2 or not isinstance(lim, dict):
        return
    seq = lim.get("max_seq_len", Limits.model_fields["max_seq_len"].default)
    if "max_seq_len" not in lim and seq > ctx:
        lim["max_seq_len"] = seq = ctx
    if "max_input_len" not in lim and isinstance(seq, int) and Limits.model_fields["max_input_len"].default >= seq:
        lim["max_input_len"] = max(1, seq // 2)
    if lim:
        merged["limits"] = lim


def _dotted_keys(data: dict, prefix: str = "") -> set[str]:
    """Every key of a nested mapping as a dotted path, sections included (``limits``, ``limits.max_seq_len``)."""
    keys = set()
    for key, value in data.items():
        keys.add(prefix + str(key))
        if isinstance(value, dict):
            keys |= _dotted_keys(value, f"{prefix}{key}.")
    return keys


