"""The package's shape is checked, not hoped for: no import circles, no lower layer importing a higher one, no
module grown past the size one reader can hold. The layers are listed in README.md ("Architecture")."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "tritongen"

#: Lowest first. A module belongs to the longest prefix listed; it may import its own layer or lower ones only.
LAYERS: list[tuple[str, ...]] = [
    ("errors", "proc", "names", "contract", "paths", "catalog", "runtime.container"),
    ("spec", "versions", "gpus", "engine_config"),
    ("engine", "planner", "tiny", "resolve"),
    ("repo.lock", "repo.inspect", "repo.report"),
    ("routes",),
    ("repo", "render"),
    ("runtime", "deploy"),
    ("clients",),
    ("pipeline",),
    ("cli", "commands"),
]
MAX_LINES = 600


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """Every tritongen module ``name`` imports, at module level or inside a function (a lazy import is still a
    dependency)."""
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name.removeprefix("tritongen.") for a in node.names if a.name.startswith("tritongen.")]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
                mod = ".".join(base + ([node.module] if node.module else []))
            elif node.module and node.module.startswith("tritongen"):
                mod = node.module.removeprefix("tritongen").lstrip(".")
            else:
                continue
            # ``from .x import y`` depends on the module x.y when y is one, else on x itself.
            subs = [f"{mod}.{a.name}".lstrip(".") for a in node.names if f"{mod}.{a.name}".lstrip(".") in known]
            targets = subs + ([mod] if len(subs) < len(node.names) else [])
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    return {name: _imports(name, path, known) for name, path in modules.items()}


def _layer(name: str) -> int:
    best, best_len = None, -1
    for level, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if (name == prefix or name.startswith(prefix + ".")) and len(prefix) > best_len:
                best, best_len = level, len(prefix)
    if best is None:
        raise AssertionError(f"tritongen.{name} belongs to no layer: add it to LAYERS and to the README")
    return best


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            members = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                members.append(w)
                if w == v:
                    break
            if len(members) > 1:
                found.append(sorted(members))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_there_are_no_import_circles():
    assert _cycles(_graph()) == []


def test_no_lower_layer_imports_a_higher_one():
    wrong = [f"tritongen.{a} (layer {_layer(a) + 1}) imports tritongen.{b} (layer {_layer(b) + 1})"
             for a, targets in sorted(_graph().items()) for b in sorted(targets) if _layer(b) > _layer(a)]
    assert wrong == []


def test_every_module_belongs_to_a_layer():
    for name in _modules():
        if name:
            _layer(name)


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_is_too_long(path):
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_LINES, f"{path.relative_to(PACKAGE)} has {lines} lines (split it by its sections)"


def test_the_checks_can_fail():
    """The circle and layer checks find what they exist to find."""
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _layer("cli") > _layer("render") > _layer("routes") > _layer("spec") > _layer("errors")
    assert _layer("repo.lock") < _layer("routes") < _layer("repo.validate")
