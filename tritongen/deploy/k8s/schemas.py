"""Schema validation of rendered objects, offline.

* Built-in kinds validate against the official Kubernetes JSON schemas of :data:`KUBERNETES_VERSION`, shipped by
  the ``kubernetes-validate`` package (strict mode: an unknown field is an error, as ``kubectl apply
  --validate=strict`` makes it).
* The custom resources (LeaderWorkerSet, ServiceMonitor) validate against their published CRD schemas, kept as
  data in ``tritongen/catalog/k8s/`` with source URL, tag and date. The LeaderWorkerSet CRD inlines two full
  PodTemplateSpecs (1.3 MB); the stored copy keeps its own fields and marks the two templates as opaque, and
  :func:`validate` checks each template against the core ``v1`` PodTemplate schema instead, which is the same
  structure, validated at least as strictly.

``python -m tritongen.deploy.k8s.schemas prune CRD.yaml VERSION`` prints the stored form of a CRD (the
openAPIV3Schema of VERSION, descriptions dropped, the pod templates of a LeaderWorkerSet and of each
DynamoGraphDeployment component made opaque).
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path
from typing import Any

import yaml

from ...errors import MissingDependency

#: The Kubernetes version whose schemas the objects are checked against.
KUBERNETES_VERSION = "1.32.0"
CRD_DIR = Path(__file__).resolve().parents[2] / "catalog" / "k8s"
#: (apiVersion, kind) -> stored CRD schema file.
CRDS = {
    ("leaderworkerset.x-k8s.io/v1", "LeaderWorkerSet"): "leaderworkerset.yaml",
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "servicemonitor.yaml",
}
_OPAQUE_TEMPLATES = ("leaderTemplate", "workerTemplate")


def _strip_descriptions(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _strip_descriptions(v) for k, v in node.items() if k != "description"}
    if isinstance(node, list):
        return [_strip_descriptions(v) for v in node]
    return node


def prune(crd: dict, version: str) -> dict:
    """The part of a CRD that validation needs: the openAPIV3Schema of ``version``, without descriptions."""
    found = [v for v in crd["spec"]["versions"] if v["name"] == version]
    if not found:
        raise ValueError(f"CRD {crd['metadata']['name']} has no version {version}")
    schema = copy.deepcopy(found[0]["schema"]["openAPIV3Schema"])
    opaque = {"type": "object", "x-kubernetes-preserve-unknown-fields": True,
              "x-tritongen-validated-as": "v1 PodTemplateSpec"}
    kind = crd["spec"]["names"]["kind"]
    if kind == "LeaderWorkerSet":
        lwt = schema["properties"]["spec"]["properties"]["leaderWorkerTemplate"]["properties"]
        for name in _OPAQUE_TEMPLATES:
            lwt[name] = dict(opaque)
    elif kind == "DynamoGraphDeployment":
        # Each component inlines a full PodTemplateSpec; the caller validates it as a core v1 PodTemplate.
        component = schema["properties"]["spec"]["properties"]["components"]["items"]["properties"]
        component["podTemplate"] = dict(opaque)
    return {
        "group": crd["spec"]["group"],
        "kind": crd["spec"]["names"]["kind"],
        "version": version,
        "subresources": found[0].get("subresources") or {},
        "openAPIV3Schema": _strip_descriptions(schema),
    }


def load_crd(filename: str) -> dict:
    return yaml.safe_load((CRD_DIR / filename).read_text())


def _openapi_to_jsonschema(node: Any) -> Any:
    """OpenAPI v3 structural schema -> JSON Schema: ``x-kubernetes-int-or-string`` becomes a oneOf, and the
    ``x-kubernetes-*`` hints that JSON Schema does not know are left out (they do not constrain values)."""
    if isinstance(node, list):
        return [_openapi_to_jsonschema(v) for v in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if key.startswith("x-"):
            continue
        if key in ("properties", "patternProperties"):
            out[key] = {k: _openapi_to_jsonschema(v) for k, v in value.items()}
        else:
            out[key] = _openapi_to_jsonschema(value)
    if node.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        extra = {k: out.pop(k) for k in ("anyOf",) if k in out}
        out["anyOf"] = extra.get("anyOf") or [{"type": "integer"}, {"type": "string"}]
    if node.get("nullable"):
        out.pop("nullable", None)
        if "type" in out:
            out["type"] = [out["type"], "null"]
    # A structural schema forbids unknown fields unless it preserves them (apiserver pruning drops them; here
    # an unknown field is an error, like kubectl's strict validation).
    if out.get("type") == "object" and "properties" in node and not node.get("x-kubernetes-preserve-unknown-fields") \
            and "additionalProperties" not in node:
        out["additionalProperties"] = False
    return out


def _metadata_ok(obj: dict) -> list[str]:
    meta = obj.get("metadata") or {}
    if not isinstance(meta, dict) or not meta.get("name"):
        return ["metadata.name is missing"]
    return []


def _validate_crd(obj: dict, filename: str) -> list[str]:
    import jsonschema

    stored = load_crd(filename)
    schema = _openapi_to_jsonschema(stored["openAPIV3Schema"])
    # The apiserver validates metadata itself; the CRD schema only says "object".
    schema.setdefault("properties", {})["metadata"] = {"type": "object"}
    validator = jsonschema.Draft202012Validator(schema)
    problems = [f"{'.'.join(str(p) for p in e.absolute_path) or '(root)'}: {e.message}"
                for e in sorted(validator.iter_errors(obj), key=lambda e: list(map(str, e.absolute_path)))]
    problems += _metadata_ok(obj)
    if stored["kind"] == "LeaderWorkerSet":
        lwt = ((obj.get("spec") or {}).get("leaderWorkerTemplate") or {})
        for name in _OPAQUE_TEMPLATES:
            if name in lwt:
                problems += [f"spec.leaderWorkerTemplate.{name}.{p}" for p in
                             _validate_builtin({"apiVersion": "v1", "kind": "PodTemplate",
                                                "metadata": {"name": "template"}, "template": lwt[name]},
                                               prefix="template.")]
    return problems


def _validate_builtin(obj: dict, prefix: str = "") -> list[str]:
    try:
        import kubernetes_validate
    except ImportError:
        raise MissingDependency("schema validation needs kubernetes-validate",
                                hint="pip install 'tritongen[k8s]' (kubernetes-validate==1.32.0)") from None
    try:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        path = ".".join(str(p) for p in exc.path)
        if prefix and path.startswith(prefix):
            path = path[len(prefix):]
        return [f"{path or '(root)'}: {exc.message}"]
    except kubernetes_validate.SchemaNotFoundError:
        return [f"no Kubernetes {KUBERNETES_VERSION} schema for {obj.get('apiVersion')} {obj.get('kind')}"]
    return []


def validate(obj: dict) -> list[str]:
    """Problems of one object (empty when valid), each ``field: message``."""
    key = (obj.get("apiVersion"), obj.get("kind"))
    if key in CRDS:
        return _validate_crd(obj, CRDS[key])
    return _validate_builtin(obj)


def _main(argv: list[str]) -> int:
    if len(argv) != 3 or argv[0] != "prune":
        print("usage: python -m tritongen.deploy.k8s.schemas prune CRD.yaml VERSION", file=sys.stderr)
        return 2
    docs = [d for d in yaml.safe_load_all(Path(argv[1]).read_text()) if d]
    print(yaml.safe_dump(prune(docs[0], argv[2]), sort_keys=False, width=100), end="")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(_main(sys.argv[1:]))
