"""The portal's pages: sign in and out, the dashboard."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from vmimage.app.publishing import accounts, dashboard
from vmimage.app.publishing.accounts import SESSION_HOURS
from vmimage.service.auth import store as store_of
from vmimage.service.web.pages import (
    BASE,
    SESSION_COOKIE,
    SIGN_IN_COOKIE,
    page,
    redirect,
    secure,
    visitor,
)

router = APIRouter(prefix=BASE, include_in_schema=False)
STATES = ("draft", "certification-requested", "certified", "failed", "staging", "published",
          "none")


@router.get("", response_class=RedirectResponse)
def root() -> RedirectResponse:
    """``/portal`` is the dashboard."""
    return redirect(f"{BASE}/")


@router.get("/sign-in", response_class=HTMLResponse)
def sign_in_form(request: Request) -> Response:
    """The form; a signed-in visitor goes to the dashboard. The form's CSRF token is also in a
    short-lived cookie (there is no session yet to hold it)."""
    if visitor(request) is not None:
        return redirect(f"{BASE}/")
    token = secrets.token_urlsafe(32)
    response = page("sign_in.html", csrf=token, error=None, email="")
    response.set_cookie(SIGN_IN_COOKIE, token, max_age=3600, path=BASE, httponly=True,
                        samesite="strict", secure=secure(request))
    return response


@router.post("/sign-in", response_class=HTMLResponse)
async def sign_in(request: Request, email: Annotated[str, Form(max_length=254)] = "",
                  password: Annotated[str, Form(max_length=1024)] = "",
                  csrf: Annotated[str, Form(max_length=100)] = "") -> Response:
    """Check the address and password; a session cookie and the dashboard, or the form again
    with one error that does not say which of the two was wrong."""
    expected = request.cookies.get(SIGN_IN_COOKIE, "")
    if not expected or not secrets.compare_digest(expected, csrf):
        return page("error.html", 403, title="Refused",
                    message="The form has expired or was not sent from this site: open the "
                            "sign-in page again.")
    made = await run_in_threadpool(accounts.sign_in, store_of(request), email, password)
    if made is None:
        return page("sign_in.html", 401, csrf=expected, email=email,
                    error="Wrong e-mail address or password.")
    response = redirect(f"{BASE}/")
    response.set_cookie(SESSION_COOKIE, made.token, max_age=SESSION_HOURS * 3600, path=BASE,
                        httponly=True, samesite="strict", secure=secure(request))
    response.delete_cookie(SIGN_IN_COOKIE, path=BASE)
    return response


@router.post("/sign-out")
def sign_out(request: Request, csrf: Annotated[str, Form(max_length=100)] = "") -> Response:
    """End the session (the form carries its CSRF token) and go back to the sign-in page."""
    who = visitor(request)
    if who is not None and not accounts.csrf_ok(who, csrf):
        return page("error.html", 403, title="Refused",
                    message="The form was not sent from this site.")
    accounts.sign_out(store_of(request), request.cookies.get(SESSION_COOKIE))
    response = redirect(f"{BASE}/sign-in")
    response.delete_cookie(SESSION_COOKIE, path=BASE)
    return response


@router.get("/", response_class=HTMLResponse)
def home(request: Request, q: Annotated[str, Query(max_length=200)] = "",
         state: Annotated[str, Query(max_length=40)] = "",
         start: Annotated[int, Query(ge=0, le=10_000_000)] = 0) -> Response:
    """The dashboard: every SKU's latest version, its state and since when, filterable, a
    hundred to a page."""
    who = visitor(request)
    if who is None:
        return redirect(f"{BASE}/sign-in")
    found = dashboard.dashboard(store_of(request), who.caller, q,
                                state if state in STATES else "", start)
    return page("dashboard.html", visitor=who, found=found, rows=found.rows, q=q, state=state,
                states=STATES)
