"""The portal's certification page (§5.1): where the latest request stands, reloading itself
while its job runs (a Refresh header, no script); then the verdict, each failed check with its
remediation, the HTML report of the run (the same as ``vmimage check --format html``, framed
and sandboxed), the questionnaire the publisher answers after the tests (CRT-QUESTIONNAIRE),
and the certification package to download (CRT-ARTIFACTS)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from vmimage.app.publishing import certpackage, reports, versions
from vmimage.app.publishing.accounts import Visitor
from vmimage.app.publishing.documents import Questionnaire
from vmimage.app.publishing.errors import PublishingError
from vmimage.app.publishing.store import Store
from vmimage.service.auth import store as store_of
from vmimage.service.web.forms import Back, Csrf, change, model, not_found, signed
from vmimage.service.web.images import VERSION
from vmimage.service.web.pages import BASE, HEADERS, page

router = APIRouter(prefix=BASE, include_in_schema=False)
#: Questions the guide's questionnaire asks when the SKU's answers name none.
QUESTIONS = ("Which software does the image add to the operating system?",
             "How is the software licensed (bring your own license, or included)?")
#: How many questions the form offers at most (the SKU's, then blank ones).
MAX_QUESTIONS = 10
#: A report framed in the certification page: only this site may frame it, and the frame
#: runs nothing and reaches nothing (the report is the publisher's data, not this site's).
FRAMED = {**HEADERS, "X-Frame-Options": "SAMEORIGIN",
          "Content-Security-Policy": "sandbox; default-src 'none'; style-src 'unsafe-inline'; "
                                     "img-src data:; frame-ancestors 'self'"}


def _questions(answers: dict[str, Any]) -> list[dict[str, str]]:
    given = [{"question": str(a.get("question", "")), "answer": str(a.get("answer", ""))}
             for a in answers.get("answers") or []]
    asked = {a["question"] for a in given}
    given += [{"question": q, "answer": ""} for q in QUESTIONS if q not in asked]
    return given[:MAX_QUESTIONS]


def _page(store: Store, who: Visitor, offer: str, sku: str, number: str, status: int = 200,
          problem: dict[str, Any] | None = None) -> Response:
    found = versions.get_version(store, who.caller, offer, sku, number)
    latest = found.certification
    running = latest is not None and latest.state == "requested"
    kept = [r for r in reports.list_reports(store, who.caller, offer, sku, number)
            if latest is not None and r.certification == latest.id]
    failed = ([] if latest is None or running else
              certpackage.failed_checks(store, who.caller, offer, sku, number))
    answers = latest.questionnaire if latest is not None else {}
    response = page("certification.html", status, visitor=who, offer=offer, sku=sku,
                    version=found, request=latest, running=running, reports=kept,
                    html_report=next((r for r in kept if r.format == "html"), None),
                    failed=failed, questions=_questions(answers),
                    remote_access=answers.get("remote_access") or "",
                    explanations=answers.get("explanations") or {}, problem=problem)
    if running:
        response.headers["Refresh"] = "3"
    return response


@router.get(VERSION + "/certification", response_class=HTMLResponse)
def certification_page(request: Request, offer: str, sku: str, version: str) -> Response:
    """Where the latest request stands; then its verdict, failed checks, report,
    questionnaire and package."""
    who = signed(request)
    if not isinstance(who, Visitor):
        return who
    try:
        return _page(store_of(request), who, offer, sku, version)
    except PublishingError as exc:
        return not_found(who, exc)


def _again(offer: str, sku: str, number: str) -> Back:
    return lambda store, who, problem: _page(store, who, offer, sku, number, 422, problem)


@router.post(VERSION + "/certification/questionnaire")
async def answer(request: Request, offer: str, sku: str, version: str,
                 csrf: Csrf = "",
                 remote_access: Annotated[str, Form(max_length=4000)] = "") -> Response:
    """The questionnaire's answers (``question-N``/``answer-N``), how to reach the VM, and an
    explanation per failed check (``explain-RULE``), kept with the latest request."""
    form = await request.form()
    answers = []
    for n in range(MAX_QUESTIONS):
        question = str(form.get(f"question-{n}", ""))[:1000].strip()
        reply = str(form.get(f"answer-{n}", ""))[:4000].strip()
        if question and reply:
            answers.append({"question": question, "answer": reply})
    explanations = {str(key)[len("explain-"):]: str(text)[:4000].strip()
                    for key, text in form.multi_items()
                    if str(key).startswith("explain-") and str(text).strip()}
    data = {"answers": answers, "remote_access": remote_access.strip() or None,
            "explanations": dict(list(explanations.items())[:200])}
    base = f"{BASE}/offers/{offer}/skus/{sku}/versions/{version}/certification"
    return await run_in_threadpool(
        change, request, csrf,
                  lambda s, w: certpackage.answer_questionnaire(
                      s, w.caller, offer, sku, version,
                      model(Questionnaire, data, ("answers", "remote_access", "explanations"))),
                  _again(offer, sku, version), f"{base}#questionnaire")


@router.get(VERSION + "/certification/package")
def package(request: Request, offer: str, sku: str, version: str) -> Response:
    """The certification package of the latest request, as a zip download."""
    who = signed(request)
    if not isinstance(who, Visitor):
        return who
    try:
        content, name = certpackage.package(store_of(request), who.caller, offer, sku, version)
    except PublishingError as exc:
        return not_found(who, exc)
    return Response(content, media_type="application/zip",
                    headers={**HEADERS, "Content-Disposition": f'attachment; filename="{name}"'})


@router.get(VERSION + "/reports/{report}")
def report(request: Request, offer: str, sku: str, version: str, report: int) -> Response:
    """A stored report as it was kept, shown in the certification page's frame (HTML
    sandboxed: it runs nothing, it can open nothing)."""
    who = signed(request)
    if not isinstance(who, Visitor):
        return who
    try:
        content, media_type, name = reports.get_report(store_of(request), who.caller, offer,
                                                       sku, version, report)
    except PublishingError as exc:
        return not_found(who, exc)
    return Response(content, media_type=media_type,
                    headers={**FRAMED, "Content-Disposition": f'inline; filename="{name}"'})
