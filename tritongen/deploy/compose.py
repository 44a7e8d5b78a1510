"""A serving container written as a compose file (``tritongen serve --docker --compose-out``): an artefact to
start elsewhere, from the same plan ``tritongen serve --docker`` runs."""

from __future__ import annotations

import json

from ..runtime.docker import ContainerPlan

TEMPLATE = "deploy/compose.yaml.j2"


def render_compose(plan: ContainerPlan) -> str:
    """The plan as a compose file (templates/deploy/compose.yaml.j2)."""
    from .. import __version__
    from ..render import environment

    # The shared environment, with block tags trimmed for YAML; every scalar is written as a JSON string.
    env = environment().overlay(trim_blocks=True, lstrip_blocks=True)
    env.filters = {**env.filters, "y": lambda v: json.dumps(str(v))}
    return env.get_template(TEMPLATE).render(plan=plan, version=__version__)
