"""The objects the views are made of, read with the user's credentials (get/list on each kind)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from modeldeploy.children.labels import selector_all, selector_string
from modeldeploy.cli.client import Client
from modeldeploy.kube.rest import DEPLOYMENT, EVENT, MODELDEPLOYMENT, POD

Body = dict[str, Any]


def children_selector(name: str) -> str:
    """The operator's labels on every revision's Deployment and pods."""
    return selector_string(selector_all(name))


def events_selector(name: str) -> str:
    return f"involvedObject.kind=ModelDeployment,involvedObject.name={name}"


@dataclass
class Objects:
    md: Body
    deployments: list[Body]
    pods: list[Body]
    events: list[Body]


def read_md(client: Client, namespace: str, name: str) -> Body:
    return client.get(MODELDEPLOYMENT, namespace, name)


def read_events(client: Client, namespace: str, name: str) -> list[Body]:
    events, _ = client.list(EVENT, namespace, field_selector=events_selector(name))
    return events


def read_all(client: Client, namespace: str, name: str) -> Objects:
    md = read_md(client, namespace, name)
    deployments, _ = client.list(DEPLOYMENT, namespace, label_selector=children_selector(name))
    pods, _ = client.list(POD, namespace, label_selector=children_selector(name))
    return Objects(md, deployments, pods, read_events(client, namespace, name))
