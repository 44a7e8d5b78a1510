"""Around the workload: Service, PodDisruptionBudget, NetworkPolicy, ServiceMonitor, the HPA on queue time and
its prometheus-adapter rule, the optional OpenAI front, the Namespace."""

from __future__ import annotations

from .model import LABEL_PREFIX, MANAGED, Plan, _container_security, _pod_security
from .yamlout import From


def _server_selector(plan: Plan) -> dict:
    sel = dict(plan.selector("server"))
    if plan.needs.multi_node:
        sel[f"{LABEL_PREFIX}/role"] = "leader"
    return sel


def service(plan: Plan) -> dict:
    sv = plan.spec.serving
    ports = [("http", sv.http_port, "serving.http_port"), ("grpc", sv.grpc_port, "serving.grpc_port"),
             ("metrics", sv.metrics_port, "serving.metrics_port")]
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": plan.name, "labels": plan.labels("server")},
            "spec": {"type": "ClusterIP", "selector": _server_selector(plan),
                     "ports": [{"name": n, "port": From(p, f), "targetPort": n, "protocol": "TCP"}
                               for n, p, f in ports]}}


def pdb(plan: Plan) -> dict:
    return {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
            "metadata": {"name": plan.name, "labels": plan.labels("server")},
            "spec": {"maxUnavailable": 1, "selector": {"matchLabels": plan.selector("server")}}}


def network_policy(plan: Plan) -> dict:
    sv = plan.spec.serving
    clients = [{"podSelector": {"matchLabels": {plan.opts.client_label: plan.name}}}]
    if plan.opts.openai:
        clients.append({"podSelector": {"matchLabels": plan.selector("openai")}})
    rules = [
        {"from": clients,
         "ports": [{"protocol": "TCP", "port": From(sv.http_port, "serving.http_port")},
                   {"protocol": "TCP", "port": From(sv.grpc_port, "serving.grpc_port")}]},
        {"from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name":
                                                         From(plan.opts.monitoring_namespace,
                                                              "--monitoring-namespace")}}}],
         "ports": [{"protocol": "TCP", "port": From(sv.metrics_port, "serving.metrics_port")}]},
    ]
    if plan.needs.multi_node:
        # MPI (ssh on 2222, then Open MPI's and NCCL's own ports) between the pods of one group.
        rules.append({"from": [{"podSelector": {"matchLabels": plan.selector("server")}}]})
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": plan.name, "labels": plan.labels("server")},
            "spec": {"podSelector": {"matchLabels": plan.selector("server")}, "policyTypes": ["Ingress"],
                     "ingress": rules}}


def service_monitor(plan: Plan) -> dict:
    return {"apiVersion": "monitoring.coreos.com/v1", "kind": "ServiceMonitor",
            "metadata": {"name": plan.name, "labels": plan.labels("server")},
            "spec": {"selector": {"matchLabels": plan.labels("server")},
                     "endpoints": [{"port": "metrics", "path": "/metrics", "interval": "15s"}]}}


#: The per-pod metric prometheus-adapter serves (rule in monitoring/prometheus-adapter-rules.yaml): average
#: time a request waited in the model's queue, in microseconds, over the last minute.
QUEUE_METRIC = "triton_queue_time_per_request_us"


def hpa(plan: Plan) -> dict:
    api = "leaderworkerset.x-k8s.io/v1" if plan.needs.multi_node else "apps/v1"
    return {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": plan.name, "labels": plan.labels("server")},
            "spec": {
                "scaleTargetRef": {"apiVersion": api, "kind": plan.workload_kind, "name": plan.name},
                "minReplicas": From(plan.opts.replicas, "--replicas"),
                "maxReplicas": From(plan.opts.hpa_max, "--max-replicas"),
                "metrics": [{"type": "Pods", "pods": {
                    "metric": {"name": QUEUE_METRIC, "selector": {"matchLabels": {
                        "model": From(plan.spec.model_names["tensorrt_llm"], "serving.model_prefix")}}},
                    "target": {"type": "AverageValue",
                               "averageValue": From(str(plan.opts.queue_time_target_ms * 1000),
                                                    "--queue-time-target-ms (in microseconds)")}}}],
                "behavior": {"scaleUp": {"stabilizationWindowSeconds": 60},
                             "scaleDown": {"stabilizationWindowSeconds": 600}},
            }}


def adapter_rules(plan: Plan) -> dict:
    """prometheus-adapter custom-metrics rule (Helm values of prometheus-community/prometheus-adapter)."""
    query = ("sum(rate(nv_inference_queue_duration_us{<<.LabelMatchers>>}[1m])) by (<<.GroupBy>>)"
             " / clamp_min(sum(rate(nv_inference_request_success{<<.LabelMatchers>>}[1m])) by (<<.GroupBy>>),"
             " 1e-9)")
    return {"rules": {"custom": [{
        "seriesQuery": 'nv_inference_queue_duration_us{namespace!="",pod!=""}',
        "resources": {"overrides": {"namespace": {"resource": "namespace"}, "pod": {"resource": "pod"}}},
        "name": {"matches": "^nv_inference_queue_duration_us$", "as": QUEUE_METRIC},
        "metricsQuery": query,
    }]}}


def openai_objects(plan: Plan) -> list[dict]:
    sv = plan.spec.serving
    name = f"{plan.name}-openai"
    labels = plan.labels("openai")
    port = 9000
    args = ["openai", "--triton", f"grpc://{plan.name}:{sv.grpc_port}",
            "--model", From(plan.spec.model_names["ensemble"], "serving.model_prefix"),
            "--model-name", From(plan.spec.repo_name, "name"), "--host", "0.0.0.0", "--port", str(port)]
    container = {
        "name": "openai", "image": From(plan.opts.openai_image, "--openai-image"), "imagePullPolicy": "IfNotPresent",
        "command": ["tritongen"], "args": args,
        "env": [{"name": "HOME", "value": "/tmp"},
                {"name": "TRITONGEN_OPENAI_API_KEY", "valueFrom": {"secretKeyRef": {
                    "name": f"{plan.name}-openai-api-key", "key": "api-key"}}}],
        "ports": [{"name": "http", "containerPort": port, "protocol": "TCP"}],
        "readinessProbe": {"httpGet": {"path": "/health", "port": "http"}, "periodSeconds": 10},
        "livenessProbe": {"tcpSocket": {"port": "http"}, "periodSeconds": 20},
        "resources": {"requests": {"cpu": "500m", "memory": "512Mi"}, "limits": {"cpu": "2", "memory": "1Gi"}},
        "securityContext": _container_security(),
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }
    pod = {"automountServiceAccountToken": False, "enableServiceLinks": False, "hostNetwork": False,
           "hostPID": False, "hostIPC": False, "securityContext": _pod_security(), "containers": [container], "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}}]}
    deploy = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "labels": labels},
              "spec": {"replicas": 2, "selector": {"matchLabels": plan.selector("openai")},
                       "template": {"metadata": {"labels": labels}, "spec": pod}}}
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "labels": labels},
           "spec": {"type": "ClusterIP", "selector": plan.selector("openai"),
                    "ports": [{"name": "http", "port": port, "targetPort": "http", "protocol": "TCP"}]}}
    netpol = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": name,
                                                                                           "labels": labels},
              "spec": {"podSelector": {"matchLabels": plan.selector("openai")}, "policyTypes": ["Ingress"],
                       "ingress": [{"from": [{"podSelector": {"matchLabels": {plan.opts.client_label: plan.name}}}],
                                    "ports": [{"protocol": "TCP", "port": port}]}]}}
    return [deploy, svc, netpol]


def namespace(plan: Plan) -> dict:
    return {"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": From(plan.opts.namespace, "--namespace"), "labels": {
                **MANAGED,
                # Every pod here meets the "restricted" Pod Security Standard; the namespace enforces it.
                "pod-security.kubernetes.io/enforce": "restricted",
                "pod-security.kubernetes.io/enforce-version": "v1.32"}}}
