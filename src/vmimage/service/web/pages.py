"""Rendering: the template environment (autoescaped), the security headers every page has,
and who is signed in."""

from __future__ import annotations

from functools import cache
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse
from jinja2 import Environment, PackageLoader, select_autoescape

from vmimage import __version__
from vmimage.app.publishing import accounts
from vmimage.app.publishing.accounts import Visitor
from vmimage.service.auth import store as store_of

SESSION_COOKIE = "vmimage_session"
SIGN_IN_COOKIE = "vmimage_sign_in"
BASE = "/portal"
#: Every page: nothing from elsewhere, never in a frame, no referrer beyond this origin, and
#: not kept by a shared cache (pages show a publisher's own records).
HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; "
                               "script-src 'self'; frame-ancestors 'none'; form-action 'self'; "
                               "base-uri 'none'",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
}


@cache
def environment() -> Environment:
    """The templates of this package, HTML autoescaped."""
    return Environment(loader=PackageLoader("vmimage.service.web", "templates"),
                       autoescape=select_autoescape(("html",)), trim_blocks=True,
                       lstrip_blocks=True)


def page(template: str, status: int = 200, **context: Any) -> HTMLResponse:  # noqa: ANN401
    """A rendered page with the security headers."""
    html = environment().get_template(template).render(base=BASE, tool_version=__version__,
                                                        **context)
    return HTMLResponse(html, status_code=status, headers=HEADERS)


def redirect(to: str) -> RedirectResponse:
    """303 See Other: after a form, the browser GETs the next page."""
    return RedirectResponse(to, status_code=303, headers=HEADERS)


def visitor(request: Request) -> Visitor | None:
    """Who is signed in with this request's cookie, if anyone."""
    return accounts.visitor(store_of(request), request.cookies.get(SESSION_COOKIE))


def secure(request: Request) -> bool:
    """Whether cookies get ``Secure`` (the request came over HTTPS)."""
    return request.url.scheme == "https"
