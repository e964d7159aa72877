"""Who the VM is, as the endpoints tell it (:class:`EndpointConfig`), and where Azure's services are.

The addresses a guest on Azure reaches (:data:`AZURE_ADDRESSES`), the wire protocol and IMDS
api-versions answered, and the configuration every served document is built from. Its values
go into XML, URLs and JSON as they are, so a configuration is checked whole when it is made
(ValueError); :func:`load_config` reads the entry point's ``--config`` file (InputError).
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import MISSING, dataclass, fields
from pathlib import Path
from typing import Any

from vmimage.errors import InputError

WIRESERVER_IP = "168.63.129.16"
IMDS_IP = "169.254.169.254"
HOSTPLUGIN_PORT = 32526
#: Where a guest on Azure finds these services: what to listen on in the VM's network namespace.
#: The HostGAPlugin port must answer (404): waagent 2.7.3 on Python 3.10+ fails goal state
#: detection on a refused connection there (its format_exception passes ``etype=``).
AZURE_ADDRESSES: tuple[tuple[str, int], ...] = (
    (WIRESERVER_IP, 80), (WIRESERVER_IP, HOSTPLUGIN_PORT), (IMDS_IP, 80))
#: The wire protocol version waagent and cloud-init require (waagent raises without it).
WIRE_PROTOCOL = "2012-11-30"
WIRE_SUPPORTED = ("2010-12-15", "2010-28-10")
#: IMDS api-versions answered, oldest first. 2018-02-01: waagent; 2021-08-01 then 2019-06-01
#: on 400: cloud-init.
IMDS_API_VERSIONS: tuple[str, ...] = (
    "2017-03-01", "2017-04-02", "2017-08-01", "2017-10-01", "2017-12-01", "2018-02-01",
    "2018-04-02", "2018-10-01", "2019-02-01", "2019-03-11", "2019-04-30", "2019-06-01",
    "2019-06-04", "2019-08-01", "2019-08-15", "2019-11-01", "2020-06-01", "2020-07-15",
    "2020-09-01", "2020-10-01", "2020-12-01", "2021-01-01", "2021-02-01", "2021-03-01",
    "2021-05-01", "2021-08-01", "2021-10-01", "2021-11-01", "2021-11-15", "2021-12-13",
    "2023-07-01",
)
_MAX_HEADER = 256
_VM_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_HOSTNAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}"
                       r"[A-Za-z0-9])?)*")
_USERNAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,63}")
_MAC = re.compile(r"[0-9A-Fa-f]{2}([:-]?[0-9A-Fa-f]{2}){5}")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_NAMESPACE = uuid.UUID("4d1b9c55-2f6e-4b1a-9d0e-7c3f5a8e2b61")  # deployment names from VM names


@dataclass(frozen=True)
class EndpointConfig:
    """Who the VM is, as Azure would tell it: everything the served documents contain.

    ``instance_id`` is the VM's GUID: IMDS ``vmId`` and the first part of the goal state's role
    instance id (``<instance_id>._<vm_name>``, the form Azure Resource Manager VMs get).
    ``ssh_keys`` are ``(path, key data)`` pairs, IMDS ``publicKeys``. ``guest_mac`` must be the
    guest NIC's: cloud-init matches the IMDS interface to a NIC by it.
    """

    vm_name: str
    container_id: str
    instance_id: str
    hostname: str
    username: str
    guest_ip: str
    ssh_keys: tuple[tuple[str, str], ...] = ()
    disable_password_auth: bool = True
    incarnation: int = 1
    guest_mac: str = "52:54:00:12:34:56"  # qemu's default for the first NIC
    guest_prefix: int = 24
    location: str = "local"
    imds_versions: tuple[str, ...] = IMDS_API_VERSIONS

    def __post_init__(self) -> None:
        object.__setattr__(self, "ssh_keys", tuple((str(p), str(k)) for p, k in self.ssh_keys))
        object.__setattr__(self, "imds_versions", tuple(self.imds_versions))
        for problem in _config_problems(self):
            raise ValueError(problem)

    @property
    def role_name(self) -> str:
        """The role name Azure gives a Resource Manager VM: ``_`` and the VM's name."""
        return f"_{self.vm_name}"

    @property
    def role_instance_id(self) -> str:
        """The goal state's ``InstanceId``, which every health report must repeat."""
        return f"{self.instance_id}.{self.role_name}"

    @property
    def deployment_name(self) -> str:
        """A deployment name shaped like Azure's (32 hex digits), derived from the VM's name."""
        return uuid.uuid5(_NAMESPACE, self.vm_name).hex

    @property
    def config_name(self) -> str:
        """The goal state's ``ConfigName`` (waagent sends it to the host plugin)."""
        return f"{self.instance_id}.0.{self.instance_id}.0.{self.role_name}.{self.incarnation}.xml"

    def to_json(self) -> dict[str, Any]:
        """The JSON object :meth:`from_json` reads (the entry point's ``--config``)."""
        return {
            "vm_name": self.vm_name, "container_id": self.container_id,
            "instance_id": self.instance_id, "hostname": self.hostname, "username": self.username,
            "guest_ip": self.guest_ip,
            "ssh_keys": [{"path": p, "keyData": k} for p, k in self.ssh_keys],
            "disable_password_auth": self.disable_password_auth, "incarnation": self.incarnation,
            "guest_mac": self.guest_mac, "guest_prefix": self.guest_prefix,
            "location": self.location, "imds_versions": list(self.imds_versions),
        }

    @classmethod
    def from_json(cls, data: object) -> EndpointConfig:
        """A config from :meth:`to_json`'s object; ValueError names the first problem."""
        if not isinstance(data, dict):
            raise ValueError("the configuration must be a JSON object")
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown key {unknown[0]!r}")
        values = dict(data)
        if "ssh_keys" in values:
            values["ssh_keys"] = _keys_from_json(values["ssh_keys"])
        if "imds_versions" in values:
            values["imds_versions"] = tuple(_strings(values["imds_versions"], "imds_versions"))
        required = [f.name for f in fields(cls) if f.default is MISSING]
        missing = [name for name in required if name not in values]
        if missing:
            raise ValueError(f"missing key {missing[0]!r}")
        _check_types(values)
        return cls(**values)


def load_config(path: str | os.PathLike[str]) -> EndpointConfig:
    """The configuration in a JSON file; InputError names the file and the problem."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(path, exc.strerror or str(exc)) from None
    except ValueError as exc:
        raise InputError(path, f"not JSON: {exc}") from None
    try:
        return EndpointConfig.from_json(data)
    except ValueError as exc:
        raise InputError(path, str(exc)) from None


def _config_problems(cfg: EndpointConfig) -> Iterable[str]:
    """What makes a configuration unusable: values go into XML, URLs and JSON as they are."""
    if not _VM_NAME.fullmatch(cfg.vm_name):
        yield f"vm_name {cfg.vm_name!r}: 1-64 letters, digits, '.', '_' or '-'"
    for name in ("container_id", "instance_id"):
        if not _is_uuid(getattr(cfg, name)):
            yield f"{name} {getattr(cfg, name)!r} is not a UUID"
    if not _HOSTNAME.fullmatch(cfg.hostname) or len(cfg.hostname) > 253:
        yield f"hostname {cfg.hostname!r} is not a host name"
    if not _USERNAME.fullmatch(cfg.username):
        yield f"username {cfg.username!r} is not a user name"
    if not _is_ipv4(cfg.guest_ip):
        yield f"guest_ip {cfg.guest_ip!r} is not an IPv4 address"
    if not _MAC.fullmatch(cfg.guest_mac):
        yield f"guest_mac {cfg.guest_mac!r} is not a MAC address"
    if not 0 <= cfg.guest_prefix <= 32 or cfg.incarnation < 1:
        yield "guest_prefix must be 0-32 and incarnation at least 1"
    if not cfg.imds_versions or not all(_DATE.fullmatch(v) for v in cfg.imds_versions):
        yield "imds_versions must be dates (YYYY-MM-DD)"
    yield from _key_problems(cfg.ssh_keys)


def _key_problems(keys: Sequence[tuple[str, str]]) -> Iterable[str]:
    for path, key in keys:
        if not path.startswith("/") or any(c in path for c in "\n\r\0"):
            yield f"ssh key path {path!r} is not an absolute path"
        if not key.strip() or any(c in key for c in "\n\r\0"):
            yield "an ssh key must be one non-empty line"


def _check_types(values: Mapping[str, object]) -> None:
    """JSON types as the dataclass declares them (JSON true is not an incarnation)."""
    expected: dict[str, type] = {"disable_password_auth": bool}
    expected.update(dict.fromkeys(("incarnation", "guest_prefix"), int))
    for name, value in values.items():
        want = expected.get(name, str if name not in ("ssh_keys", "imds_versions") else tuple)
        ok = isinstance(value, want) and not (want is int and isinstance(value, bool))
        if not ok:
            raise ValueError(f"{name}: expected {want.__name__}, got {type(value).__name__}")


def _keys_from_json(value: object) -> tuple[tuple[str, str], ...]:
    """``[{"path": ..., "keyData": ...}]`` (IMDS's names) or ``[[path, key], ...]``."""
    if not isinstance(value, list):
        raise ValueError("ssh_keys must be a list")
    keys = []
    for item in value:
        if isinstance(item, dict) and set(item) == {"path", "keyData"}:
            pair = [item["path"], item["keyData"]]
        elif isinstance(item, list) and len(item) == 2:
            pair = item
        else:
            raise ValueError('each of ssh_keys must be {"path": ..., "keyData": ...}')
        path, key = _strings(pair, "ssh_keys")
        keys.append((path, key))
    return tuple(keys)


def _strings(value: object, name: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{name} must be a list of strings")
    return list(value)


def _is_uuid(text: str) -> bool:
    try:
        return str(uuid.UUID(text)) == text.lower()
    except ValueError:
        return False


def _is_ipv4(text: str) -> bool:
    try:
        ipaddress.IPv4Address(text)
    except ValueError:
        return False
    return True
