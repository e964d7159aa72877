"""The SSH forward of a provisioned VM: 127.0.0.1:PORT outside, the guest's port 22 inside.

The VM lives in a network namespace of its own (:mod:`vmimage.vm.provnet`), which the host's
127.0.0.1 cannot reach. ``vm boot`` binds the listening socket on the host's 127.0.0.1 before
the namespace is made; this process inherits it (a socket stays in the namespace it was made
in), and for each connection opens one to the guest from inside the namespace and copies bytes
both ways. Until the guest's sshd listens, the inside connection fails and the outside one is
closed at once, so ``vm boot``'s banner poll goes on as it does with qemu's own forward.

Run as ``python -m vmimage.vm.forward FD HOST PORT``.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import sys
import threading

_CHUNK = 64 * 1024


def _pump(src: socket.socket, dst: socket.socket) -> None:
    """Copy until ``src`` ends, then half-close ``dst`` (SSH ends cleanly both ways)."""
    try:
        while data := src.recv(_CHUNK):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)


def _serve(outside: socket.socket, host: str, port: int) -> None:
    try:
        inside = socket.create_connection((host, port), timeout=5)
    except OSError:
        outside.close()
        return
    inside.settimeout(None)
    back = threading.Thread(target=_pump, args=(inside, outside), daemon=True)
    back.start()
    _pump(outside, inside)
    back.join()
    inside.close()
    outside.close()


def main(argv: list[str]) -> int:
    """Accept on the inherited socket forever (the keeper's end ends this process)."""
    fd, host, port = int(argv[0]), argv[1], int(argv[2])
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    listener = socket.socket(fileno=fd)
    while True:
        conn, _ = listener.accept()
        threading.Thread(target=_serve, args=(conn, host, port), daemon=True).start()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
