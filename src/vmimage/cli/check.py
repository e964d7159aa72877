"""``vmimage check TARGET``: certify an image or a root directory offline, a VHD in blob storage
by its URL (read by range requests, never downloaded), or a running VM over SSH (``ssh://``)
with the same rules."""

from __future__ import annotations

import argparse
from pathlib import Path

from vmimage.cli.common import (
    add_report_options,
    run_report,
)
from vmimage.cli.parsing import Parser, command
from vmimage.cli.vm import add_machine_options
from vmimage.profiles import ROLES


def register(sub: argparse._SubParsersAction[Parser]) -> None:
    """``vmimage check``."""
    p = command(sub, "check", run, run.__doc__)
    p.add_argument("target", metavar="TARGET",
                   help="disk image (raw, VHD, VHDX, qcow2, VMDK), a directory holding a "
                        "root filesystem, a VHD page blob by URL ('https://ACCOUNT.blob.core."
                        "windows.net/CONTAINER/BLOB?SAS', or @FILE holding it), or "
                        "ssh://USER@HOST[:PORT] (a running VM)")
    p.add_argument("--role", choices=("auto", *ROLES), default="auto",
                   help="what the disk is for (default auto: the OS role of the Linux or "
                        "Windows system found; a data disk needs --role data)")
    p.add_argument("--check", dest="only", metavar="ID", action="append",
                   help="run only this check ID (repeatable)")
    add_report_options(p)
    p.add_argument("--security-data", metavar="auto|DIR|off",
                   help="what LINUX-SECURITY-PATCHES compares the installed packages with: "
                        "auto fetches the distribution's security data from the archives the "
                        "image's own package sources name (through a cache; the proxy of "
                        "HTTPS_PROXY); DIR reads what `vmimage security-data fetch` wrote; "
                        "off does not compare (default: $VMIMAGE_SECURITY_DATA, else auto)")
    blob = p.add_argument_group("blob URL (https:// targets)")
    blob.add_argument("--allow-endpoint", dest="allow_endpoints", metavar="HOST[:PORT]",
                      action="append", default=[],
                      help="also fetch from this endpoint (repeatable; with "
                           "VMIMAGE_ALLOW_ENDPOINTS, comma-separated): Azure's blob endpoints "
                           "are allowed by default; an endpoint allowed here may be plain "
                           "http:// and a private or loopback address (an emulator such as "
                           "Azurite, an Azure private endpoint)")
    live = p.add_argument_group("live VM (ssh:// targets)")
    auth = live.add_mutually_exclusive_group()
    auth.add_argument("--key", metavar="FILE", type=Path, help="private key to log in with")
    auth.add_argument("--password-env", metavar="VAR",
                      help="log in with the password held in environment variable VAR (never "
                           "given as an argument, never printed)")
    live.add_argument("--sudo", action="store_true",
                      help="read files and run commands as root through sudo -n (NOPASSWD)")
    live.add_argument("--known-hosts", metavar="FILE", type=Path,
                      help="known-hosts file to verify the VM's host key (default "
                           "~/.ssh/known_hosts)")
    live.add_argument("--accept-new-host-key", action="store_true",
                      help="trust an unknown host key on first use and record it in the "
                           "known-hosts file (a changed key is always refused)")
    live.add_argument("--timeout", type=float, default=15.0, metavar="SECONDS",
                      help="connection and per-request timeout (default 15)")
    boot = p.add_argument_group("first boot (--boot)")
    boot.add_argument("--boot", action="store_true",
                      help="also deploy the image under qemu as Azure would (vm boot "
                           "--provision: the image's agent creates the user), run the same "
                           "checks on the running VM over SSH, and report both side by side, "
                           "marking what changed after the first boot; a VM that does not "
                           "provision fails the run")
    boot.add_argument("--no-provision", dest="provision", action="store_false",
                      help="with --boot: write the user and key into a private copy instead "
                           "of provisioning (an image without an agent, or no dnsmasq here)")
    add_machine_options(boot, "--boot-timeout")


def run(args: argparse.Namespace) -> int:
    """Check TARGET against every rule of its role.

    Exit 0 if nothing failed, 1 if a rule failed (or warned, with --fail-on warning), 2 if
    TARGET cannot be used or holds no operating system for an OS role.
    """
    from vmimage.app.check import SshOptions, check_target

    if args.boot:
        return _run_booted(args)
    ssh = SshOptions(key=args.key, password_env=args.password_env, sudo=args.sudo,
                     known_hosts=args.known_hosts,
                     accept_new_host_key=args.accept_new_host_key, timeout=args.timeout)
    return run_report(args, lambda profile: check_target(
        args.target, profile, args.role, args.only, ssh, allow_endpoints=args.allow_endpoints,
        security_data=args.security_data))


def _run_booted(args: argparse.Namespace) -> int:
    """``check IMAGE --boot``: the offline and first-boot reports in one."""
    from vmimage.app.bootcheck import BootCheckOptions, check_booted
    from vmimage.errors import InputError

    if args.target.startswith("ssh://") or args.key or args.password_env or args.sudo:
        raise InputError("--boot", "boots a disk image and logs in itself: give an image, "
                                   "without ssh:// or its login options")
    if args.target[:8].lower().startswith(("https://", "http://")) or args.allow_endpoints:
        raise InputError("--boot", "boots a local disk image: check a blob by URL without "
                                   "--boot")
    from vmimage.app.vm import BootFailed
    from vmimage.cli.vm import boot_failed

    options = BootCheckOptions(memory=args.memory, cpus=args.cpus, timeout=args.boot_timeout,
                               console_log=args.console_log, provision=args.provision)
    try:
        return run_report(args, lambda profile: check_booted(args.target, profile, args.role,
                                                             args.only, options))
    except BootFailed as exc:
        return boot_failed(exc)
