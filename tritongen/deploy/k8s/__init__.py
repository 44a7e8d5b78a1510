"""``tritongen k8s``: a kustomize tree (base + dev/prod overlays) for a spec, validated offline.

needs.py (what a pod needs) -> model.py (the plan, the pod pieces, the Deployment), lws.py (the LeaderWorkerSet),
volume.py (the cache volume and its Job), around.py (Service, PDB, NetworkPolicy, ServiceMonitor, HPA, OpenAI
front) -> render.py (the tree, the writer); schemas.py (Kubernetes and CRD schema validation), check.py
(``--check``), yamlout.py (YAML with ``# spec:`` comments), adapters.py (the one place that calls modules the
layout change moved).
"""
