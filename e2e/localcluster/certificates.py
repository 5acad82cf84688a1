"""The cluster's PKI (CA, serving and client certificates, service-account keys) and kubeconfigs."""

from __future__ import annotations

import base64
import os
import secrets
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from .config import SERVICE_IP, Config
from .messages import ClusterError

OPENSSL_CNF = """\
[req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
[v3_ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign,digitalSignature
subjectKeyIdentifier = hash
"""


SERVER_SANS = (
    f"IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,"
    f"DNS:kubernetes.default.svc.cluster.local,IP:{SERVICE_IP}"
)


# file stem -> (subject, extendedKeyUsage, SANs)
LEAF_CERTS: dict[str, tuple[str, str, str]] = {
    "apiserver": ("/CN=kube-apiserver", "serverAuth", SERVER_SANS),
    "admin": ("/O=system:masters/CN=modeldeploy-admin", "clientAuth", ""),
    "controller-manager": ("/CN=system:kube-controller-manager", "clientAuth", ""),
    "scheduler": ("/CN=system:kube-scheduler", "clientAuth", ""),
}


PKI_FILES = (
    "ca.crt",
    "ca.key",
    "sa.key",
    "sa.pub",
    *(f"{n}.{e}" for n in LEAF_CERTS for e in ("crt", "key")),
)


def openssl(args: Sequence[str], cwd: Path) -> None:
    openssl_bin = shutil.which("openssl")
    if not openssl_bin:
        raise ClusterError("openssl is not on PATH: install it (Debian: apt-get install openssl)")
    try:
        r = subprocess.run([openssl_bin, *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        raise ClusterError(f"openssl {args[0]} did not finish in 60s") from None
    if r.returncode != 0:
        last = (r.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise ClusterError(f"openssl {' '.join(args[:2])} failed: {last}")


def ensure_pki(cfg: Config) -> None:
    pki = cfg.pki
    if all((pki / f).is_file() for f in PKI_FILES):
        return
    pki.mkdir(parents=True, exist_ok=True)
    os.chmod(pki, 0o700)
    (pki / "openssl.cnf").write_text(OPENSSL_CNF, encoding="utf-8")

    def genkey(name: str) -> None:
        openssl(["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", name], pki)

    genkey("ca.key")
    openssl(
        [
            "req",
            "-x509",
            "-new",
            "-key",
            "ca.key",
            "-subj",
            "/CN=modeldeploy-local-ca",
            "-days",
            "3650",
            "-config",
            "openssl.cnf",
            "-extensions",
            "v3_ca",
            "-out",
            "ca.crt",
        ],
        pki,
    )
    genkey("sa.key")
    openssl(["pkey", "-in", "sa.key", "-pubout", "-out", "sa.pub"], pki)
    for name, (subject, usage, sans) in LEAF_CERTS.items():
        genkey(f"{name}.key")
        ext = [
            "[v3]",
            "basicConstraints = critical,CA:FALSE",
            "keyUsage = critical,digitalSignature,keyEncipherment",
            f"extendedKeyUsage = {usage}",
            "authorityKeyIdentifier = keyid",
        ]
        if sans:
            ext.append(f"subjectAltName = {sans}")
        (pki / f"{name}.ext").write_text("\n".join(ext) + "\n", encoding="utf-8")
        openssl(
            [
                "req",
                "-new",
                "-key",
                f"{name}.key",
                "-subj",
                subject,
                "-config",
                "openssl.cnf",
                "-out",
                f"{name}.csr",
            ],
            pki,
        )
        openssl(
            [
                "x509",
                "-req",
                "-in",
                f"{name}.csr",
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-set_serial",
                "0x" + secrets.token_hex(16),
                "-days",
                "3650",
                "-extfile",
                f"{name}.ext",
                "-extensions",
                "v3",
                "-out",
                f"{name}.crt",
            ],
            pki,
        )
    for f in pki.iterdir():
        if f.suffix == ".key":
            f.chmod(0o600)


def b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def write_kubeconfig(cfg: Config, path: Path, user: str) -> None:
    text = f"""\
apiVersion: v1
kind: Config
clusters:
- name: modeldeploy
  cluster:
    server: {cfg.apiserver_url}
    certificate-authority-data: {b64(cfg.pki / "ca.crt")}
users:
- name: {user}
  user:
    client-certificate-data: {b64(cfg.pki / f"{user}.crt")}
    client-key-data: {b64(cfg.pki / f"{user}.key")}
contexts:
- name: modeldeploy
  context:
    cluster: modeldeploy
    user: {user}
current-context: modeldeploy
"""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.chmod(0o600)
    tmp.replace(path)
