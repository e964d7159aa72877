"""The registration job of the classic Create VM Image API (REG-CREATE, REG-GENERALIZED):
every MediaLink is read by range requests and checked by the code of ``vmimage check URL``,
then the image is registered, or the operation fails with the reason.

Azure's own registration refused what it could not deploy; so does this one, and no more
(certification is the place for every other rule):

- a MediaLink that cannot be read, or holds no disk (``InvalidOSDisk``,
  ``InvalidDataDisk``), an OS disk without the declared operating system;
- a VHD that breaks a VHD format rule (``VHD-*``: fixed, whole MiB, its footer): ``InvalidVhd``;
- an OS disk that is not generalized (REG-GENERALIZED): a failing rule that covers the
  guide's LNX-GENERALIZED or WIN-SYSPREP (host keys, machine ID, DHCP leases, hostname,
  cloud-init's state; sysprep): ``ImageNotGeneralized``.

Like the certification job, the run changes nothing itself: its outcome is the job's effect,
applied once in the transaction that ends the job.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Sequence

from sqlalchemy.orm import Session

from vmimage.app.catalog import all_rules
from vmimage.app.check import check_target
from vmimage.app.publishing.store import Store
from vmimage.app.publishing.vmimages import (
    DiskToRead,
    RegistrationInputs,
    apply_registration_outcome,
    registration_inputs,
)
from vmimage.errors import VmimageError
from vmimage.jobs.model import Done, Job
from vmimage.profiles import Profile
from vmimage.report.model import Report
from vmimage.secrets import one_line
from vmimage.textsafe import printable
from vmimage.units import GiB

_log = logging.getLogger("vmimage.jobs")
#: The guide's requirements that say "generalized": a rule covering one is a gate.
GENERALIZED_REQUIREMENTS = frozenset({"LNX-GENERALIZED", "WIN-SYSPREP"})
ROLES = {"Linux": "os-linux", "Windows": "os-windows"}
Error = tuple[str, str]


@functools.cache
def gates() -> tuple[frozenset[str], frozenset[str]]:
    """The rules a registration is refused by: (VHD format rules, generalization rules)."""
    rules = all_rules()
    vhd = frozenset(m.id for m in rules if m.id.startswith("VHD-"))
    generalized = frozenset(m.id for m in rules if GENERALIZED_REQUIREMENTS & set(m.covers))
    return vhd, generalized


def _label(disk: DiskToRead) -> str:
    return "the OS disk" if disk.lun is None else f"data disk LUN {disk.lun}"


def _failing(report: Report, ids: frozenset[str]) -> list[str]:
    return [f"{f.check_id}: {f.message}" for f in report.findings if f.failing and
            f.check_id in ids]


def judge(disk: DiskToRead, report: Report) -> Error | None:
    """Why one disk's report refuses the registration, or None."""
    vhd, generalized = gates()
    bad = _failing(report, vhd)
    if bad:
        return "InvalidVhd", f"{_label(disk)} ({disk.media_link}) is not a VHD Azure " \
                             f"registers: {'; '.join(bad)}"
    bad = _failing(report, generalized) if disk.lun is None else []
    if bad:
        return "ImageNotGeneralized", (
            f"the OS disk ({disk.media_link}) is not generalized (REG-GENERALIZED): "
            f"{'; '.join(bad)}; generalize it (vmimage generalize) and upload it again")
    return None


def read_disk(disk: DiskToRead, os_name: str, profile: Profile,
              allow_endpoints: Sequence[str]) -> tuple[Report | None, Error | None]:
    """Check one disk by its MediaLink; its report, or why it could not be read."""
    role = ROLES[os_name] if disk.lun is None else "data"
    try:
        return check_target(disk.url, profile, role, allow_endpoints=allow_endpoints), None
    except VmimageError as exc:
        code = "InvalidOSDisk" if disk.lun is None else "InvalidDataDisk"
        reason = printable(one_line(str(exc), limit=600))
        error = code, f"{_label(disk)} ({disk.media_link}) cannot be registered: {reason}"
    if disk.lun is None:  # no system found: a VHD Azure would refuse says so first
        try:
            as_data = check_target(disk.url, profile, "data", allow_endpoints=allow_endpoints)
        except VmimageError:
            return None, error
        return None, judge(disk, as_data) or error
    return None, error


def register(inputs: RegistrationInputs, profile: Profile,
             allow_endpoints: Sequence[str]) -> tuple[dict[str, int], Error | None]:
    """Read every disk; each disk's size in GB, or the first reason to refuse."""
    sizes: dict[str, int] = {}
    for disk in inputs.disks:
        report, error = read_disk(disk, inputs.os, profile, allow_endpoints)
        if error is None and report is not None:
            error = judge(disk, report)
        if error is not None:
            return sizes, error
        assert report is not None
        size = (report.disk or {}).get("virtual_size")
        if isinstance(size, int):
            sizes[disk.media_link] = math.ceil(size / GiB)
    return sizes, None


def run_registration(store: Store, allow_endpoints: Sequence[str], job: Job) -> Done:
    """The handler of a registration job (``payload["image"]``)."""
    image_id = int(job.payload["image"])
    inputs = registration_inputs(store, image_id)
    if inputs is None:
        return Done({"image": image_id, "recorded": False, "why": "gone or decided"})
    _log.info("job %s: registering VM image %s (%d disk(s) to read)", job.id, inputs.name,
              len(inputs.disks))
    sizes, error = register(inputs, store.profile, allow_endpoints)
    result: dict[str, object] = {"image": image_id, "name": inputs.name,
                                 "registered": error is None, "sizes_gb": sizes}
    if error is not None:
        result["error"] = {"code": error[0], "message": error[1]}

    def record(session: Session) -> None:
        result["recorded"] = apply_registration_outcome(session, image_id, sizes, error)

    return Done(result, record)
