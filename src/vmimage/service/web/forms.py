"""What every form of the portal does the same way: who is signed in, its CSRF token, the use
case of the JSON API (so the rules are the same), and on a refusal the form's page again
(422) with the failing rules, their fixes, and each mistake beside its field."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Annotated, Any

from fastapi import Form, Request
from fastapi.responses import Response

from vmimage.app.publishing.accounts import Visitor, csrf_ok
from vmimage.app.publishing.errors import PublishingError, Refused
from vmimage.app.publishing.store import Store
from vmimage.findings import Finding
from vmimage.service.auth import store as store_of
from vmimage.service.web.pages import BASE, page, redirect, visitor

Csrf = Annotated[str, Form(max_length=100)]
#: Shows a form's page again with a refusal: (store, visitor, problem) -> the page.
Back = Callable[[Store, Visitor, dict[str, Any]], Response]


class FormInvalid(PublishingError):
    """A form's fields that cannot be used, each with what is wrong (shown beside it)."""

    status = 422

    def __init__(self, fields: dict[str, list[str]]) -> None:
        self.fields = fields
        super().__init__("the form has mistakes: " + "; ".join(
            f"{name}: {', '.join(said)}" for name, said in fields.items()))


def invalid(exc: Exception, known: tuple[str, ...]) -> FormInvalid:
    """A body model's validation errors by the form field each belongs to (the first element
    of its location that names a field, else the first field)."""
    from pydantic import ValidationError

    fields: dict[str, list[str]] = {}
    errors = exc.errors()[:10] if isinstance(exc, ValidationError) else []
    for error in errors:
        loc = [str(p) for p in error["loc"]]
        name = next((p for p in loc if p in known), known[0])
        fields.setdefault(name, []).append(str(error["msg"]))
    return FormInvalid(fields or {known[0]: [str(exc)]})


def model(kind: type[Any], data: dict[str, Any], known: tuple[str, ...]) -> Any:  # noqa: ANN401
    """A body model from a form's values, or its mistakes by field.

    Raises:
        FormInvalid: the values do not make a valid ``kind``.
    """
    from pydantic import ValidationError

    try:
        return kind.model_validate(data)
    except ValidationError as exc:
        raise invalid(exc, known) from None


def _field_of(finding: Finding, known: tuple[str, ...]) -> str | None:
    """The form field a failing rule points at: by its evidence's path, or the manifest path
    its message starts with (``skus[0].versions[1].os_disk.url: ...``)."""
    paths = " ".join([*(e.path or "" for e in finding.evidence),
                      finding.message.partition(": ")[0]])
    return next((name for name in reversed(known) if name in paths), None)


def problem(exc: PublishingError, known: tuple[str, ...] = ()) -> dict[str, Any]:
    """A refusal as a page shows it: the line, each failing rule with its fix, and the
    mistakes by field (a field of ``known`` that a failing rule's evidence names)."""
    failing = []
    fields: dict[str, list[str]] = dict(getattr(exc, "fields", {}))
    if isinstance(exc, Refused):
        for f in exc.report.findings:
            if not f.failing:
                continue
            failing.append({"id": f.check_id, "message": f.message, "fix": f.remediation})
            name = _field_of(f, known) if known else None
            if name is not None:
                fields.setdefault(name, []).append(f"{f.check_id}: {f.message}")
    return {"message": str(exc), "failing": failing, "fields": fields}


def signed(request: Request) -> Visitor | Response:
    """The visitor, or the way to the sign-in page."""
    who = visitor(request)
    return who if who is not None else redirect(f"{BASE}/sign-in")


def not_found(who: Visitor, exc: PublishingError) -> Response:
    """A page of something the visitor's publisher does not have (another's: the same)."""
    return page("error.html", exc.status, visitor=who, title="Not found", message=str(exc))


def change(request: Request, csrf: str, work: Callable[[Store, Visitor], object], back: Back,
           done: str, known: tuple[str, ...] = ()) -> Response:
    """A form's change: signed in, its CSRF token, the use case; the next page (303), or the
    form's page again with the refusal (422)."""
    who = signed(request)
    if not isinstance(who, Visitor):
        return who
    if not csrf_ok(who, csrf):
        return page("error.html", 403, visitor=who, title="Refused",
                    message="The form was not sent from this site: open the page again.")
    store = store_of(request)
    try:
        work(store, who)
    except PublishingError as exc:
        try:
            return back(store, who, problem(exc, known))
        except PublishingError as gone:  # the page itself is not the visitor's (or is gone)
            return not_found(who, gone)
    return redirect(done)


def with_values(back: Callable[..., Response], values: Mapping[str, str]) -> Back:
    """``back`` given the form's values too, so the page shows them again beside their
    mistakes instead of an empty form."""
    return lambda store, who, found: back(store, who, found, dict(values))
