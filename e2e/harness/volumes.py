"""A pod's volumes as local directories, and the container paths mapped onto them.

What a kubelet does before it starts a container, done with plain files (for :mod:`harness.pod_runner`):

* :func:`materialise_volumes`: each pod volume becomes ``<root>/<volume name>``: an ``emptyDir``
  (either medium) an empty directory, a ``configMap`` or ``secret`` the object's keys as files
  (``items`` honoured, ``binaryData``/Secret data base64-decoded). Other volume types raise
  :class:`Unsupported`.
* :class:`MountTable`: one container's ``volumeMounts`` (``subPath`` included) plus its termination
  message file; ``map_path`` resolves a container path through the deepest mount that holds it,
  ``rewrite`` maps an argument or env value that is a container path (or ``--flag=<path>``).
* :meth:`MountTable.place_nested`: a mount inside another mount (Triton's ``config.pbtxt`` subPath
  mount inside the ``/models`` emptyDir) is copied into the outer volume's directory, where a program
  that only knows the outer path finds it — what the bind mount achieves in a real container.
* :func:`container_env`: ``env`` (``value``, ``secretKeyRef``, ``configMapKeyRef``) and ``envFrom``
  (Secret / ConfigMap, ``prefix`` honoured), values with container paths rewritten; a missing
  required object raises :class:`ConfigError` with the kubelet's wording.
"""

from __future__ import annotations

import base64
import re
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Final

# Reads a namespaced object's JSON body (kind is "configmap" or "secret"); None when it does not exist.
ObjectReader = Callable[[str, str], "dict[str, Any] | None"]

DEFAULT_TERMINATION_MESSAGE_PATH: Final = "/dev/termination-log"
# A whole value that is an absolute path, or a "--flag=" followed by one.
_PATH_VALUE: Final = re.compile(r"^(-{1,2}[\w.-]+=)?(/.*)$", re.DOTALL)


class Unsupported(Exception):
    """The pod uses something the runner cannot give a local body (a PVC, hostPath, ...)."""


class ConfigError(Exception):
    """A referenced ConfigMap/Secret (or key) is missing: the kubelet's CreateContainerConfigError."""


def _decoded(obj: Mapping[str, Any], kind: str) -> dict[str, bytes]:
    """Key -> bytes of a ConfigMap (data + binaryData) or Secret (data, base64; stringData merged)."""
    out: dict[str, bytes] = {}
    if kind == "secret":
        for key, value in (obj.get("data") or {}).items():
            out[key] = base64.b64decode(value)
        for key, value in (obj.get("stringData") or {}).items():
            out[key] = str(value).encode()
        return out
    for key, value in (obj.get("data") or {}).items():
        out[key] = str(value).encode()
    for key, value in (obj.get("binaryData") or {}).items():
        out[key] = base64.b64decode(value)
    return out


def _safe_relative(path: str) -> PurePosixPath:
    rel = PurePosixPath(path)
    if rel.is_absolute() or ".." in rel.parts or not rel.parts:
        raise Unsupported(f"path {path!r} must be relative and stay inside its volume")
    return rel


def _write_projection(
    directory: Path, files: Mapping[str, bytes], items: list[dict[str, Any]] | None
) -> None:
    selected = {str(i["key"]): str(i["path"]) for i in items} if items else {k: k for k in files}
    for key, path in selected.items():
        if key not in files:
            raise ConfigError(f"couldn't find key {key} in the referenced object")
        target = directory / _safe_relative(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(files[key])


def materialise_volumes(pod: Mapping[str, Any], root: Path, read: ObjectReader) -> dict[str, Path]:
    """Create every volume of ``pod`` under ``root``; returns volume name -> directory."""
    volumes: dict[str, Path] = {}
    for volume in (pod.get("spec") or {}).get("volumes") or []:
        name = str(volume["name"])
        directory = root / name
        if directory.exists():
            shutil.rmtree(directory)
        directory.mkdir(parents=True)
        for kind, ref_key in (("configMap", "name"), ("secret", "secretName")):
            source = volume.get(kind)
            if source is None:
                continue
            obj = read(kind.lower(), str(source[ref_key]))
            if obj is None:
                if source.get("optional"):
                    break
                raise ConfigError(f'{kind.lower()} "{source[ref_key]}" not found')
            _write_projection(directory, _decoded(obj, kind.lower()), source.get("items"))
            break
        else:
            if "emptyDir" not in volume:
                other = sorted(k for k in volume if k != "name")
                raise Unsupported(f"volume {name!r}: {', '.join(other) or 'no source'} is not supported")
        volumes[name] = directory
    return volumes


@dataclass(frozen=True)
class Mount:
    container_path: PurePosixPath
    host_path: Path


def _under(path: PurePosixPath, prefix: PurePosixPath) -> bool:
    return path == prefix or prefix in path.parents


class MountTable:
    """One container's view of the file system: container path -> local path."""

    def __init__(self, mounts: list[Mount]) -> None:
        # deepest first: a nested mount wins over the mount that contains it
        self.mounts = sorted(mounts, key=lambda m: len(m.container_path.parts), reverse=True)

    @classmethod
    def for_container(
        cls, container: Mapping[str, Any], volumes: Mapping[str, Path], termination_log: Path
    ) -> MountTable:
        mounts = []
        for vm in container.get("volumeMounts") or []:
            volume = volumes.get(str(vm["name"]))
            if volume is None:
                raise Unsupported(f"volumeMount {vm['name']!r} names no volume of the pod")
            host = volume / _safe_relative(vm["subPath"]) if vm.get("subPath") else volume
            mounts.append(Mount(PurePosixPath(vm["mountPath"]), host))
        message_path = container.get("terminationMessagePath") or DEFAULT_TERMINATION_MESSAGE_PATH
        termination_log.parent.mkdir(parents=True, exist_ok=True)
        termination_log.touch()
        mounts.append(Mount(PurePosixPath(message_path), termination_log))
        return cls(mounts)

    def map_path(self, path: str) -> str | None:
        """The local path for a container path, or None when no mount holds it."""
        p = PurePosixPath(path)
        for m in self.mounts:
            if _under(p, m.container_path):
                return str(m.host_path.joinpath(*p.parts[len(m.container_path.parts) :]))
        return None

    def rewrite(self, value: str) -> str:
        """A value that is a container path (``/models/x``) or a flag setting one (``--repo=/models``)
        with the path mapped to its local path; anything else (scripts, URLs) unchanged."""
        match = _PATH_VALUE.match(value)
        if match is None:
            return value
        flag, path = match.groups()
        mapped = self.map_path(path)
        return value if mapped is None else f"{flag or ''}{mapped}"

    def place_nested(self) -> None:
        """Copy each mount that lies inside another mount to its place in the outer volume's directory."""
        for inner in self.mounts:
            outer = next(
                (
                    m
                    for m in self.mounts
                    if m is not inner
                    and len(m.container_path.parts) < len(inner.container_path.parts)
                    and _under(inner.container_path, m.container_path)
                ),
                None,
            )
            if outer is None:
                continue
            rel = inner.container_path.parts[len(outer.container_path.parts) :]
            target = outer.host_path.joinpath(*rel)
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            else:
                target.unlink(missing_ok=True)
            target.parent.mkdir(parents=True, exist_ok=True)
            if inner.host_path.is_dir():
                shutil.copytree(inner.host_path, target)
            elif inner.host_path.exists():
                shutil.copyfile(inner.host_path, target)


def _env_object(read: ObjectReader, kind: str, ref: Mapping[str, Any]) -> dict[str, bytes] | None:
    obj = read(kind, str(ref["name"]))
    if obj is None:
        if ref.get("optional"):
            return None
        raise ConfigError(f'{kind} "{ref["name"]}" not found')
    return _decoded(obj, kind)


def container_env(container: Mapping[str, Any], read: ObjectReader, mounts: MountTable) -> dict[str, str]:
    """The container's environment as the kubelet builds it (envFrom first, env entries win)."""
    env: dict[str, str] = {}
    for source in container.get("envFrom") or []:
        for kind, key in (("secret", "secretRef"), ("configmap", "configMapRef")):
            if key in source:
                data = _env_object(read, kind, source[key])
                for name, value in (data or {}).items():
                    env[f"{source.get('prefix', '')}{name}"] = value.decode()
    for entry in container.get("env") or []:
        name = str(entry["name"])
        if "value" in entry:
            env[name] = mounts.rewrite(str(entry["value"]))
            continue
        value_from = entry.get("valueFrom") or {}
        for kind, key in (("secret", "secretKeyRef"), ("configmap", "configMapKeyRef")):
            if key in value_from:
                ref = value_from[key]
                data = _env_object(read, kind, ref)
                if data is None:
                    break
                if ref["key"] not in data:
                    if ref.get("optional"):
                        break
                    raise ConfigError(f'couldn\'t find key {ref["key"]} in {kind} "{ref["name"]}"')
                env[name] = data[ref["key"]].decode()
                break
        else:
            if value_from:
                raise Unsupported(f"env {name}: valueFrom {sorted(value_from)} is not supported")
            env[name] = ""
    return env
