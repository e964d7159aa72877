"""The caller's publisher and its API tokens."""

from __future__ import annotations

from fastapi import APIRouter

from vmimage.app.publishing import certificates, tokens
from vmimage.app.publishing.documents import (
    CertificateIn,
    CertificateOut,
    Me,
    TokenCreate,
    TokenIssued,
    TokenOut,
)
from vmimage.service.auth import CallerDep, StoreDep
from vmimage.service.routes import AUTH, BODY, errors

router = APIRouter(tags=["publisher"])


@router.get("/me", summary="The publisher of this token", responses=errors(*AUTH))
def me(store: StoreDep, caller: CallerDep) -> Me:
    """The namespace and the token in use (never the token itself)."""
    return tokens.me(store, caller)


@router.get("/tokens", summary="The publisher's API tokens", responses=errors(*AUTH))
def list_tokens(store: StoreDep, caller: CallerDep) -> list[TokenOut]:
    """Every token, revoked ones included, by ID, label and first characters."""
    return tokens.list_tokens(store, caller)


@router.post("/tokens", status_code=201, summary="Make another API token",
             responses=errors(*BODY))
def create_token(store: StoreDep, caller: CallerDep, body: TokenCreate) -> TokenIssued:
    """The new token is in the answer, this once: the service keeps only its SHA-256."""
    return tokens.create_token(store, caller, body.label)


@router.delete("/tokens/{token_id}", summary="Revoke an API token",
               responses=errors(401, 404, 409))
def revoke_token(store: StoreDep, caller: CallerDep, token_id: int) -> TokenOut:
    """Revoke one of the publisher's tokens; requests with it are refused from now on."""
    return tokens.revoke_token(store, caller, token_id)


@router.get("/certificates", summary="The publisher's management certificates",
            responses=errors(*AUTH))
def list_certificates(store: StoreDep, caller: CallerDep) -> list[CertificateOut]:
    """The client certificates that authenticate the classic Create VM Image API."""
    return certificates.list_certificates(store, caller)


@router.post("/certificates", status_code=201, summary="Register a management certificate",
             responses=errors(*BODY, 409))
def add_certificate(store: StoreDep, caller: CallerDep, body: CertificateIn) -> CertificateOut:
    """The public certificate (PEM or base64 DER), as Azure's portal took a ``.cer`` file;
    TLS clients presenting it act for this publisher from the next connection on."""
    return certificates.add_certificate(store, caller, body.certificate)


@router.delete("/certificates/{certificate_id}", status_code=204,
               summary="Delete a management certificate", responses=errors(*AUTH, 404))
def delete_certificate(store: StoreDep, caller: CallerDep, certificate_id: int) -> None:
    """Requests with it are refused from now on."""
    certificates.delete_certificate(store, caller, certificate_id)
