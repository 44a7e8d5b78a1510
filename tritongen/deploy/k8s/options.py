"""The Kubernetes-only inputs of ``tritongen k8s`` (everything else comes from the spec)."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr, field_validator

#: RFC 1123 label: what namespaces, label values and most object names must be.
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


class K8sOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    namespace: StrictStr = Field("default", description="Namespace of every object.")
    replicas: StrictInt = Field(1, ge=1, le=1000, description="Serving replicas (each one node, or one group of "
                                "nodes); the HPA's minimum.")
    max_replicas: StrictInt | None = Field(None, ge=1, le=1000, description="The HPA's maximum (default: 4 x "
                                           "replicas).")
    gpus_per_node: StrictInt = Field(8, ge=1, le=64, description="GPUs each node has; more ranks than this make "
                                     "a LeaderWorkerSet.")
    queue_time_target_ms: StrictInt = Field(50, ge=1, le=600_000, description="The HPA adds replicas when a "
                                            "request waits longer than this in the queue, on average.")
    storage_class: StrictStr | None = Field(None, description="StorageClass of the engine/checkpoint volume "
                                            "(default: the cluster's default class).")
    storage_size_gi: StrictInt | None = Field(None, ge=1, description="Size of that volume (default: sized from "
                                              "the model).")
    monitoring_namespace: StrictStr = Field("monitoring", description="Namespace Prometheus scrapes from.")
    client_label: StrictStr = Field("tritongen.dev/client", description="Pods with this label set to the "
                                    "deployment's name may call the inference ports.")
    openai: StrictBool = Field(False, description="Also deploy the OpenAI-compatible front.")
    openai_image: StrictStr | None = Field(None, description="Image with tritongen installed, for the front.")

    @field_validator("namespace", "monitoring_namespace")
    @classmethod
    def _dns_label(cls, value: str) -> str:
        if not DNS_LABEL.match(value):
            raise ValueError(f"{value!r} is not a valid namespace (lowercase letters, digits and '-', at most 63)")
        return value

    @field_validator("client_label")
    @classmethod
    def _label_key(cls, value: str) -> str:
        if not re.match(r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$", value):
            raise ValueError(f"{value!r} is not a label key")
        return value

    @field_validator("storage_class")
    @classmethod
    def _storage_class(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$", value):
            raise ValueError(f"{value!r} is not a StorageClass name")
        return value

    @property
    def hpa_max(self) -> int:
        return self.max_replicas or 4 * self.replicas


def k8s_name(text: str, limit: int = 40) -> str:
    """A DNS-1035 label derived from a tritongen name (which may hold '.', '_' and capitals)."""
    name = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")
    if not name or not name[0].isalpha():
        name = "m-" + name
    return name[:limit].rstrip("-")
