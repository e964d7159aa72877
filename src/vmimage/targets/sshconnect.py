"""Open the one SSH connection a live check uses, and say in one line why it could not be.

The certification tool's "test connection" step, done first and done strictly: every failure
(refused, timeout, unknown or changed host key, bad credentials, sudo refused) is an
:class:`~vmimage.errors.InputError` naming ``ssh://user@host:port`` and the reason, so the CLI
prints one line and exits 2. A changed host key is never accepted; an unknown one only with
``accept_new`` (trust on first use), which records it in the known-hosts file as OpenSSH does.

The password comes from an environment variable (never an argument, which ``ps`` shows), is
registered with :mod:`vmimage.secrets` at once, and is never part of a message.
asyncssh is imported here only, and this module only when an ``ssh://`` target is opened.
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from vmimage.errors import InputError
from vmimage.secrets import one_line, register_secret

if TYPE_CHECKING:
    import asyncssh

DEFAULT_PORT = 22
DEFAULT_TIMEOUT = 15.0
_SPEC = re.compile(r"ssh://(?P<user>[^@/:\s]+)@(?P<host>\[[0-9A-Fa-f:.]+\]|[^@/:\s\[\]]+)"
                   r"(?::(?P<port>\d{1,5}))?/?")


@dataclass(frozen=True)
class SshOptions:
    """How to reach and log in to the VM, as the user gave it (no secret held here: the
    password is read from ``password_env`` when the connection is made)."""

    key: Path | None = None
    password_env: str | None = None
    sudo: bool = False
    known_hosts: Path | None = None
    accept_new_host_key: bool = False
    timeout: float = DEFAULT_TIMEOUT

    @property
    def given(self) -> bool:
        """Whether any option that only an ``ssh://`` target uses was set (the timeout is
        shared with other live steps, so it does not count)."""
        return (self.key is not None or self.password_env is not None or self.sudo
                or self.known_hosts is not None or self.accept_new_host_key)


@dataclass(frozen=True)
class SshAddress:
    """``ssh://USER@HOST[:PORT]`` taken apart; ``name`` is what reports show."""

    user: str
    host: str
    port: int

    @property
    def name(self) -> str:
        """``ssh://user@host:port``: never a password (the URL form cannot carry one)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"ssh://{self.user}@{host}:{self.port}"

    @property
    def known_hosts_name(self) -> str:
        """The host as OpenSSH writes it in known_hosts (``[host]:port`` off port 22)."""
        return self.host if self.port == DEFAULT_PORT else f"[{self.host}]:{self.port}"


def parse_address(spec: str) -> SshAddress:
    """``ssh://USER@HOST[:PORT]``; a password in the URL is refused (it would show in ``ps``).

    Raises:
        InputError: not of that form.
    """
    if re.match(r"ssh://[^@/]*:[^@/]*@", spec):
        raise InputError("ssh://...", "a password in the target URL is refused (it shows in "
                                      "ps and shell history): use --password-env VAR")
    match = _SPEC.fullmatch(spec)
    if match is None:
        raise InputError(spec, "expected ssh://USER@HOST[:PORT]")
    port = int(match["port"] or DEFAULT_PORT)
    if not 0 < port < 65536:
        raise InputError(spec, f"port {port} is out of range")
    return SshAddress(match["user"], match["host"].strip("[]"), port)


def _password(options: SshOptions) -> str | None:
    if options.password_env is None:
        return None
    value = os.environ.get(options.password_env)
    if not value:
        raise InputError("--password-env", f"the environment variable {options.password_env} "
                                           "is not set or empty")
    register_secret(value)
    return value


def _client_key(path: Path) -> asyncssh.SSHKey:
    import asyncssh

    try:
        return asyncssh.read_private_key(path)
    except FileNotFoundError:
        raise InputError(path, "no such key file") from None
    except (OSError, asyncssh.KeyImportError, ValueError) as exc:
        reason = one_line(str(exc) or type(exc).__name__)
        if "passphrase" in reason.lower():
            reason = "the key is encrypted with a passphrase (use an unencrypted key or an agent)"
        raise InputError(path, f"cannot use this key: {reason}") from None


def known_hosts_path(options: SshOptions) -> Path:
    """``--known-hosts FILE``, else ``~/.ssh/known_hosts`` (which may not exist yet)."""
    return options.known_hosts or Path("~/.ssh/known_hosts").expanduser()


def _trusted(path: Path, addr: SshAddress) -> tuple[asyncssh.SSHKnownHosts, bool]:
    """The known-hosts file as asyncssh takes it, and whether it names this host at all."""
    import asyncssh

    try:
        text = path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""
        known = asyncssh.import_known_hosts(text)
    except (OSError, ValueError) as exc:
        raise InputError(path, f"cannot read the known-hosts file: {one_line(str(exc))}") \
            from None
    try:
        address = socket.gethostbyname(addr.host) if ":" not in addr.host else addr.host
    except OSError:
        address = addr.host
    keys, cas, _, certs, _, subjects, _ = known.match(addr.host, address, addr.port)
    return known, bool(keys or cas or certs or subjects)


def _record(path: Path, addr: SshAddress, key: asyncssh.SSHKey) -> None:
    """Append the host's key to the known-hosts file (created 0600, its directory 0700)."""
    line = key.export_public_key("openssh").decode("ascii").split()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    with os.fdopen(fd, "a", encoding="ascii") as fh:
        fh.write(f"{addr.known_hosts_name} {line[0]} {line[1]}\n")


async def connect(addr: SshAddress, options: SshOptions) -> asyncssh.SSHClientConnection:
    """The authenticated connection, after every check the user asked for.

    Raises:
        InputError: one line per failure (see the module's docstring).
    """
    import asyncssh

    password = _password(options)
    keys = [_client_key(options.key)] if options.key is not None else None
    kh_path = known_hosts_path(options)
    known, listed = _trusted(kh_path, addr)
    trust_first = options.accept_new_host_key and not listed
    try:
        conn = await asyncio.wait_for(asyncssh.connect(
            addr.host, addr.port, username=addr.user, config=[],
            known_hosts=None if trust_first else known,
            client_keys=keys if keys else (None if password else ()),
            password=password, agent_path=None if (keys or password) else (),
            kbdint_auth=password is not None,
            connect_timeout=options.timeout, login_timeout=options.timeout),
            options.timeout + 1)
    except BaseException as exc:
        raise _connect_error(exc, addr, options, listed, kh_path) from None
    if trust_first:
        server_key = conn.get_server_host_key()
        if server_key is not None:
            _record(kh_path, addr, server_key)
    return conn


def _connect_error(exc: BaseException, addr: SshAddress, options: SshOptions, listed: bool,
                   kh_path: Path) -> BaseException:
    """The one-line error for a failed connection (other exceptions pass unchanged)."""
    import asyncssh

    name = addr.name
    if isinstance(exc, ConnectionRefusedError):
        return InputError(name, f"connection refused: nothing listens on port {addr.port}")
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        return InputError(name, f"no SSH answer within {options.timeout:g} s (connection "
                                "timed out)")
    if isinstance(exc, socket.gaierror):
        return InputError(name, f"unknown host name {addr.host!r}")
    if isinstance(exc, asyncssh.HostKeyNotVerifiable):
        if listed:
            return InputError(name, f"the host key has CHANGED since it was recorded in "
                                    f"{kh_path}: refused (a new VM at the same address? then "
                                    f"remove the old line; else this may be an attack)")
        return InputError(name, f"unknown host key (not in {kh_path}): add it there, or pass "
                                "--accept-new-host-key to trust it on first use")
    if isinstance(exc, asyncssh.PermissionDenied):
        how = (f"key {options.key}" if options.key is not None else
               f"the password in ${options.password_env}" if options.password_env else
               "the default keys and agent")
        return InputError(name, f"authentication failed for {addr.user} with {how}")
    if isinstance(exc, asyncssh.Error):
        return InputError(name, f"SSH connection failed: {one_line(exc.reason or str(exc))}")
    if isinstance(exc, OSError):
        return InputError(name, f"cannot connect: {one_line(exc.strerror or str(exc))}")
    return exc


async def check_sudo(conn: asyncssh.SSHClientConnection, addr: SshAddress,
                     timeout: float) -> None:
    """``sudo -n true`` must succeed: ``--sudo`` that cannot work is said before any check.

    Raises:
        InputError: sudo needs a password, the user may not use it, or it is not installed.
    """
    result = await asyncio.wait_for(conn.run("sudo -n true", check=False, encoding="utf-8",
                                             errors="replace"), timeout)
    if result.exit_status == 0:
        return
    err = str(result.stderr or "").lower()
    if "password is required" in err:
        # sudo answers this both to a user it would ask for a password and to one it would
        # refuse: it does not tell which before authenticating.
        why = (f"sudo -n refused: it wants a password from {addr.user}, who either may not "
               "use sudo or needs a password for it (--sudo needs NOPASSWD sudo)")
    elif "not found" in err or result.exit_status == 127:
        why = "sudo is not installed on the VM"
    elif "not in the sudoers" in err or "not allowed" in err or "may not run" in err:
        why = f"{addr.user} is not allowed to use sudo"
    else:
        lines = [ln for ln in err.splitlines() if "unable to resolve host" not in ln]
        why = f"sudo -n true failed: {one_line(' '.join(lines) or 'no message')}"
    raise InputError(addr.name, f"--sudo: {why}")


def new_key_pair(directory: Path) -> tuple[Path, Path]:
    """A fresh Ed25519 key pair in ``directory`` (private key mode 0600): what ``check --boot``
    logs in with, written into a private copy of the image, thrown away with the VM."""
    import asyncssh

    key = asyncssh.generate_private_key("ssh-ed25519", comment="vmimage check --boot")
    private, public = directory / "id_ed25519", directory / "id_ed25519.pub"
    fd = os.open(private, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(key.export_private_key())
    public.write_bytes(key.export_public_key())
    return private, public


def login_check(host: str, port: int, user: str, *, key: Path | None = None,
                password: str | None = None, timeout: float = 30.0) -> str | None:
    """Log in once and run ``true``: None when that worked, else the reason in one line.

    For a throwaway local VM only (``vm boot --provision``'s "can the user log in" test):
    its host keys are new at each boot and it listens on 127.0.0.1, so they are not checked.
    """
    import asyncssh

    async def attempt() -> None:
        keys = [_client_key(key)] if key is not None else ()
        async with asyncssh.connect(host, port, username=user, known_hosts=None, config=[],
                                    client_keys=keys, password=password,
                                    agent_path=None, kbdint_auth=password is not None,
                                    connect_timeout=timeout, login_timeout=timeout) as conn:
            result = await conn.run("true", check=False, timeout=timeout)
            if result.exit_status != 0:
                raise OSError(f"`true` exited {result.exit_status}")

    try:
        asyncio.run(asyncio.wait_for(attempt(), timeout + 5))
    except asyncssh.PermissionDenied:
        return f"{user} is refused with the {'key' if key is not None else 'password'}"
    except (asyncssh.Error, OSError, TimeoutError) as exc:
        return one_line(str(exc) or type(exc).__name__)
    return None
