"""Image versions, their SAS URIs, certification requests and reports."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Header, Request, Response
from starlette.concurrency import run_in_threadpool

from vmimage.app.publishing import certification, certpackage, jobs, reports, versions
from vmimage.app.publishing.documents import (
    CertificationBody,
    CertificationOut,
    ImageVersion,
    Questionnaire,
    ReportOut,
    SasBody,
    VersionOut,
)
from vmimage.service.auth import CallerDep, StoreDep
from vmimage.service.routes import AUTH, BODY, errors

router = APIRouter(tags=["versions"])
SKU = "/offers/{offer}/skus/{sku}"
VERSION = SKU + "/versions/{version}"


@router.get(SKU + "/versions", summary="A SKU's versions", responses=errors(*AUTH, 404))
def list_versions(store: StoreDep, caller: CallerDep, offer: str, sku: str) -> list[VersionOut]:
    """Every version of the SKU, in manifest order, with its state."""
    return versions.list_versions(store, caller, offer, sku)


@router.post(SKU + "/versions", status_code=201, summary="Add a version",
             responses=errors(*BODY, 404, 409))
def create_version(store: StoreDep, caller: CallerDep, offer: str, sku: str,
                   body: ImageVersion) -> VersionOut:
    """A draft version as `offer.yaml` writes it; refused (422, with the report) when a rule
    fails on it: X.Y.Z, the patch-only rise of PUB-VERSION under azure-2015, LUNs..."""
    return versions.create_version(store, caller, offer, sku, body)


@router.get(VERSION, summary="A version", responses=errors(*AUTH, 404))
def get_version(store: StoreDep, caller: CallerDep, offer: str, sku: str,
                version: str) -> VersionOut:
    """The version's disks (SAS signatures masked), state and latest certification request."""
    return versions.get_version(store, caller, offer, sku, version)


@router.put(VERSION, summary="Replace a draft version's image",
            responses=errors(*BODY, 404, 409))
def replace_version(store: StoreDep, caller: CallerDep, offer: str, sku: str, version: str,
                    body: ImageVersion) -> VersionOut:
    """Only a draft or failed version (a failed one becomes a draft)."""
    return versions.replace_version(store, caller, offer, sku, version, body)


@router.delete(VERSION, status_code=204, summary="Delete a draft version",
               responses=errors(*AUTH, 404, 409))
def delete_version(store: StoreDep, caller: CallerDep, offer: str, sku: str,
                   version: str) -> Response:
    """Only a draft or failed version."""
    versions.delete_version(store, caller, offer, sku, version)
    return Response(status_code=204)


@router.put(VERSION + "/sas", summary="Give the disks their SAS URIs",
            responses=errors(*BODY, 404, 409))
def set_sas(store: StoreDep, caller: CallerDep, offer: str, sku: str, version: str,
            body: SasBody) -> VersionOut:
    """Each entry is a SAS URI (a blob's, a container's) or a bare token, matched to the
    disks as `submit render --sas-file` matches them; judged by the SAS rules; stored sealed
    and never shown again but masked (PUB-VHD-URLS)."""
    return versions.set_sas(store, caller, offer, sku, version, body.sas)


@router.delete(VERSION + "/sas", summary="Forget the disks' SAS URIs",
               responses=errors(*AUTH, 404, 409))
def clear_sas(store: StoreDep, caller: CallerDep, offer: str, sku: str,
              version: str) -> VersionOut:
    """Only a draft or failed version."""
    return versions.clear_sas(store, caller, offer, sku, version)


@router.get(VERSION + "/certification", summary="The version's certification requests",
            responses=errors(*AUTH, 404))
def list_certifications(store: StoreDep, caller: CallerDep, offer: str, sku: str,
                        version: str) -> list[CertificationOut]:
    """Every request, oldest first, with its questionnaire answers (CRT-QUESTIONNAIRE), the
    job running it (state, attempts, times) and, once it is done, its reports."""
    return certification.list_certifications(store, caller, offer, sku, version)


@router.post(VERSION + "/certification", status_code=202, summary="Request certification",
             responses=errors(*BODY, 404, 409))
def request_certification(store: StoreDep, caller: CallerDep, offer: str, sku: str,
                          version: str,
                          body: Annotated[CertificationBody | None, Body()] = None,
                          idempotency_key: Annotated[str | None, Header(
                              alias="Idempotency-Key", description="Send the request again "
                              "with the same key (1 to 200 printable ASCII characters): it "
                              "is answered with the request and job it made the first time, "
                              "and nothing runs twice.")] = None) -> CertificationOut:
    """PUB-CERT: the version must meet every manifest and SAS rule and have a SAS URI on every
    VHD; a job then runs the checks on every VHD by its SAS URI and alone decides certified or
    failed (the answer names the job: `GET /jobs/{id}`)."""
    answers = body.questionnaire if body is not None else None
    return jobs.request_certification(store, caller, offer, sku, version, answers,
                                      idempotency_key)


@router.delete(VERSION + "/certification", summary="Withdraw the pending request",
               responses=errors(*AUTH, 404, 409))
def withdraw_certification(store: StoreDep, caller: CallerDep, offer: str, sku: str,
                           version: str) -> CertificationOut:
    """The version becomes a draft again."""
    return certification.withdraw_certification(store, caller, offer, sku, version)


@router.put(VERSION + "/certification/questionnaire", summary="Answer the questionnaire",
            responses=errors(*BODY, 404, 409))
def answer_questionnaire(store: StoreDep, caller: CallerDep, offer: str, sku: str,
                         version: str, body: Questionnaire) -> CertificationOut:
    """CRT-QUESTIONNAIRE, after the automated tests: the answers, how the certification team
    reaches the VM (no secrets), and why each failed check is acceptable; kept with the latest
    request (which is not run again) and put in its package."""
    return certpackage.answer_questionnaire(store, caller, offer, sku, version, body)


@router.get(VERSION + "/certification/package", summary="Download the certification package",
            response_class=Response, responses={
                200: {"content": {"application/zip": {}},
                      "description": "The latest request's package, as an attachment."},
                **errors(*AUTH, 404)})
def download_package(store: StoreDep, caller: CallerDep, offer: str, sku: str,
                     version: str) -> Response:
    """CRT-ARTIFACTS: the run's reports (JSON and HTML), its log, the questionnaire (each
    explanation tied to whether its check failed) and a summary, in one zip."""
    content, name = certpackage.package(store, caller, offer, sku, version)
    return Response(content, media_type="application/zip",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


@router.get(VERSION + "/reports", summary="The version's reports", responses=errors(*AUTH, 404))
def list_reports(store: StoreDep, caller: CallerDep, offer: str, sku: str,
                 version: str) -> list[ReportOut]:
    """Every report kept: the publisher's uploads and the service's own runs (CRT-ARTIFACTS)."""
    return reports.list_reports(store, caller, offer, sku, version)


@router.post(VERSION + "/reports", status_code=201, summary="Upload a certification report",
             responses=errors(400, 401, 404, 413, 422),
             openapi_extra={"requestBody": {"required": True, "content": {
                 "application/json": {"schema": {"type": "object", "description":
                                                 "vmimage's JSON report (report-v1.json)"}},
                 "text/html": {"schema": {"type": "string"}}}}})
async def upload_report(store: StoreDep, caller: CallerDep, offer: str, sku: str,
                        version: str, request: Request) -> ReportOut:
    """A `vmimage check` report, JSON or HTML (PUB-CERT: the results are uploaded); kept as
    evidence beside the version, never taken as a verdict."""
    content = await request.body()
    media_type = request.headers.get("content-type", "")
    return await run_in_threadpool(reports.upload_report, store, caller, offer, sku, version,
                                   media_type, content)


@router.get(VERSION + "/reports/{report}", summary="Download a report",
            response_class=Response, responses={
                200: {"content": {"application/json": {}, "text/html": {}},
                      "description": "The report as stored, as an attachment."},
                **errors(*AUTH, 404)})
def download_report(store: StoreDep, caller: CallerDep, offer: str, sku: str, version: str,
                    report: int) -> Response:
    """As stored; an HTML report is sandboxed (it cannot run as this site's page)."""
    content, media_type, name = reports.get_report(store, caller, offer, sku, version, report)
    return Response(content, media_type=media_type, headers={
        "Content-Disposition": f'attachment; filename="{name}"',
        "Content-Security-Policy": "sandbox; default-src 'none'; style-src 'unsafe-inline'"})
