"""``vmimage certify``: run the disk and system checks on every local disk of an offer and
write the certification package the guide asks for (CRT-RESULTS, CRT-QUESTIONNAIRE,
CRT-ARTIFACTS, PUB-CERT).

This use case stands *above* ``checks``, ``storage`` and ``offer`` (rulings), in the
application layer: ``offer`` itself needs neither.

For each SKU version, each disk given as a local file gets ``vhd validate`` (format and size
for its role) and, for a Linux SKU, ``check`` (every Linux rule; a data disk is checked for
what concerns data disks, such as swap). The package holds, per disk, both results in JSON and
HTML; the offer's own validation; the questionnaire answers with each explanation tied to the
check it explains; a log; and a summary saying certified or not. Any failure anywhere means
not certified (CRT-RESULTS); a disk that could not be checked locally (a blob URL only, a
gallery image, a Windows system) leaves the package *incomplete*, which is not certified
either: vmimage does not claim what it did not see.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from vmimage import __version__
from vmimage.errors import InputError, VmimageError
from vmimage.findings import Finding
from vmimage.offer.manifest import LoadedManifest, load_manifest
from vmimage.offer.model import Manifest, Sku
from vmimage.offer.rules import validate_offer
from vmimage.offer.sas import redact_finding
from vmimage.offer.submission import blob_url
from vmimage.privatefile import private_dir, write_private
from vmimage.profiles import Profile
from vmimage.report.model import Report
from vmimage.secrets import redact
from vmimage.storage.blob_url import BlobUrl as BlobUrl  # the container type of --upload

Log = Callable[[str], None]
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


@dataclass
class DiskResult:
    """One disk of one image: what ran on it and what it found."""

    label: str  # "os" or "lun0", "lun1"...
    role: str
    file: str | None
    url: str | None
    validate: Report | None = None
    check: Report | None = None
    note: str | None = None  # why something was not run (the disk is then not complete)
    error: str | None = None  # the file could not be read at all
    info: str | None = None  # said for the record; nothing applies (an empty data disk)

    @property
    def failed(self) -> bool:
        """A rule failed, or the file could not be read (or held no operating system)."""
        return self.error is not None or any(
            r is not None and r.exit_code != 0 for r in (self.validate, self.check))

    @property
    def complete(self) -> bool:
        """Everything that applies ran, and no blocking rule was skipped."""
        return self.note is None and self.error is None and not any(
            r is not None and r.verdict == "incomplete" for r in (self.validate, self.check))


@dataclass
class ImageResult:
    """One SKU version."""

    sku: str
    version: str
    image_type: str
    disks: list[DiskResult] = field(default_factory=list)

    @property
    def certified(self) -> bool:
        """No disk failed and every disk was checked."""
        return bool(self.disks) and all(not d.failed and d.complete for d in self.disks)


@dataclass
class Certification:
    """The whole run: the offer's validation and every image's results."""

    manifest: Manifest
    source: str
    profile: str
    started: datetime
    offer_findings: list[Finding]
    images: list[ImageResult] = field(default_factory=list)
    log: list[str] = field(default_factory=list)

    @property
    def offer_ok(self) -> bool:
        """No offer rule failed."""
        return not any(f.failing for f in self.offer_findings)

    @property
    def complete(self) -> bool:
        """Every disk of every image was checked."""
        return all(d.complete for i in self.images for d in i.disks)

    @property
    def certified(self) -> bool:
        """Nothing failed and nothing was left unchecked (CRT-RESULTS)."""
        return self.offer_ok and bool(self.images) and all(i.certified for i in self.images)

    @property
    def verdict(self) -> str:
        """CERTIFIED, NOT CERTIFIED, or INCOMPLETE (nothing failed, but not all was seen)."""
        if self.certified:
            return "CERTIFIED"
        failed = not self.offer_ok or any(d.failed for i in self.images for d in i.disks)
        return "NOT CERTIFIED" if failed or not self.images else "INCOMPLETE"


def _validate_report(path: Path, role: str, profile: Profile) -> Report:
    from vmimage.app.disk import validate_report

    return validate_report(path, role, profile)


def _check_disk(result: DiskResult, path: Path, family: str, profile: Profile,
                say: Log) -> None:
    from vmimage.app.check import check_target

    try:
        say(f"  vhd validate --role {result.role} {path}")
        result.validate = _validate_report(path, result.role, profile)
        say(f"    {result.validate.counts_line}")
        if family != "linux":
            result.note = (f"{family} systems have no offline checks in vmimage yet: run "
                           "Microsoft's certification tool on a VM")
            say(f"  check skipped: {result.note}")
            return
        say(f"  check --role {result.role} {path}")
        result.check = check_target(str(path), profile, result.role)
        say(f"    {result.check.counts_line}"
            + (f"; system: {result.check.system.get('os')}" if result.check.system else ""))
    except VmimageError as exc:
        result.error = str(exc)
        say(f"  cannot read: {exc}")


def _image(loaded: LoadedManifest, sku: Sku, index: int, profile: Profile,
           say: Log) -> ImageResult:
    version = sku.versions[index]
    image = ImageResult(sku.id, version.version, sku.image_type)
    say(f"{sku.id} {version.version} ({sku.image_type}, {sku.os.family})")
    if version.gallery_image is not None:
        image.disks.append(DiskResult("gallery", f"os-{sku.os.family}", None,
                                      version.gallery_image.resource_id,
                                      note="a gallery image cannot be checked offline"))
        say("  gallery image: not checked offline")
        return image
    assert version.os_disk is not None
    disks = [("os", f"os-{sku.os.family}", version.os_disk)]
    disks += [(f"lun{d.lun}", "data", d) for d in sorted(version.data_disks,
                                                          key=lambda d: d.lun)]
    manifest = loaded.require()
    for label, role, disk in disks:
        result = DiskResult(label, role, disk.file, blob_url(manifest, disk))
        image.disks.append(result)
        empty = getattr(disk, "empty_bytes", None)
        if empty is not None:
            result.info = "an empty size, not a VHD: nothing to check"
        elif disk.file is None:
            result.note = "a blob URL only: download it or name its local file to check it"
        elif not loaded.resolve(disk.file).is_file():
            result.error = f"{disk.file}: no such file"
        else:
            _check_disk(result, loaded.resolve(disk.file), sku.os.family, profile, say)
            continue
        say(f"  {label}: {result.error or result.note or result.info}")
    return image


def certify_offer(manifest: str | Path, profile_name: str, progress: Log | None = None
                  ) -> Certification:
    """Validate the offer and check every local disk of every SKU version.

    Raises:
        InputError: the manifest cannot be read, or does not have the manifest's shape; or
            the profile is unknown.
    """
    from vmimage.app.catalog import profile as load_profile

    profile = load_profile(profile_name)
    loaded = load_manifest(manifest)
    started = datetime.now(UTC)
    lines: list[str] = []

    def say(text: str) -> None:
        stamp = datetime.now(UTC).isoformat(timespec="seconds")
        lines.append(f"{stamp} {redact(text)}")
        if progress is not None:
            progress(redact(text))

    say(f"vmimage {__version__} certify {manifest} (profile {profile.name})")
    findings = [redact_finding(f) for f in validate_offer(loaded, profile)]
    model = loaded.require()
    failed = sum(1 for f in findings if f.failing)
    say(f"offer validate: {failed} rule(s) failed")
    cert = Certification(model, str(manifest), profile.name, started, findings, log=lines)
    for sku in model.skus:
        for index in range(len(sku.versions)):
            cert.images.append(_image(loaded, sku, index, profile, say))
    say(f"verdict: {cert.verdict}")
    return cert


# ---- the package ------------------------------------------------------------------------------

def _counts(report: Report | None) -> dict[str, int] | None:
    return report.counts if report is not None else None


def explained(questionnaire: dict[str, Any], failed: set[str]) -> dict[str, object]:
    """One SKU's questionnaire answers as the package keeps them: each explanation tied to
    whether its check failed, and the failures nobody explained (CRT-QUESTIONNAIRE).

    ``vmimage certify`` and the service's certification package both write this shape."""
    explanations = questionnaire.get("explanations") or {}
    return {
        "answers": list(questionnaire.get("answers") or []),
        "remote_access": questionnaire.get("remote_access"),
        "explanations": [{"check": check, "explanation": text, "check_failed": check in failed}
                         for check, text in explanations.items()],
        "unexplained_failures": sorted(failed - set(explanations)),
    }


def _questionnaire(cert: Certification) -> dict[str, object]:
    """Each SKU's answers, each explanation tied to whether its check failed (CRT-QUESTIONNAIRE)."""
    out: dict[str, object] = {}
    for sku in cert.manifest.skus:
        failed = {f.check_id for image in cert.images if image.sku == sku.id
                  for disk in image.disks for report in (disk.validate, disk.check)
                  if report is not None for f in report.findings if f.failing}
        out[sku.id] = explained(sku.questionnaire.model_dump(mode="json"), failed)
    return out


def summary(cert: Certification) -> dict[str, object]:
    """The package's summary.json."""
    return {
        "tool": "vmimage", "tool_version": __version__, "manifest": cert.source,
        "publisher": cert.manifest.publisher, "offer": cert.manifest.offer.id,
        "profile": cert.profile, "started": cert.started.isoformat(timespec="seconds"),
        "verdict": cert.verdict, "certified": cert.certified, "complete": cert.complete,
        "offer_validation": {s: sum(1 for f in cert.offer_findings if str(f.status) == s)
                             for s in ("pass", "fail", "warning", "skip")},
        "images": [{
            "sku": i.sku, "version": i.version, "image_type": i.image_type,
            "certified": i.certified,
            "disks": [{"disk": d.label, "role": d.role, "file": d.file,
                       "url": redact(d.url) if d.url else None,
                       "vhd_validate": _counts(d.validate), "check": _counts(d.check),
                       # the rules to fix, by ID, and those a waiver accepts (both sorted)
                       "failed_rules": sorted({i for r in (d.validate, d.check) if r
                                               for i in r.failed_ids}),
                       "waived_rules": sorted({i for r in (d.validate, d.check) if r
                                               for i in r.waived_ids}),
                       "system": d.check.system if d.check else None,
                       "note": d.note, "error": d.error, "info": d.info,
                       "results": _result_dir(i, d) if d.validate or d.check else None}
                      for d in i.disks],
        } for i in cert.images],
    }


def _safe(part: str) -> str:
    """A path component from a manifest value: nothing that climbs out or hides."""
    cleaned = _UNSAFE.sub("_", part).lstrip(".")
    return cleaned or "_"


def _result_dir(image: ImageResult, disk: DiskResult) -> str:
    return f"results/{_safe(image.sku)}/{_safe(image.version)}/{_safe(disk.label)}"


def _summary_text(cert: Certification) -> str:
    lines = [f"{cert.verdict}: {cert.manifest.publisher}.{cert.manifest.offer.id} "
             f"(profile {cert.profile}, vmimage {__version__})", ""]
    offer_failed = sorted({f.check_id for f in cert.offer_findings if f.failing})
    lines.append(f"offer validation: {len(offer_failed)} rule(s) failed"
                 + (f" ({', '.join(offer_failed)})" if offer_failed else ""))
    for image in cert.images:
        mark = "certified" if image.certified else "NOT certified"
        lines.append(f"{image.sku} {image.version} ({image.image_type}): {mark}")
        for d in image.disks:
            parts = [f"vhd validate {d.validate.counts_line}" if d.validate else "",
                     f"check {d.check.counts_line}" if d.check else "",
                     d.note or d.info or "", f"error: {d.error}" if d.error else ""]
            lines.append(f"  {d.label} ({d.role}): " + "; ".join(p for p in parts if p))
            # Name the rules to fix under each disk: a count alone sends the reader to the
            # per-disk reports to learn what failed.
            reports = [r for r in (d.validate, d.check) if r is not None]
            failed = sorted({i for r in reports for i in r.failed_ids})
            waived = sorted({i for r in reports for i in r.waived_ids})
            if failed:
                lines.append(f"    failed: {', '.join(failed)}")
            if waived:
                lines.append(f"    waived: {', '.join(waived)}")
    lines += ["", "Any failure means not certified (CRT-RESULTS); a disk that was not "
                  "checked leaves the package incomplete."]
    return redact("\n".join(lines)) + "\n"


def _summary_html(cert: Certification) -> str:
    e = html.escape
    offer_failed = sorted({f.check_id for f in cert.offer_findings if f.failing})
    offer_line = f"Offer validation: {len(offer_failed)} rule(s) failed" + (
        ": " + ", ".join(f"<code>{e(i)}</code>" for i in offer_failed) if offer_failed else "")
    rows = []
    for image in cert.images:
        for d in image.disks:
            links = " ".join(f'<a href="{e(_result_dir(image, d))}/{name}.html">{name}</a>'
                             for name, rep in (("vhd-validate", d.validate), ("check", d.check))
                             if rep is not None)
            status = "fail" if d.failed else "incomplete" if not d.complete else "pass"
            detail = d.error or d.note or d.info or ""
            reports = [r for r in (d.validate, d.check) if r is not None]
            failed = sorted({i for r in reports for i in r.failed_ids})
            waived = sorted({i for r in reports for i in r.waived_ids})
            rules = "<br>".join(f"<code>{e(i)}</code>" for i in failed)
            if waived:
                rules += (("<br>" if rules else "") + "waived: "
                          + ", ".join(f"<code>{e(i)}</code>" for i in waived))
            rows.append(f"<tr class={status}><td>{e(image.sku)}</td><td>{e(image.version)}</td>"
                        f"<td>{e(d.label)}</td><td>{e(d.role)}</td><td>{status}</td>"
                        f"<td>{rules}</td><td>{links}</td><td>{e(redact(detail))}</td></tr>")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>{e(cert.verdict)}: {e(cert.manifest.offer.id)}</title>
<style>body{{font-family:sans-serif}} td,th{{padding:2px 8px;text-align:left}}
.fail{{color:#b00}} .incomplete{{color:#a60}} .pass{{color:#070}}</style></head>
<body><h1>{e(cert.verdict)}</h1>
<p>{e(cert.manifest.publisher)}.{e(cert.manifest.offer.id)}, profile {e(cert.profile)},
vmimage {e(__version__)}, {e(cert.started.isoformat(timespec="seconds"))}.
Any failure means not certified; a disk that was not checked leaves the package incomplete.</p>
<p><a href="offer-validation.json">offer validation</a> ·
<a href="questionnaire.json">questionnaire</a> · <a href="logs/certify.log">log</a></p>
<p>{offer_line}</p>
<table><tr><th>SKU</th><th>version</th><th>disk</th><th>role</th><th>result</th>
<th>failed rules</th><th>reports</th><th>note</th></tr>
{chr(10).join(rows)}
</table></body></html>
"""


def write_package(cert: Certification, out: Path) -> list[Path]:
    """Write the certification package into ``out`` (0700, files 0600); returns the files.

    Raises:
        InputError: the directory or a file cannot be written.
    """
    from vmimage.report.render import render

    private_dir(out)
    written: list[Path] = []

    def put(relative: str, text: str) -> None:
        path = out / relative
        private_dir(path.parent)
        written.append(write_private(path, text))

    for image in cert.images:
        for disk in image.disks:
            base = _result_dir(image, disk)
            for name, report in (("vhd-validate", disk.validate), ("check", disk.check)):
                if report is not None:
                    put(f"{base}/{name}.json", redact(render(report, "json")))
                    put(f"{base}/{name}.html", redact(render(report, "html")))
    put("offer-validation.json", json.dumps(
        {"manifest": cert.source, "profile": cert.profile,
         "findings": [f.to_dict() for f in cert.offer_findings]}, indent=2) + "\n")
    put("questionnaire.json", redact(json.dumps(_questionnaire(cert), indent=2)) + "\n")
    put("logs/certify.log", "\n".join(cert.log) + "\n")
    put("summary.json", json.dumps(summary(cert), indent=2) + "\n")
    put("summary.txt", _summary_text(cert))
    put("summary.html", _summary_html(cert))
    return written


def parse_container(text: str) -> BlobUrl:
    """The container URL given with ``--container-url`` (or ``@FILE``), checked before any
    rule runs, so a mistyped URL costs seconds, not a whole run.

    Raises:
        InputError: not a container URL.
    """
    from vmimage.inputs import read_url_argument
    from vmimage.storage.package_upload import parse_container_url

    return parse_container_url(read_url_argument(text))


def _default_container(cert: Certification) -> BlobUrl | None:
    """The container of the OS disk of the first SKU version whose OS disk names a blob URL:
    the guide wants the package beside the VHDs (CRT-ARTIFACTS)."""
    from vmimage.storage.blob_url import parse_blob_url
    from vmimage.storage.package_upload import container_of_blob

    for image in cert.images:
        for disk in image.disks:
            if disk.label == "os" and disk.url:
                return container_of_blob(parse_blob_url(disk.url, "the OS disk's blob URL"))
    return None


def upload_package(cert: Certification, output: Path, container: BlobUrl | None,
                   progress: Log) -> tuple[str, list[str]]:
    """Store the package as block blobs beside the VHDs (CRT-ARTIFACTS); the place as shown
    (no secret) and the names uploaded.

    Raises:
        InputError: no container given and no OS disk names a blob URL; or the upload fails.
    """
    from vmimage.storage.package_upload import blob_display, upload_directory

    container = container or _default_container(cert)
    if container is None:
        raise InputError("--upload", "no OS disk names a blob URL (url, or storage."
                                     "container_url with a file): give --container-url")
    offer = _UNSAFE.sub("_", cert.manifest.offer.id).lstrip(".") or "_"
    prefix = f"certification/{offer}/{cert.started.strftime('%Y%m%dT%H%M%SZ')}/"
    shown = blob_display(container, prefix)
    progress(f"uploading the package to {shown}")
    return shown, upload_directory(output, container, prefix)
