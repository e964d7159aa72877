"""Where vmimage may fetch a URL from: the one SSRF policy for the CLI and the service.

A URL given to ``vmimage check`` or to the publishing service (a SAS URL, a MediaLink) makes
vmimage open a connection to a host someone else chose. Without a policy that is a way to make
vmimage, or the server it runs on, probe the cloud metadata endpoint (169.254.169.254), an
internal admin page or a loopback service. So (rulings, "The publishing service"):

- only blob endpoints are fetched from: Azure's public and sovereign blob hosts by default,
  over HTTPS on port 443, plus the endpoints the user allows explicitly (``HOST[:PORT]``, or
  ``.SUFFIX``: ``--allow-endpoint``, ``VMIMAGE_ALLOW_ENDPOINTS``, the service's settings);
- the host is resolved once, here, and refused if any address it resolves to is private,
  loopback, link-local or otherwise not global, unless the endpoint was allowed explicitly
  (an Azure private endpoint resolves to 10.x: allow its host by name); the connection then
  goes to the addresses that were judged, never to a second resolution (DNS rebinding);
- plain ``http://`` only for an endpoint allowed explicitly (an emulator such as Azurite);
- a redirect is never followed, and every response body is bounded by the caller's limit.

A leaf: it imports nothing from vmimage but the errors, so the storage, targets and service
layers can all use it. Its messages name the URL without its query (which may hold a SAS).
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from vmimage.errors import InputError

#: Azure's blob endpoints: public cloud, US Government, China (21Vianet), and the DNS zone
#: of accounts with Azure DNS zone endpoints (``ACCOUNT.zNN.blob.storage.azure.net``).
DEFAULT_SUFFIXES = (".blob.core.windows.net", ".blob.core.usgovcloudapi.net",
                    ".blob.core.chinacloudapi.cn", ".blob.storage.azure.net")
#: The environment variable that allows endpoints (comma-separated ``HOST[:PORT]``).
ENV = "VMIMAGE_ALLOW_ENDPOINTS"
#: A response body larger than this is refused whatever the caller asked for.
MAX_RESPONSE = 16 * 1024 * 1024
#: What is read of an error response's body (to find its error code): no more.
MAX_ERROR_BODY = 64 * 1024

Resolver = Callable[[str, int], Sequence[str]]


class FetchRefused(InputError):
    """The policy refuses this URL (a host not allowed, a private address, http://...)."""


@dataclass(frozen=True)
class Endpoint:
    """One allowed endpoint: a host (``port`` None: any port), or a DNS suffix (``.name``)."""

    host: str
    port: int | None = None

    @property
    def is_suffix(self) -> bool:
        """``.example.net`` allows every host under it."""
        return self.host.startswith(".")

    def matches(self, host: str, port: int) -> bool:
        """Whether ``host:port`` is this endpoint (host names compared case-insensitively)."""
        host = host.lower().rstrip(".")
        if self.port is not None and self.port != port:
            return False
        return host.endswith(self.host) if self.is_suffix else host == self.host

    @classmethod
    def parse(cls, text: str, source: str) -> Endpoint:
        """``HOST``, ``HOST:PORT``, ``[IPV6]:PORT`` or ``.SUFFIX``; a URL's scheme and path are
        not accepted (an endpoint is where a connection goes, nothing more).

        Raises:
            InputError: naming ``source`` (the flag or variable), saying what is wrong.
        """
        item = text.strip()
        if not item or "/" in item or "@" in item or "?" in item:
            raise InputError(source, f"{item!r} is not HOST[:PORT] (give the host and port "
                                     "of a blob endpoint, without scheme or path)")
        try:
            parts = urlsplit(f"//{item}")
            host, port = parts.hostname, parts.port
        except ValueError:
            host = port = None
        if item.startswith("."):  # urlsplit drops nothing here, but say it plainly
            host = item.split(":", 1)[0].lower()
        if not host or (host.startswith(".") and len(host) < 3):
            raise InputError(source, f"{item!r} is not HOST[:PORT] (an IPv6 address goes in "
                                     "brackets: [::1]:10000)")
        return cls(host.lower().rstrip(".") if not host.startswith(".") else host, port)

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port is None else f"{host}:{self.port}"


@dataclass(frozen=True)
class Destination:
    """A URL the policy accepted: where to connect (the judged addresses, in order) and what
    to send as the Host name and TLS server name."""

    scheme: str
    host: str
    port: int
    addresses: tuple[str, ...]
    display: str  # the URL without its query, for messages

    @property
    def tls(self) -> bool:
        """HTTPS."""
        return self.scheme == "https"


def parse_endpoints(items: Iterable[str], source: str) -> tuple[Endpoint, ...]:
    """``HOST[:PORT]`` entries, each possibly a comma-separated list (the variable's form)."""
    out: list[Endpoint] = []
    for item in items:
        out += [Endpoint.parse(part, source) for part in item.split(",") if part.strip()]
    return tuple(out)


def _system_resolver(host: str, port: int) -> Sequence[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def is_public(address: str) -> bool:
    """Whether an IP address is a public, unicast one: not private, loopback, link-local,
    multicast, reserved or unspecified (an IPv4-mapped IPv6 address is judged as IPv4)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


@dataclass(frozen=True)
class FetchPolicy:
    """The allowed endpoints; :meth:`vet` judges a URL against them."""

    allowed: tuple[Endpoint, ...] = ()
    suffixes: tuple[str, ...] = DEFAULT_SUFFIXES
    resolver: Resolver = field(default=_system_resolver, compare=False, repr=False)
    #: How a refusal tells the user to allow an endpoint (``{endpoint}`` is filled in); the
    #: service names its own setting.
    allow_hint: str = f"allow it with --allow-endpoint {{endpoint}} (or {ENV})"

    @classmethod
    def from_settings(cls, allow: Iterable[str] = (),
                      environ: Mapping[str, str] | None = None) -> FetchPolicy:
        """Azure's endpoints, plus ``allow`` (``--allow-endpoint``) and the variable
        :data:`ENV` in ``environ``: both add to the list.

        Raises:
            InputError: an entry that is not ``HOST[:PORT]``.
        """
        env = (environ or {}).get(ENV, "")
        return cls(parse_endpoints([env], ENV) + parse_endpoints(allow, "--allow-endpoint"))

    def explicit(self, host: str, port: int) -> bool:
        """Whether the user allowed this endpoint by name (which lifts the address rule)."""
        return any(e.matches(host, port) for e in self.allowed)

    def vet(self, url: str) -> Destination:
        """Judge ``url``; the :class:`Destination` says where the connection may go.

        Raises:
            FetchRefused: the scheme, host, port or an address it resolves to is not allowed.
            InputError: the host cannot be resolved (the message says so; nothing is sent).
        """
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        display = f"{scheme}://{parts.netloc}{parts.path}"
        try:
            host, port = parts.hostname or "", parts.port
        except ValueError:
            raise FetchRefused(display, "is not a valid URL (bad port)") from None
        if scheme not in ("http", "https") or not host or "@" in parts.netloc:
            raise FetchRefused(display, "only http(s) URLs without user name are fetched")
        port = port or (443 if scheme == "https" else 80)
        explicit = self.explicit(host, port)
        if not explicit:
            self._refuse_implicit(display, scheme, host, port)
        try:
            addresses = tuple(self.resolver(host, port))
        except (OSError, UnicodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise InputError(display, f"cannot resolve host {host}: {reason}") from None
        if not addresses:
            raise InputError(display, f"cannot resolve host {host}: no address")
        private = [a for a in addresses if not is_public(a)]
        if private and not explicit:
            raise FetchRefused(display, f"{host} resolves to {private[0]}, a private, loopback "
                                        f"or link-local address: refused; {self._hint(host, port)}")
        return Destination(scheme, host, port, addresses, display)

    def _hint(self, host: str, port: int) -> str:
        return self.allow_hint.format(endpoint=f"[{host}]:{port}" if ":" in host
                                      else f"{host}:{port}")

    def _refuse_implicit(self, display: str, scheme: str, host: str, port: int) -> None:
        """A host not allowed by name must be an Azure blob endpoint over HTTPS on 443."""
        name = host.lower().rstrip(".")
        hint = self._hint(host, port)
        if not any(name.endswith(s) for s in self.suffixes):
            raise FetchRefused(display, f"{host} is not an Azure blob endpoint: {hint}")
        if scheme != "https":
            raise FetchRefused(display, f"plain http:// is refused for {host}: use https://, "
                                        f"or {hint}")
        if port != 443:
            raise FetchRefused(display, f"port {port} is not Azure's (443): {hint}")


def refuse_redirect(status: int, display: str) -> None:
    """A 3xx answer is never followed: it could point anywhere, past the policy.

    Raises:
        FetchRefused: for any 3xx status.
    """
    if 300 <= status < 400:
        raise FetchRefused(display, f"the server answered {status} (a redirect); vmimage "
                                    "never follows redirects: give the blob's own URL")


class _PinnedHTTP(http.client.HTTPConnection):
    """An HTTP connection to one judged address, whatever the Host header says."""

    def __init__(self, address: str, host: str, port: int, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        """Connect to the judged address, never to a new resolution of the name."""
        self.sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class _PinnedHTTPS(_PinnedHTTP):
    """The same over TLS: certificate checked against the host name (SNI included)."""

    def __init__(self, address: str, host: str, port: int, timeout: float,
                 context: ssl.SSLContext) -> None:
        super().__init__(address, host, port, timeout)
        self._context = context

    def connect(self) -> None:
        """TCP to the judged address, then TLS for the host name."""
        super().connect()
        self.sock = self._context.wrap_socket(self.sock, server_hostname=self.host)


def connection(dest: Destination, address: str, timeout: float,
               context: ssl.SSLContext | None = None) -> http.client.HTTPConnection:
    """An HTTP(S) connection to ``address`` (one of ``dest.addresses``), sending ``dest.host``
    as the Host header and TLS server name. Not yet connected; proxies are not used (they
    would resolve the name again, elsewhere)."""
    if dest.tls:
        return _PinnedHTTPS(address, dest.host, dest.port, timeout,
                            context or ssl.create_default_context())
    return _PinnedHTTP(address, dest.host, dest.port, timeout)
