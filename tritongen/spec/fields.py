"""Field types the spec's models share (model.py, lora.py): names that become file names, and paths."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, StrictStr

from ..names import MAX_PATH, name_problem, shorten


def safe_name(value: str) -> str:
    problem = name_problem(value)
    if problem:
        raise ValueError(problem)
    return value


def path_value(value: Any) -> Any:
    # Checked before pydantic makes a Path: a too long path or a NUL byte fails later as an OSError/ValueError
    # deep in a file system call ("File name too long", "embedded null byte").
    if isinstance(value, (str, os.PathLike)):
        text = os.fspath(value)
        if len(text) > MAX_PATH:
            raise ValueError(f"{shorten(text)} is longer than {MAX_PATH} characters")
        if "\x00" in text:
            raise ValueError(f"{shorten(text)} holds a NUL byte")
    return value


#: A name that becomes a file or folder name (tritongen.names): [A-Za-z0-9._-], at most 255 characters.
SafeName = Annotated[StrictStr, AfterValidator(safe_name)]
#: A file system path of at most 4096 characters.
PathField = Annotated[Path, BeforeValidator(path_value)]
