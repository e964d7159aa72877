"""Image versions of a SKU, their disks and their SAS URIs.

A version is sent as the manifest writes it (``version``, ``os_disk``, ``data_disks`` with
LUNs, or ``gallery_image``), and judged when written: a rule of the one registry that fails
on it (a version that is not X.Y.Z, one whose major or minor moves within the SKU under
``azure-2015``, LUNs with gaps, a disk URL holding a token) refuses the write with the report.

SAS URIs are given apart, as ``submit render --sas-file`` reads them (a blob's URI, a
container's, or a bare token), judged by the SAS rules (``sas verify --offline``), and stored
sealed (:mod:`vmimage.catalog.sealing`); the API shows them with the signature masked.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence

from vmimage.app.publishing import lookup, out, records
from vmimage.app.publishing.documents import ImageVersion as VersionModel
from vmimage.app.publishing.documents import VersionOut
from vmimage.app.publishing.errors import Conflict, Invalid, Refused
from vmimage.app.publishing.lifecycle import State, check_editable
from vmimage.app.publishing.store import Store
from vmimage.app.publishing.tokens import Caller
from vmimage.app.sas import verify_report
from vmimage.catalog.models import Disk, ImageVersion, Offer
from vmimage.errors import InputError
from vmimage.offer.sas import SasTokens, parse_tokens
from vmimage.report.model import Report
from vmimage.secrets import redact, register_sas


def list_versions(store: Store, caller: Caller, offer_id: str, sku_id: str) -> list[VersionOut]:
    """A SKU's versions in manifest order."""
    with store.read() as session:
        return [out.version(v) for v in lookup.sku(session, caller, offer_id, sku_id).versions]


def get_version(store: Store, caller: Caller, offer_id: str, sku_id: str,
                number: str) -> VersionOut:
    """One version."""
    with store.read() as session:
        return out.version(lookup.version(session, caller, offer_id, sku_id, number))


def create_version(store: Store, caller: Caller, offer_id: str, sku_id: str,
                   body: VersionModel) -> VersionOut:
    """A new draft version of the SKU.

    Raises:
        Conflict: the SKU has that version.
        Refused: a rule fails on it.
    """
    with store.write() as session:
        sku = lookup.sku(session, caller, offer_id, sku_id)
        if any(v.version == body.version for v in sku.versions):
            raise Conflict(f"SKU {sku_id!r} has version {body.version} already")
        row = ImageVersion(version=body.version, state=State.DRAFT.value,
                           position=max((v.position for v in sku.versions), default=-1) + 1)
        sku.versions.append(row)
        records.fill_version(sku.offer, row, body)
        records.check_versions(session, store, sku.offer, [row])
        return out.version(row)


def replace_version(store: Store, caller: Caller, offer_id: str, sku_id: str, number: str,
                    body: VersionModel) -> VersionOut:
    """Replace a draft (or failed) version's disks; a failed one becomes a draft again.

    Raises:
        Invalid: the body names another version.
        Conflict: the version was submitted, certified, staged or published.
        Refused: a rule fails on it.
    """
    if body.version != number:
        raise Invalid(f"the body is version {body.version}, the address version {number}: a "
                      "version number never changes (add a new version instead)")
    with store.write() as session:
        row = lookup.version(session, caller, offer_id, sku_id, number)
        check_editable(row.state, f"version {number}")
        records.fill_version(row.sku.offer, row, body)
        records.check_versions(session, store, row.sku.offer, [row])
        return out.version(row)


def delete_version(store: Store, caller: Caller, offer_id: str, sku_id: str,
                   number: str) -> None:
    """Delete a draft (or failed) version.

    Raises:
        Conflict: the version was submitted, certified, staged or published.
    """
    with store.write() as session:
        row = lookup.version(session, caller, offer_id, sku_id, number)
        check_editable(row.state, f"version {number}")
        row.sku.versions.remove(row)  # delete-orphan: removed from the SKU is deleted


def _vhd_disks(row: ImageVersion) -> list[Disk]:
    """The disks that are VHDs (an empty data disk has no blob)."""
    return [d for d in row.disks if d.empty_size is None]


def sas_uri(store: Store, offer: Offer, disk: Disk) -> str | None:
    """A disk's SAS URI, unsealed: a secret, for the certification run only (registered with
    the redactor, so no log or error shows it)."""
    blob = out.blob_of(offer, disk)
    if disk.sas_sealed is None or blob is None:
        return None
    query = store.sealer.open(disk.sas_sealed, blob)
    register_sas(query)
    return f"{blob}?{query}"


def _tokens(lines: list[str]) -> SasTokens:
    """The SAS lines as ``submit render --sas-file`` reads them.

    Raises:
        Invalid: a line is not a SAS URI or token.
    """
    try:
        return parse_tokens("\n".join(lines), "sas")
    except InputError as exc:
        raise Invalid(exc.problem) from None


def _refuse_failing(report: Report) -> None:
    """Raise Refused when a SAS rule failed (the message never shows a signature)."""
    bad = [f for f in report.findings if f.failing]
    if bad:
        ids = ", ".join(sorted({f.check_id for f in bad}))
        raise Refused(f"the SAS URIs break {ids}: {bad[0].message}", report)


def judge_sas(store: Store, uris: list[str]) -> None:
    """The SAS rules (``vmimage sas verify --offline``) on a version's SAS URIs.

    Raises:
        Refused: a SAS rule fails (the report never shows a signature).
    """
    report = verify_report(uris, store.profile, online=False)
    _refuse_failing(report)


#: How a refused endpoint is allowed, said to a publisher (the operator's setting).
SERVICE_HINT = "the service's operator allows it with vmimage serve --allow-endpoint {endpoint}"


def check_sas_live(store: Store, caller: Caller, offer_id: str, sku_id: str, number: str,
                   lines: list[str], allow_endpoints: Sequence[str]) -> Report | None:
    """Open each VHD the lines give a SAS URI for, before they are saved: every SAS rule,
    online (``vmimage sas verify``): the SAS opens the blob, a page blob, not leased, its
    length, and a fixed VHD footer read by one range request. Only the endpoints the
    certification run may read are contacted (the fetch policy of ``vmimage check URL``).

    Runs outside any transaction (the network may take seconds); :func:`set_sas` then saves.
    Returns the report, or None when no line applies to a disk of the version (set_sas says
    so).

    Raises:
        Invalid: a line is not a SAS URI or token, or its endpoint is not allowed.
        Refused: a SAS rule fails (the report never shows a signature).
    """
    from vmimage.fetchpolicy import FetchPolicy

    tokens = _tokens(lines)
    with store.read() as session:
        row = lookup.version(session, caller, offer_id, sku_id, number)
        blobs = [b for d in _vhd_disks(row) if (b := out.blob_of(row.sku.offer, d))]
    uris = [f"{blob}?{token}" for blob in blobs if (token := tokens.token(blob))]
    if not uris:
        return None
    policy = dataclasses.replace(FetchPolicy.from_settings(allow_endpoints, os.environ),
                                 allow_hint=SERVICE_HINT)
    for uri in uris:
        try:
            policy.vet(uri)
        except InputError as exc:
            raise Invalid(redact(str(exc))) from None
    report = verify_report(uris, store.profile, online=True)
    _refuse_failing(report)
    return report


def set_sas(store: Store, caller: Caller, offer_id: str, sku_id: str, number: str,
            lines: list[str]) -> VersionOut:
    """Give a draft (or failed) version's disks their SAS URIs (PUB-VHD-URLS): each line
    applies to the disks it names, as ``submit render --sas-file`` matches them; disks it does
    not name keep theirs.

    Raises:
        Invalid: a line is not a SAS URI or token, or none applies to a disk of the version.
        Conflict: the version is not editable.
        Refused: a SAS rule fails.
    """
    tokens = _tokens(lines)
    with store.write() as session:
        row = lookup.version(session, caller, offer_id, sku_id, number)
        check_editable(row.state, f"version {number}")
        offer = row.sku.offer
        given = 0
        for disk in _vhd_disks(row):
            blob = out.blob_of(offer, disk)
            token = tokens.token(blob) if blob is not None else None
            if blob is None or token is None:
                continue
            given += 1
            disk.sas_sealed = store.sealer.seal(token, blob)
            disk.sas_fields = out.public_fields(token)
        if not given:
            blobs = ", ".join(b for d in _vhd_disks(row) if (b := out.blob_of(offer, d))) or "none"
            raise Invalid(f"no SAS URI applies to a disk of version {number} (its blobs: "
                          f"{blobs})")
        judge_sas(store, [u for d in _vhd_disks(row) if (u := sas_uri(store, offer, d))])
        if row.state == State.FAILED:
            records.set_state(row, State.DRAFT)
        return out.version(row)


def clear_sas(store: Store, caller: Caller, offer_id: str, sku_id: str,
              number: str) -> VersionOut:
    """Forget every SAS URI of a draft (or failed) version.

    Raises:
        Conflict: the version is not editable.
    """
    with store.write() as session:
        row = lookup.version(session, caller, offer_id, sku_id, number)
        check_editable(row.state, f"version {number}")
        for disk in row.disks:
            disk.sas_sealed, disk.sas_fields = None, None
        return out.version(row)
