"""The guide's Create VM Image request (REG-CREATE), one per SKU version, rendered faithfully.

The classic Service Management API (``POST {endpoint}/{subscription}/services/vmimages``,
``x-ms-version: 2014-06-01``, client-certificate authentication, answered 202 Accepted with the
operation ID in ``x-ms-request-id``: REG-ASYNC) was retired with the classic deployment model;
the body is rendered exactly as the guide describes it, for the record and for an emulator.
None of the guide's script defects is copied: the document is built as a tree and serialised
(so ``<Name>`` cannot lose its ``<``, and text is escaped), an empty data disk carries only
``LogicalDiskSizeInGB`` (the guide's script also sent an undefined ``$dataMediaLink``), and
every character is ASCII where the guide had U+2010 and U+2013 dashes.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from vmimage.offer.model import Manifest, Sku
from vmimage.offer.sas import SasTokens
from vmimage.offer.submission import Rendered, blob_url
from vmimage.units import GiB

NAMESPACE = "http://schemas.microsoft.com/windowsazure"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
METHOD = "POST"
ENDPOINT = "https://management.core.windows.net"
PATH = "/{subscription-id}/services/vmimages"
HEADERS = {"x-ms-version": "2014-06-01", "Content-Type": "application/xml"}
OS_NAMES = {"linux": "Linux", "windows": "Windows"}


def image_name(manifest: Manifest, sku: Sku, version: str) -> str:
    """The user VM image's name: offer, SKU and version (letters, digits, '-', '.', '_')."""
    return f"{manifest.offer.id}-{sku.id}-{version}"


def _child(parent: ET.Element, tag: str, text: str) -> None:
    ET.SubElement(parent, tag).text = text


def _media(link: str, tokens: SasTokens | None) -> str:
    """A MediaLink, with its SAS token when ``tokens`` has one (a self-hosted service reads
    the blob with it; Azure used the storage account's own keys)."""
    found = tokens.sas_uri(link) if tokens is not None else None
    return found or link


def request_body(manifest: Manifest, sku: Sku, version_index: int,
                 problems: list[str], tokens: SasTokens | None = None) -> str | None:
    """The XML body for one version; None (with ``problems``) when a disk has no blob URL.
    With ``tokens``, each MediaLink carries its SAS token (for ``vmimage register``)."""
    version = sku.versions[version_index]
    where = f"{sku.id} {version.version}"
    if version.os_disk is None:
        problems.append(f"{where}: a gallery image cannot be registered with the classic "
                        "Create VM Image request")
        return None
    root = ET.Element("VMImage", {"xmlns": NAMESPACE, "xmlns:i": XSI})
    _child(root, "Name", image_name(manifest, sku, version.version))
    _child(root, "Label", f"{sku.title} {version.version}")
    _child(root, "Description", sku.summary)
    os_config = ET.SubElement(root, "OSDiskConfiguration")
    _child(os_config, "HostCaching", version.os_disk.host_caching or "ReadWrite")
    _child(os_config, "OSState", "Generalized")
    _child(os_config, "OS", OS_NAMES[sku.os.family])
    media = blob_url(manifest, version.os_disk)
    if media is None:
        problems.append(f"{where}: the OS disk has no blob URL (give 'url' or "
                        "storage.container_url)")
        return None
    _child(os_config, "MediaLink", _media(media, tokens))
    if version.data_disks:
        data_configs = ET.SubElement(root, "DataDiskConfigurations")
        for disk in sorted(version.data_disks, key=lambda d: d.lun):
            config = ET.SubElement(data_configs, "DataDiskConfiguration")
            _child(config, "HostCaching", disk.host_caching or "None")
            _child(config, "Lun", str(disk.lun))
            if disk.empty_bytes is not None:
                _child(config, "LogicalDiskSizeInGB", str(disk.empty_bytes // GiB))
                continue
            link = blob_url(manifest, disk)
            if link is None:
                problems.append(f"{where}: data disk LUN {disk.lun} has no blob URL")
                return None
            _child(config, "MediaLink", _media(link, tokens))
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, "unicode") + "\n"


def render_classic(manifest: Manifest, tokens: SasTokens | None = None) -> Rendered:
    """One ``<sku>-<version>.xml`` request body per SKU version (MediaLinks with their SAS
    tokens when ``tokens`` are given)."""
    out = Rendered()
    for sku in manifest.skus:
        for i, version in enumerate(sku.versions):
            body = request_body(manifest, sku, i, out.problems, tokens)
            if body is not None:
                out.documents[f"{sku.id}-{version.version}.xml"] = body
    return out


def request_line(name: str) -> str:
    """How to send a body: the request line and headers, for people reading stdout."""
    headers = "; ".join(f"{k}: {v}" for k, v in HEADERS.items())
    return f"{METHOD} {ENDPOINT}{PATH} ({headers}) <- {name}"
