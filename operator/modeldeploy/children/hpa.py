"""autoscaling/v2 HPA that scales the ModelDeployment itself (its scale subresource).

The operator then splits ``spec.replicas`` between revisions; the HPA finds the pods through the
scale subresource's ``status.selector`` (all revisions).
"""

from __future__ import annotations

from typing import Any

from modeldeploy.api.spec import ModelDeploymentSpec, ScalingMetric
from modeldeploy.children.labels import common_labels
from modeldeploy.children.owner import OwnerInfo, metadata


def hpa_metric(metric: ScalingMetric) -> dict[str, Any]:
    for name, target in (("cpu", metric.cpu), ("memory", metric.memory)):
        if target is None:
            continue
        return {
            "type": "Resource",
            "resource": {
                "name": name,
                "target": {"type": "Utilization", "averageUtilization": target.average_utilization},
            },
        }
    if metric.pods is None:
        raise ValueError("autoscaling metric: set exactly one of cpu, memory, pods")
    return {
        "type": "Pods",
        "pods": {
            "metric": {"name": metric.pods.metric},
            "target": {"type": "AverageValue", "averageValue": metric.pods.average_value},
        },
    }


def build_hpa(owner: OwnerInfo, spec: ModelDeploymentSpec) -> dict[str, Any]:
    autoscaling = spec.autoscaling
    if autoscaling is None:
        raise ValueError("spec.autoscaling is not set: no HPA to build")
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": metadata(owner, owner.name, common_labels(owner.name, spec.runtime)),
        "spec": {
            "scaleTargetRef": {"apiVersion": owner.api_version, "kind": owner.kind, "name": owner.name},
            "minReplicas": autoscaling.min_replicas,
            "maxReplicas": autoscaling.max_replicas,
            "metrics": [hpa_metric(m) for m in autoscaling.metrics],
        },
    }
