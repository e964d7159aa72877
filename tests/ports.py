"""One free TCP port on 127.0.0.1 for a test server (Azurite, Redis, sshd, the service)."""

from __future__ import annotations

import socket


def free_port() -> int:
    """A port nothing listens on now (the kernel picks it; a race with another process is
    possible but the servers started with it fail loudly)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port
