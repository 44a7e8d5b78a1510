"""Where tritongen keeps what it downloads, builds and logs: the one cache rule for the CLI and Make alike."""

from __future__ import annotations

import os
import re
from pathlib import Path


def cache_dir() -> Path:
    """Where tiny models, engines and server logs live; the one rule for the CLI and Make alike:

    ``$TRITONGEN_CACHE`` when set; else ``<checkout>/.cache`` when the CLI runs inside a tritongen checkout (the
    current folder or one above it, see ``project_root``), so that ``make demo`` and a plain ``tritongen repo tiny``
    there share one tiny model and one engine cache; else ``~/.cache/tritongen`` (``$XDG_CACHE_HOME``).
    """
    env = os.environ.get("TRITONGEN_CACHE")
    if env:
        return Path(env).expanduser().resolve()
    root = project_root()
    if root is not None:
        return root / ".cache"
    return user_cache_dir()


def user_cache_dir() -> Path:
    """~/.cache/tritongen (or $XDG_CACHE_HOME/tritongen): the cache outside any checkout."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "tritongen"


def project_root(start: Path | None = None) -> Path | None:
    """The tritongen checkout ``start`` (default: the current folder) is in: the nearest folder at or above it
    holding a Makefile and a pyproject.toml whose project name is tritongen. None outside a checkout."""
    try:
        here = Path(start or Path.cwd()).resolve()
    except OSError:  # the current folder was removed
        return None
    for folder in (here, *here.parents):
        try:
            if not (folder / "Makefile").is_file():
                continue
            text = (folder / "pyproject.toml").read_text()
        except (OSError, UnicodeDecodeError):
            continue
        if re.search(r'(?m)^name\s*=\s*"tritongen"\s*$', text):
            return folder
    return None
