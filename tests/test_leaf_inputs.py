"""``vmimage.inputs``: every input file opened the same way, or refused on one line, never a hang.

The old openers (``Path.read_text`` on a token file or an ``@FILE`` URL) blocked for ever on a
FIFO and read ``/dev/zero`` until memory ran out.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.azurite import one_line_error, vmimage
from vmimage.errors import InputError
from vmimage.inputs import check_input, open_input, read_bounded, read_bounded_text


def refusal(path: Path | str, fragment: str) -> None:
    for call in (open_input, check_input, read_bounded):
        with pytest.raises(InputError) as info:
            call(path)
        message = str(info.value)
        assert message.startswith(f"{path}: ") and fragment in message and "\n" not in message


def test_regular_files_open(tmp_path: Path) -> None:
    path = tmp_path / "f.txt"
    path.write_text("\ufeffhello\n")
    fd = open_input(path)
    try:
        assert os.read(fd, 100) == "\ufeffhello\n".encode()
    finally:
        os.close(fd)
    assert check_input(path).st_size == 9
    assert read_bounded_text(path) == "hello\n"
    link = tmp_path / "link"
    link.symlink_to(path)  # a link to a regular file is that file
    assert read_bounded_text(link) == "hello\n"


def test_missing_directory_device(tmp_path: Path) -> None:
    refusal(tmp_path / "missing", "no such file")
    refusal(tmp_path, "is a directory")
    refusal("/dev/null", "is a device")
    (tmp_path / "f").write_text("")
    refusal(tmp_path / "f" / "x", "no such file")


def test_fifo_is_refused_without_hanging(tmp_path: Path) -> None:
    fifo = tmp_path / "p"
    os.mkfifo(fifo)
    refusal(fifo, "FIFO")


def test_socket(tmp_path: Path) -> None:
    path = tmp_path / "s"
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(path))
        refusal(path, "socket")


def test_unreadable_file_as_nobody(tmp_path: Path) -> None:
    """Root reads anything: run the opener as ``nobody`` (rulings)."""
    path = tmp_path / "secret.txt"
    path.write_text("x")
    path.chmod(0o600)
    tmp_path.chmod(0o755)
    code = ("import sys; from vmimage.inputs import read_bounded\n"
            "try: read_bounded(sys.argv[1])\n"
            "except Exception as e: print(type(e).__name__, e)\n")
    src = str(Path(__file__).resolve().parent.parent / "src")
    res = subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                          sys.executable, "-c", code, str(path)], capture_output=True,
                         text=True, env={**os.environ, "PYTHONPATH": src},
                         stdin=subprocess.DEVNULL, check=False, timeout=60)
    assert res.stdout.strip() == f"InputError {path}: permission denied", res.stderr


def test_bounded_read(tmp_path: Path) -> None:
    path = tmp_path / "big"
    path.write_bytes(b"x" * 1001)
    assert read_bounded(path, limit=1001) == b"x" * 1001
    with pytest.raises(InputError, match="larger than"):
        read_bounded(path, limit=1000)
    path.write_bytes(b"\xff\xfe not utf-8")
    with pytest.raises(InputError, match="not UTF-8"):
        read_bounded_text(path)


# -- the commands that read small files: one line, exit 2, no hang ---------------------------

URL = "http://127.0.0.1:9/vmtest/vhds/disk.vhd"


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AZURE_STORAGE")}
    env.update(NO_COLOR="1", TERM="dumb", AZURE_STORAGE_KEY="a2V5a2V5a2V5a2V5")
    return env


@pytest.mark.parametrize("args", [
    ["sas", "create", "@{fifo}"],
    ["sas", "verify", "@{fifo}"],
    ["sas", "create", "@/dev/zero"],
    ["sas", "verify", "@{dir}"],
])
def test_at_file_arguments(tmp_path: Path, args: list[str]) -> None:
    fifo = tmp_path / "url.fifo"
    os.mkfifo(fifo)
    argv = [a.format(fifo=fifo, dir=tmp_path) for a in args]
    line = one_line_error(vmimage(*argv, env=_env(), timeout=60))
    shown = argv[-1][1:]
    assert f"vmimage: {shown}: " in line
    assert any(w in line for w in ("FIFO", "device", "directory")), line


def test_sas_file_fifo_and_device(tmp_path: Path) -> None:
    from tests.offer_support import GOOD, write

    manifest = write(tmp_path, GOOD)
    fifo = tmp_path / "tokens.fifo"
    os.mkfifo(fifo)
    for source, fragment in ((fifo, "FIFO"), (Path("/dev/zero"), "device"),
                             (tmp_path, "directory")):
        line = one_line_error(vmimage("submit", "render", manifest, "--format",
                                      "partner-center", "--sas-file", source, env=_env(),
                                      timeout=60))
        assert f"vmimage: {source}: " in line and fragment in line
