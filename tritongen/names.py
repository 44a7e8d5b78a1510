"""Names that become paths, and the rule that nothing is written outside the folder the user chose.

One rule for every name that ends up as a file or folder name (repository name, model name, model prefix,
server name, compose output names): letters, digits, ``.``, ``_`` and ``-`` only, at most ``MAX_NAME`` characters,
and never ``.`` or ``..``. The spec model (``spec.SafeName``), the CLI options and the writers all call
``check_name``; the writers also call ``inside`` on the final path, which resolves symlinks, so a name that passed
the first check still cannot lead outside the output folder through a link.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from .errors import UsageError

#: The characters a name may hold; also the pattern of ``serving.model_prefix`` (a prefix of model names).
NAME_CHARS = r"A-Za-z0-9._-"
MAX_NAME = 255
#: Longest path tritongen accepts anywhere (Linux PATH_MAX).
MAX_PATH = 4096
_NAME_RE = re.compile(rf"[{NAME_CHARS}]+")


def shorten(value: object, limit: int = 60) -> str:
    """``repr`` of a value cut to ``limit`` characters, so that a huge input never becomes a huge message."""
    text = repr(value)
    if len(text) <= limit:
        return text
    size = f"{len(value)} characters" if isinstance(value, (str, bytes)) else f"{len(text)} characters as text"
    return f"{text[:limit]}... ({size})"


def show_path(path: Path | str, limit: int = 300) -> str:
    """A path for a message: as is, or cut with its length when it is absurdly long."""
    text = str(path)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def name_problem(value: object) -> str | None:
    """Why ``value`` cannot be used as a name, or None when it can."""
    if not isinstance(value, str):
        return f"{shorten(value)} is not a string"
    if not value:
        return "must not be empty"
    if len(value) > MAX_NAME:
        return f"{shorten(value)} is longer than {MAX_NAME} characters"
    if not _NAME_RE.fullmatch(value):
        return f"{shorten(value)} may only hold letters, digits, '.', '_' and '-' (it names a file or folder)"
    if value in (".", ".."):
        return f"{value!r} is not a name"
    return None


def check_name(value: str, what: str) -> str:
    """``value`` if it is a safe name, else a UsageError naming the option or field (``what``)."""
    problem = name_problem(value)
    if problem:
        raise UsageError(f"{what}: {problem}")
    return value


def safe_name_from(text: str, fallback: str = "model") -> str:
    """A name derived from free text (e.g. a checkpoint folder's name): unsafe characters become '-'."""
    name = re.sub(rf"[^{NAME_CHARS}]+", "-", text).strip("-")[:MAX_NAME]
    return name if name and name not in (".", "..") else fallback


def inside(path: Path | str, root: Path | str, what: str = "output") -> Path:
    """``path`` made absolute, after checking that it (symlinks resolved) lies inside ``root``.

    ``root`` itself is allowed. A path below a not-yet-existing folder resolves as far as it exists, which is
    enough: what does not exist yet cannot be a link.
    """
    path = Path(os.path.abspath(path))
    real_root = Path(os.path.realpath(root))
    real = Path(os.path.realpath(path))
    if real != real_root and real_root not in real.parents:
        raise UsageError(f"{what}: {shorten(str(path), 200)} is outside {real_root}",
                         hint="names may not contain '/' or '..', and no link may lead out of the output folder")
    return path
