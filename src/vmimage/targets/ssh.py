"""A running Linux VM over one SSH connection: ``ssh://user@host:port``.

The rules are synchronous and make hundreds of small file calls; asyncssh is asynchronous.
So the target owns a private event loop in a background thread, and every call is a
coroutine run there and waited for with a timeout: one connection, one SFTP channel, no
per-call SSH session (Microsoft's tool opens one session per test; that is what makes it slow).

Files are read over SFTP. With ``sudo`` the SFTP server itself runs as root (``sudo -n
sftp-server`` on an exec channel, spoken to by asyncssh's SFTP client), so a file only root
may read (``/etc/shadow``, ``/etc/sudoers``) reads the same way as any other, with no
per-file fallback. The live root is the real root: symlinks resolve natively, on the VM.

Results are cached for the life of the target (one check run): a live system changes, but one
run must judge one state, and the cache makes the facts' repeated stats free.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import posixpath
import secrets
import shlex
import stat as stat_module
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from typing import TYPE_CHECKING, TypeVar, cast

from vmimage.errors import InputError
from vmimage.targets.base import (
    BYTES_MAX,
    RUN_OUTPUT_MAX,
    CommandResult,
    DiskLayout,
    FileStat,
    PathTarget,
    UnreadableError,
    not_regular,
    too_large,
)
from vmimage.targets.sshconnect import SshAddress, SshOptions, check_sudo, connect

if TYPE_CHECKING:
    import asyncssh

_T = TypeVar("_T")
#: Where distributions put OpenSSH's SFTP server (Debian, RHEL/SUSE, Arch, others).
SFTP_SERVERS = ("/usr/lib/openssh/sftp-server", "/usr/libexec/openssh/sftp-server",
                "/usr/lib/ssh/sftp-server", "/usr/libexec/sftp-server", "/usr/lib/sftp-server")
#: A read of a file whose stat says 0 bytes (``/proc``): the kernel fills it on read.
_SMALL_READ = 64 * 1024
_STREAM_CHUNK = 64 * 1024
#: Whole files up to this size are kept for the run: the facts read some files several times
#: (``/etc/network/interfaces`` four times), and each read is three round trips to the VM.
_CACHE_FILE_MAX = 4 * 1024 * 1024


class SshTarget(PathTarget):
    """A live Linux system read over SFTP, with ``run`` for the live facts."""

    def __init__(self, address: SshAddress, options: SshOptions) -> None:
        self.address = address
        self.options = options
        self.name = address.name
        self.login_user = address.user
        self.capabilities = frozenset({"filesystem", "live"})
        self.bytes_read = 0
        self.calls = 0
        self._stats: dict[tuple[str, bool], FileStat | OSError] = {}
        self._dirs: dict[str, list[str] | OSError] = {}
        self._links: dict[str, str | OSError] = {}
        self._files: dict[str, bytes] = {}
        self._runs: dict[tuple[str, ...], CommandResult] = {}
        #: prefetches still running on the VM: their future, commands and boundary mark
        self._pending: list[tuple[Future[CommandResult], list[tuple[str, ...]], bytes]] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="vmimage-ssh",
                                        daemon=True)
        self._thread.start()
        self._conn: asyncssh.SSHClientConnection | None = None
        self._sftp: asyncssh.SFTPClient | None = None
        try:
            self._conn, self._sftp = self._call(self._open(), options.timeout * 3 + 5)
        except BaseException:
            self.close()
            raise

    # --- the event loop ---------------------------------------------------------------

    def _call(self, coro: Awaitable[_T], timeout: float | None = None) -> _T:
        """Run ``coro`` on the target's loop and wait for it (at most ``timeout`` s)."""
        async def wrapped() -> _T:
            return await asyncio.wait_for(coro, timeout)
        future = asyncio.run_coroutine_threadsafe(wrapped(), self._loop)
        try:
            return future.result()
        except TimeoutError:
            raise InputError(self.name, f"the VM did not answer within {timeout:g} s") \
                from None

    async def _open(self) -> tuple[asyncssh.SSHClientConnection, asyncssh.SFTPClient]:
        conn = await connect(self.address, self.options)
        try:
            if self.options.sudo:
                try:
                    sftp = await self._root_sftp(conn)
                except InputError:
                    # sudo's own reason, asked only now: a sudo -n true before every run
                    # costs the VM half a second under TCG
                    await check_sudo(conn, self.address, self.options.timeout)
                    raise
            else:
                sftp = await conn.start_sftp_client()
        except BaseException:
            conn.close()
            raise
        return conn, sftp

    async def _root_sftp(self, conn: asyncssh.SSHClientConnection) -> asyncssh.SFTPClient:
        """An SFTP client talking to ``sftp-server`` started as root by ``sudo -n``: asyncssh
        opens the ``sftp`` subsystem the same way, on a session channel (its own
        ``start_sftp_client`` does exactly this with ``subsystem='sftp'``)."""
        from asyncssh.sftp import start_sftp_client

        script = ("for p in " + " ".join(SFTP_SERVERS) + "; do "
                  '[ -x "$p" ] && exec "$p"; done; echo "no sftp-server found" >&2; exit 127')
        writer, reader, _ = await conn.open_session(
            command=shlex.join(["sudo", "-n", "sh", "-c", script]), encoding=None)
        try:
            return await asyncio.wait_for(
                start_sftp_client(conn, self._loop, "strict", reader, writer, "utf-8",
                                  "strict", 3), self.options.timeout)
        except Exception as exc:
            raise InputError(self.name, "--sudo: cannot start the SFTP server as root "
                                        f"({type(exc).__name__}: {exc})") from None

    def _sftp_call(self, path: str, make: Callable[[asyncssh.SFTPClient], Awaitable[_T]]) -> _T:
        """One SFTP request; its errors become the protocol's (missing, unreadable)."""
        import asyncssh

        assert self._sftp is not None
        sftp = self._sftp
        self.calls += 1
        try:
            return self._call(make(sftp), self.options.timeout)
        except asyncssh.SFTPNoSuchFile:
            raise FileNotFoundError(errno.ENOENT, "No such file or directory", path) from None
        except asyncssh.SFTPPermissionDenied:
            raise UnreadableError(path, "permission denied (run with --sudo to read files only "
                                        "root may read)", errno.EACCES) from None
        except asyncssh.SFTPError as exc:
            # sftp-server says only "Failure" for ENOTDIR, ELOOP and the rest.
            raise UnreadableError(path, f"cannot be read over SFTP: {exc.reason}") from None
        except (asyncssh.Error, OSError) as exc:
            raise InputError(self.name, f"the SSH connection failed: {exc}") from None

    # --- the protocol -----------------------------------------------------------------

    def stat(self, path: str, follow: bool = True, depth: int = 0) -> FileStat:
        """Stat on the VM (symlinks resolved by the VM's kernel), cached. What a listing of the
        parent already says is not asked again: a name it lacks is missing, and an entry that
        is no symlink stats as it lstats (the checks probe many paths that are absent)."""
        path = _norm(path)
        known = self._known(path)
        if known is not None and not (follow and known.is_symlink):
            return known
        if known is not None and self._plain_ancestors(path) and depth < 40:
            target = self._links.get(path)
            if isinstance(target, str):  # resolved here: the VM would find the same file
                return self.stat(_norm(posixpath.join(posixpath.dirname(path), target)),
                                 depth=depth + 1)

        def ask() -> FileStat:
            return _filestat(self._sftp_call(
                path, lambda s: s.stat(path) if follow else s.lstat(path)))
        return _remembered(self._stats, (path, follow), ask)

    def _plain_ancestors(self, path: str) -> bool:
        """Every directory above ``path`` (``/`` aside) is known and no symlink: then a
        relative link resolves by its text exactly as the VM's kernel resolves it."""
        parent = posixpath.dirname(path)
        while parent != "/":
            known = self._stats.get((parent, False))
            if not isinstance(known, FileStat) or not known.is_dir:
                return False
            parent = posixpath.dirname(parent)
        return True

    def snapshot(self, roots: list[str], *, timeout: float = 60.0) -> None:
        """Fetch the metadata of everything under ``roots`` and the small files' bytes in one
        stream (:mod:`~vmimage.targets.sshsnapshot`) into the caches the protocol reads."""
        from vmimage.targets import sshsnapshot

        self.calls += 1
        stream = self._run(self._remote(sshsnapshot.command(roots)), timeout,
                           sshsnapshot.STREAM_MAX + 2**20)
        result = self._call(stream, timeout + 5)
        if result.exit_status == -1:
            return  # timed out: everything is asked one by one
        snap = sshsnapshot.parse(result.stdout)
        self.bytes_read += len(result.stdout)
        for path, st in snap.stats.items():
            self._stats.setdefault((path, False), st)
        for path, names in snap.dirs.items():
            self._dirs.setdefault(path, names)
        for path, link in snap.links.items():
            self._links.setdefault(path, link)
        for path, data in snap.files.items():
            self._files.setdefault(path, data)

    def _known(self, path: str) -> FileStat | None:
        """The entry's lstat from its parent's cached listing; FileNotFoundError when the
        listing lacks it; None when the parent was not listed."""
        parent, name = posixpath.split(path)
        listing = self._dirs.get(parent)
        if not name or listing is None or isinstance(listing, OSError):
            return None
        if name not in listing:
            raise FileNotFoundError(errno.ENOENT, "No such file or directory", path)
        found = self._stats.get((path, False))
        return found if isinstance(found, FileStat) else None

    def exists(self, path: str) -> bool:
        """Whether the path exists, following symlinks (a loop says no, as the shell's)."""
        try:
            self.stat(path)
        except OSError:
            return False
        return True

    def iterdir(self, path: str) -> list[str]:
        """Sorted names in a directory; their lstat comes with them and is cached."""
        path = _norm(path)

        def ask() -> list[str]:
            if not self.stat(path).is_dir:
                raise NotADirectoryError(errno.ENOTDIR, "Not a directory", path)
            names = []
            for entry in self._sftp_call(path, lambda s: s.readdir(path)):
                name = str(entry.filename)
                if name in (".", ".."):
                    continue
                names.append(name)
                self._stats.setdefault((posixpath.join(path, name), False),
                                       _filestat(entry.attrs))
            return sorted(names)
        names: list[str] = _remembered(self._dirs, path, ask,
                                       (FileNotFoundError, NotADirectoryError))
        return list(names)

    def readlink(self, path: str) -> str:
        """A symlink's stored target."""
        path = _norm(path)
        return _remembered(self._links, path,
                           lambda: str(self._sftp_call(path, lambda s: s.readlink(path))))

    def resolve(self, path: str, follow_last: bool = True) -> str:
        """The VM's own canonical path (its kernel resolves the links)."""
        self.stat(path, follow=follow_last)
        if not follow_last:
            return _norm(path)
        return str(self._sftp_call(path, lambda s: s.realpath(_norm(path))))

    def _regular(self, path: str) -> FileStat:
        st = self.stat(path)
        if st.is_dir:
            raise IsADirectoryError(errno.EISDIR, "Is a directory", path)
        if not st.is_file:
            # sftp-server opens without O_NONBLOCK: a FIFO would hang the channel forever.
            raise not_regular(path, st.mode)
        return st

    def read_bytes(self, path: str, limit: int | None = None, *,
                   max_size: int = BYTES_MAX) -> bytes:
        """A regular file's content, bounded as the other targets bound it; a ``/proc`` file
        (stat size 0) is read until its end."""
        st = self._regular(path)
        if limit is None and st.size > max_size:
            raise too_large(path, st.size, max_size)
        key = _norm(path)
        whole = self._files.get(key)
        if whole is None:
            want = limit if limit is not None else max_size + 1
            data = self._read(path, 0, want, st.size)
            if limit is not None and len(data) < limit:
                self._files[key] = data  # the whole file after all
        else:
            data = whole if limit is None else whole[:limit]
        if limit is None and len(data) > max_size:
            raise too_large(path, len(data), max_size)
        if limit is None and len(data) <= _CACHE_FILE_MAX:
            self._files[key] = data
        return data

    def read_at(self, path: str, offset: int, size: int) -> bytes:
        """At most ``size`` bytes from ``offset``, one SFTP read (in parallel parts)."""
        if offset < 0 or size < 0:
            raise ValueError("negative offset or size")
        st = self._regular(path)
        return self._read(path, offset, size, st.size)

    def _read(self, path: str, offset: int, want: int, hint: int) -> bytes:
        async def go(sftp: asyncssh.SFTPClient) -> bytes:
            out = bytearray()
            async with sftp.open(_norm(path), "rb") as fh:
                first = min(want, max(hint - offset + 1, _SMALL_READ))
                while len(out) < want:
                    piece = await fh.read(first if not out else min(_SMALL_READ,
                                                                     want - len(out)),
                                          offset + len(out))
                    if not piece:
                        break
                    out += cast("bytes", piece)  # opened "rb": asyncssh types it AnyStr
            return bytes(out[:want])
        data = self._sftp_call(path, go)
        self.bytes_read += len(data)
        return data

    def run(self, argv: list[str], *, timeout: float = 30.0,
            max_output: int = RUN_OUTPUT_MAX) -> CommandResult:
        """Run ``argv`` on the VM with ``LC_ALL=C`` (as root under ``--sudo``); each output
        kept up to ``max_output`` bytes (the rest is read and dropped so the command ends);
        killed after ``timeout`` s (exit -1). The commands the facts run only ask, so one
        run asks each once: a second identical call gets the first answer."""
        key = tuple(argv)
        self._settle()
        cached = self._runs.get(key)
        if cached is not None:
            return CommandResult(cached.exit_status, cached.stdout[:max_output],
                                 cached.stderr[:max_output])
        self.calls += 1
        limit = max(max_output, RUN_OUTPUT_MAX)  # kept whole for a later, larger ask
        result = self._call(self._run(self._remote(["env", "LC_ALL=C", *argv]), timeout, limit),
                            timeout + 5)
        self._runs[key] = result
        return CommandResult(result.exit_status, result.stdout[:max_output],
                             result.stderr[:max_output])

    def prefetch(self, commands: list[list[str]], *, timeout: float = 60.0,
                 wait: bool = True) -> None:
        """Run ``commands`` side by side in one remote shell (one ``sudo``), each output to
        its own file, then print them between boundary lines; :meth:`run` of the same argv
        (at its default bound) then answers from them. A command cut off by the timeout is
        simply asked again later. ``wait=False``: the shell runs on the VM while this process
        goes on (the live facts fetch the file snapshot meanwhile)."""
        asked = {key for _, keys, _ in self._pending for key in keys}
        todo = [tuple(argv) for argv in commands
                if tuple(argv) not in self._runs and tuple(argv) not in asked]
        if todo:
            mark = f"--vmimage-{secrets.token_hex(8)}"
            script = ["sh", "-c", _prefetch_script([list(argv) for argv in todo], mark)]
            self.calls += 1
            future = asyncio.run_coroutine_threadsafe(
                self._run(self._remote(script), timeout, RUN_OUTPUT_MAX), self._loop)
            self._pending.append((future, todo, mark.encode()))
        if wait:
            self._settle()

    def _settle(self) -> None:
        """Wait for the prefetches still running and keep what they printed."""
        while self._pending:
            future, todo, mark = self._pending.pop(0)
            try:
                result = future.result()
            except Exception:  # the connection's failure shows on the next real call
                continue
            if not result.ok:
                continue
            for index, status, out in _split_marked(result.stdout, mark):
                if 0 <= index < len(todo):
                    self._runs[todo[index]] = CommandResult(status, out, b"")

    def _remote(self, argv: list[str]) -> str:
        """The command line that runs ``argv`` on the VM: as root (``sudo -n``, never a
        prompt) when the target was opened with sudo."""
        return shlex.join(["sudo", "-n", *argv] if self.options.sudo else argv)

    async def _run(self, command: str, timeout: float, limit: int) -> CommandResult:
        assert self._conn is not None
        proc = await self._conn.create_process(command, encoding=None)
        try:
            out, err = await asyncio.wait_for(asyncio.gather(
                _drain(proc.stdout, limit), _drain(proc.stderr, limit)), timeout)
            await asyncio.wait_for(proc.wait_closed(), timeout)
        except TimeoutError:
            proc.close()
            return CommandResult(-1, b"", f"timed out after {timeout:g} s".encode())
        status = proc.exit_status
        return CommandResult(status if status is not None else -1, out, err)

    def layout(self) -> DiskLayout | None:
        """A live system is read through its files, not its disk."""
        return None

    def close(self) -> None:
        """Close the SFTP channel and the connection, then stop the loop's thread."""
        if self._loop.is_closed():
            return
        if self._thread.is_alive():
            async def shut() -> None:
                if self._sftp is not None:
                    self._sftp.exit()
                if self._conn is not None:
                    self._conn.close()
                    await self._conn.wait_closed()
            with contextlib.suppress(Exception):  # closing: nothing left to tell
                asyncio.run_coroutine_threadsafe(shut(), self._loop).result(5)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)
        if not self._thread.is_alive():
            self._loop.close()


async def _drain(stream: asyncssh.SSHReader[bytes], limit: int) -> bytes:
    """Everything a stream gives until its end, keeping at most ``limit`` bytes."""
    out = bytearray()
    while True:
        got = await stream.read(_STREAM_CHUNK)
        chunk = got if isinstance(got, bytes) else str(got).encode()
        if not chunk:
            return bytes(out)
        if len(out) < limit:
            out += chunk[:limit - len(out)]


def _prefetch_script(todo: list[list[str]], mark: str) -> str:
    """A shell script running ``todo`` side by side, each output to its own file, then
    printing each after a line ``<mark> <index> <exit status>``."""
    lines = ['d=$(mktemp -d) || exit 1']
    for index, argv in enumerate(todo):
        cmd = shlex.join(["env", "LC_ALL=C", *argv])
        lines.append(f'( {cmd} >"$d/{index}" 2>/dev/null; echo $? >"$d/{index}.rc" ) &')
    lines += ["wait", f'for i in $(seq 0 {len(todo) - 1}); do '
                      f'printf "\\n{mark} %s %s\\n" "$i" "$(cat "$d/$i.rc")"; '
                      'cat "$d/$i"; done', 'rm -rf "$d"']
    return "\n".join(lines)


def _split_marked(data: bytes, mark: bytes) -> list[tuple[int, int, bytes]]:
    """(index, exit status, output) of each part of a prefetch's output: each part follows a
    line ``<mark> <index> <status>`` (and the newline before it)."""
    parts = []
    for chunk in data.split(b"\n" + mark + b" ")[1:]:
        head, _, body = chunk.partition(b"\n")
        fields = head.split()
        if len(fields) == 2 and fields[0].isdigit() and fields[1].lstrip(b"-").isdigit():
            parts.append((int(fields[0]), int(fields[1]), body))
    return parts


_K = TypeVar("_K")


def _remembered(cache: dict[_K, _T | OSError], key: _K, ask: Callable[[], _T],
                keep: tuple[type[OSError], ...] = (FileNotFoundError,)) -> _T:
    """``cache[key]``, asked once: an answer, or one of the ``keep`` errors, is kept for the
    run (a missing file stays missing); other errors are raised and asked again next time."""
    found = cache.get(key)
    if found is None:
        try:
            found = ask()
        except keep as exc:
            found = exc
        cache[key] = found
    if isinstance(found, OSError):
        raise found
    return found


def _norm(path: str) -> str:
    from vmimage.targets.paths import normalize

    return normalize(path)


def _filestat(attrs: asyncssh.SFTPAttrs) -> FileStat:
    mode = attrs.permissions if attrs.permissions is not None else stat_module.S_IFREG
    return FileStat(mode, attrs.size or 0, attrs.uid or 0, attrs.gid or 0,
                    float(attrs.mtime or 0))
