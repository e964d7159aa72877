"""The classic Service Management API's XML, as the guide's Create VM Image request sends it
and as Azure answered (REG-CREATE, REG-ASYNC; ``shared/docs/classic-and-ingestion-apis.md``).

Reading is tolerant where real clients differ and strict where a value matters:

- the namespace is ignored (the guide's skeleton says ``https://schemas...``, the classic
  Python client ``http://schemas...``); no DTD, no entity (an entity bomb is refused before
  it expands: defusedxml);
- ``ShowInGui`` is always present (the client's default), ``Lun`` and
  ``LogicalDiskSizeInGB`` are ``-1`` when not given (its defaults);
- ``OSState`` must be ``Generalized``: the marketplace registers generalized images only
  (REG-GENERALIZED).

Answers are written as Azure wrote them: ``<Operation>`` with ``ID`` (the request ID as a
dashed GUID), ``Status`` and, once done, ``HttpStatusCode``, and on failure always an
``<Error>`` (the classic client treats an operation as failed only when one is present).
"""

from __future__ import annotations

import re
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from vmimage.app.publishing.errors import Invalid

NAMESPACE = "http://schemas.microsoft.com/windowsazure"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
#: The first version of the API that has Create VM Image (the guide's), and the classic
#: client's (2014-10-01); later dates are accepted as Azure accepted them.
MIN_VERSION = "2014-06-01"
OS_NAMES = {"linux": "Linux", "windows": "Windows"}
CACHING = {"none": "None", "readonly": "ReadOnly", "readwrite": "ReadWrite"}
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
MAX_LUN = 63
#: Optional fields kept as sent and listed back.
EXTRA = ("Description", "Language", "ImageFamily", "RecommendedVMSize", "Eula", "IconUri",
         "SmallIconUri", "PrivacyUri", "PublishedDate", "ShowInGui")
MAX_TEXT = 4096


@dataclass(frozen=True)
class DiskSpec:
    """A disk of the request: its MediaLink without the query, and the query (a SAS token)
    when the link carried one; or only a size for an empty data disk."""

    lun: int | None
    host_caching: str
    media_link: str | None
    token: str | None = None
    size_gb: int | None = None

    def document(self) -> dict[str, Any]:
        """As stored (never the token)."""
        return {"lun": self.lun, "host_caching": self.host_caching,
                "media_link": self.media_link, "size_gb": self.size_gb}


@dataclass(frozen=True)
class ImageSpec:
    """A Create VM Image request, read."""

    name: str
    label: str
    os: str
    os_disk: DiskSpec
    data_disks: tuple[DiskSpec, ...] = ()
    extra: dict[str, str] = field(default_factory=dict)


def check_version(header: str | None) -> None:
    """``x-ms-version``: present, a date, not before 2014-06-01.

    Raises:
        Invalid: missing, malformed or too old.
    """
    if not header:
        raise Invalid("the x-ms-version header is required (2014-06-01 or later)")
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", header.strip()):
        raise Invalid("x-ms-version is not a date (YYYY-MM-DD)")
    if header.strip() < MIN_VERSION:
        raise Invalid(f"x-ms-version {header.strip()} has no Create VM Image: use "
                      f"{MIN_VERSION} or later")


def local_name(tag: str) -> str:
    """An element's name without its namespace (clients differ in theirs)."""
    return tag.rpartition("}")[2]


def _children(element: ET.Element) -> dict[str, ET.Element]:
    out: dict[str, ET.Element] = {}
    for child in element:
        name = local_name(child.tag)
        if name in out:
            raise Invalid(f"<{name}> is given twice in <{local_name(element.tag)}>")
        out[name] = child
    return out


def _text(parent: dict[str, ET.Element], name: str, where: str, required: bool = True) -> str:
    element = parent.get(name)
    text = (element.text or "").strip() if element is not None else ""
    if required and not text:
        raise Invalid(f"{where}: <{name}> is required")
    if len(text) > MAX_TEXT:
        raise Invalid(f"{where}: <{name}> is longer than {MAX_TEXT} characters")
    return text


def _choice(value: str, allowed: dict[str, str], what: str, default: str) -> str:
    if not value:
        return default
    found = allowed.get(value.lower())
    if found is None:
        raise Invalid(f"{what} {value[:40]!r} is not one of {', '.join(allowed.values())}")
    return found


def _int(value: str, what: str) -> int | None:
    if not value or value == "-1":  # the classic client's "not given"
        return None
    if not re.fullmatch(r"\d{1,6}", value):
        raise Invalid(f"{what} {value[:20]!r} is not a whole number")
    return int(value)


def _link(value: str, what: str) -> tuple[str, str | None]:
    parts = urlsplit(value)
    if parts.scheme not in ("https", "http") or not parts.hostname or len(value) > 2048:
        raise Invalid(f"{what} is not an http(s) blob URL")
    if parts.fragment:
        raise Invalid(f"{what} has a fragment (#...)")
    base = value.partition("?")[0]
    return base, parts.query or None


def _os_disk(element: ET.Element) -> tuple[str, DiskSpec]:
    fields = _children(element)
    where = "OSDiskConfiguration"
    state = _text(fields, "OSState", where)
    if state.lower() != "generalized":
        raise Invalid(f"{where}: OSState {state[:30]!r}: the marketplace registers generalized "
                      "images only (REG-GENERALIZED): generalize the VM, then send "
                      "OSState=Generalized")
    os_name = _choice(_text(fields, "OS", where), OS_NAMES, f"{where}: OS", "")
    link, token = _link(_text(fields, "MediaLink", where), f"{where}: MediaLink")
    caching = _choice(_text(fields, "HostCaching", where, False), CACHING,
                      f"{where}: HostCaching", "ReadWrite")
    return os_name, DiskSpec(None, caching, link, token)


def _data_disk(element: ET.Element, index: int) -> DiskSpec:
    fields = _children(element)
    where = f"DataDiskConfiguration {index + 1}"
    lun = _int(_text(fields, "Lun", where, False), f"{where}: Lun")
    if lun is None or lun > MAX_LUN:
        raise Invalid(f"{where}: <Lun> is required, 0 to {MAX_LUN}")
    caching = _choice(_text(fields, "HostCaching", where, False), CACHING,
                      f"{where}: HostCaching", "None")
    size = _int(_text(fields, "LogicalDiskSizeInGB", where, False),
                f"{where}: LogicalDiskSizeInGB")
    media = _text(fields, "MediaLink", where, False)
    if media:
        link, token = _link(media, f"{where}: MediaLink")
        return DiskSpec(lun, caching, link, token, size)
    if not size:
        raise Invalid(f"{where}: give a <MediaLink>, or a <LogicalDiskSizeInGB> for an "
                      "empty disk")
    return DiskSpec(lun, caching, None, None, size)


def parse_vm_image(body: bytes) -> ImageSpec:
    """A ``VMImage`` request body.

    Raises:
        Invalid: not well-formed XML, a DTD or entity, another root, a field missing or
            malformed.
    """
    from defusedxml import DefusedXmlException
    from defusedxml.ElementTree import fromstring

    if not body.strip():
        raise Invalid("the request has no body: send a <VMImage> document")
    try:
        root = fromstring(body, forbid_dtd=True)
    except DefusedXmlException:
        raise Invalid("the body declares a DTD or entities: refused") from None
    except ET.ParseError as exc:
        raise Invalid(f"malformed XML: {exc}") from None
    if local_name(root.tag) != "VMImage":
        raise Invalid(f"the root element is <{local_name(root.tag)[:40]}>, not <VMImage>")
    fields = _children(root)
    name = _text(fields, "Name", "VMImage")
    if not NAME.fullmatch(name):
        raise Invalid("VMImage: <Name> is 1 to 100 letters, digits, '.', '-' or '_', "
                      "starting with a letter or digit")
    label = _text(fields, "Label", "VMImage")
    os_element = fields.get("OSDiskConfiguration")
    if os_element is None:
        raise Invalid("VMImage: <OSDiskConfiguration> is required")
    os_name, os_disk = _os_disk(os_element)
    data: list[DiskSpec] = []
    configs = fields.get("DataDiskConfigurations")
    if configs is not None:
        data = [_data_disk(e, i) for i, e in enumerate(c for c in configs
                                                        if local_name(c.tag) ==
                                                        "DataDiskConfiguration")]
    luns = [d.lun for d in data]
    if len(set(luns)) != len(luns):
        raise Invalid("two data disks have the same <Lun>")
    extra = {k: _text(fields, k, "VMImage", False) for k in EXTRA if k in fields}
    return ImageSpec(name, label, os_name, os_disk, tuple(sorted(data, key=lambda d: d.lun or 0)),
                     {k: v for k, v in extra.items() if v})


def _element(parent: ET.Element, tag: str, text: str | None) -> None:
    if text is not None:
        ET.SubElement(parent, tag).text = text


def _document(root: ET.Element) -> bytes:
    data: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=False)
    return b'<?xml version="1.0" encoding="utf-8"?>' + data


def dashed(operation_id: str) -> str:
    """The request ID as the ``<ID>`` of an operation: a dashed GUID."""
    return str(uuid.UUID(hex=operation_id))


def operation_xml(operation_id: str, status: str, http_status: int | None = None,
                  error: tuple[str, str] | None = None) -> bytes:
    """``<Operation>``: InProgress, Succeeded (with 200) or Failed (with the status and the
    error)."""
    root = ET.Element("Operation", {"xmlns": NAMESPACE, "xmlns:i": XSI})
    _element(root, "ID", dashed(operation_id))
    _element(root, "Status", status)
    if http_status is not None:
        _element(root, "HttpStatusCode", str(http_status))
    if error is not None:
        node = ET.SubElement(root, "Error")
        _element(node, "Code", error[0])
        _element(node, "Message", error[1])
    return _document(root)


def error_xml(code: str, message: str) -> bytes:
    """Azure's error body: ``<Error><Code/><Message/></Error>``."""
    root = ET.Element("Error", {"xmlns": NAMESPACE, "xmlns:i": XSI})
    _element(root, "Code", code)
    _element(root, "Message", message)
    return _document(root)


def _disk_xml(parent: ET.Element, tag: str, disk: dict[str, Any], os_state: str | None,
              os_name: str | None) -> None:
    node = ET.SubElement(parent, tag)
    _element(node, "HostCaching", disk.get("host_caching"))
    if os_state is not None:
        _element(node, "OSState", os_state)
        _element(node, "OS", os_name)
    else:
        _element(node, "Lun", str(disk.get("lun")))
    _element(node, "MediaLink", disk.get("media_link"))
    size = disk.get("size_gb")
    _element(node, "LogicalDiskSizeInGB", str(size) if size is not None else None)


@dataclass(frozen=True)
class Listed:
    """A registered (or registering) image as the list shows it."""

    name: str
    label: str
    os: str
    state: str
    document: dict[str, Any]
    created: str
    modified: str


def images_xml(images: list[Listed]) -> bytes:
    """``<VMImages>``: List VM Images, in the shape the classic client parses."""
    root = ET.Element("VMImages", {"xmlns": NAMESPACE, "xmlns:i": XSI})
    for image in images:
        node = ET.SubElement(root, "VMImage")
        _element(node, "Name", image.name)
        _element(node, "Label", image.label)
        _element(node, "Category", "User")
        extra = image.document.get("extra", {})
        _element(node, "Description", extra.get("Description"))
        _disk_xml(node, "OSDiskConfiguration", image.document["os_disk"], "Generalized",
                  image.os)
        disks = image.document.get("data_disks", [])
        if disks:
            configs = ET.SubElement(node, "DataDiskConfigurations")
            for disk in disks:
                _disk_xml(configs, "DataDiskConfiguration", disk, None, None)
        _element(node, "CreatedTime", image.created)
        _element(node, "ModifiedTime", image.modified)
        for key in EXTRA[1:]:
            _element(node, key, extra.get(key))
        _element(node, "IsPremium", "false")
        _element(node, "VMImageState", image.state)
    return _document(root)
