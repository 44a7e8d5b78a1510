"""GPU facts (catalog/gpus.yaml): look a GPU up by the name users or nvidia-smi give it."""

from __future__ import annotations

import re

from . import catalog
from .errors import CatalogError

ARCHS = ("ampere", "ada", "hopper", "blackwell")


def _norm(name: str) -> str:
    text = name.strip().lower().replace("nvidia", "").replace("geforce", "geforce ")
    return re.sub(r"[\s_]+", "-", text.strip()).strip("-")


def table() -> dict[str, dict]:
    return catalog.load("gpus.yaml")["gpus"]


def lookup(name: str) -> tuple[str, dict] | None:
    """(key, facts) for a GPU name such as 'h100', 'H100 80GB HBM3' or 'NVIDIA A100-SXM4-80GB'."""
    wanted = _norm(name)
    gpus = table()
    if wanted in gpus:
        return wanted, gpus[wanted]
    for key, facts in gpus.items():
        names = {_norm(key), _norm(facts.get("name", "")), *(_norm(a) for a in facts.get("aliases", []))}
        if wanted in names:
            return key, facts
    # nvidia-smi names carry extra words ("NVIDIA H100 80GB HBM3"): match the longest known alias inside.
    best = None
    for key, facts in gpus.items():
        for alias in (key, *facts.get("aliases", [])):
            a = _norm(alias)
            if a and re.search(rf"(^|-){re.escape(a)}($|-)", wanted) and (best is None or len(a) > best[0]):
                best = (len(a), key)
    if best:
        return best[1], gpus[best[1]]
    return None


def get(name: str) -> tuple[str, dict]:
    found = lookup(name)
    if found is None:
        raise CatalogError(f"unknown GPU {name!r}; known: {', '.join(table())}")
    return found


def arch_of(name: str) -> str | None:
    """Architecture family ('ampere', 'ada', 'hopper', 'blackwell') of a GPU name, or of an arch name itself."""
    if name.lower() in ARCHS:
        return name.lower()
    found = lookup(name)
    return found[1]["arch"] if found else None
