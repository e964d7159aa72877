"""``vmimage serve`` (the publishing service), ``vmimage serve token create`` (a publisher's
first API token) and ``vmimage offer push`` (its client).

The server is uvicorn running the application ``vmimage.service.app:create`` by name: the
service and the CLI are independent layers, so this command opens the store through the
application layer and hands it over (:mod:`vmimage.app.publishing.runtime`) rather than
importing the service.
"""

from __future__ import annotations

import argparse
import logging.config
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from vmimage.cli.common import add_format, emit, plan_outputs, resolve_fail_on, resolve_waivers
from vmimage.cli.parsing import Parser, command
from vmimage.errors import InputError

if TYPE_CHECKING:
    from vmimage.app.publishing.jobs import JobSettings

APP = "vmimage.service.app:create"
DEFAULT_BIND = "127.0.0.1:8080"
#: Connections waiting to be accepted: hundreds of clients connecting at once are queued, not
#: refused.
BACKLOG = 1024
#: How long an idle keep-alive connection stays open: longer than the 60 s idle timeout of
#: the usual load balancers in front (a connection the server closes while the balancer sends
#: on it is a failed request), and than a client's pause between polls.
KEEP_ALIVE = 65
#: Jobs run at once by a server (or by each worker process) unless told otherwise.
DEFAULT_JOBS = 4


def register(sub: argparse._SubParsersAction[Parser]) -> None:
    """``vmimage serve ...``."""
    p = command(sub, "serve", serve, serve.__doc__)
    _store_options(p, None)
    p.add_argument("--bind", metavar="HOST:PORT", default=DEFAULT_BIND,
                   help=f"where to listen (default {DEFAULT_BIND}; port 0 picks a free one, "
                        "printed at start)")
    p.add_argument("--profile", "-p", metavar="NAME|FILE",
                   help="the profile every rule is judged by: azure-current (default), "
                        "azure-2015, or a .toml file ($VMIMAGE_PROFILE, vmimage.toml)")
    p.add_argument("--max-body", metavar="SIZE", default="8MiB",
                   help="the largest request body (default 8MiB: a 4 MiB manifest fits)")
    p.add_argument("--tls-cert", metavar="FILE", type=Path,
                   help="serve HTTPS with this certificate (PEM; with --tls-key): the classic "
                        "Create VM Image API's clients authenticate by management certificate "
                        "over TLS only")
    p.add_argument("--tls-key", metavar="FILE", type=Path,
                   help="the private key of --tls-cert (PEM)")
    p.add_argument("--migrate-only", action="store_true",
                   help="bring the database to the current schema and exit")
    p.add_argument("--log-level", choices=("debug", "info", "warning", "error"), default="info",
                   help="what the server logs on stderr (never a token or a SAS signature)")
    p.add_argument("--jobs", metavar="N", type=int, default=DEFAULT_JOBS,
                   help=f"certification jobs run at once in this process (default "
                        f"{DEFAULT_JOBS}; 0: run none here, another server or worker does)")
    _job_options(p, None, "redis://HOST:PORT/DB: hand jobs to `vmimage serve worker` "
                          "processes through Redis (Dramatiq) instead of running them here")
    tokens = p.add_subparsers(title="commands", metavar="COMMAND", parser_class=Parser)
    worker = command(tokens, "worker", worker_run, worker_run.__doc__)
    worker.add_argument("--processes", metavar="N", type=int, default=1,
                        help="worker processes (default 1)")
    worker.add_argument("--threads", metavar="M", type=int, default=DEFAULT_JOBS,
                        help=f"jobs run at once by each process (default {DEFAULT_JOBS})")
    _store_options(worker, argparse.SUPPRESS)
    worker.add_argument("--profile", "-p", metavar="NAME|FILE", default=argparse.SUPPRESS,
                        help="the profile the checks are judged by (as the server's)")
    worker.add_argument("--log-level", choices=("debug", "info", "warning", "error"),
                        default=argparse.SUPPRESS, help="what the worker logs on stderr")
    _job_options(worker, argparse.SUPPRESS, "redis://HOST:PORT/DB: where the servers hand "
                                            "their jobs (required)")
    create = command(_group(tokens, "token", "make a publisher's API token"), "create",
                     token_create, token_create.__doc__)
    create.add_argument("--publisher", metavar="NAMESPACE", required=True,
                        help="the publisher namespace (made if new)")
    create.add_argument("--label", default="", help="a label to tell the token apart")
    _store_options(create, argparse.SUPPRESS)
    user = command(_group(tokens, "user", "make an account of the web portal"), "create",
                   user_create, user_create.__doc__)
    user.add_argument("--publisher", metavar="NAMESPACE", required=True,
                      help="the publisher the account works for")
    user.add_argument("--email", metavar="ADDRESS", required=True,
                      help="the address the person signs in with")
    user.add_argument("--password-env", metavar="VAR", required=True,
                      help="the environment variable holding the password (at least 12 "
                           "characters; never on the command line: ps shows it)")
    _store_options(user, argparse.SUPPRESS)
    add = command(_group(tokens, "certificate", "register a publisher's management certificate"),
                  "add", certificate_add, certificate_add.__doc__)
    add.add_argument("certificate", metavar="FILE", type=Path,
                     help="the certificate (PEM or DER .cer; never its private key)")
    add.add_argument("--publisher", metavar="NAMESPACE", required=True,
                     help="the publisher it authenticates (made by `serve token create`)")
    _store_options(add, argparse.SUPPRESS)


def _group(sub: argparse._SubParsersAction[Parser], name: str, what: str
           ) -> argparse._SubParsersAction[Parser]:
    """``vmimage serve NAME ...``: a group of commands; the subparsers to add them to."""
    parser = sub.add_parser(name, help=what, description=what[0].upper() + what[1:] + ".")
    parser.set_defaults(handler=None, parser=parser)
    return parser.add_subparsers(title="commands", metavar="COMMAND", parser_class=Parser)


def register_push(offer: argparse._SubParsersAction[Parser]) -> None:
    """``vmimage offer push``."""
    p = command(offer, "push", push, push.__doc__)
    p.add_argument("manifest", metavar="MANIFEST", type=Path, help="the offer manifest")
    p.add_argument("--server", metavar="URL", default=os.environ.get("VMIMAGE_SERVER"),
                   help="the service, e.g. http://127.0.0.1:8080 ($VMIMAGE_SERVER)")
    p.add_argument("--token-env", metavar="VAR", default="VMIMAGE_TOKEN",
                   help="the environment variable holding the API token (default "
                        "VMIMAGE_TOKEN; never on the command line: ps shows it)")
    p.add_argument("--dry-run", action="store_true",
                   help="only judge the manifest; store nothing")
    add_format(p)
    p.add_argument("--fail-on", choices=("fail", "warning"),
                   help="exit 1 when a finding at or above this level is not waived "
                        "(default fail; $VMIMAGE_FAIL_ON, vmimage.toml)")
    p.add_argument("--only-failed", action="store_true",
                   help="list failures, warnings and waived findings only")
    p.add_argument("--waivers", metavar="FILE", type=Path,
                   help="a waiver file, applied to the service's findings as to offer validate's")


def _store_options(p: argparse.ArgumentParser, default: object) -> None:
    p.add_argument("--db", metavar="URL", default=default,
                   help="sqlite:///FILE or postgresql+psycopg://USER@HOST/DB (default: "
                        "service.db in the state directory)")
    p.add_argument("--state-dir", metavar="DIR", type=Path, default=default,
                   help="where the SQLite file and the key that seals SAS tokens live "
                        "(default $XDG_STATE_HOME/vmimage)")
    p.add_argument("--key-file", metavar="FILE", type=Path, default=default,
                   help="the key that seals SAS tokens (default service.key in the state "
                        "directory; give every server of one database the same file)")


def _job_options(p: argparse.ArgumentParser, default: object, redis_help: str) -> None:
    p.add_argument("--redis", metavar="URL", default=default, help=redis_help)
    p.add_argument("--allow-endpoint", dest="allow_endpoints", metavar="HOST[:PORT]",
                   action="append", default=default if default is not None else [],
                   help="a blob endpoint the certification runs may read besides Azure's "
                        "(repeatable; VMIMAGE_ALLOW_ENDPOINTS adds more): an emulator, a "
                        "private endpoint")
    p.add_argument("--job-lease", metavar="SECONDS", type=float, default=default,
                   help="how long a job stays claimed by a process that stopped answering "
                        "(default 30): after that another process runs it")


def _job_settings(args: argparse.Namespace, max_jobs: int, flag: str) -> JobSettings:
    from vmimage.app.publishing import jobs

    return jobs.settings(max_jobs, getattr(args, "job_lease", None),
                         getattr(args, "redis", None), flag)


def _bind(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise InputError("--bind", f"{text!r} is not HOST:PORT (e.g. {DEFAULT_BIND})")
    return host, int(port)


def _listen(host: str, port: int) -> object:
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP named: asyncio sets TCP_NODELAY only on sockets whose protocol says TCP
    # (proto 0 does not), and without it every keep-alive answer waited 40 ms for the
    # client's delayed ACK (Nagle): 48 ms for GET /health instead of 4.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise InputError("--bind", f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.listen(BACKLOG)
    sock.set_inheritable(True)
    return sock


def serve(args: argparse.Namespace) -> int:
    """Run the publishing service: offers, SKUs and image versions, their SAS URIs,
    certification requests and reports, over a JSON API under /api/v1 (docs/service.md).

    An SQLite file by default (nothing to set up), PostgreSQL with --db; the schema is
    migrated at every start. Make a publisher's first token with `vmimage serve token create
    --publisher NS`."""
    import socket

    import uvicorn

    from vmimage.app.publishing import jobs, runtime
    from vmimage.app.publishing.store import open_store
    from vmimage.cli.common import resolve_profile
    from vmimage.units import parse_size

    try:
        max_body = parse_size(args.max_body)
    except ValueError as exc:
        raise InputError("--max-body", str(exc)) from None
    from vmimage.app.publishing import tlsserver

    host, port = _bind(args.bind)
    tls = tlsserver.check_files(args.tls_cert, args.tls_key)
    settings = _job_settings(args, args.jobs, "--jobs")
    allowed = jobs.check_endpoints(args.allow_endpoints)
    store = open_store(args.db, state_dir=args.state_dir, key_file=args.key_file,
                       profile=resolve_profile(args.profile))
    try:
        if args.migrate_only:
            print(f"vmimage serve: {store.database} is at schema revision {store.revision}")
            return 0
        sock = _listen(host, port)
        assert isinstance(sock, socket.socket)
        current = runtime.Runtime(store, max_body, settings, allowed)
        runtime.configure(current)
        logging.config.dictConfig(runtime.log_config(args.log_level.upper()))
        engine = jobs.start(store, current.jobs, current.allow_endpoints)
        trust = tlsserver.TrustRefresher(store) if tls else None
        try:
            shown = f"[{host}]" if ":" in host else host
            scheme = "https" if tls else "http"
            print(f"vmimage serve: listening on {scheme}://{shown}:{sock.getsockname()[1]} "
                  f"(database {store.database}, profile {store.profile.name}, "
                  f"{jobs.describe(settings)})", flush=True)
            options: dict[str, object] = {}
            if tls and trust:
                options = {"ssl_certfile": str(tls[0]), "ssl_keyfile": str(tls[1]),
                           "ssl_context_factory": trust.context_factory,
                           "http": tlsserver.PROTOCOL}
                trust.start()
            config = uvicorn.Config(APP, factory=True, log_config=runtime.log_config(
                args.log_level.upper()), server_header=False, proxy_headers=False,
                timeout_graceful_shutdown=10, timeout_keep_alive=KEEP_ALIVE, backlog=BACKLOG,
                **options)  # type: ignore[arg-type]
            uvicorn.Server(config).run(sockets=[sock])
        finally:
            if trust:
                trust.stop()
            jobs.stop(engine)
        return 0
    finally:
        store.close()


def worker_run(args: argparse.Namespace) -> int:
    """Run the publishing service's jobs (certification runs) taken from Redis, on this
    machine: --processes processes of --threads threads each, on the database and with the key
    file of the servers (docs/service.md, "Jobs"). Stop it with SIGTERM or Ctrl-C: running jobs
    get 10 seconds, then their leases hand them to another worker."""
    from vmimage.app.publishing import jobs, runtime
    from vmimage.app.publishing.store import open_store
    from vmimage.cli.common import resolve_profile

    if not 1 <= args.processes <= 64:
        raise InputError("--processes", "must be between 1 and 64")
    if not 1 <= args.threads <= 256:
        raise InputError("--threads", "must be between 1 and 256")
    settings = _job_settings(args, args.threads, "--threads")
    if not settings.redis:
        raise InputError("--redis", "a worker takes its jobs from Redis: give its URL "
                                    "(redis://HOST:PORT/DB)")
    allowed = jobs.check_endpoints(getattr(args, "allow_endpoints", []))
    database, state_dir = getattr(args, "db", None), getattr(args, "state_dir", None)
    key_file = getattr(args, "key_file", None)
    profile = resolve_profile(getattr(args, "profile", None))
    open_store(database, state_dir=state_dir, key_file=key_file, profile=profile).close()
    logging.config.dictConfig(runtime.log_config(getattr(args, "log_level", "info").upper()))
    print(f"vmimage serve worker: {jobs.describe(settings)}, {args.processes} process(es) of "
          f"{args.threads} thread(s)", flush=True)
    jobs.serve_workers(lambda: open_store(database, state_dir=state_dir, key_file=key_file,
                                          profile=profile, migrate_schema=False),
                       settings, allowed, args.processes)
    return 0


def token_create(args: argparse.Namespace) -> int:
    """Make an API token for a publisher (and the publisher, if new) in the service's
    database; the token is printed once, alone on stdout, and stored only as its SHA-256."""
    from vmimage.app.publishing.store import open_store
    from vmimage.app.publishing.tokens import create_publisher_token

    store = open_store(getattr(args, "db", None), state_dir=getattr(args, "state_dir", None),
                       key_file=getattr(args, "key_file", None))
    try:
        issued = create_publisher_token(store, args.publisher, args.label)
    finally:
        store.close()
    print(issued.token)
    print(f"vmimage: token {issued.id} ({issued.prefix}...) for publisher {args.publisher}: "
          "it is shown this once; keep it in an environment variable (VMIMAGE_TOKEN)",
          file=sys.stderr)
    return 0


def user_create(args: argparse.Namespace) -> int:
    """Make an account of the web portal (/portal) for a publisher: the person signs in with
    the address and the password; the service keeps the password's scrypt hash only."""
    from vmimage.app.publishing.accounts import create_user
    from vmimage.app.publishing.store import open_store

    password = os.environ.get(args.password_env, "")
    if not password:
        raise InputError("--password-env", f"environment variable {args.password_env} is not "
                                           "set or empty")
    store = open_store(getattr(args, "db", None), state_dir=getattr(args, "state_dir", None),
                       key_file=getattr(args, "key_file", None))
    try:
        address = create_user(store, args.publisher, args.email, password)
    finally:
        store.close()
    print(f"vmimage: {address} signs in to /portal for publisher {args.publisher}")
    return 0


def certificate_add(args: argparse.Namespace) -> int:
    """Register a management certificate for a publisher in the service's database (the
    public certificate only): TLS clients presenting it may use the classic Create VM Image
    API for that publisher. With a token, POST /api/v1/certificates does the same."""
    from vmimage.app.publishing.certificates import add_publisher_certificate
    from vmimage.app.publishing.store import open_store
    from vmimage.inputs import read_bounded

    data = read_bounded(args.certificate, 64 * 1024)
    store = open_store(getattr(args, "db", None), state_dir=getattr(args, "state_dir", None),
                       key_file=getattr(args, "key_file", None))
    try:
        added = add_publisher_certificate(store, args.publisher, data)
    finally:
        store.close()
    print(f"vmimage: certificate {added.id} (SHA-1 thumbprint {added.thumbprint}, "
          f"{added.subject}) authenticates publisher {args.publisher}, subscription "
          f"{added.subscription}")
    return 0


def push(args: argparse.Namespace) -> int:
    """Send an offer manifest to a publishing service (vmimage serve): it answers with the
    findings `vmimage offer validate --no-disks` gives, and stores the offer when no rule
    fails. Exit 0 stored, 1 a rule failed (nothing stored), 2 unusable input or refused."""
    from vmimage.app.publishing.client import push as send
    from vmimage.app.publishing.client import read_token
    from vmimage.app.results import exit_code, waive

    if not args.server:
        raise InputError("--server", "name the service (--server URL or $VMIMAGE_SERVER)")
    outputs = plan_outputs(args.fmt, args.outputs)
    failing = resolve_fail_on(args.fail_on)
    waiver_file = resolve_waivers(args.waivers)
    result = send(args.manifest, args.server, read_token(args.token_env), args.dry_run)
    report = waive(result.report, waiver_file)
    emit(report, outputs, only_failed=args.only_failed)
    if result.stored:
        print(f"vmimage: stored offer {result.offer} at {args.server}", file=sys.stderr)
    return exit_code(report.findings, failing)
