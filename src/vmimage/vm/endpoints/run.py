"""The endpoints as a process: ``python -m vmimage.vm.endpoints`` (:func:`main`).

Run as ``python -m vmimage.vm.endpoints --config FILE.json --log FILE --listen HOST:PORT
[--listen ...] [--ready-fd N]`` (inside the VM's network namespace, for instance): once every
address is bound, one line ``ready HOST:PORT ...`` (the bound addresses) goes to the ready
fd; SIGTERM or SIGINT ends it with status 0.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import os
import signal
import sys
from collections.abc import Sequence

from vmimage.errors import InputError
from vmimage.vm.endpoints.config import EndpointConfig, load_config
from vmimage.vm.endpoints.server import Endpoints


def parse_listen(text: str) -> tuple[str, int]:
    """``IP:PORT`` or ``[V6]:PORT`` as a bind address; ValueError if it is neither."""
    host, sep, port = text.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:  # an address, not a name: there may be nothing to resolve names with
        ipaddress.ip_address(host)
    except ValueError:
        sep = ""
    if not sep or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"--listen {text!r}: not IP:PORT")
    return host, int(port)


def _arguments(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m vmimage.vm.endpoints",
        description="Serve Azure's WireServer and IMDS to a local VM until SIGTERM.")
    parser.add_argument("--config", required=True, help="the EndpointConfig as JSON")
    parser.add_argument("--log", required=True, help="the request log (JSON lines, appended)")
    parser.add_argument("--listen", action="append", required=True, metavar="HOST:PORT",
                        help="an address to serve (repeat); port 0 picks a free one")
    parser.add_argument("--ready-fd", type=int, metavar="N",
                        help="write 'ready HOST:PORT ...' here once listening, then close it")
    return parser.parse_args(list(argv))


def main(argv: Sequence[str]) -> int:
    """Serve until SIGTERM or SIGINT (status 0); 2 for bad arguments, 1 if an address cannot
    be bound."""
    args = _arguments(argv)
    try:
        config = load_config(args.config)
        addresses = [parse_listen(a) for a in args.listen]
    except (InputError, ValueError) as exc:
        print(f"vmimage-endpoints: {exc}", file=sys.stderr)
        return 2
    # Blocked before any thread starts, so that every thread inherits the mask and only
    # sigwait below receives them.
    stop = {signal.SIGTERM, signal.SIGINT}
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, stop)
    try:
        return _serve(config, args.log, addresses, args.ready_fd, stop)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _serve(config: EndpointConfig, log: str, addresses: list[tuple[str, int]], ready_fd: int | None,
           stop: set[signal.Signals]) -> int:
    try:
        endpoints = Endpoints(config, log)
    except OSError as exc:
        print(f"vmimage-endpoints: {log}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    with endpoints:
        try:
            bound = [endpoints.listen(host, port) for host, port in addresses]
        except OSError as exc:
            print(f"vmimage-endpoints: cannot listen: {exc.strerror or exc}", file=sys.stderr)
            return 1
        _announce(ready_fd, bound)
        signal.sigwait(stop)
    return 0


def _announce(fd: int | None, bound: list[tuple[str, int]]) -> None:
    """The ready line: the supervisor learns the ports chosen for port 0."""
    if fd is None:
        return
    words = [f"[{h}]:{p}" if ":" in h else f"{h}:{p}" for h, p in bound]
    with contextlib.suppress(OSError):
        os.write(fd, ("ready " + " ".join(words) + "\n").encode())
    with contextlib.suppress(OSError):
        os.close(fd)
