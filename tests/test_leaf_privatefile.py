"""``vmimage.privatefile``: the one strict writer, 0600 for secrets and 0644 for reports.

Output goes to a new, unpredictably named file beside the target, created with O_EXCL and
O_NOFOLLOW, renamed over the target when complete: never written through a link, never half
there, nothing left behind on failure, and every failure one InputError naming the output.
"""

from __future__ import annotations

import errno
import os
import stat
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from vmimage.errors import InputError
from vmimage.privatefile import private_dir, write_private, write_public

Writer = Callable[[Path, str], Path]


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def test_private_and_public_modes(tmp_path: Path, umask_022: None) -> None:
    secret = write_private(tmp_path / "sas.txt", "https://a/c/b.vhd?sig=x\n")
    report = write_public(tmp_path / "report.json", b"{}\n")
    assert mode(secret) == 0o600 and secret.read_text() == "https://a/c/b.vhd?sig=x\n"
    assert mode(report) == 0o644 and report.read_bytes() == b"{}\n"
    # Replacing a world-readable file leaves no reader a window: it is a new 0600 file.
    (tmp_path / "old.txt").write_text("old")
    (tmp_path / "old.txt").chmod(0o644)
    assert mode(write_private(tmp_path / "old.txt", "new")) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.txt", "report.json", "sas.txt"]


@pytest.mark.parametrize("writer", [write_private, write_public])
def test_a_symlink_is_refused_and_its_target_untouched(tmp_path: Path, writer: Writer) -> None:
    victim = tmp_path / "victim"
    victim.write_text("keep")
    link = tmp_path / "out.txt"
    link.symlink_to(victim)
    with pytest.raises(InputError, match="symbolic link"):
        writer(link, "secret")
    assert victim.read_text() == "keep" and link.is_symlink()
    dangling = tmp_path / "dangling.txt"
    dangling.symlink_to(tmp_path / "nowhere")
    with pytest.raises(InputError, match="symbolic link"):
        writer(dangling, "secret")
    assert not (tmp_path / "nowhere").exists()


def test_a_hard_link_is_replaced_not_written_through(tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.write_text("keep")
    os.link(other, tmp_path / "out.txt")
    write_private(tmp_path / "out.txt", "secret")
    assert other.read_text() == "keep" and (tmp_path / "out.txt").read_text() == "secret"


def test_a_fifo_target_is_refused_without_hanging(tmp_path: Path) -> None:
    fifo = tmp_path / "out.fifo"
    os.mkfifo(fifo)
    done: list[BaseException] = []

    def attempt() -> None:
        try:
            write_private(fifo, "secret")
        except BaseException as exc:  # handed to the test thread
            done.append(exc)

    worker = threading.Thread(target=attempt, daemon=True)
    worker.start()
    worker.join(10)
    if worker.is_alive():  # unblock it: open the FIFO for reading
        with open(fifo, "rb"):
            pass
        pytest.fail("writing to a FIFO blocked")
    assert isinstance(done[0], InputError) and "not a regular file" in str(done[0])


@pytest.mark.parametrize(("make", "fragment"), [
    (lambda d: d / "missing" / "x.json", "does not exist"),
    (lambda d: d, "is a directory"),
    (lambda d: Path("/dev/null"), "not a regular file"),
])
def test_unusable_outputs_are_one_line(tmp_path: Path, make: Callable[[Path], Path],
                                       fragment: str) -> None:
    target = make(tmp_path)
    for writer in (write_private, write_public):
        with pytest.raises(InputError) as info:
            writer(target, "x")
        message = str(info.value)
        assert fragment in message and "\n" not in message and str(target) in message


def test_parent_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(InputError, match="not a directory"):
        write_public(tmp_path / "file" / "x.json", "x")


def test_failure_midway_leaves_nothing_behind(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "out.txt").write_text("previous")

    def full(fd: int, data: object) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr("vmimage.privatefile.os.write", full)
    with pytest.raises(InputError, match="no space left on device"):
        write_private(tmp_path / "out.txt", "new")
    monkeypatch.undo()
    assert (tmp_path / "out.txt").read_text() == "previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


def test_the_temporary_name_cannot_be_planted(tmp_path: Path) -> None:
    """The old writer used ``.NAME.PID.partial``: a link planted there made it fail (or, with
    another writer, write through). The name now holds random bits, made with O_EXCL."""
    victim = tmp_path / "victim"
    victim.write_text("keep")
    (tmp_path / f".out.txt.{os.getpid()}.partial").symlink_to(victim)
    write_private(tmp_path / "out.txt", "secret")
    assert victim.read_text() == "keep" and (tmp_path / "out.txt").read_text() == "secret"


def test_read_only_file_system(tmp_path: Path) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(ro)],
                         capture_output=True, stdin=subprocess.DEVNULL, check=False)
    if res.returncode != 0:
        pytest.skip(f"cannot mount a read-only tmpfs here: {res.stderr.decode().strip()}")
    try:
        with pytest.raises(InputError, match="read-only file system"):
            write_public(ro / "x.json", "x")
    finally:
        subprocess.run(["umount", str(ro)], check=True, stdin=subprocess.DEVNULL)


def test_private_dir(tmp_path: Path) -> None:
    made = private_dir(tmp_path / "a" / "b")
    assert made.is_dir() and mode(tmp_path / "a") == 0o700 and mode(made) == 0o700
    assert private_dir(made) == made
    (tmp_path / "f").write_text("")
    with pytest.raises(InputError, match="not a directory"):
        private_dir(tmp_path / "f")
    with pytest.raises(InputError, match="not a directory"):
        private_dir(tmp_path / "f" / "sub")
