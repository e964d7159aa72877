"""TLS for ``vmimage serve --tls-cert FILE --tls-key FILE``: the server's certificate, and
client certificates asked for (not required: API-token clients have none) and trusted exactly
when registered as a publisher's management certificate.

Every registered certificate is loaded as a trust anchor of its own (partial chains allowed),
so a self-signed management certificate, as the guide's were, verifies; any other client
certificate fails the handshake. Certificates registered while the server runs are added to
the live context within seconds (:class:`TrustRefresher`); one deleted is refused by the
route (it looks the certificate up on every request), as OpenSSL cannot drop an anchor.
"""

from __future__ import annotations

import logging
import ssl
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vmimage.app.publishing.certificates import ADDED_HOOKS, trusted_certificates
from vmimage.app.publishing.store import Store
from vmimage.errors import InputError

#: uvicorn's protocol that passes the client certificate on (:mod:`vmimage.service.tls`).
PROTOCOL = "vmimage.service.tls:CertifiedH11Protocol"
#: How often a server looks for certificates registered through another server.
REFRESH_SECONDS = 3.0
_log = logging.getLogger("vmimage.service")


def check_files(cert: Path | None, key: Path | None) -> tuple[Path, Path] | None:
    """``--tls-cert`` and ``--tls-key``: both or neither, readable, a certificate and its key.

    Raises:
        InputError: one without the other, or files that do not make a TLS server.
    """
    if cert is None and key is None:
        return None
    if cert is None or key is None:
        raise InputError("--tls-cert" if cert is None else "--tls-key",
                         "give --tls-cert and --tls-key together")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(cert, key)
    except FileNotFoundError as exc:
        raise InputError(str(exc.filename), "no such file") from None
    except (ssl.SSLError, OSError) as exc:
        raise InputError(str(cert), f"is not a certificate with its key {key}: "
                                    f"{getattr(exc, 'reason', None) or exc}") from None
    return cert, key


class TrustRefresher:
    """Loads the registered management certificates into a context, and keeps adding the new
    ones until stopped."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._loaded: set[str] = set()
        self._contexts: list[ssl.SSLContext] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        ADDED_HOOKS.append(self.refresh)

    def context_factory(self, _config: Any, default: Callable[[], ssl.SSLContext]  # noqa: ANN401
                        ) -> ssl.SSLContext:
        """uvicorn's ``ssl_context_factory``: its context, asking for client certificates."""
        context = default()
        context.verify_mode = ssl.CERT_OPTIONAL
        context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        self._contexts.append(context)
        self.refresh()
        return context

    def refresh(self) -> int:
        """Add the certificates registered since the last call; how many."""
        added = 0
        with self._lock:
            for pem in trusted_certificates(self._store):
                if pem in self._loaded:
                    continue
                for context in self._contexts:
                    context.load_verify_locations(cadata=pem)
                self._loaded.add(pem)
                added += 1
        return added

    def start(self) -> None:
        """Refresh every few seconds in a daemon thread."""
        def loop() -> None:
            while not self._stop.wait(REFRESH_SECONDS):
                try:
                    self.refresh()
                except Exception as exc:  # the database away for a moment: try again
                    _log.warning("management certificates not refreshed: %s", exc)

        self._thread = threading.Thread(target=loop, name="vmimage-tls-trust", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop refreshing."""
        self._stop.set()
        if self.refresh in ADDED_HOOKS:
            ADDED_HOOKS.remove(self.refresh)
