"""``vmimage vm boot / list / ssh / stop``: an image deployed locally under qemu."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import TYPE_CHECKING

from vmimage.cli.common import DATA_FORMATS, check_format
from vmimage.cli.parsing import Parser, command, group

if TYPE_CHECKING:
    from vmimage.app.vm import Booted, BootFailed


def add_machine_options(p: argparse._ActionsContainer, timeout: str = "--timeout") -> None:
    """The VM's size, console and boot timeout: ``vm boot``'s and ``check --boot``'s."""
    p.add_argument("--memory", default="1G", metavar="SIZE", help="guest memory (default 1G)")
    p.add_argument("--cpus", type=int, default=2, metavar="N", help="virtual CPUs (default 2)")
    p.add_argument("--console-log", metavar="FILE",
                   help="write the serial console here (default: the VM's state directory)")
    p.add_argument(timeout, type=float, default=300.0, metavar="S",
                   help="give up when SSH has not answered after S seconds (default 300)")


def register(sub: argparse._SubParsersAction[Parser]) -> None:
    """``vmimage vm``."""
    vm = group(sub, "vm", "boot an image locally under qemu (the stand-in for deploying it), "
                          "and list, reach and stop what was booted")
    p = command(vm, "boot", boot, boot.__doc__)
    p.add_argument("image", metavar="IMAGE", help="a raw, fixed or dynamic VHD disk image")
    p.add_argument("--name", metavar="NAME", help="the VM's name (default vm-<image>-N)")
    p.add_argument("--ssh-port", type=int, metavar="N",
                   help="forward 127.0.0.1:N to the guest's port 22 (default: a free port)")
    add_machine_options(p)
    p.add_argument("--key", metavar="FILE.pub",
                   help="authorize this public key for --user in a private copy of the image "
                        "(the image itself is never written; needs root)")
    p.add_argument("--user", metavar="NAME",
                   help="the user --key is written for, created if the image lacks it "
                        "(default azureuser)")
    p.add_argument("--provision", action="store_true",
                   help="deploy as Azure does: ovf-env.xml on a DVD, DHCP with Azure's options, "
                        "the WireServer and IMDS emulated in a network namespace of the VM's "
                        "own; the agent (or cloud-init) creates --user with --key or the "
                        "password; the verdict says whether it provisioned (exit 1 if not)")
    p.add_argument("--password-env", metavar="VAR",
                   help="with --provision: the user's password, read from this environment "
                        "variable (never an argument)")
    p.add_argument("--hostname", metavar="NAME",
                   help="with --provision: the host name in ovf-env.xml (default: the VM's name)")
    p.add_argument("--format", "-f", dest="fmt", choices=DATA_FORMATS, help="text or json")
    p = command(vm, "list", list_vms, list_vms.__doc__)
    p.add_argument("--format", "-f", dest="fmt", choices=DATA_FORMATS, help="text or json")
    p = command(vm, "ssh", ssh, ssh.__doc__)
    p.add_argument("name", metavar="NAME")
    p.add_argument("--user", metavar="NAME", help="log in as NAME (default: the injected user)")
    p.add_argument("command", nargs=argparse.REMAINDER, metavar="-- CMD",
                   help="a command to run instead of a shell")
    p = command(vm, "stop", stop, stop.__doc__)
    p.add_argument("name", metavar="NAME")


def boot(args: argparse.Namespace) -> int:
    """Boot IMAGE under qemu from its own boot loader and wait for its SSH server.

    BIOS for an MBR disk or a GPT disk with a BIOS-boot partition, UEFI (OVMF) for a GPT
    disk with an EFI system partition only. KVM where /dev/kvm truly works, else TCG (slow:
    about 25 s to SSH). Networking: qemu's user mode with restrict=on, the guest reaching
    nothing but the one forward from 127.0.0.1 to its port 22. The image is never written:
    the VM runs on an overlay, or with --key on a private copy holding the key. The serial
    console is kept. A kernel panic, qemu exiting or --timeout ends the wait with the last
    console lines (exit 1); qemu is then killed and the VM's state removed. Once up, the VM
    keeps running after this command returns: vmimage vm stop NAME ends it.
    """
    from vmimage.app.vm import BootFailed, BootOptions
    from vmimage.app.vm import boot as run_boot

    check_format(args.fmt, DATA_FORMATS)
    opts = BootOptions(args.image, args.name, args.ssh_port, args.memory, args.cpus,
                       args.console_log, args.timeout, args.key, args.user, args.provision,
                       args.password_env, args.hostname)
    try:
        booted = run_boot(opts)
    except BootFailed as exc:
        return boot_failed(exc)
    _show_booted(booted, args.fmt)
    return 0 if booted.verdict is None or booted.verdict.provisioned else 1


def boot_failed(exc: BootFailed) -> int:
    """Say why the VM did not boot, then its last console lines; the exit code (1)."""
    from vmimage.textsafe import printable

    print(f"vmimage: {printable(str(exc))}", file=sys.stderr)
    print("last console lines:", file=sys.stderr)
    for line in exc.context:
        print(f"  | {printable(line)}", file=sys.stderr)
    return exc.exit_code


def _show_booted(booted: Booted, fmt: str | None) -> None:
    rec = booted.record
    verdict = booted.verdict
    if fmt == "json":
        print(json.dumps({**rec.to_dict(), "seconds": round(booted.seconds, 1),
                          "user_created": booted.user_created,
                          "host_keys_generated": list(booted.host_keys), "image_modified": False,
                          **({"provisioning": verdict.to_dict()} if verdict else {})},
                         indent=2))
        return
    if verdict is not None:
        _show_verdict(booted)
        if not verdict.provisioned:
            return
    print(f"{rec.name}: up in {booted.seconds:.1f} s ({rec.firmware.upper()}, {rec.accel}: "
          f"{booted.accel_reason})")
    print(f"  ssh:      vmimage vm ssh {rec.name}   (127.0.0.1:{rec.port})")
    if rec.key and verdict is not None:
        print(f"  key:      {rec.key} given to the image's {verdict.by} for user {rec.user} "
              "(ovf-env.xml and IMDS)")
    elif rec.key:
        made = " (created)" if booted.user_created else ""
        print(f"  key:      {rec.key} authorized for user {rec.user}{made}, in a private "
              "copy of the image")
    if booted.host_keys:
        print(f"  hostkeys: generated in the copy ({', '.join(booted.host_keys)}): the image "
              "has none, as a generalized image should")
    print(f"  image:    {rec.image} (not modified)")
    print(f"  console:  {rec.console}")
    print(f"  stop:     vmimage vm stop {rec.name}")


def _show_verdict(booted: Booted) -> None:
    """The provisioning verdict, then what was seen (all of it when it failed)."""
    from vmimage.report.render import verdict_lines

    assert booted.verdict is not None
    for line in verdict_lines(booted.verdict.to_dict(), booted.record.name):
        print(line)


def list_vms(args: argparse.Namespace) -> int:
    """List the running VMs (the state of VMs whose qemu is gone is removed)."""
    from vmimage.app.vm import listing

    check_format(args.fmt, DATA_FORMATS)
    vms = listing()
    if args.fmt == "json":
        print(json.dumps([v.to_dict() for v in vms], indent=2))
        return 0
    if not vms:
        print("no VM running")
        return 0
    print(f"{'NAME':24} {'PORT':>5} {'ACCEL':5} {'FIRMWARE':8} {'STARTED':25} IMAGE")
    for v in vms:
        print(f"{v.name:24} {v.port:>5} {v.accel:5} {v.firmware:8} {v.started:25} {v.image}")
    return 0


def ssh(args: argparse.Namespace) -> int:
    """Open an SSH session to VM NAME (or run -- CMD there), with the system's ssh.

    Host keys are not checked nor remembered (StrictHostKeyChecking=no,
    UserKnownHostsFile=/dev/null): the VM is a throwaway on 127.0.0.1 with new host keys at
    every boot. Never use these options for a real host.
    """
    from vmimage.app.vm import ssh_argv

    cmd = list(args.command)
    if cmd[:1] == ["--"]:
        cmd = cmd[1:]
    argv = ssh_argv(args.name, args.user, cmd)
    sys.stdout.flush()
    os.execvp(argv[0], argv)


def stop(args: argparse.Namespace) -> int:
    """Stop VM NAME: kill its qemu and remove its overlay and state (nothing to save)."""
    from vmimage.app.vm import stop as run_stop

    record = run_stop(args.name)
    print(f"{record.name}: stopped; its overlay and state are removed")
    return 0
