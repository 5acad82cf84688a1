"""The e2e harness: model servers standing in for kwok pods, and load routed like the cluster's.

* :mod:`harness.model_server`: :class:`ModelServer` (Triton or TorchServe flavour) and :class:`Behavior`;
* :mod:`harness.world`: :class:`World`, one server + Prometheus target per Ready serving pod;
* :mod:`harness.load`: :class:`Load`, requests via Services/EndpointSlices or an HTTPRoute, counted
  per revision (:class:`Traffic`); :mod:`harness.routing_view` reads where they go;
* :mod:`harness.pod_runner`: :class:`PodRunner`, real bodies for the pods of ``modeldeploy-real-*``
  namespaces (kwok leaves them alone): the pod spec's init containers and model server run as local
  programs (:mod:`harness.volumes`, :mod:`harness.commands`, :mod:`harness.pod_body`);
* ``python -m harness run ...`` (see :mod:`harness.__main__`) runs a World (and load) until Ctrl-C.
"""

from harness.load import Counts, Load, Traffic
from harness.model_server import Behavior, ModelServer, ServerStats
from harness.pod_runner import PodRunner
from harness.routing_view import RoutingView
from harness.running_pod import RunningPod
from harness.world import PodServer, World

__all__ = [
    "Behavior",
    "Counts",
    "Load",
    "ModelServer",
    "PodRunner",
    "PodServer",
    "RoutingView",
    "RunningPod",
    "ServerStats",
    "Traffic",
    "World",
]
