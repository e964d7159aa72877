"""Certification reports kept with each version, downloadable as stored (CRT-ARTIFACTS,
PUB-CERT): the publisher uploads the results of its own run (``vmimage check ... -o
report.json -o report.html``), and the service keeps the report of its own run beside them.

A JSON report must be a vmimage report (``schemas/report-v1.json``): a program reads it. An
HTML report is kept as UTF-8 text and served as a download that a browser does not run as
this site's page (the routers set the headers). An uploaded report is evidence for the
reviewers, never a verdict: only the service's own run certifies.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import re

from sqlalchemy.orm import Session

from vmimage.app.publishing import lookup, out
from vmimage.app.publishing.documents import ReportOut
from vmimage.app.publishing.errors import Invalid
from vmimage.app.publishing.store import Store
from vmimage.app.publishing.tokens import Caller
from vmimage.catalog.models import CertificationRequest, ImageVersion, StoredReport
from vmimage.report.html import render_html
from vmimage.report.json_report import render_json, schema
from vmimage.report.model import Report
from vmimage.textsafe import printable

#: Format -> media type, as stored and served.
MEDIA_TYPES = {"json": "application/json", "html": "text/html; charset=utf-8"}
PUBLISHER, SERVICE = "publisher", "service"
#: What a download's file name may hold (it goes into a header).
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def _row(content: bytes, fmt: str, source: str,
         request: CertificationRequest | None) -> StoredReport:
    return StoredReport(source=source, format=fmt, size=len(content),
                        sha256=hashlib.sha256(content).hexdigest(), content=content,
                        request_fk=request.id if request is not None else None)


def store_report(session: Session, version: ImageVersion, report: Report,
                 request: CertificationRequest | None) -> None:
    """Keep the service's own report of a run, as JSON and as HTML."""
    for fmt, text in (("json", render_json(report)), ("html", render_html(report))):
        version.reports.append(_row(text.encode(), fmt, SERVICE, request))
    session.flush()


def _check_json(content: bytes) -> None:
    try:
        data = json.loads(content.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise Invalid("not a JSON report: the body is not JSON text") from None
    validator = importlib.import_module("jsonschema").Draft202012Validator(schema())
    errors = sorted(validator.iter_errors(data), key=lambda e: list(e.path))
    if errors:
        where = "/".join(str(p) for p in errors[0].absolute_path) or "(top level)"
        raise Invalid(printable(f"not a vmimage JSON report (schemas/report-v1.json): at {where}: "
                                f"{errors[0].message[:200]}"))


def format_of(media_type: str) -> str:
    """``json`` or ``html`` from a Content-Type.

    Raises:
        Invalid: neither.
    """
    base = media_type.split(";", 1)[0].strip().lower()
    if base == "application/json":
        return "json"
    if base == "text/html":
        return "html"
    raise Invalid("a report is application/json (vmimage's JSON report) or text/html")


def upload_report(store: Store, caller: Caller, offer_id: str, sku_id: str, number: str,
                  media_type: str, content: bytes) -> ReportOut:
    """Keep a report the publisher uploads for a version.

    Raises:
        Invalid: not JSON or HTML, not a vmimage JSON report, or HTML that is not UTF-8.
    """
    fmt = format_of(media_type)
    if not content:
        raise Invalid("the report is empty")
    if fmt == "json":
        _check_json(content)
    else:
        try:
            content.decode("utf-8")
        except UnicodeDecodeError:
            raise Invalid("an HTML report must be UTF-8 text") from None
    with store.write() as session:
        version = lookup.version(session, caller, offer_id, sku_id, number)
        pending = version.certifications[-1] if version.certifications else None
        row = _row(content, fmt, PUBLISHER, pending)
        version.reports.append(row)
        session.flush()
        return out.report(row)


def list_reports(store: Store, caller: Caller, offer_id: str, sku_id: str,
                 number: str) -> list[ReportOut]:
    """Every report kept for a version."""
    with store.read() as session:
        return [out.report(r) for r in
                lookup.version(session, caller, offer_id, sku_id, number).reports]


def get_report(store: Store, caller: Caller, offer_id: str, sku_id: str, number: str,
               report_id: int) -> tuple[bytes, str, str]:
    """A report as stored: its bytes, media type and a file name for the download."""
    with store.read() as session:
        row = lookup.report(session, caller, offer_id, sku_id, number, report_id)
        name = _UNSAFE.sub("_", f"{offer_id}-{sku_id}-{number}-report-{row.id}") + f".{row.format}"
        return row.content, MEDIA_TYPES[row.format], name
