"""A route added from outside the package: its module (the class below), its templates and manifest (written
into tmp_path) and one register call. `tritongen repo` renders it, `tritongen validate` applies its own rule, and
a real tritonserver serves it - with nothing in tritongen knowing it by name: registering the route is what makes
`--route toy` a valid spec value.
"""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner

from tritongen import routes
from tritongen.cli import cli
from tritongen.errors import ValidationFailed
from tritongen.repo.report import RepoCheck
from tritongen.resolve import Deployment
from tritongen.routes.base import BaseRoute, templates_root
from tritongen.spec import Route

MANIFEST = """\
models:
  toy:
    render: {config.pbtxt: toy/config.pbtxt.j2}
    copy: {1/model.py: toy/1/model.py}
"""

CONFIG = """\
name: {{ model_name | q }}
backend: "python"
max_batch_size: 0
input [ { name: "text_input" data_type: TYPE_STRING dims: [ 1 ] } ]
output [ { name: "text_output" data_type: TYPE_STRING dims: [ 1 ] } ]
parameters { key: "greeting" value: { string_value: {{ greeting | q }} } }
instance_group [ { kind: KIND_CPU count: 1 } ]
"""

MODEL = '''\
import json

import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        self.greeting = json.loads(args["model_config"])["parameters"]["greeting"]["string_value"]

    def execute(self, requests):
        responses = []
        for request in requests:
            text = pb_utils.get_input_tensor_by_name(request, "text_input").as_numpy().reshape(-1)[0]
            text = text.decode("utf-8") if isinstance(text, bytes) else str(text)
            out = np.array([f"{self.greeting}, {text}".encode("utf-8")], dtype=object)
            responses.append(pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor("text_output", out)]))
        return responses
'''


class ToyRoute(BaseRoute):
    """One python model that greets: the smallest route there is."""

    name = "toy"

    def __init__(self, templates: Path):
        self.templates = templates

    @property
    def template_dirs(self) -> list[Path]:
        return [self.templates, templates_root()]

    def context(self, deployment: Deployment) -> dict:
        return {"model_name": deployment.spec.serving.model_prefix + "toy", "greeting": "Hello from the toy"}

    def check_repo(self, check: RepoCheck) -> None:
        cfg = check.models.get(check.name("toy"))
        if cfg is not None and not cfg.parameters["greeting"].string_value:
            check.add(check.repo / check.name("toy") / "config.pbtxt", "parameters.greeting", "is empty", "say hello")


@pytest.fixture
def toy_route(tmp_path):
    templates = tmp_path / "templates"
    for rel, text in (("toy/manifest.yaml", MANIFEST), ("toy/config.pbtxt.j2", CONFIG), ("toy/1/model.py", MODEL)):
        (templates / rel).parent.mkdir(parents=True, exist_ok=True)
        (templates / rel).write_text(text)
    assert routes.register(ToyRoute(templates)) is None
    yield
    routes.unregister("toy")


def _render(tmp_path: Path) -> Path:
    out = tmp_path / "repo"
    result = CliRunner().invoke(cli, ["repo", "tiny", "--route", "toy", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert f"wrote {out} (toy route: toy)" in result.output
    return out


def test_a_registered_route_is_rendered_and_validated_by_its_own_rules(toy_route, tiny_dir, tmp_path):
    out = _render(tmp_path)
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == [
        "toy/1/model.py", "toy/config.pbtxt", "tritongen.lock.yaml"]
    assert (out / "toy" / "1" / "model.py").read_text() == MODEL
    ok = CliRunner().invoke(cli, ["validate", str(out)])
    assert ok.exit_code == 0 and "valid (1 models" in ok.output, ok.output
    config = out / "toy" / "config.pbtxt"
    config.write_text(config.read_text().replace('"Hello from the toy"', '""'))
    bad = CliRunner().invoke(cli, ["validate", str(out)])
    assert bad.exit_code == ValidationFailed.exit_code
    assert "toy/config.pbtxt: parameters.greeting: is empty -> say hello" in bad.output


def test_an_unregistered_route_is_not_a_spec_value(tmp_path):
    """Before registering (and after the fixture took it back) the name is refused like any unknown value."""
    result = CliRunner().invoke(cli, ["repo", "tiny", "--route", "toy", "--out", str(tmp_path / "repo")])
    assert result.exit_code == 3, result.output
    assert "route: 'toy' is not allowed; allowed: 'engine', 'llmapi', 'cpu'" in result.output
    assert "toy" not in routes.names() and Route.names() == Route.BUILTIN


def test_the_spec_and_the_registry_ship_the_same_routes():
    assert set(routes.BUILTIN) == set(Route.BUILTIN)


@pytest.mark.server
def test_a_registered_route_is_served_by_a_real_tritonserver(toy_route, tiny_dir, tmp_path, server_factory):
    record = server_factory(_render(tmp_path), "test-toy-route")
    request = urllib.request.Request(f"http://{record.http_url}/v2/models/toy/generate",
                                     data=json.dumps({"text_input": "world"}).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        assert json.loads(response.read())["text_output"] == "Hello from the toy, world"
