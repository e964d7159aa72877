"""What the guest posts: its health report and its telemetry, parsed as untrusted input.

XML with a DOCTYPE or an ENTITY declaration, or that does not parse, is refused (ValueError:
the server answers 400 and logs the post as malformed); what is kept of the guest's text is
bounded and has password-like values masked. A telemetry batch is only counted.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass

from vmimage.vm.endpoints.config import _MAX_HEADER, EndpointConfig

_MAX_TEXT = 4096  # the WireServer's own limit for a health description
_SENSITIVE_TEXT = re.compile(r"(?i)\b(password|passwd|pwd|secret|token)(\s*[=:]\s*)(\S+)")


@dataclass(frozen=True)
class HealthReport:
    """One well-formed health post: what the guest said about its provisioning.

    ``matches`` is True when it names this VM's container and role instance (a report for
    another goal state does not count as this VM being ready).
    """

    time: float
    state: str  # "Ready" or "NotReady"
    substatus: str | None
    description: str | None
    incarnation: str | None
    container_id: str
    instance_id: str
    matches: bool


@dataclass(frozen=True)
class Telemetry:
    """A telemetry post, summarised: which providers and how many events (no event text)."""

    providers: tuple[str, ...]
    events: int


def _parse_xml(body: bytes) -> ET.Element:
    """The document's root; ValueError if it is not plain, well-formed XML.

    A DOCTYPE is refused outright: no Azure client sends one, and it is how entity expansion
    would get in.
    """
    if b"<!DOCTYPE" in body.upper() or b"<!ENTITY" in body.upper():
        raise ValueError("a DOCTYPE or ENTITY declaration")
    try:
        return ET.fromstring(body)
    except ET.ParseError as exc:
        raise ValueError(f"not well-formed XML: {exc}") from None


def _text(element: ET.Element | None, path: str) -> str | None:
    if element is None:
        return None
    found = element.find(path)
    if found is None:
        return None
    return (found.text or "").strip()


def parse_health(body: bytes, cfg: EndpointConfig, when: float) -> HealthReport:
    """The health report of waagent's and cloud-init's shape; ValueError says what is wrong.

    ``Health`` > ``GoalStateIncarnation``, ``Container`` > ``ContainerId``,
    ``RoleInstanceList/Role`` > ``InstanceId``, ``Health/State`` and optional
    ``Health/Details/SubStatus``, ``Description``.
    """
    root = _parse_xml(body)
    if root.tag != "Health":
        raise ValueError(f"root element {root.tag[:40]!r}, not 'Health'")
    container = root.find("Container")
    role = container.find("RoleInstanceList/Role") if container is not None else None
    container_id, instance_id = _text(container, "ContainerId"), _text(role, "InstanceId")
    state = _text(role, "Health/State") or ""
    if not container_id or not instance_id:
        raise ValueError("no Container/ContainerId or RoleInstanceList/Role/InstanceId")
    if state not in ("Ready", "NotReady"):
        raise ValueError(f"State {state[:40]!r}, not Ready or NotReady")
    return HealthReport(
        time=when, state=state, substatus=_bounded(_text(role, "Health/Details/SubStatus")),
        description=_bounded(_text(role, "Health/Details/Description")),
        incarnation=_bounded(_text(root, "GoalStateIncarnation")),
        container_id=container_id[:_MAX_HEADER], instance_id=instance_id[:_MAX_HEADER],
        matches=(container_id == cfg.container_id and instance_id == cfg.role_instance_id))


def parse_telemetry(body: bytes) -> Telemetry:
    """``TelemetryData`` > ``Provider@id`` > ``Event``: counted, never kept."""
    root = _parse_xml(body)
    if root.tag != "TelemetryData":
        raise ValueError(f"root element {root.tag[:40]!r}, not 'TelemetryData'")
    providers = root.findall("Provider")
    names = tuple(dict.fromkeys(p.get("id", "")[:_MAX_HEADER] for p in providers))[:32]
    return Telemetry(providers=names, events=sum(len(p.findall("Event")) for p in providers))


def _bounded(text: str | None) -> str | None:
    """Guest text fit for the log: at most 4096 characters, password-like values masked."""
    if text is None:
        return None
    return _SENSITIVE_TEXT.sub(r"\1\2***", text[:_MAX_TEXT])
