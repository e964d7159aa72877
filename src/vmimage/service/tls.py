"""The HTTP protocol of a server that serves TLS: uvicorn's h11 protocol, which also hands the
client certificate of the connection to the application (``request.state.client_certificate``,
DER bytes, or None).

ASGI has no standard place for the peer's certificate and uvicorn does not pass it on; the
classic Create VM Image API authenticates by it (the guide's management certificates), so
``vmimage serve --tls-cert`` runs uvicorn with this protocol (by name, as the application).
The certificate was verified in the handshake against the registered management
certificates (:mod:`vmimage.app.publishing.tlsserver`); the route maps it to its publisher.
"""

from __future__ import annotations

import asyncio
import ssl

from uvicorn.protocols.http.h11_impl import H11Protocol

STATE_KEY = "client_certificate"


class CertifiedH11Protocol(H11Protocol):
    """h11 with the client certificate in every request's state."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Take the peer's certificate, once per connection."""
        super().connection_made(transport)
        ssl_object = transport.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if isinstance(ssl_object,
                                                                       ssl.SSLObject) else None
        self.app_state = {**self.app_state, STATE_KEY: der}
