"""Render a deployment's files into a folder: the route's manifest says which files, its context fills them."""

from __future__ import annotations

import shutil
from pathlib import Path

import jinja2

from .. import routes
from ..errors import TritongenError
from ..names import inside
from ..resolve import Deployment
from ..routes.base import find_template
from .pbtxt import environment


def render_into(deployment: Deployment, dest: Path) -> list[Path]:
    """Render every file of the deployment's repository into ``dest`` (which must exist). Returns written paths."""
    route = routes.for_spec(deployment.spec)
    route.check(deployment)
    dirs = route.template_dirs
    env = environment(dirs)
    layout = route.layout(deployment)
    contexts: dict[str, dict] = {}
    prefix = deployment.spec.serving.model_prefix
    written = []
    for item in layout.items:
        target = inside(dest / (prefix + item.dst), dest, "repository file")  # first component: the model
        target.parent.mkdir(parents=True, exist_ok=True)
        if item.rendered:
            if item.role not in contexts:
                contexts[item.role] = route.draft_context(deployment) if item.role == "draft" \
                    else route.context(deployment)
            try:
                text = env.get_template(item.src).render(**contexts[item.role])
            except jinja2.TemplateError as exc:
                raise TritongenError(f"template {item.src}: {exc}") from exc
            target.write_text(text)
        else:
            shutil.copyfile(find_template(dirs, item.src), target)
        written.append(target)
    for d in layout.empty_dirs:
        inside(dest / (prefix + d), dest, "repository folder").mkdir(parents=True, exist_ok=True)
    return written
