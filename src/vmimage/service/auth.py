"""Who is asking: the publisher of the request's bearer token, or 401.

The token is looked up by its SHA-256 (:mod:`vmimage.app.publishing.tokens`); it is never
logged (uvicorn's access log shows the request line only, and the header is not in it).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from vmimage.app.publishing import tokens
from vmimage.app.publishing.errors import Unauthorized
from vmimage.app.publishing.store import Store
from vmimage.app.publishing.tokens import Caller

_bearer = HTTPBearer(auto_error=False, description="An API token of the publisher "
                                                   "(`vmimage serve token create`).")


def store(request: Request) -> Store:
    """The process's store."""
    found: Store = request.app.state.store
    return found


def caller(request: Request,
           credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
           ) -> Caller:
    """The caller, from ``Authorization: Bearer TOKEN``.

    Raises:
        Unauthorized: no token, or one the service does not know.
    """
    if credentials is None:
        raise Unauthorized("no API token: send Authorization: Bearer TOKEN")
    found = tokens.authenticate(store(request), credentials.credentials)
    if found is None:
        raise Unauthorized("the API token is not valid (unknown or revoked)")
    return found


StoreDep = Annotated[Store, Depends(store)]
CallerDep = Annotated[Caller, Depends(caller)]
