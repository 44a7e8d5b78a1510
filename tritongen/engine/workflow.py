"""Glue between `tritongen repo` and the engine cache: find the engine for a spec (or explain how to get one)."""

from __future__ import annotations

from collections.abc import Callable

from ..errors import TritongenError
from . import cache


def ensure_engine(spec, *, echo: Callable[[str], None] = lambda m: None):
    """Return ``spec`` with ``engine.dir`` pointing at its cached engine."""
    entry = cache.entry_dir(spec)
    if (entry / "config.json").is_file():
        echo(f"using cached engine {entry}")
        return spec.model_copy(update={"engine": spec.engine.model_copy(update={"dir": entry})})
    raise TritongenError(
        f"no engine for this spec in the cache (expected {entry})",
        hint="build it with `tritongen engine MODEL ...`, give --engine-dir DIR, or pass --no-build",
    )
