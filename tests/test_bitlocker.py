"""BitLocker volumes beyond their signature: what :mod:`vmimage.facts.windows.bitlocker` reads
from real volumes made by Windows (tests.bitlocker_fixture: dissect.fve's test data from
PyPI), checked against cryptsetup's ``bitlkDump`` as a peer reader; damaged and foreign
metadata behind a ``-FVE-FS-`` boot sector; and WINDOWS-NO-BITLOCKER's evidence on a whole
Windows disk whose System Reserved partition is a real BitLocker volume."""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests import bitlocker_fixture as bf
from tests.winimage import WinPartition, WinSpec, plan, windows_copy
from vmimage.app.check import check_target
from vmimage.disk.sources import FdReader, FileWindow
from vmimage.facts.windows.bitlocker import (
    ENCRYPTION_METHODS,
    BitLocker,
    open_bitlocker,
    read_bitlocker,
)
from vmimage.findings import Status
from vmimage.targets.base import UnreadableError

MiB = 1024 * 1024
#: A FVE metadata block's signature: what libbde looks for at the header's offsets.
FVE_METADATA = b"-FVE-FS-"
#: What bitlkDump calls each cipher (mode, key bits: XTS and the diffuser double the key).
BITLK_CIPHER = {
    "AES-CBC 128 with Elephant diffuser": ("cbc-elephant", 256),
    "AES-CBC 256 with Elephant diffuser": ("cbc-elephant", 512),
    "AES-CBC 128": ("cbc-eboiv", 128),
    "AES-CBC 256": ("cbc-eboiv", 256),
    "AES-XTS 128": ("xts-plain64", 256),
    "AES-XTS 256": ("xts-plain64", 512),
}
#: bitlkDump's "VMK protected with ..." words, in vmimage's (Windows') words.
BITLK_PROTECTION = {"passphrase": "password", "recovery passphrase": "recovery password",
                    "startup key": "startup key", "clear key": "clear key", "TPM": "TPM",
                    "TPM and PIN": "TPM and PIN", "smart card": "smart card"}
ENCRYPTED = ("aes-xts_128", "aes-xts_256", "aes_128", "aes_256", "aes_128_diffuser",
             "aes_256_diffuser", "recovery_password", "recovery_key", "startup_key",
             "suspended")


def _facts(path: Path, name: str = "p1") -> BitLocker:
    fd = os.open(path, os.O_RDONLY)
    try:
        return read_bitlocker(FileWindow(FdReader(fd), 0, os.fstat(fd).st_size), name)
    finally:
        os.close(fd)


def _facts_of(data: bytes) -> BitLocker:
    class Bytes:
        def read(self, offset: int, length: int) -> bytes:
            return data[offset:offset + length]

    return read_bitlocker(FileWindow(Bytes(), 0, len(data)))


def _bitlk_dump(path: Path) -> subprocess.CompletedProcess[str]:
    if shutil.which("cryptsetup") is None:
        if os.environ.get("CI"):
            pytest.fail("cryptsetup is missing: CI must install Debian's cryptsetup-bin "
                        "(scripts/install-test-deps.sh)")
        pytest.skip("cryptsetup is not installed (apt-get install cryptsetup-bin); CI runs "
                    "this test")
    return subprocess.run(["cryptsetup", "bitlkDump", str(path)], capture_output=True,
                          text=True, env={**os.environ, "TZ": "UTC", "LC_ALL": "C"},
                          stdin=subprocess.DEVNULL, check=False)


def _parse_dump(text: str) -> tuple[dict[str, str], list[tuple[str, str]]]:
    """bitlkDump's header fields and its VMK key slots as (GUID, protection) pairs."""
    fields: dict[str, str] = {}
    slots: list[tuple[str, str]] = []
    guid = None
    in_slots = False
    for line in text.splitlines():
        if line.startswith("Keyslots:"):
            in_slots = True
        elif line.startswith("Metadata segments:"):
            in_slots = False
        key, sep, value = line.partition(":")
        if not sep:
            continue
        key, value = key.strip(), value.strip()
        if in_slots and key == "GUID":
            guid = value
        elif in_slots and key == "Protection":
            assert guid is not None, text
            slots.append((guid, value.removeprefix("VMK protected with ")))
        elif not in_slots and not line.startswith((" ", "\t")):
            fields.setdefault(key, value)
    return fields, slots


@pytest.mark.parametrize("name", ENCRYPTED)
def test_metadata_matches_bitlkdump(name: str) -> None:
    path = bf.volume(name)
    facts = _facts(path)
    proc = _bitlk_dump(path)
    assert proc.returncode == 0, proc.stderr
    dump, slots = _parse_dump(proc.stdout)
    assert facts.readable and facts.reason is None
    assert facts.identifier == dump["GUID"]
    assert facts.description == dump["Description"]
    assert facts.description and facts.description.startswith(("DESKTOP-", "USER-PC"))
    created = datetime.strptime(dump["Created"], "%a %b %d %H:%M:%S %Y").replace(tzinfo=UTC)
    assert facts.created is not None and facts.created.replace(microsecond=0) == created
    assert facts.encryption is not None
    assert BITLK_CIPHER[facts.encryption] == (dump["Cipher mode"],
                                              int(dump["Cipher key"].split()[0]))
    assert [(p.identifier, p.kind) for p in facts.protectors] == [
        (guid, BITLK_PROTECTION[word]) for guid, word in slots]
    # Only a clear key unlocks without being given one: every other volume stays locked.
    assert facts.locked is (name != "suspended")
    assert facts.suspended is (name == "suspended")


def test_each_cipher_is_named_as_windows_names_it() -> None:
    seen = {name: _facts(bf.volume(name)).encryption for name in ENCRYPTED[:6]}
    assert seen == {"aes-xts_128": "AES-XTS 128", "aes-xts_256": "AES-XTS 256",
                    "aes_128": "AES-CBC 128", "aes_256": "AES-CBC 256",
                    "aes_128_diffuser": "AES-CBC 128 with Elephant diffuser",
                    "aes_256_diffuser": "AES-CBC 256 with Elephant diffuser"}
    assert set(seen.values()) <= set(ENCRYPTION_METHODS.values())


def test_summary_names_the_cipher_protectors_and_creation() -> None:
    facts = _facts(bf.volume("recovery_password"))
    assert facts.summary() == (
        "BitLocker, AES-XTS 128, protectors: recovery password, password; "
        "created 2021-10-08 18:09 UTC; \"DESKTOP-QNI1MMF TestVolume 10/8/2021\"; "
        "volume ID 8e6909f1-6ba3-49ea-bf8d-ec83fab656cd")


def test_suspended_protection_is_called_still_encrypted() -> None:
    facts = _facts(bf.volume("suspended"))
    assert facts.suspended and facts.locked is False
    assert [p.kind for p in facts.protectors] == ["clear key"]
    assert facts.encryption == "AES-XTS 128"
    summary = facts.summary()
    assert "SUSPENDED" in summary and "still encrypted" in summary and "Azure" in summary


def test_decrypted_volume_is_reported_as_such() -> None:
    path = bf.volume("decrypted")
    with path.open("rb") as fh:
        assert fh.read(11)[3:] == b"-FVE-FS-"
    facts = _facts(path)
    assert facts.readable and facts.encryption == "none" and facts.protectors == ()
    assert facts.locked is False and not facts.suspended
    assert "without encryption" in facts.summary()
    # The peer does not take it for an encrypted volume either.
    proc = _bitlk_dump(path)
    assert proc.returncode != 0 and "unsupported encryption" in proc.stderr


def test_truncated_volume_is_unreadable_in_one_line() -> None:
    """dissect.fve's Vista volume is cut short: its metadata lies past the end."""
    path = bf.volume("vista")
    facts = _facts(path)
    assert not facts.readable and facts.reason
    assert "\n" not in facts.reason and "libbde_" not in facts.reason
    assert facts.protectors == () and facts.encryption is None and facts.locked is None
    assert facts.summary().startswith("BitLocker metadata unreadable (")
    fd = os.open(path, os.O_RDONLY)
    try:
        with pytest.raises(UnreadableError, match=r"^vol: bitlocker: cannot be read: "):
            open_bitlocker(FileWindow(FdReader(fd), 0, os.fstat(fd).st_size), "vol")
    finally:
        os.close(fd)
    assert _bitlk_dump(path).returncode != 0  # the peer cannot read it either


# ---- hostile metadata behind the signature ---------------------------------------------


def _ntfs_like_boot_sector() -> bytes:
    sector = bytearray(512)
    sector[0:3] = b"\xeb\x52\x90"
    sector[3:11] = b"-FVE-FS-"
    sector[11:13] = (512).to_bytes(2, "little")
    sector[13] = 8
    sector[510:512] = b"\x55\xaa"
    return bytes(sector)


@pytest.mark.parametrize("data", [
    b"\xeb\x58\x90-FVE-FS-",
    _ntfs_like_boot_sector() + bytes(4 * MiB),
    b"\xeb\x58\x90-FVE-FS-" + random.Random(7).randbytes(2 * MiB),
    b"\xeb\x58\x90-FVE-FS-" + b"\xff" * (1 * MiB),
], ids=["signature-only", "ntfs-like", "random", "all-ff"])
def test_signature_on_garbage_is_unreadable_data(data: bytes) -> None:
    facts = _facts_of(data)
    assert not facts.readable and facts.reason and "\n" not in facts.reason
    assert facts.summary().startswith("BitLocker metadata unreadable")


def _metadata_offsets(volume: bytes) -> list[int]:
    return [m.start() for m in re.finditer(re.escape(FVE_METADATA), volume) if m.start()]


def test_damaged_metadata_never_raises() -> None:
    """A real volume with bytes of its boot sector and FVE metadata blocks changed: every
    outcome is data (readable with what could be read, or unreadable with a reason)."""
    original = bf.volume("recovery_password").read_bytes()
    offsets = [0, *_metadata_offsets(original)]
    assert len(offsets) >= 4  # the boot sector and three metadata copies
    rnd = random.Random(20240101)
    outcomes = set()
    for _ in range(60):
        data = bytearray(original)
        for _ in range(rnd.randint(1, 24)):
            region = rnd.choice(offsets)
            data[region + rnd.randrange(3 if region == 0 else 0, 512 if region == 0 else 2048)] \
                = rnd.randrange(256)
        facts = _facts_of(bytes(data))
        if not facts.readable:
            assert facts.reason and "\n" not in facts.reason
        facts.summary()
        outcomes.add(facts.readable)
    # Every copy of the metadata zeroed: no BitLocker facts, one reason.
    data = bytearray(original)
    for offset in offsets[1:]:
        data[offset:offset + 64 * 1024] = bytes(64 * 1024)
    facts = _facts_of(bytes(data))
    assert not facts.readable and facts.reason


def test_volume_cut_at_each_metadata_block_is_unreadable_or_partial() -> None:
    original = bf.volume("aes-xts_128").read_bytes()
    for offset in _metadata_offsets(original):
        facts = _facts_of(original[:offset + 100])
        assert facts.readable or facts.reason


# ---- the rule on a whole Windows disk -------------------------------------------------


@pytest.fixture
def bitlocker_disk() -> Iterator[tuple[Path, WinPartition]]:
    """The compliant Gen1 image (fixed VHD) whose System Reserved partition holds the real
    AES-XTS 128 volume with a recovery password and a password."""
    spec = WinSpec()
    reserved = plan(spec).part("system")
    volume = bf.volume("recovery_password")
    assert volume.stat().st_size <= reserved.size
    path = windows_copy(spec)
    try:
        bf.copy_into("recovery_password", path, reserved.start, reserved.size)
        yield path, reserved
    finally:
        path.unlink(missing_ok=True)


def test_check_cli_names_the_bitlocker_facts(bitlocker_disk: tuple[Path, WinPartition],
                                             tmp_path: Path) -> None:
    path, reserved = bitlocker_disk
    out = tmp_path / "report.json"
    proc = subprocess.run([sys.executable, "-m", "vmimage", "check", str(path), "--role",
                           "os-windows", "-o", str(out)], capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, check=False)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    report = json.loads(out.read_text())
    failed = [f for f in report["findings"] if f["status"] in ("fail", "warning")]
    assert [f["check_id"] for f in failed] == ["WINDOWS-NO-BITLOCKER"], failed
    finding = failed[0]
    assert finding["message"].startswith("p1 (")
    assert "BitLocker-encrypted" in finding["message"]
    seen = " ".join(e["seen"] for e in finding["evidence"])
    assert f"p1 at {reserved.start}: boot sector OEM ID -FVE-FS-" in seen
    assert "BitLocker, AES-XTS 128, protectors: recovery password, password" in seen
    assert "created 2021-10-08 18:09 UTC" in seen
    assert "DESKTOP-QNI1MMF TestVolume 10/8/2021" in seen
    assert "8e6909f1-6ba3-49ea-bf8d-ec83fab656cd" in seen
    assert finding["remediation"].startswith("Turn BitLocker off")


def test_rule_says_suspended_protection_on_the_disk() -> None:
    """A suspended volume (clear key) in System Reserved still fails, and says it is
    suspended: Windows reads it without a key, Azure's tooling does not."""
    spec = WinSpec()
    reserved = plan(spec).part("system")
    path = windows_copy(spec)
    try:
        bf.copy_into("suspended", path, reserved.start, reserved.size)
        report = check_target(str(path), "azure-current", "os-windows",
                              ["WINDOWS-NO-BITLOCKER"])
    finally:
        path.unlink(missing_ok=True)
    (finding,) = report.findings
    assert finding.status is Status.FAIL
    assert finding.message.endswith("is BitLocker-encrypted (protection suspended)")
    (evidence,) = finding.evidence
    assert "protection SUSPENDED (clear key): still encrypted" in evidence.seen
