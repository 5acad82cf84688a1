"""The model a ModelDeployment serves and the compute each replica gets (part of the spec; the
CRD is generated from modeldeploy.api.spec, which re-exports these)."""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field, model_validator

from modeldeploy.api.common import (
    DNS_SUBDOMAIN,
    QUANTITY,
    SAFE_SEGMENT,
    ApiModel,
    cel,
)
from modeldeploy.api.runtime_config import RuntimeConfig

RuntimeName = Literal["triton", "torchserve"]
StorageScheme = Literal["s3", "gs", "https", "pvc"]
STORAGE_URI = r"^(s3|gs)://[a-z0-9][a-z0-9.\-]{1,62}(/[^\s]*)?$|^https://[^\s]+$|^pvc://[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?(/[^\s]*)?$"
SHA256 = r"^[0-9a-f]{64}$"
ArchiveFormat = Literal["tar.gz", "zip"]
MIG_PROFILE = r"^[1-7]g\.[0-9]{1,3}gb$"


# --- model -------------------------------------------------------------------------------------


class ModelSpec(ApiModel):
    """What to serve and where to fetch it from."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "!self.storageUri.startsWith('http://')",
                    "storageUri: plain http:// is refused (no TLS: the model could be altered in transit); "
                    "use https://",
                    ".storageUri",
                ),
                cel(
                    "self.storageUri.matches('^(s3|gs|https|pvc)://')",
                    "storageUri: unsupported scheme; use s3://bucket/path, gs://bucket/path, "
                    "https://host/path or pvc://claim/path",
                    ".storageUri",
                ),
                cel(
                    "!self.storageUri.startsWith('pvc://') || !has(self.credentialsSecret)",
                    "credentialsSecret does not apply to pvc:// storage: the claim is mounted directly",
                    ".credentialsSecret",
                ),
                cel(
                    "!self.storageUri.startsWith('pvc://') || (!has(self.sha256) && !has(self.archive)"
                    " && !has(self.caBundleConfigMap))",
                    "sha256, archive and caBundleConfigMap apply to downloaded models, not to pvc:// storage",
                ),
            ]
        }
    )

    name: str = Field(
        ...,
        pattern=SAFE_SEGMENT,
        max_length=63,
        description="Model name as the runtime knows it; a single safe path segment (no '/', no '..').",
    )
    version: str = Field(
        ...,
        pattern=SAFE_SEGMENT,
        max_length=63,
        description="Model version; a new version is a new revision.",
    )
    storage_uri: str = Field(
        ...,
        max_length=1024,
        pattern=STORAGE_URI,
        description="Where the model lives: s3://bucket/path, gs://bucket/path, https://..., or pvc://claim/path.",
    )
    credentials_secret: str | None = Field(
        None,
        max_length=253,
        pattern=DNS_SUBDOMAIN,
        description=(
            "Secret in the same namespace whose keys become the storage initializer's env; never logged."
        ),
    )
    sha256: str | None = Field(
        None,
        max_length=64,
        pattern=SHA256,
        description=(
            "Expected SHA-256 of the downloaded object (64 lowercase hex digits); a mismatch fails the "
            "download. For single objects (https://, or one s3/gs object)."
        ),
    )
    archive: ArchiveFormat | None = Field(
        None,
        description=(
            "The object is an archive (tar.gz or zip) unpacked into the model's place; members that "
            "escape it are refused. TorchServe: the archive holds exactly one .mar."
        ),
    )
    ca_bundle_config_map: str | None = Field(
        None,
        max_length=253,
        pattern=DNS_SUBDOMAIN,
        description=(
            "ConfigMap (same namespace) whose key ca.crt is the CA bundle that signs the storage "
            "server's certificate (private https:// or S3-compatible endpoints)."
        ),
    )
    runtime_config: RuntimeConfig = Field(
        default_factory=RuntimeConfig, description="Runtime-specific serving configuration."
    )

    @model_validator(mode="after")
    def _no_dotdot(self) -> ModelSpec:
        for value in (self.name, self.version):
            if ".." in value:
                raise ValueError(f"{value!r} must be a single path segment without '..'")
        if self.storage_uri.startswith("http://"):
            raise ValueError("storageUri: plain http:// is refused (no TLS); use https://")
        if self.storage_uri.startswith("pvc://") and self.credentials_secret:
            raise ValueError("credentialsSecret does not apply to pvc:// storage")
        if self.storage_uri.startswith("pvc://") and (
            self.sha256 or self.archive or self.ca_bundle_config_map
        ):
            raise ValueError("sha256, archive and caBundleConfigMap apply to downloaded models, not pvc://")
        return self

    @property
    def storage_scheme(self) -> str:
        return self.storage_uri.split("://", 1)[0]


# --- resources ---------------------------------------------------------------------------------


class GpuSpec(ApiModel):
    """GPUs per replica: whole GPUs (count) or one MIG slice (migProfile), not both."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "has(self.count) != has(self.migProfile)",
                    "set either gpu.count (whole GPUs) or gpu.migProfile (one MIG slice), not both",
                )
            ]
        }
    )

    count: int | None = Field(None, ge=1, le=16, description="Whole GPUs per replica (nvidia.com/gpu).")
    mig_profile: str | None = Field(
        None,
        pattern=MIG_PROFILE,
        max_length=16,
        description="MIG profile such as 1g.10gb, requested as nvidia.com/mig-<profile>.",
    )
    product: str | None = Field(
        None,
        max_length=63,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,62}$",
        description="Required nvidia.com/gpu.product node label, e.g. NVIDIA-A100-SXM4-80GB.",
    )

    @model_validator(mode="after")
    def _exclusive(self) -> GpuSpec:
        if (self.count is None) == (self.mig_profile is None):
            raise ValueError("set either gpu.count or gpu.migProfile, not both")
        return self

    @property
    def resource_name(self) -> str:
        return f"nvidia.com/mig-{self.mig_profile}" if self.mig_profile else "nvidia.com/gpu"

    @property
    def quantity(self) -> int:
        return self.count if self.count is not None else 1

    @property
    def whole_gpus(self) -> int:
        """GPUs counted against budgets: a MIG slice counts as one device."""
        return self.quantity


class Resources(ApiModel):
    """Per-replica compute; requests equal limits for GPUs."""

    cpu: str = Field("1", max_length=32, pattern=QUANTITY, description="CPU request, e.g. 500m or 2.")
    memory: str = Field("2Gi", max_length=32, pattern=QUANTITY, description="Memory request and limit.")
    gpu: GpuSpec | None = Field(None, description="GPUs per replica; omit for CPU-only serving.")
    shm_size: str | None = Field(
        None,
        max_length=32,
        pattern=QUANTITY,
        description="Size of the in-memory /dev/shm volume (default: runtime's choice, 1Gi for Triton).",
    )
