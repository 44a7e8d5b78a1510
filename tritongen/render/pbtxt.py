"""Protobuf text-format helpers and the one Jinja environment every template renders in (StrictUndefined,
keep_trailing_newline): strings always go through the ``q`` filter, so a value cannot break a config.pbtxt, and
tables rendered into Python go through ``py``."""

from __future__ import annotations

import json
from pathlib import Path

import jinja2

from .. import contract
from ..routes.base import templates_root

_ESCAPES = {"\\": "\\\\", '"': '\\"', "'": "\\'", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def pbtxt_escape(value: object) -> str:
    """Escape a string for a double-quoted protobuf text-format literal (without the quotes).

    Control characters become octal escapes; other non-ASCII text stays UTF-8, which both the C++ and Python
    text-format parsers read back unchanged.
    """
    out = []
    for ch in str(value):
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\{ord(ch):03o}")
        else:
            out.append(ch)
    return "".join(out)


def pbtxt_quote(value: object) -> str:
    """``value`` as a double-quoted protobuf text-format string."""
    return f'"{pbtxt_escape(value)}"'


def pbtxt_bool(value: object) -> str:
    """``true`` or ``false``, as protobuf text format writes booleans."""
    return "true" if value else "false"


def python_literal(value: object) -> str:
    """A table (dict, tuple or list of plain values) as Python source, one entry a line, for the helper modules
    rendered next to model.py: their tables come from tritongen/contract.py instead of being copied by hand."""
    if isinstance(value, dict):
        return "{\n" + "".join(f"    {_scalar(k)}: {_scalar(v)},\n" for k, v in value.items()) + "}"
    if isinstance(value, (tuple, list)):
        return "(\n" + "".join(f"    {_scalar(v)},\n" for v in value) + ")"
    return _scalar(value)


def _scalar(value: object) -> str:
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if value is None or isinstance(value, (bool, int, float)):
        return repr(value)
    raise TypeError(f"not a plain value for a rendered table: {value!r}")


def _dtype_filter(tensor: contract.Tensor, logits_dtype: str) -> str:
    return contract.resolve_dtype(tensor, logits_dtype)


def environment(dirs: list[Path] | None = None) -> jinja2.Environment:
    """The one Jinja environment every template renders in; templates are looked up in ``dirs`` (first match
    wins; default: templates/)."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader([str(d) for d in dirs or [templates_root()]]),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
        trim_blocks=False,
        lstrip_blocks=False,
    )
    env.filters["q"] = pbtxt_quote
    env.filters["pbool"] = pbtxt_bool
    env.filters["dtype"] = _dtype_filter
    env.filters["py"] = python_literal
    return env
