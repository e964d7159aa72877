"""``vmimage vm boot / list / ssh / stop`` on a real Debian image under qemu (TCG here).

At most one VM at a time per test process: the tests that start and end their own VM come
first, then one VM shared by the rest (module fixture), stopped and removed at the end even
on failure. Serial logs are kept under each test's tmp dir as artefacts.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests import bootimage

pytestmark = [pytest.mark.vm, pytest.mark.slow]

BOOT_TIMEOUT = float(os.environ.get("VMIMAGE_TEST_BOOT_TIMEOUT", "300"))


def _env(state: Path) -> dict[str, str]:
    return {**os.environ, "VMIMAGE_STATE_DIR": str(state)}


def vmimage(state: Path, *args: str, timeout: float = BOOT_TIMEOUT + 60
            ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "vmimage", *args], env=_env(state),
                          capture_output=True, text=True, timeout=timeout, check=False)


def running(path: Path) -> list[str]:
    """Processes whose command line names ``path`` (qemu, the keeper)."""
    proc = subprocess.run(["pgrep", "-af", str(path)], capture_output=True, text=True,
                          check=False)
    return [ln for ln in proc.stdout.splitlines() if "pgrep" not in ln]


def _reap(state: Path) -> None:
    """Whatever a failed test left: killed, and the state removed."""
    for line in running(state):
        pid = int(line.split()[0])
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    subprocess.run(["rm", "-rf", str(state)], check=False)


@pytest.fixture
def state(tmp_path):
    path = tmp_path / "state"
    yield path
    _reap(path)


@pytest.fixture(scope="module")
def image():
    return bootimage.bootable_disk("normal")


def test_refuses_qcow2_with_the_command_that_converts(state, tmp_path):
    qcow = tmp_path / "disk.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(qcow), "64M"], check=True)
    proc = vmimage(state, "vm", "boot", str(qcow))
    assert proc.returncode == 2
    assert "convert it first (vmimage vhd convert" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_killed_during_boot_leaves_nothing_running(state, image, tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "vmimage", "vm", "boot", str(image.path),
                             "--name", "killed", "--console-log", str(tmp_path / "console.log"),
                             "--timeout", "600"], env=_env(state),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while not any("qemu-system" in ln for ln in running(state / "vms" / "killed")):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "qemu never started"
            time.sleep(0.2)
        time.sleep(2)  # qemu is booting: vm boot is in its wait
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        deadline = time.monotonic() + 20
        while running(state) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert running(state) == []
        assert not (state / "vms" / "killed").exists()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_kernel_panic_fails_fast_with_the_console(state, tmp_path):
    panic = bootimage.bootable_disk("panic")
    console = tmp_path / "console.log"
    start = time.monotonic()
    proc = vmimage(state, "vm", "boot", str(panic.path), "--console-log", str(console),
                   "--timeout", str(BOOT_TIMEOUT))
    took = time.monotonic() - start
    assert proc.returncode == 1, proc.stderr
    first, *rest = proc.stderr.splitlines()
    assert "did not boot: kernel panic after" in first
    assert any("Kernel panic" in ln for ln in rest)
    assert took < BOOT_TIMEOUT
    assert "Kernel panic" in console.read_text(errors="replace")  # the artefact stays
    assert running(state) == []
    assert list((state / "vms").iterdir()) == []


# --- one VM, shared by the tests below ------------------------------------------------------


def test_gen2_uefi_vhd_boots_under_ovmf(state, tmp_path):
    """A GPT disk with an EFI system partition, as a fixed VHD: OVMF starts GRUB's EFI loader
    from the ESP, and the guest runs in UEFI mode."""
    from tests import imagebuild as ib
    from vmimage.disk.convert import convert_in_place

    copy = tmp_path / "gen2.raw"
    ib.clone_file(bootimage.bootable_disk("uefi").path, copy)
    convert_in_place(copy)
    vhd = copy.rename(tmp_path / "gen2.vhd")
    key = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    proc = vmimage(state, "vm", "boot", str(vhd), "--name", "g2", "--key", f"{key}.pub",
                   "--console-log", str(tmp_path / "console.log"), "--timeout",
                   str(BOOT_TIMEOUT), "--format", "json")
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    assert info["firmware"] == "uefi"
    mode = vmimage(state, "vm", "ssh", "g2", "--", "test -d /sys/firmware/efi && echo uefi",
                   timeout=120)
    assert mode.stdout.strip() == "uefi", mode.stdout + mode.stderr
    assert vmimage(state, "vm", "stop", "g2", timeout=60).returncode == 0


@pytest.fixture(scope="module")
def vm(image, tmp_path_factory):
    work = tmp_path_factory.mktemp("vm")
    state = work / "state"
    key = work / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    before = bootimage.content_digest(image.path)
    try:
        start = time.monotonic()
        proc = vmimage(state, "vm", "boot", str(image.path), "--name", "t", "--key",
                       f"{key}.pub", "--console-log", str(work / "console.log"),
                       "--timeout", str(BOOT_TIMEOUT), "--format", "json")
        assert proc.returncode == 0, proc.stderr
        info = json.loads(proc.stdout)
        print(f"vm boot took {time.monotonic() - start:.1f} s (SSH after {info['seconds']} s)")
        yield {"state": state, "info": info, "before": before, "image": image.path,
               "work": work}
    finally:
        vmimage(state, "vm", "stop", "t", timeout=60)
        _reap(state)


def ssh(vm, *cmd: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return vmimage(vm["state"], "vm", "ssh", "t", "--", *cmd, timeout=timeout)


def test_boots_with_the_injected_key(vm):
    info = vm["info"]
    assert info["user"] == "azureuser" and info["user_created"] is True
    assert info["image_modified"] is False
    assert info["accel"] in ("tcg", "kvm")
    assert info["firmware"] == "bios"
    proc = ssh(vm, "id", "-un")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "azureuser"


def test_image_bytes_unchanged_after_writes_in_the_guest(vm):
    proc = ssh(vm, "sudo sh -c 'dd if=/dev/urandom of=/var/tmp/x bs=1M count=8 status=none; "
                   "echo changed > /etc/motd; sync'")
    assert proc.returncode == 0, proc.stderr
    assert bootimage.content_digest(vm["image"]) == vm["before"]


def test_guest_reaches_neither_host_nor_outside(vm):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    listener.settimeout(0.5)
    port = listener.getsockname()[1]
    accepted = []
    stop = threading.Event()

    def accept():
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            accepted.append(conn)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        probe = (f"for t in 10.0.2.2/{port} 1.1.1.1/80; do "
                 "if timeout 3 bash -c \"echo hi > /dev/tcp/$t\" 2>/dev/null; "
                 "then echo \"$t open\"; else echo \"$t closed\"; fi; done")
        proc = ssh(vm, probe)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.split("\n")[:2] == [f"10.0.2.2/{port} closed", "1.1.1.1/80 closed"]
        assert accepted == []
    finally:
        stop.set()
        thread.join()
        listener.close()


def _live(vm, *args: str, env: dict[str, str] | None = None
          ) -> subprocess.CompletedProcess[str]:
    """``vmimage check ssh://azureuser@127.0.0.1:PORT --sudo ...`` against the shared VM."""
    work = vm["work"]
    return subprocess.run(
        [sys.executable, "-m", "vmimage", "check",
         f"ssh://azureuser@127.0.0.1:{vm['info']['port']}", "--sudo",
         "--known-hosts", str(work / "known_hosts"), "--accept-new-host-key", *args],
        env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=300,
        check=False)


def _statuses(report: dict) -> dict[str, str]:
    worst: dict[str, str] = {}
    rank = {"pass": 0, "skip": 1, "warning": 2, "fail": 3}
    for f in report["findings"]:
        if rank[f["status"]] >= rank.get(worst.get(f["check_id"], "pass"), 0):
            worst[f["check_id"]] = f["status"]
    return worst


def test_live_check_agrees_with_the_offline_check(vm):
    """The compliant image, offline and running: every check that both examine agrees."""
    live = _live(vm, "--key", str(vm["work"] / "id_ed25519"), "--format", "json")
    assert live.returncode in (0, 1), live.stderr
    report = json.loads(live.stdout)
    assert report["mode"] == "live" and report["target"]["kind"] == "ssh"
    offline = subprocess.run([sys.executable, "-m", "vmimage", "check", str(vm["image"]),
                              "--format", "json"], capture_output=True, text=True,
                             timeout=300, check=False)
    before, after = _statuses(json.loads(offline.stdout)), _statuses(report)
    differ = {cid: (before[cid], after[cid]) for cid in before.keys() & after.keys()
              if "skip" not in (before[cid], after[cid]) and before[cid] != after[cid]}
    assert differ == {}, differ
    examined = [cid for cid, status in after.items() if status != "skip"]
    assert len(examined) >= 30, after  # the live run examined, not skipped, the Linux rules
    evidence = json.dumps(report["findings"])
    assert "/proc/cmdline" in evidence and "uname -m" in evidence  # the live sources
    dhcp = next(f for f in report["findings"] if f["check_id"] == "LINUX-DHCP")
    assert dhcp["status"] == "pass" and "holds 10.0.2.15/24 from it" in dhcp["message"]


def test_live_dhcp_fails_when_eth0_holds_no_lease(vm):
    """The configuration says DHCP; the running system shows whether a lease came: an address
    made permanent (what a static setup leaves) fails the live check. Restored after."""
    pin = "sudo ip addr change 10.0.2.15/24 dev eth0 valid_lft {0} preferred_lft {0}"
    assert ssh(vm, pin.format("forever")).returncode == 0
    try:
        proc = _live(vm, "--key", str(vm["work"] / "id_ed25519"), "--check", "LINUX-DHCP",
                     "--format", "json")
        assert proc.returncode == 1, proc.stderr
        finding = json.loads(proc.stdout)["findings"][0]
        assert finding["status"] == "fail"
        assert "holds only a static 10.0.2.15/24" in finding["message"]
        assert finding["evidence"][-1]["path"] == "ip -j addr"
    finally:
        ssh(vm, pin.format("86400"))


def test_live_check_logs_in_with_a_password(vm):
    secret = "Tr1cky pass;word$"
    proc = ssh(vm, f"echo 'azureuser:{secret}' | sudo chpasswd")
    assert proc.returncode == 0, proc.stderr
    good = _live(vm, "--password-env", "VMIMAGE_TEST_PW", "--check", "LINUX-NO-SWAP",
                 env={"VMIMAGE_TEST_PW": secret})
    assert good.returncode == 0, good.stdout + good.stderr
    assert "PASS     LINUX-NO-SWAP" in good.stdout
    bad = _live(vm, "--password-env", "VMIMAGE_TEST_PW", env={"VMIMAGE_TEST_PW": "Bad-Pw-9z7"})
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1, bad.stderr
    for proc in (good, bad):
        assert secret not in proc.stdout + proc.stderr and "Bad-Pw-9z7" not in proc.stderr


def test_list_then_stop(vm):
    proc = vmimage(vm["state"], "vm", "list", "--format", "json", timeout=30)
    listed = json.loads(proc.stdout)
    assert [v["name"] for v in listed] == ["t"]
    assert listed[0]["port"] == vm["info"]["port"]
    proc = vmimage(vm["state"], "vm", "stop", "t", timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert running(vm["state"]) == []
    assert json.loads(vmimage(vm["state"], "vm", "list", "-f", "json", timeout=30).stdout) == []
    assert not (vm["state"] / "vms" / "t").exists()
