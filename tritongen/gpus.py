"""GPU facts (catalog/gpus.yaml): look a GPU up by the name users or nvidia-smi give it."""

from __future__ import annotations

import difflib
import re

from . import catalog
from .errors import CatalogError

ARCHS = ("ampere", "ada", "hopper", "blackwell")


def _norm(name: str) -> str:
    text = name.strip().lower().replace("nvidia", "").replace("geforce", "geforce ")
    return re.sub(r"[\s_-]+", "-", text.strip()).strip("-")


def table() -> dict[str, dict]:
    return catalog.load("gpus.yaml")["gpus"]


def _names(key: str, facts: dict) -> set[str]:
    """Every exact name a catalogue entry answers to: its key, product name, aliases and the nvidia-smi /
    GPU-feature-discovery product names (``NVIDIA-H100-80GB-HBM3``) it lists."""
    raw = [key, facts.get("name", ""), *facts.get("aliases", []), *facts.get("k8s_product_labels", [])]
    return {n for n in (_norm(str(r)) for r in raw) if n}


def lookup(name: str) -> tuple[str, dict] | None:
    """(key, facts) for a GPU name such as 'h100', 'H100 80GB HBM3' or 'NVIDIA A100-SXM4-80GB'.

    Exact names only (key, product name, alias, nvidia-smi product name), never a near match: "H100 NVL" is
    not the H100 SXM, and planning one as the other is a silently wrong answer. A key wins over another
    entry's alias or label."""
    wanted = _norm(name)
    gpus = table()
    if wanted in gpus:
        return wanted, gpus[wanted]
    for key, facts in gpus.items():
        if wanted in _names(key, facts):
            return key, facts
    return None


def suggestions(name: str, n: int = 3) -> list[str]:
    """Catalogue keys whose names are close to ``name`` (for a did-you-mean; never used to pick a GPU)."""
    by_name = {alias: key for key, facts in table().items() for alias in _names(key, facts)}
    close = difflib.get_close_matches(_norm(name), list(by_name), n=8, cutoff=0.6)
    wanted = _norm(name)
    # A name that contains a known key ("h100-nvl-94gb" -> h100-nvl) is a likely meaning too.
    close += [a for a in by_name if a in wanted and len(a) > 2]
    out: list[str] = []
    for alias in close:
        if by_name[alias] not in out:
            out.append(by_name[alias])
    return out[:n]


def get(name: str) -> tuple[str, dict]:
    """(key, facts) for an exact GPU name; a CatalogError with a did-you-mean otherwise."""
    found = lookup(name)
    if found is None:
        close = suggestions(name)
        hint = (f"did you mean {' or '.join(close)}? " if close else "") + f"known: {', '.join(table())}"
        raise CatalogError(f"unknown GPU {name!r}: not a catalogued name or alias (catalog/gpus.yaml)", hint=hint)
    return found


def arch_of(name: str) -> str | None:
    """Architecture family ('ampere', 'ada', 'hopper', 'blackwell') of a GPU name, or of an arch name itself."""
    if name.lower() in ARCHS:
        return name.lower()
    found = lookup(name)
    return found[1]["arch"] if found else None
