"""``tritongen k8s``: a kustomize tree (base + dev/prod overlays) for a spec, validated offline.

needs.py (what a pod needs) -> model.py (the objects) -> render.py (the tree, the writer); schemas.py (Kubernetes
and CRD schema validation), check.py (``--check``), yamlout.py (YAML with ``# spec:`` comments), adapters.py (the
one place that calls the modules issue 12 is moving).
"""
