"""``vmimage check ssh://...`` against a real sshd (chrooted in the compliant Debian tree).

The oracle is the same tree checked offline: every rule must give the same status live, except
where the live fact legitimately differs, which is asserted exactly: the chroot shares the
host's kernel, so ``/proc/cmdline`` and ``/proc/swaps`` are the host's.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import sshd_chroot
from tests.sshd_chroot import PASSWORD, Sshd
from vmimage.app.catalog import all_rules

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not Path("/usr/sbin/sshd").exists() or not shutil.which("unshare"),
    reason="needs root, openssh-server and unshare (scripts/install-test-deps.sh)")

#: What the chroot judges of the host itself (its kernel, its swap, its network).
HOST_RULES = ("LINUX-KERNEL-CMDLINE", "LINUX-KERNEL-CMDLINE-FORBIDDEN", "LINUX-NO-SWAP",
              "LINUX-DHCP")


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sshd]:
    with sshd_chroot.chrooted_sshd(tmp_path_factory.mktemp("sshd")) as server:
        yield server


def vmimage(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "vmimage", *args], capture_output=True,
                          text=True, timeout=120, stdin=subprocess.DEVNULL,
                          env={**os.environ, **(env or {})})


#: The rules about the image as captured (``needs`` at-rest): every first boot changes what
#: they judge (host keys, leases, machine-id...), so a live target skips them.
AT_REST_RULES = frozenset(m.id for m in all_rules() if "at-rest" in m.needs)


def url(server: Sshd, user: str = "vmtest", port: int | None = None) -> str:
    return f"ssh://{user}@127.0.0.1:{port or server.port}"


def statuses(report: Path) -> dict[str, dict[str, object]]:
    return {f["check_id"]: f for f in json.loads(report.read_text())["findings"]}


def _host_expectation() -> dict[str, str]:
    """What the rules must say of the host kernel's own command line and swap."""
    args = Path("/proc/cmdline").read_text().split()
    consoles = {"console=ttyS0", "earlyprintk=ttyS0"} <= {a.split(",")[0] for a in args}
    delay = "rootdelay=300" in args
    forbidden = {"libata.atapi_enabled=0", "reserve=0x1f0,0x8"} & set(args)
    swapping = len(Path("/proc/swaps").read_text().splitlines()) > 1
    # The chroot shares the host's network: eth0 counts as leased when iproute2 shows one of
    # its IPv4 addresses with a lifetime (this machine's is usually static: then a fail).
    shown = subprocess.run(["ip", "-j", "addr", "show", "dev", "eth0"], capture_output=True,
                           text=True, check=False)
    infos = [a for link in (json.loads(shown.stdout) if shown.returncode == 0 else [])
             for a in link["addr_info"] if a["family"] == "inet"]
    leased = any(a.get("dynamic") or a.get("valid_life_time", 2**32 - 1) < 2**32 - 1
                 for a in infos)
    return {"LINUX-DHCP": "pass" if leased else "fail",
            "LINUX-KERNEL-CMDLINE": "pass" if consoles and delay else
            "warning" if consoles else "fail",
            "LINUX-KERNEL-CMDLINE-FORBIDDEN": "fail" if forbidden else "pass",
            "LINUX-NO-SWAP": "fail" if swapping else "pass"}


def test_live_check_agrees_with_offline_rule_by_rule(sshd: Sshd, tmp_path: Path) -> None:
    kh = tmp_path / "kh"
    offline = vmimage("check", str(sshd.tree), "-o", str(tmp_path / "off.json"))
    live = vmimage("check", url(sshd), "--key", str(sshd.key), "--sudo", "--known-hosts",
                   str(kh), "--accept-new-host-key", "-o", str(tmp_path / "live.json"))
    assert offline.returncode in (0, 1), offline.stderr
    assert live.returncode in (0, 1), live.stderr
    off, on = statuses(tmp_path / "off.json"), statuses(tmp_path / "live.json")
    assert set(off) == set(on)
    expected = _host_expectation()
    for rule, finding in on.items():
        if rule in HOST_RULES:
            assert finding["status"] == expected[rule], (rule, finding["message"])
            continue
        if rule in AT_REST_RULES:  # the image as captured: judged offline only
            assert finding["status"] == "skip", (rule, finding["message"])
            assert "judges the image as captured" in str(finding["message"])
            continue
        assert finding["status"] == off[rule]["status"], (rule, finding["message"],
                                                          off[rule]["message"])
    # The kernel's own command line was judged, not grub.cfg.
    assert any(e.get("path") == "/proc/cmdline" for e in on["LINUX-KERNEL-CMDLINE"]["evidence"])
    assert on["LINUX-ARCH-64BIT"]["evidence"][0]["path"] == "uname -m"
    assert off["LINUX-KERNEL-CMDLINE"]["status"] == "pass"
    # The disk's rules skip as they do for a directory; /etc/shadow was read (root, via sudo).
    assert all(on[r]["status"] == "skip" for r in on if r.startswith("VHD-"))
    assert on["LINUX-ROOT-PASSWORD-LOCKED"]["status"] == "pass"
    doc = json.loads((tmp_path / "live.json").read_text())
    assert doc["mode"] == "live" and doc["target"]["path"] == url(sshd)
    assert doc["target"]["kind"] == "ssh"
    # Trust on first use recorded the key the way OpenSSH would.
    assert kh.read_text().split()[:3] == sshd.host_key_line.split()[:3]


def test_password_login_and_the_password_is_never_shown(sshd: Sshd, tmp_path: Path) -> None:
    result = vmimage("check", url(sshd), "--password-env", "VM_PW", "--known-hosts",
                     str(sshd.known_hosts(tmp_path)), "--check", "LINUX-ARCH-64BIT",
                     "-f", "json", env={"VM_PW": PASSWORD})
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["findings"][0]["status"] == "pass"
    assert PASSWORD not in result.stdout + result.stderr


def _silent_listener() -> Iterator[int]:
    """A port that accepts connections and never says a word."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue
    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        stop.set()
        thread.join()
        for conn in held:
            conn.close()
        server.close()


silent_listener = pytest.fixture(_silent_listener)


def _one_line_exit_2(result: subprocess.CompletedProcess[str], words: str) -> str:
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert words in lines[0], lines[0]
    return lines[0]


def test_connection_refused(sshd: Sshd, tmp_path: Path) -> None:
    result = vmimage("check", url(sshd, port=sshd_chroot.free_port()), "--key", str(sshd.key))
    _one_line_exit_2(result, "connection refused")


def test_timeout_on_a_silent_listener(silent_listener: int, tmp_path: Path) -> None:
    result = vmimage("check", f"ssh://vmtest@127.0.0.1:{silent_listener}", "--timeout", "1",
                     "--known-hosts", str(tmp_path / "kh"))
    _one_line_exit_2(result, "no SSH answer within 1 s")


def test_unknown_host_key_is_refused_without_accept_new(sshd: Sshd, tmp_path: Path) -> None:
    kh = tmp_path / "kh"
    kh.write_text("")
    line = _one_line_exit_2(vmimage("check", url(sshd), "--key", str(sshd.key),
                                    "--known-hosts", str(kh)), "unknown host key")
    assert "--accept-new-host-key" in line
    assert kh.read_text() == ""


def test_changed_host_key_is_refused_even_with_accept_new(sshd: Sshd, tmp_path: Path) -> None:
    other = tmp_path / "other"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)],
                   check=True)
    kh = tmp_path / "kh"
    blob = other.with_suffix(".pub").read_text().split()[:2]
    kh.write_text(f"[127.0.0.1]:{sshd.port} {' '.join(blob)}\n")
    before = kh.read_text()
    for extra in ((), ("--accept-new-host-key",)):
        _one_line_exit_2(vmimage("check", url(sshd), "--key", str(sshd.key), "--known-hosts",
                                 str(kh), *extra), "host key has CHANGED")
    assert kh.read_text() == before


def test_bad_key(sshd: Sshd, tmp_path: Path) -> None:
    stranger = tmp_path / "stranger"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(stranger)],
                   check=True)
    _one_line_exit_2(vmimage("check", url(sshd), "--key", str(stranger), "--known-hosts",
                             str(sshd.known_hosts(tmp_path))),
                     f"authentication failed for vmtest with key {stranger}")


def test_bad_password_is_refused_and_never_shown(sshd: Sshd, tmp_path: Path) -> None:
    wrong = "Not-The-Password-4411"
    result = vmimage("check", url(sshd), "--password-env", "VM_PW", "--known-hosts",
                     str(sshd.known_hosts(tmp_path)), env={"VM_PW": wrong})
    _one_line_exit_2(result, "authentication failed for vmtest with the password in $VM_PW")
    assert wrong not in result.stdout + result.stderr


def test_missing_password_variable(sshd: Sshd, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "VM_PW_UNSET"}
    result = subprocess.run([sys.executable, "-m", "vmimage", "check", url(sshd),
                             "--password-env", "VM_PW_UNSET"], capture_output=True, text=True,
                            env=env, timeout=60, stdin=subprocess.DEVNULL)
    _one_line_exit_2(result, "VM_PW_UNSET is not set")


@pytest.mark.parametrize(("user", "words"), [
    # sudo -n gives both the same answer: it tells nothing before the user authenticates.
    ("nosudo", "--sudo: sudo -n refused: it wants a password from nosudo, who either may not "
               "use sudo or needs a password for it"),
    ("pwsudo", "--sudo: sudo -n refused: it wants a password from pwsudo"),
])
def test_sudo_refused(sshd: Sshd, tmp_path: Path, user: str, words: str) -> None:
    _one_line_exit_2(vmimage("check", url(sshd, user), "--key", str(sshd.key), "--sudo",
                             "--known-hosts", str(sshd.known_hosts(tmp_path))), words)


def test_ssh_options_refused_for_an_offline_target(tmp_path: Path) -> None:
    _one_line_exit_2(vmimage("check", str(tmp_path), "--sudo"), "apply to ssh:// targets only")


def test_password_in_the_url_is_refused() -> None:
    result = vmimage("check", "ssh://vmtest:hunter2hunter2@127.0.0.1:1")
    _one_line_exit_2(result, "a password in the target URL is refused")
    assert "hunter2hunter2" not in result.stderr


def _target(sshd: Sshd, tmp_path: Path, sudo: bool):  # SshTarget, imported late
    from vmimage.targets.ssh import SshTarget
    from vmimage.targets.sshconnect import SshOptions, parse_address

    return SshTarget(parse_address(url(sshd)), SshOptions(
        key=sshd.key, sudo=sudo, known_hosts=sshd.known_hosts(tmp_path), timeout=10))


def test_target_run_quotes_bounds_and_times_out(sshd: Sshd, tmp_path: Path) -> None:
    target = _target(sshd, tmp_path, sudo=False)
    try:
        tricky = ["a b", "$HOME", "'q'", '"d"', "x;id", "*"]
        result = target.run(["printf", "%s|", *tricky])
        assert result.ok and result.stdout.decode() == "|".join(tricky) + "|"
        big = target.run(["head", "-c", "1000000", "/dev/zero"], max_output=1000)
        assert big.ok and big.stdout == b"\0" * 1000
        slow = target.run(["sleep", "30"], timeout=1)
        assert slow.exit_status == -1
        assert target.run(["sh", "-c", "exit 3"]).exit_status == 3
    finally:
        target.close()


def test_target_files_without_and_with_sudo(sshd: Sshd, tmp_path: Path) -> None:
    from vmimage.targets.base import UnreadableError

    fifo = sshd.tree / "run" / "vmimage-fifo"
    os.mkfifo(fifo)
    plain = _target(sshd, tmp_path, sudo=False)
    try:
        with pytest.raises(UnreadableError, match="permission denied"):
            plain.read_text("/etc/shadow")
        with pytest.raises(UnreadableError, match="FIFO"):
            plain.read_bytes("/run/vmimage-fifo")
        with pytest.raises(FileNotFoundError):
            plain.read_bytes("/etc/no-such-file")
        with pytest.raises(IsADirectoryError):
            plain.read_bytes("/etc")
        assert plain.read_text("/proc/self/status").startswith("Name:")  # stat size 0
        assert plain.readlink("/bin") == "usr/bin" and plain.exists("/bin/sh")
        assert plain.read_bytes("/etc/os-release", 4) == b"PRET"
        assert plain.read_at("/etc/os-release", 1, 3) == b"RET"
        assert "sshd_config" in plain.iterdir("/etc/ssh")
    finally:
        plain.close()
    root = _target(sshd, tmp_path, sudo=True)
    try:
        assert "\nroot:" in root.read_text("/etc/shadow")
        assert root.run(["id", "-u"]).stdout.strip() == b"0"
    finally:
        root.close()
