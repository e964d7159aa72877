"""``vmimage check IMAGE --boot``: certify the image offline, boot it, certify the running VM
with the same rules, and report both side by side.

What a VM deployed from the image looks like after its first boot is what Microsoft's tool
tests (REG-DEPLOY, CRT-TOOL); what changes at that boot (swap made by the agent, a user
restored, host keys generated) is the publishers' most common surprise. By default the VM is
deployed as Azure deploys it (:mod:`vmimage.app.provision`: the agent in the image creates
the user with a throwaway key), so the first boot is Azure's and the provisioning verdict
stands beside the checks; a VM that does not provision fails the run and is not checked live.
Without provisioning (``--no-provision``) the user and key are written into a private copy.
Either way the image is never written, and the VM is always stopped, whatever happens.
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from vmimage import log
from vmimage.app import vm
from vmimage.app.check import check_target
from vmimage.errors import InputError
from vmimage.profiles import Profile
from vmimage.report.model import Report
from vmimage.targets.sshconnect import SshOptions, new_key_pair

_log = log.get("boot")


@dataclass(frozen=True)
class BootCheckOptions:
    """How the VM is booted for ``check --boot`` (``vm boot``'s options)."""

    memory: str = "1G"
    cpus: int = 2
    timeout: float = 300.0
    console_log: str | None = None
    user: str = vm.DEFAULT_USER
    provision: bool = True


def check_booted(spec: str, profile: str | Profile, role: str = "auto",
                 only: Iterable[str] | None = None,
                 options: BootCheckOptions = BootCheckOptions()) -> Report:
    """The offline report of ``spec`` with the first-boot report of a VM booted from it.

    Raises:
        InputError: the image cannot be checked or booted (a directory, a Windows image,
            qcow2...).
        BootFailed: the VM did not reach SSH (its last console lines attached).
    """
    chosen = list(only) if only is not None else None
    offline = check_target(spec, profile, role, chosen)
    if offline.target_kind != "image":
        raise InputError(spec, "--boot needs a disk image to boot, not a directory")
    if offline.role != "os-linux":
        raise InputError(spec, f"--boot boots Linux images over SSH; this is {offline.role}")
    with tempfile.TemporaryDirectory(prefix="vmimage-boot-") as tmp:
        private, public = new_key_pair(Path(tmp))
        booted = vm.boot(vm.BootOptions(image=spec, memory=options.memory, cpus=options.cpus,
                                        timeout=options.timeout,
                                        console_log=options.console_log,
                                        key=str(public), user=options.user,
                                        provision=options.provision))
        verdict = booted.verdict.to_dict() if booted.verdict is not None else None
        if booted.verdict is not None and not booted.verdict.provisioned:
            return dataclasses.replace(offline, provisioning=verdict,
                                       notes=_notes(booted, options.user))
        try:
            ssh = SshOptions(key=private, sudo=True, known_hosts=Path(tmp) / "known_hosts",
                             accept_new_host_key=True)
            live = check_target(f"ssh://{options.user}@127.0.0.1:{booted.record.port}",
                                profile, "os-linux", chosen, ssh)
        finally:
            vm.stop(booted.record.name)
    return dataclasses.replace(offline, first_boot=live, notes=_notes(booted, options.user),
                               provisioning=verdict)


def _notes(booted: vm.Booted, user: str) -> tuple[str, ...]:
    """What the reader must know about how the VM was made: nothing was written to the image."""
    if booted.verdict is not None:
        return (f"deployed under qemu ({booted.record.accel}, {booted.record.firmware}) as Azure "
                "deploys it: ovf-env.xml on a DVD, DHCP with Azure's options, the WireServer "
                "and IMDS emulated in a network namespace of the VM's own",
                f"user {user} and a throwaway SSH key given to the image's "
                f"{booted.verdict.by} through ovf-env.xml; the image was not written")
    made = "created" if booted.user_created else "given"
    notes = [f"booted under qemu ({booted.record.accel}, {booted.record.firmware}) in "
             f"{booted.seconds:.1f} s from a private copy of the image; the image was not "
             "written",
             f"user {user} {made} with a throwaway SSH key and sudo in that copy, as the "
             "Azure agent would create it"]
    if booted.host_keys:
        notes.append("the copy had no SSH host keys: generated "
                     + ", ".join(booted.host_keys) + " (the Azure agent does so at provisioning)")
    return tuple(notes)
