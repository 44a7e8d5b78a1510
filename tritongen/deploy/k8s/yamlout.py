"""YAML with comments: every value taken from the spec says which spec field it comes from.

The object builders return plain dicts and lists in which a value derived from the spec is wrapped in
:class:`From` (the value and the field). :func:`dump` writes such a tree as block YAML with ``# spec: FIELD`` at
the end of the line; :func:`plain` strips the wrappers for the schema validators and the tests. Scalars are
written by PyYAML's own emitter, so quoting follows YAML's rules (``"8000"`` stays a string, ``on`` is quoted);
multi-line strings become literal blocks (``|``), which is how the Job scripts stay readable.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml


@dataclass(frozen=True)
class From:
    """A value and the spec field(s) it is derived from."""

    value: Any
    field: str


def plain(node: Any) -> Any:
    """The tree without :class:`From` wrappers."""
    if isinstance(node, From):
        return plain(node.value)
    if isinstance(node, dict):
        return {k: plain(v) for k, v in node.items()}
    if isinstance(node, (list, tuple)):
        return [plain(v) for v in node]
    return node


def _scalar(value: Any) -> str:
    text = yaml.safe_dump(value, default_flow_style=True, width=10**9, allow_unicode=True)
    text = text.rstrip("\n")
    if text.endswith("\n..."):
        text = text[:-4].rstrip("\n")
    elif text.endswith("..."):
        text = text[:-3].rstrip()
    return text


def _comment(field: str | None) -> str:
    return f"  # spec: {field}" if field else ""


def _unwrap(node: Any) -> tuple[Any, str | None]:
    field = None
    while isinstance(node, From):
        field = field or node.field
        node = node.value
    return node, field


def _block(text: str, indent: str) -> str:
    chomp = "" if text.endswith("\n") else "-"
    body = "\n".join((indent + line) if line else "" for line in text.rstrip("\n").split("\n"))
    return f"|{chomp}\n{body}"


def _value_lines(value: Any, field: str | None, indent: int) -> tuple[str, list[str]]:
    """(text after the key on the key's own line, following lines) for a value at nesting ``indent``."""
    pad = " " * indent
    if isinstance(value, dict) and value:
        return _comment(field), _mapping(value, indent + 2)
    if isinstance(value, (list, tuple)) and value:
        return _comment(field), _sequence(value, indent)
    if isinstance(value, str) and "\n" in value:
        return " " + _block(value, pad + "  "), []  # its field is named on the line above the key
    if isinstance(value, dict):
        return " {}" + _comment(field), []
    if isinstance(value, (list, tuple)):
        return " []" + _comment(field), []
    return " " + _scalar(value) + _comment(field), []


def _mapping(node: dict, indent: int) -> list[str]:
    pad = " " * indent
    out: list[str] = []
    for key, raw in node.items():
        value, field = _unwrap(raw)
        if isinstance(value, str) and "\n" in value and field:
            out.append(f"{pad}# {key}: spec: {field}")
        head, rest = _value_lines(value, field, indent)
        out.append(f"{pad}{_scalar(key)}:{head}")
        out += rest
    return out


def _sequence(node: list, indent: int) -> list[str]:
    pad = " " * indent
    out: list[str] = []
    for raw in node:
        value, field = _unwrap(raw)
        if isinstance(value, dict) and value:
            lines = _mapping(value, indent + 2)
            first = lines[0][indent + 2:]
            out.append(f"{pad}- {first}")
            out += lines[1:]
            if field:
                out[-1] += _comment(field)
        elif isinstance(value, (list, tuple)) and value:
            lines = _sequence(value, indent + 2)
            out.append(f"{pad}- {lines[0].lstrip()}")
            out += lines[1:]
        elif isinstance(value, str) and "\n" in value:
            out.append(f"{pad}- {_block(value, pad + '  ')}")
        else:
            text = "{}" if isinstance(value, dict) else "[]" if isinstance(value, (list, tuple)) else _scalar(value)
            out.append(f"{pad}- {text}{_comment(field)}")
    return out


def dump(node: Any, header: str = "") -> str:
    """One YAML document (``header`` lines become ``#`` comments above it)."""
    lines = [f"# {line}".rstrip() for line in header.splitlines()] if header else []
    value, _ = _unwrap(node)
    lines += _mapping(value, 0)
    return "\n".join(lines) + "\n"


def dump_all(nodes: list[Any], header: str = "") -> str:
    """Several documents separated by ``---``."""
    return (f"# {header}\n" if header else "") + "---\n".join(dump(n) for n in nodes)
