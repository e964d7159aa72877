"""An offer's records as a manifest, judged by the one rule registry.

The service never has rules of its own for what ``vmimage offer validate`` judges: it renders
the stored offer (or the part a transition is about: what is certified, what is staged) back
into the manifest's shape, reads that text with the manifest loader, and runs the same
:func:`~vmimage.offer.rules.validate_offer` the CLI runs, with what is published as
``--previous``. Findings point at lines of the rendered text, which
``GET /api/v1/offers/{offer}/manifest`` returns exactly.

The publisher's disk files are on the publisher's machine, never on the server's: a manifest
read here resolves every ``file`` to a :class:`RemotePath`, which refuses to be looked at, so
the rules about local files skip with that reason (the service must not reveal which paths
exist on its own disk) and the disk is judged by its blob URL.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path, PosixPath
from typing import TYPE_CHECKING, Any, NoReturn

from vmimage.app.results import findings_report, now
from vmimage.errors import VmimageError
from vmimage.findings import Finding
from vmimage.offer.manifest import LoadedManifest, parse_document, parse_manifest
from vmimage.offer.rules import validate_offer
from vmimage.offer.sas import redact_finding
from vmimage.offer.yamlload import json_document
from vmimage.profiles import Profile
from vmimage.report.json_report import to_dict
from vmimage.report.model import Report

if TYPE_CHECKING:
    from vmimage.catalog.models import Disk, ImageVersion, Offer, Sku

API = "/api/v1"
KIND = "offer manifest"


class Elsewhere(VmimageError):
    """A local disk file of a manifest read by the service: it is on the publisher's machine."""


class RemotePath(PosixPath):
    """A disk file named by a manifest the service reads: a name, never opened or looked at."""

    def _elsewhere(self) -> NoReturn:
        raise Elsewhere(f"the disk file {str(self)!r} is on the publisher's machine: the "
                        "service judges disks by their blob URL (run `vmimage offer validate` "
                        "where the files are)")

    def stat(self, *, follow_symlinks: bool = True) -> os.stat_result:
        """Refused: see the class."""
        self._elsewhere()

    def lstat(self) -> os.stat_result:
        """Refused: see the class."""
        self._elsewhere()

    def exists(self) -> bool:
        """Refused: see the class."""
        self._elsewhere()

    def is_file(self) -> bool:
        """Refused: see the class."""
        self._elsewhere()

    def is_dir(self) -> bool:
        """Refused: see the class."""
        self._elsewhere()

    def open(self, *args: Any, **kwargs: Any) -> NoReturn:  # noqa: ANN401 - Path.open's
        """Refused: see the class (``read_bytes`` and ``read_text`` go through here)."""
        self._elsewhere()


class RemoteManifest(LoadedManifest):
    """A manifest the service read: its files are names on the publisher's machine."""

    def resolve(self, file: str) -> Path:
        """The file as a :class:`RemotePath` (no home directory, no base directory)."""
        return RemotePath(file)


def read_manifest(text: str, source: str) -> RemoteManifest:
    """Read manifest ``text`` as the CLI reads a file named ``source``; never raises on
    content (its problems are OFFER-MANIFEST's). Indented JSON (the service's own rendering,
    a publisher's JSON manifest) is read at C speed
    (:func:`vmimage.offer.yamlload.load_indented_json`)."""
    loaded = parse_manifest(text, Path(source))
    return RemoteManifest(loaded.path, loaded.manifest, loaded.document, loaded.problems)


def judge(loaded: LoadedManifest, profile: Profile,
          previous: LoadedManifest | None = None) -> list[Finding]:
    """Every manifest rule, as ``vmimage offer validate --no-disks`` runs them (signatures
    redacted)."""
    return [redact_finding(f) for f in validate_offer(loaded, profile, previous, probe=None)]


class Timer:
    """When a judgement started, for its report (as the CLI's ``offer validate`` records)."""

    def __init__(self) -> None:
        self.started = now()
        self._clock = time.perf_counter()

    def report(self, findings: list[Finding], target: str, profile: Profile) -> Report:
        """The findings as the CLI's report of a manifest named ``target``."""
        return findings_report(findings, target, KIND, profile.name, self.started,
                               lambda: time.perf_counter() - self._clock)


def report_document(report: Report) -> dict[str, object]:
    """A report as ``--format json`` writes it (``schemas/report-v1.json``)."""
    return to_dict(report)


def failing(findings: Iterable[Finding]) -> list[Finding]:
    """The findings that block: failed and not waived."""
    return [f for f in findings if f.failing]


# ---------------------------------------------------------------------------------------------
# Records -> manifest


def _omit_none(data: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if v is not None}


def disk_document(disk: Disk) -> dict[str, Any]:
    """A disk as the manifest writes it."""
    return _omit_none({"lun": disk.lun, "file": disk.file, "url": disk.url,
                       "host_caching": disk.host_caching, "empty_size": disk.empty_size})


def version_document(version: ImageVersion) -> dict[str, Any]:
    """An image version as the manifest writes it (no SAS token: manifests never hold one)."""
    data: dict[str, Any] = {"version": version.version}
    os_disk = next((d for d in version.disks if d.lun is None), None)
    if os_disk is not None:
        data["os_disk"] = disk_document(os_disk)
    data_disks = [disk_document(d) for d in version.disks if d.lun is not None]
    if data_disks:
        data["data_disks"] = data_disks
    if version.gallery_resource_id is not None or version.gallery_tenant_id is not None:
        data["gallery_image"] = {"tenant_id": version.gallery_tenant_id or "",
                                 "resource_id": version.gallery_resource_id or ""}
    return data


def sku_document(sku: Sku, versions: list[ImageVersion]) -> dict[str, Any]:
    """A SKU as the manifest writes it, with ``versions``."""
    return {"id": sku.sku_id, "plan": sku.plan.plan_id, "title": sku.title,
            "summary": sku.summary,
            "os": {"family": sku.os_family, "type": sku.os_type, "friendly_name": sku.os_name},
            "image_type": sku.image_type, "recommended_sizes": list(sku.recommended_sizes),
            "properties": dict(sku.properties), "open_ports": list(sku.open_ports),
            "questionnaire": dict(sku.questionnaire),
            "versions": [version_document(v) for v in versions]}


def offer_document(offer: Offer, include: Callable[[ImageVersion], bool]) -> dict[str, Any]:
    """The offer as a manifest, with the versions ``include`` keeps; a SKU left without any is
    left out (a manifest's SKU has at least one version)."""
    skus = []
    for sku in offer.skus:
        kept = [v for v in sku.versions if include(v)]
        if kept:
            skus.append(sku_document(sku, kept))
    data: dict[str, Any] = {"publisher": offer.publisher.namespace,
                            "offer": {"id": offer.offer_id, "title": offer.title}}
    if offer.container_url is not None:
        data["storage"] = {"container_url": offer.container_url}
    data["skus"] = skus
    return data


def text_of(document: dict[str, Any]) -> str:
    """The manifest text the service judges and serves: indented JSON (JSON is YAML 1.2, so
    the manifest loader reads it, lines and all)."""
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def manifest_address(offer_id: str) -> str:
    """Where the rendered manifest is served: the path findings name."""
    return f"{API}/offers/{offer_id}/manifest"


def render(offer: Offer, include: Callable[[ImageVersion], bool]) -> RemoteManifest | None:
    """The offer (with the versions ``include`` keeps) read as a manifest; None when no SKU
    has such a version."""
    document = offer_document(offer, include)
    if not document["skus"]:
        return None
    source = manifest_address(offer.offer_id)
    # What reading text_of(document) gives, without writing the text (the indented JSON
    # encoder is pure Python: most of a page's time for an offer of 20 SKUs).
    read = json_document(document)
    if read is None:
        return read_manifest(text_of(document), source)
    loaded = parse_document(read, Path(source))
    return RemoteManifest(loaded.path, loaded.manifest, loaded.document, loaded.problems)


def lines_under(loaded: LoadedManifest, key: tuple[str | int, ...]) -> set[int]:
    """The lines of every value under ``key`` in a manifest read from text."""
    if loaded.document is None:
        return set()
    return {line for path, line in loaded.document.lines.items() if path[:len(key)] == key}


def blamed(findings: Iterable[Finding], loaded: LoadedManifest,
           key: tuple[str | int, ...]) -> list[Finding]:
    """The failing findings whose evidence points under ``key``: what a write of that part is
    refused for."""
    lines = lines_under(loaded, key)
    where = str(loaded.path)
    return [f for f in failing(findings)
            if any(e.path == where and e.line in lines for e in f.evidence)]
