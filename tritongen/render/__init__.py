"""Render a deployment into a Triton model repository, atomically.

Which files a repository has comes from its route's manifest (tritongen/routes); what fills them from the route's
context (render/tree.py). Only ``*.j2`` files are rendered; model.py and its helper modules are copied byte for
byte - they are real Python that runs in the stock NGC container. :func:`write_repo` renders into a temporary
sibling directory, validates it, and only then swaps it into place (render/writer.py).
"""

from ..routes.base import templates_root
from .pbtxt import environment, pbtxt_bool, pbtxt_escape, pbtxt_quote
from .tree import render_into
from .writer import check_overwritable, remove_stale_temp, write, write_repo

__all__ = ["check_overwritable", "environment", "pbtxt_bool", "pbtxt_escape", "pbtxt_quote", "remove_stale_temp",
           "render_into", "templates_root", "write", "write_repo"]
