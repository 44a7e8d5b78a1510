"""The routes and their registry: the spec's ``route`` value -> the :class:`~tritongen.routes.base.Route`.

A built-in route is a module here whose ``ROUTE`` is the route, plus its templates/<route>/ folder and one line
in :data:`BUILTIN`. Anything else (a plugin, a test) calls :func:`register`.
"""

from __future__ import annotations

import importlib

from ..errors import TritongenError
from ..spec import Route as SpecRoute
from .base import Route

#: route name -> module that defines ``ROUTE``: one line per route.
BUILTIN: dict[str, str] = {
    "engine": "tritongen.routes.engine",
    "cpu": "tritongen.routes.cpu",
    "llmapi": "tritongen.routes.llmapi",
}

_registered: dict[str, Route] = {}


def register(route: Route) -> Route | None:
    """Serve ``route.name`` with ``route`` from now on; returns the route it replaces (None: a built-in or none)."""
    previous = _registered.get(route.name)
    _registered[route.name] = route
    SpecRoute.add(route.name)  # the spec takes the name from now on
    return previous


def unregister(name: str) -> None:
    """Forget a registered route (a built-in of that name is served again)."""
    _registered.pop(name, None)
    if name not in BUILTIN:
        SpecRoute.forget(name)


def get(name: str) -> Route:
    """The route that serves ``name``."""
    if name in _registered:
        return _registered[name]
    if name not in BUILTIN:
        raise TritongenError(f"route {name!r}: no such route (known: {', '.join(names())})")
    return importlib.import_module(BUILTIN[name]).ROUTE


def names() -> list[str]:
    """Every route name served: the built-ins and the registered ones."""
    return sorted(set(BUILTIN) | set(_registered))


def for_spec(spec) -> Route:
    """The route that serves the spec's ``route``."""
    return get(spec.route.value)
