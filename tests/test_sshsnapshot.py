"""The snapshot stream of a live check, made by the real ``find`` and ``tar`` of this machine
on a real tree, read back: it must say what the directory target says of the same tree."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from vmimage.targets import sshsnapshot
from vmimage.targets.rootdir import RootDirTarget


def _tree(root: Path) -> Path:
    (root / "etc" / "ssh" / "sshd_config.d").mkdir(parents=True)
    (root / "etc" / "ssh" / "sshd_config").write_text("ClientAliveInterval 180\n")
    (root / "etc" / "ssh" / "sshd_config.d" / "a b.conf").write_text("x\ty\n")
    (root / "etc" / "big").write_bytes(b"z" * (sshsnapshot.FILE_MAX + 10))
    (root / "etc" / "link").symlink_to("ssh/sshd_config")
    (root / "etc" / "dangling").symlink_to("/nowhere")
    os.mkfifo(root / "etc" / "fifo")
    (root / "etc" / "empty").mkdir()
    return root


def test_the_stream_says_what_the_tree_holds(tmp_path: Path) -> None:
    root = _tree(tmp_path / "r")
    argv = sshsnapshot.command([str(root / "etc")])
    out = subprocess.run(argv, capture_output=True, check=True).stdout
    snap = sshsnapshot.parse(out)
    etc = str(root / "etc")
    assert snap.dirs[etc] == sorted(os.listdir(root / "etc"))
    assert snap.dirs[f"{etc}/empty"] == []
    assert snap.dirs[f"{etc}/ssh/sshd_config.d"] == ["a b.conf"]
    assert snap.links == {f"{etc}/link": "ssh/sshd_config", f"{etc}/dangling": "/nowhere"}
    assert snap.files[f"{etc}/ssh/sshd_config"] == b"ClientAliveInterval 180\n"
    assert snap.files[f"{etc}/ssh/sshd_config.d/a b.conf"] == b"x\ty\n"
    assert f"{etc}/big" not in snap.files and snap.stats[f"{etc}/big"].size > sshsnapshot.FILE_MAX
    direct = RootDirTarget(root)
    for path, st in snap.stats.items():
        inner = "/" + os.path.relpath(path, root)
        theirs = direct.stat(inner, follow=False)
        assert (st.mode, st.size, st.uid) == (theirs.mode, theirs.size, theirs.uid), path


def test_a_damaged_stream_keeps_what_it_could_read(tmp_path: Path) -> None:
    root = _tree(tmp_path / "r")
    out = subprocess.run(sshsnapshot.command([str(root / "etc")]), capture_output=True,
                         check=True).stdout
    cut = sshsnapshot.parse(out[: len(out) - 700])  # the tar's tail lost
    assert cut.dirs and cut.stats
    assert sshsnapshot.parse(b"garbage\0more\tgarbage\0") == sshsnapshot.Snapshot()
