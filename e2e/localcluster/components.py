"""The six components: start order, command lines, health checks and how long each may take to be ready."""

from __future__ import annotations

import ssl
from pathlib import Path

from .config import POD_CIDR, SA_ISSUER, SERVICE_CIDR, Config
from .kubeapi import Api, http_get, insecure_ctx
from .ports import COMPONENT_PORTS
from .processes import process_died, wait_until

# Start order; `down` stops in reverse.
COMPONENTS = ("prometheus", "etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")


def argv_for(cfg: Config, name: str, bin_dir: Path, prometheus: str) -> list[str]:
    p, pki, c = cfg.ports, cfg.pki, cfg.cluster_dir
    if name == "prometheus":
        return [
            prometheus,
            f"--config.file={cfg.prom_dir / 'prometheus.yml'}",
            f"--storage.tsdb.path={cfg.prom_dir / 'data'}",
            "--storage.tsdb.retention.time=1d",
            f"--web.listen-address=127.0.0.1:{p['prometheus']}",
            "--web.enable-lifecycle",
        ]
    if name == "etcd":
        return [
            str(bin_dir / "etcd"),
            "--name=modeldeploy",
            f"--data-dir={cfg.etcd_data}",
            f"--listen-client-urls=http://127.0.0.1:{p['etcd']}",
            f"--advertise-client-urls=http://127.0.0.1:{p['etcd']}",
            f"--listen-peer-urls=http://127.0.0.1:{p['etcd-peer']}",
            f"--initial-advertise-peer-urls=http://127.0.0.1:{p['etcd-peer']}",
            f"--initial-cluster=modeldeploy=http://127.0.0.1:{p['etcd-peer']}",
            "--quota-backend-bytes=2147483648",
            "--unsafe-no-fsync",  # test cluster: speed over durability
            "--log-level=warn",
        ]
    if name == "kube-apiserver":
        return [
            str(bin_dir / "kube-apiserver"),
            f"--etcd-servers=http://127.0.0.1:{p['etcd']}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={p['apiserver']}",
            f"--cert-dir={c / 'apiserver-certs'}",
            f"--tls-cert-file={pki / 'apiserver.crt'}",
            f"--tls-private-key-file={pki / 'apiserver.key'}",
            f"--client-ca-file={pki / 'ca.crt'}",
            "--authorization-mode=Node,RBAC",
            # Both are on by default in 1.36; named so that nobody turns them off by accident.
            "--enable-admission-plugins=NodeRestriction,PodSecurity,ValidatingAdmissionPolicy",
            "--allow-privileged=true",
            f"--service-account-issuer={SA_ISSUER}",
            f"--service-account-key-file={pki / 'sa.pub'}",
            f"--service-account-signing-key-file={pki / 'sa.key'}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            f"--audit-policy-file={c / 'audit-policy.yaml'}",
            f"--audit-log-path={cfg.audit_log}",
            "--audit-log-maxsize=200",
            "--audit-log-maxbackup=2",
            "--audit-log-mode=blocking",
            "--profiling=false",
        ]
    if name == "kube-controller-manager":
        kc = c / "controller-manager.kubeconfig"
        return [
            str(bin_dir / "kube-controller-manager"),
            f"--kubeconfig={kc}",
            f"--authentication-kubeconfig={kc}",
            f"--authorization-kubeconfig={kc}",
            "--bind-address=127.0.0.1",
            f"--secure-port={p['controller-manager']}",
            f"--cert-dir={c / 'controller-manager-certs'}",
            "--use-service-account-credentials=true",
            f"--service-account-private-key-file={pki / 'sa.key'}",
            f"--root-ca-file={pki / 'ca.crt'}",
            f"--cluster-signing-cert-file={pki / 'ca.crt'}",
            f"--cluster-signing-key-file={pki / 'ca.key'}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--controllers=*",
            "--leader-elect=false",
            "--horizontal-pod-autoscaler-sync-period=5s",
            "--profiling=false",
        ]
    if name == "kube-scheduler":
        kc = c / "scheduler.kubeconfig"
        return [
            str(bin_dir / "kube-scheduler"),
            f"--kubeconfig={kc}",
            f"--authentication-kubeconfig={kc}",
            f"--authorization-kubeconfig={kc}",
            "--bind-address=127.0.0.1",
            f"--secure-port={p['scheduler']}",
            f"--cert-dir={c / 'scheduler-certs'}",
            "--leader-elect=false",
            "--profiling=false",
        ]
    if name == "kwok":
        return [
            str(bin_dir / "kwok"),
            f"--config={c / 'kwok-stages.yaml'}",
            f"--kubeconfig={cfg.kubeconfig}",
            "--manage-all-nodes=false",
            "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
            f"--cidr={POD_CIDR}",
            "--node-ip=10.240.0.1",
            "--node-lease-duration-seconds=40",
            f"--server-address=127.0.0.1:{p['kwok']}",
        ]
    raise AssertionError(name)


def healthy(cfg: Config, name: str) -> bool:
    p = cfg.ports
    if name == "prometheus":
        return http_get(f"{cfg.prometheus_url}/-/ready")[0] == 200
    if name == "etcd":
        code, body = http_get(f"http://127.0.0.1:{p['etcd']}/health")
        return code == 200 and b'"true"' in body
    if name == "kube-apiserver":
        try:
            return Api(cfg).get_raw("/readyz")[0] == 200
        except (OSError, ssl.SSLError):
            return False
    if name == "kube-controller-manager":
        return http_get(f"https://127.0.0.1:{p['controller-manager']}/healthz", insecure_ctx())[0] == 200
    if name == "kube-scheduler":
        return http_get(f"https://127.0.0.1:{p['scheduler']}/healthz", insecure_ctx())[0] == 200
    if name == "kwok":
        return http_get(f"http://127.0.0.1:{p['kwok']}/healthz")[0] == 200
    raise AssertionError(name)


READY_TIMEOUT = {
    "prometheus": 60,
    "etcd": 60,
    "kube-apiserver": 120,
    "kube-controller-manager": 90,
    "kube-scheduler": 90,
    "kwok": 90,
}


def wait_healthy(cfg: Config, name: str) -> None:
    wait_until(
        f"{name} on port {cfg.ports[COMPONENT_PORTS[name][0]]}",
        lambda: healthy(cfg, name),
        READY_TIMEOUT[name],
        cfg.logs / f"{name}.log",
        lambda: process_died(name),
    )
