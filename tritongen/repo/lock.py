"""The lock file, ``tritongen.lock.yaml``: how a repository was made, and the hash of every file it holds.

Written by the renderer next to the models; read by ``validate`` (files edited since), the overwrite check, the
runtimes (route, container, spec) and the benchmarks. It lives apart from the renderer so that readers do not
load jinja.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import yaml

from .. import __version__
from ..resolve import Deployment
from ..spec import Route, dump_spec

LOCK_NAME = "tritongen.lock.yaml"


def file_hashes(repo: Path) -> dict[str, str]:
    """sha256 of every file in the repository except the lock file, keyed by relative path."""
    out = {}
    for path in sorted(repo.rglob("*")):
        if path.is_file() and path.name != LOCK_NAME and "__pycache__" not in path.parts:
            out[path.relative_to(repo).as_posix()] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def lock_data(deployment: Deployment, repo: Path) -> dict:
    """What ``tritongen.lock.yaml`` records: enough for the repository to explain itself."""
    spec = deployment.spec
    engine: dict | None = None
    if spec.route is Route.engine:
        from ..engine_config import engine_identity

        engine = engine_identity(deployment.engine_dir)
    return {
        "generated_by": f"tritongen {__version__}",
        "tritongen_version": __version__,
        "route": spec.route.value,
        "container": {"image": deployment.image, "trtllm_version": deployment.trtllm_version},
        "engine": engine,
        "spec": dump_spec(spec),
        "files": file_hashes(repo),
    }


def write_lock(deployment: Deployment, repo: Path) -> Path:
    """Write the lock file of the repository rendered into ``repo`` (after every other file is there)."""
    data = lock_data(deployment, repo)
    # No path in the header: the folder may be moved, and a bare name (`tritongen validate tiny`) is not a path.
    header = (
        "# Written by tritongen; it records how this repository was made. Do not edit: change the spec and run\n"
        "# `tritongen repo` again. `tritongen validate` on this folder checks the tree against it.\n"
    )
    path = repo / LOCK_NAME
    path.write_text(header + yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100))
    return path


def read_lock(repo: Path) -> dict | None:
    """The repository's lock file as a mapping; None when it has none or it does not parse."""
    path = Path(repo) / LOCK_NAME
    if not path.is_file():
        return None
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError:
        return None
    return data if isinstance(data, dict) else None
