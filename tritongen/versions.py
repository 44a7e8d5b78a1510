"""The NGC container / TensorRT-LLM version matrix (data in catalog/containers.yaml).

Answers: which image a route defaults to (the newest container that supports it), which TensorRT-LLM version
an image carries, and whether an engine built by one version may be served by another (it may not: engines are
not portable across TensorRT-LLM versions).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from . import catalog
from .errors import GatingError

_TAG_RE = re.compile(r":(\d{2}\.\d{2})(?:-|$)")


@dataclass(frozen=True)
class Container:
    tag: str
    trtllm: str
    routes: tuple[str, ...]
    triton: str | None = None
    cuda: str | None = None

    def image(self) -> str:
        return _matrix()["image_pattern"].format(tag=self.tag)


def _matrix() -> dict:
    return catalog.load("containers.yaml")


def containers() -> list[Container]:
    """Containers that ship TensorRT-LLM, newest first (rows without an image, like 26.08, are skipped)."""
    out = []
    for tag, row in _matrix()["containers"].items():
        if not row.get("trtllm"):
            continue
        routes = tuple(name for name, ok in (row.get("routes") or {}).items() if ok)
        out.append(Container(
            tag=str(tag),
            trtllm=str(row["trtllm"]),
            routes=routes,
            triton=str(row["triton"]) if row.get("triton") else None,
            cuda=str(row["cuda"]) if row.get("cuda") else None,
        ))
    return sorted(out, key=lambda c: c.tag, reverse=True)


def by_tag(tag: str) -> Container | None:
    return next((c for c in containers() if c.tag == tag), None)


def tag_of(image: str) -> str | None:
    m = _TAG_RE.search(image)
    return m.group(1) if m else None


def matrix_routes() -> set[str]:
    """The routes the version matrix tracks, because a container may lack them (engine, llmapi). Any other route
    (cpu, or one registered from outside) needs only the python backend, which every container has."""
    return {name for row in _matrix()["containers"].values() for name in (row.get("routes") or {})}


def default_container(route: str) -> Container:
    """The newest container supporting ``route`` (a route the matrix does not track: any container)."""
    tracked = route in matrix_routes()
    for c in containers():
        if not tracked or route in c.routes:
            return c
    raise GatingError(f"no known container supports route {route!r}")


def resolve_container(spec) -> tuple[str, str | None]:
    """(image, TensorRT-LLM version) for a spec: the spec's image, else the route's pinned default."""
    route = spec.route.value
    if spec.container.image:
        image = spec.container.image
        version = spec.container.trtllm_version
        if version is None:
            tag = tag_of(image)
            found = by_tag(tag) if tag else None
            version = found.trtllm if found else None
        return image, version
    c = default_container(route)
    return c.image(), spec.container.trtllm_version or c.trtllm


def check_route_supported(spec) -> None:
    """Refuse a container that lacks the route (e.g. the engine backend after its removal)."""
    check_image_supports(resolve_container(spec)[0], spec.route.value)


def check_image_supports(image: str, route: str) -> None:
    """Refuse ``image`` for ``route`` when the version matrix says it lacks it (GatingError)."""
    if route not in matrix_routes():
        return
    tag = tag_of(image)
    c = by_tag(tag) if tag else None
    row = _matrix()["containers"].get(tag) if tag else None
    if c is None and row is not None:
        raise GatingError(f"container.image: {image}: {row.get('notes') or 'no TensorRT-LLM image for this tag'}")
    if c is None:
        return
    if route not in c.routes:
        supporting = [x.tag for x in containers() if route in x.routes]
        newest = supporting[0] if supporting else "none"
        raise GatingError(
            f"container.image: {image} (TensorRT-LLM {c.trtllm}) does not support the {route} route; "
            f"newest that does: {newest}",
            hint=f"set container.image to a supporting tag or drop it to use the default ({newest})",
        )


def same_release(a: str | None, b: str | None) -> bool:
    """Engines load only in the TensorRT-LLM release that built them; compare ignoring build suffixes."""
    if a is None or b is None:
        return True
    return _release(a) == _release(b)


def _release(version: str) -> tuple[str, ...]:
    # "1.0.3.2510" (a container build string) and "1.0.3" are the same release; "0.17.0.post1" is not 0.17.0.
    text = re.sub(r"\+.*$", "", str(version).strip())
    parts = text.split(".")
    if len(parts) == 4 and parts[3].isdigit() and len(parts[3]) >= 4:
        parts = parts[:3]
    return tuple(parts)
