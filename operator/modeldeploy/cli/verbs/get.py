"""``kubectl modeldeploy get NAME``: revisions with their pods, weights, step progress, guardrails
against their thresholds, the last decisions. ``--watch`` is in :mod:`modeldeploy.cli.verbs.watch`."""

from __future__ import annotations

from modeldeploy.cli.client import Client
from modeldeploy.cli.objects import Objects, read_all
from modeldeploy.cli.view import Detail, detail


def view(objects: Objects) -> Detail:
    return detail(objects.md, objects.deployments, objects.pods, objects.events)


def run(client: Client, namespace: str, name: str) -> Detail:
    return view(read_all(client, namespace, name))
