"""Every command on every hostile input of tests/hostile_corpus.py, as a user runs it.

Each run must end by itself (no hang) within its memory bound, exit 0 or 1 with findings, or 2
with exactly one line on stderr; never a traceback, never a terminal escape or a secret in its
output, never a changed input or a stray file in the corpus. One run under ``strace`` proves
that a disk whose descriptor names host files opens none of them.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

import vmimage.app.catalog
import vmimage.cli
from tests.fuzzing import CliRun, run_cli_bounded
from tests.hostile_corpus import CANARY, DISK_FILES, MANIFEST_FILES, URLS, Item, make_corpus
from vmimage.disk.convert import create

#: What no output may hold: a raw escape or bidi override, the corpus's secrets.
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_SECRETS = ("hunter2", "c2VjcmV0")
_BLOB = "http://127.0.0.1:9/devstoreaccount1/vhds/x.vhd?sv=2020-10-02&sr=b&sp=rw&sig=c2VjcmV0"

DISK_COMMANDS: dict[str, list[str]] = {
    "inspect": ["vhd", "inspect", "{in}"],
    "inspect-json": ["vhd", "inspect", "{in}", "--format", "json"],
    "validate": ["vhd", "validate", "{in}", "--role", "data"],
    "convert": ["vhd", "convert", "{in}", "{out}/out.vhd"],
    "check": ["check", "{in}"],
    "check-data-json": ["check", "{in}", "--role", "data", "--format", "json",
                        "--output", "{out}/report.json"],
    "upload": ["upload", "{in}", _BLOB, "--retries", "1", "--quiet"],
}
#: Commands that write their input: run on a copy, which must be unchanged when they refuse.
IN_PLACE_COMMANDS: dict[str, list[str]] = {
    "convert-in-place": ["vhd", "convert", "--in-place", "{in}"],
    "resize": ["vhd", "resize", "{in}", "--size", "128MiB"],
}
MANIFEST_COMMANDS: dict[str, list[str]] = {
    "offer-validate": ["offer", "validate", "{in}"],
    "render-pc": ["submit", "render", "{in}", "--format", "partner-center"],
    "render-classic": ["submit", "render", "{in}", "--format", "classic-xml"],
    "certify": ["certify", "{in}", "--output", "{out}/pkg", "--quiet"],
}
URL_COMMANDS: dict[str, list[str]] = {
    "sas-verify": ["sas", "verify", "--offline", "{url}"],
    "upload": ["upload", "{vhd}", "{url}", "--retries", "1", "--quiet"],
    "sas-create": ["sas", "create", "{url}"],
}


def _state(path: Path) -> tuple[object, ...]:
    """What must not change: the kind, size, change times and (for a regular file of a sane
    size) the content's digest. A write moves mtime and ctime even where the digest is skipped
    (the 1 TiB sparse file)."""
    st = os.lstat(path)
    if stat.S_ISREG(st.st_mode) and st.st_size > 256 * 1024 * 1024:
        return ("file", st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    if stat.S_ISREG(st.st_mode):
        h = hashlib.sha256()
        with path.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 22), b""):
                h.update(chunk)
        return ("file", st.st_size, h.hexdigest())
    if stat.S_ISLNK(st.st_mode):
        return ("link", os.readlink(path))
    return (stat.S_IFMT(st.st_mode), st.st_size)


@pytest.fixture(scope="module", autouse=True)
def _warm() -> None:
    """Every rule family registered before the forks, which then start with it loaded."""
    vmimage.app.catalog.all_rules()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Item]]:
    root = tmp_path_factory.mktemp("hostile")
    items = make_corpus(root / "corpus")
    return root / "corpus", {i.name: i for i in items}


DISK_NAMES = list(DISK_FILES)
MANIFEST_NAMES = list(MANIFEST_FILES)


def _judge(run: CliRun, what: str) -> None:
    assert run.code is not None, f"{what}: {run.ending}"  # it ended by itself, in bounds
    assert run.code in (0, 1, 2), f"{what}: exit {run.code}\n{run.stderr[-2000:]}"
    assert "Traceback" not in run.stderr, f"{what}:\n{run.stderr[-3000:]}"
    if run.code == 2:
        lines = run.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("vmimage: "), f"{what}: {run.stderr!r}"
    for stream in (run.stdout, run.stderr):
        bad = _UNSAFE.findall(stream.replace("\n", "").replace("\t", ""))
        assert not bad, f"{what}: raw control or bidi characters {bad[:5]!r}"
        for secret in _SECRETS:
            assert secret not in stream, f"{what}: a secret was printed"


def _snapshot(directory: Path) -> dict[str, tuple[object, ...]]:
    """The state of every file in ``directory``, to compare before and after a run."""
    return {p.name: _state(p) for p in directory.iterdir()}


def _run(args: list[str], inp: Path, out: Path, what: str) -> CliRun:
    argv = [a.format(**{"in": str(inp), "out": str(out)}) for a in args]
    run = run_cli_bounded(argv, seconds=90)
    _judge(run, what)
    return run


@pytest.mark.parametrize("command", sorted(DISK_COMMANDS))
@pytest.mark.parametrize("name", DISK_NAMES)
def test_disk_command(corpus: tuple[Path, dict[str, Item]], tmp_path: Path, name: str,
                      command: str) -> None:
    directory, _ = corpus
    before = _snapshot(directory)
    _run(DISK_COMMANDS[command], directory / name, tmp_path, f"{command} {name}")
    assert _snapshot(directory) == before


@pytest.mark.parametrize("command", sorted(IN_PLACE_COMMANDS))
@pytest.mark.parametrize("name", DISK_NAMES)
def test_in_place_command(corpus: tuple[Path, dict[str, Item]], tmp_path: Path, name: str,
                          command: str) -> None:
    directory, _ = corpus
    work = tmp_path / "work"
    work.mkdir()
    # The item alone (and the extent a descriptor names): a copy of the whole corpus per test
    # would cost more than the runs.
    for member in [name, *(p.name for p in directory.glob(f"{Path(name).stem}-*"))]:
        subprocess.run(["cp", "-a", "--sparse=always", str(directory / member), str(work)],
                       check=True)
    before = _snapshot(work)
    run = _run(IN_PLACE_COMMANDS[command], work / name, tmp_path, f"{command} {name}")
    after = _snapshot(work)
    if run.code != 0:  # refused: byte-identical, nothing left behind
        assert after == before
    else:
        assert after.keys() == before.keys()


@pytest.mark.parametrize("command", sorted(MANIFEST_COMMANDS))
@pytest.mark.parametrize("name", MANIFEST_NAMES)
def test_manifest_command(corpus: tuple[Path, dict[str, Item]], tmp_path: Path, name: str,
                          command: str) -> None:
    directory, _ = corpus
    before = _snapshot(directory)
    _run(MANIFEST_COMMANDS[command], directory / name, tmp_path, f"{command} {name}")
    assert _snapshot(directory) == before


@pytest.mark.parametrize("command", sorted(URL_COMMANDS))
@pytest.mark.parametrize("url", URLS, ids=range(len(URLS)))
def test_url_command(tmp_path: Path, url: str, command: str) -> None:
    vhd = tmp_path / "d.vhd"
    create(vhd, 20 * 1024 * 1024)
    argv = [a.replace("{url}", url).replace("{vhd}", str(vhd)) for a in URL_COMMANDS[command]]
    run = run_cli_bounded(argv, seconds=90)
    _judge(run, f"{command} {url[:60]!r}")


@pytest.mark.skipif(not shutil.which("strace"), reason="needs strace")
@pytest.mark.parametrize("name", ["vmdk-extent-passwd.vmdk", "vmdk-extent-link.vmdk"])
def test_no_host_file_is_opened(corpus: tuple[Path, dict[str, Item]], tmp_path: Path,
                                name: str) -> None:
    """The descriptor names /etc/passwd and a file outside its directory: neither is opened."""
    directory, _ = corpus
    log = tmp_path / "strace.log"
    subprocess.run(["strace", "-f", "-qq", "-e", "trace=%file", "-o", str(log), sys.executable,
                    "-m", "vmimage", "vhd", "convert", str(directory / name),
                    str(tmp_path / "out.vhd")], capture_output=True, stdin=subprocess.DEVNULL,
                   timeout=120, check=False)
    opened = [line for line in log.read_text().splitlines()
              if re.search(r"\bopen(at|at2)?\(", line) and "ENOENT" not in line]
    assert opened, "strace saw no open at all"
    for line in opened:
        assert "/etc/passwd" not in line and CANARY not in line, line
