"""Check one target: open it, make sure it holds what its role says, run the rules that fit.

Fail closed (rulings): a disk in which no operating system is found is never a pass. For an
OS role, ``check`` refuses (exit 2, with what it did find) a target with no readable root
filesystem or no os-release (nor a Windows volume; a BitLocker-encrypted one is named), and a
disk whose system is of another family than the role says;
a data disk that holds an operating system is refused as well, since its role is wrong.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from vmimage import __version__, log
from vmimage.app.catalog import profile as load_profile
from vmimage.app.identity import disk_identity
from vmimage.checks.context import CheckContext
from vmimage.checks.run import run_image_rules
from vmimage.checks.windows.bitlocker import bitlocker_partitions
from vmimage.disk.inspect import RAW
from vmimage.errors import InputError
from vmimage.facts import Facts
from vmimage.facts.windows.registry import read_hive
from vmimage.facts.windows.system import SOFTWARE_HIVE, product
from vmimage.profiles import Profile
from vmimage.report.model import Report
from vmimage.rules import Subject
from vmimage.targets.base import Target
from vmimage.targets.open import is_blob_url, open_target
from vmimage.targets.sshconnect import SshOptions
from vmimage.units import format_size

if TYPE_CHECKING:
    from vmimage.facts.security import SecurityProvider
    from vmimage.fetchpolicy import FetchPolicy

__all__ = ["AUTO", "SshOptions", "check_target", "detect_family"]

_log = log.get("check")


def _windows_summary(target: Target) -> dict[str, str]:
    """Product, edition, build.UBR and installation type, from the SOFTWARE hive."""
    try:
        prod = product(read_hive(target, SOFTWARE_HIVE))
    except OSError as exc:  # the rules say the same, as a skip
        return {"os": "Windows", "id": "windows", "error": str(exc)}
    build = "" if prod.build is None else str(prod.build)
    build += "" if prod.ubr is None or not build else f".{prod.ubr}"
    out = {"os": prod.name or "Windows", "id": "windows", "edition": prod.edition or "",
           "build": build, "installation_type": prod.installation_type or ""}
    return {k: v for k, v in out.items() if v}


def _system_summary(facts: Facts, family: str | None = "linux") -> dict[str, str]:
    if family == "windows":
        return _windows_summary(facts.target)
    osr = facts.os_release
    if osr is None:
        return {}
    return {"os": osr.pretty_name or osr.id, "id": osr.id, "version": osr.version_id}


def _found(target: Target) -> str:
    """What the target holds, for the message that refuses it."""
    layout = target.layout() if "disk" in target.capabilities else None
    if layout is None:
        return "a directory without /etc/os-release"
    locked = bitlocker_partitions(target) or []
    if locked:
        names = ", ".join(p.name for p in locked)
        return (f"BitLocker-encrypted volume(s) {names}, which cannot be read: turn BitLocker "
                "off before capturing the image")
    if not layout.partitions:
        return f"no partition table and no filesystem ({layout.scheme})"
    parts = ", ".join(f"{p.name} {p.fs_type or 'unknown'}" for p in layout.partitions[:8])
    return f"{layout.scheme} with {parts}"


#: The role of whichever operating system the disk holds.
AUTO = "auto"


def detect_family(target: Target, facts: Facts) -> str | None:
    """``linux`` (a readable root with os-release), ``windows`` (the image target found the
    NTFS volume holding Windows' SYSTEM hive) or None. An NTFS volume alone is no system: a
    data disk is NTFS too."""
    if getattr(target, "os_family", None) == "windows":
        return "windows"
    if "filesystem" in target.capabilities and facts.os_release is not None:
        return "linux"
    return None


def _require_disk_image(spec: str, target: Target) -> None:
    """A file that is no disk image at all (a README given by mistake) is said to be one."""
    info = getattr(target, "disk_info", None)
    if info is not None and info.format == RAW and (info.file_size % 512 or not info.file_size):
        raise InputError(spec, f"not a disk image: {info.file_size} bytes is not a whole "
                               "number of 512-byte sectors, and no image format was recognised")


def _require_family(spec: str, role: str, family: str | None, target: Target) -> None:
    if role == "data":
        if family is not None:
            raise InputError(spec, f"holds a {family.capitalize()} operating system, not data: "
                                   f"check it with --role os-{family}")
        return
    if role == AUTO:
        if family is None:
            raise InputError(spec, f"no operating system found ({_found(target)}): nothing "
                                   "to certify (a data disk: --role data)")
        return
    wanted = role.removeprefix("os-")
    if family is None:
        raise InputError(spec, f"no {wanted.capitalize()} operating system found "
                               f"({_found(target)}): nothing to certify")
    if family != wanted:
        raise InputError(spec, f"holds a {family.capitalize()} system, but --role is {role}: "
                               f"use --role os-{family}")


def _sizes(target: Target) -> int | None:
    return getattr(target, "bytes_read", None)


def _fetch_policy(spec: str, allow_endpoints: Sequence[str]) -> FetchPolicy | None:
    """The endpoints a blob URL may name: Azure's, ``--allow-endpoint`` and
    ``VMIMAGE_ALLOW_ENDPOINTS`` (both add to the list). None for any other target."""
    if not is_blob_url(spec):
        if allow_endpoints:
            raise InputError("--allow-endpoint", "applies to blob URLs (https://...) only")
        return None
    from vmimage.fetchpolicy import FetchPolicy  # http.client and ssl: only for a URL

    return FetchPolicy.from_settings(allow_endpoints, os.environ)


def check_target(spec: str, profile_name: str | Profile, role: str = "os-linux",
                 only: Iterable[str] | None = None, ssh: SshOptions | None = None, *,
                 allow_endpoints: Sequence[str] = (), security_data: str | None = None
                 ) -> Report:
    """Run the rules that fit ``role`` on ``spec`` (an image file, a root directory, a VHD in
    blob storage by URL, or ``ssh://user@host:port``, a running VM reached with the ``ssh``
    options); ``auto`` is the OS role of the system found (Linux or Windows), as a user
    expects ``vmimage check IMAGE`` to certify whatever image it is given. A live target runs
    the same rules (the disk's skip, as for a directory), with the live facts where there are
    some. A blob is read by range requests, never downloaded, from the endpoints
    ``allow_endpoints`` adds to Azure's (:mod:`vmimage.fetchpolicy`); the report names it
    without its query, so the SAS token never shows. ``@FILE`` reads the URL from FILE's
    first line, out of sight of ``ps``. ``security_data`` is ``--security-data``
    (:mod:`vmimage.secdata`: ``auto``, a prepared directory, or ``off``; None: the default).

    Raises:
        InputError: the target cannot be opened, holds no operating system for an OS role
            (or one for a data disk), ``only`` names an unknown rule, or a read of a blob
            failed during the check (no report then: it would rest on data never read).
    """
    policy = load_profile(profile_name, (Subject.DISK, Subject.SYSTEM))
    from vmimage.secdata import provider

    security = provider(security_data)
    started = datetime.now(UTC)
    clock = time.perf_counter()
    if spec.startswith("@") and not os.path.lexists(spec):
        from vmimage.inputs import read_url_argument

        spec = read_url_argument(spec)  # a SAS URL kept out of the command line (and ps)
    fetch, opened = _fetch_policy(spec, allow_endpoints), spec
    if fetch is not None:
        spec = spec.partition("?")[0]  # a blob URL is shown without its query (the SAS)
    if ssh is not None and not spec.startswith("ssh://") and ssh.given:
        raise InputError(spec, "--key, --password-env, --sudo, --known-hosts and "
                               "--accept-new-host-key apply to ssh:// targets only")
    target = open_target(opened, ssh, fetch)
    try:
        report = _check_opened(spec, target, policy, role, only, started, clock, security)
    except Exception:
        _no_verdict_on_unread_data(target)  # a refusal resting on a failed read says the read
        raise
    else:
        _no_verdict_on_unread_data(target)
        return report
    finally:
        target.close()


def _no_verdict_on_unread_data(target: Target) -> None:
    """End the run if reading the target failed underneath the filesystem readers.

    Over a network (a blob), a read can fail midway: the libyal readers turn it into an
    unreadable file, and the rules that needed it into skips, or worse into findings about a
    file that seemed absent. A verdict must never rest on data that was not read, so the
    target's first failed read (:attr:`~vmimage.targets.remote.BlobTarget.read_failure`)
    replaces the report.

    Raises:
        InputError: the target's first failed read, naming it and the status or error.
    """
    failure: InputError | None = getattr(target, "read_failure", None)
    if failure is not None:
        raise failure from None


def _check_opened(spec: str, target: Target, policy: Profile, role: str,
                  only: Iterable[str] | None, started: datetime, clock: float,
                  security: SecurityProvider | None = None) -> Report:
    """Everything :func:`check_target` does once the target is open (it closes it)."""
    _require_disk_image(spec, target)
    disk = getattr(target, "disk_info", None)
    if disk is not None:
        _log.info("%s: %s, %d bytes virtual", spec, disk.format_name, disk.virtual_size)
    facts = Facts(target)
    family = detect_family(target, facts)
    summary = _system_summary(facts, family) if family else {}
    _log.info("%s: found %s", spec, _found(target) if family is None else
              f"{family} ({summary.get('os', 'no os-release')})")
    _require_family(spec, role, family, target)
    role = f"os-{family}" if role == AUTO else role
    ctx = CheckContext(profile=policy, role=role, disk=disk, target=target,
                       facts=facts if family else None, capabilities=target.capabilities,
                       security=security)
    try:
        findings = run_image_rules(ctx, family or "linux", only)
    except KeyError as exc:
        raise InputError("--check", f"unknown check ID(s): {exc.args[0]}") from None
    read = _sizes(target)
    _log.info("%d rules of role %s ran in %.2f s%s", len(findings), role,
              time.perf_counter() - clock,
              "" if read is None else f", {format_size(read)} of the image read")
    live = "live" in target.capabilities
    kind = "image" if "disk" in target.capabilities else "ssh" if live else "directory"
    return Report(tool_version=__version__, target=target.name, target_kind=kind,
                  profile=policy.name, started=started, mode="live" if live else "offline",
                  duration_s=time.perf_counter() - clock, findings=findings,
                  system=summary,
                  bytes_read=_sizes(target), disk=disk.to_dict() if disk else None,
                  role=role, identity=disk_identity(target))
