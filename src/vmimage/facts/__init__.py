"""Facts: what a system is, read once per run and shared by every check.

Each fact is read lazily (a check that is skipped costs nothing) and cached (ten checks that
need the package list read the dpkg status file once). Facts read only through the Target
protocol, so they are the same offline, on a root directory, and live; on a live target the
facts that the running system can tell itself (:mod:`vmimage.facts.live`) come from it, and
win over the files (that is what a live check is for: what changed at first boot).
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING

from vmimage.targets.fstab import FstabEntry, parse_fstab

if TYPE_CHECKING:
    from vmimage.facts.accounts import SudoersLine, User
    from vmimage.facts.bootcfg import KernelCmdline
    from vmimage.facts.live import Address
    from vmimage.facts.osrelease import OsRelease
    from vmimage.facts.packages import PackageDb
    from vmimage.facts.provisioner import Provisioner
    from vmimage.facts.sshd import SshdConfig
    from vmimage.facts.swap import SwapSource
    from vmimage.facts.waagent import WaagentConf
    from vmimage.targets.base import Target


class Facts:
    """Lazily read, cached knowledge about one target."""

    def __init__(self, target: Target) -> None:
        self.target = target
        if "live" in target.capabilities:
            from vmimage.facts.live import warm

            warm(target)

    def read_text_or_none(self, path: str) -> str | None:
        """A file's text, or None when it is absent (or a directory)."""
        try:
            return self.target.read_text(path)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return None

    @cached_property
    def os_release(self) -> OsRelease | None:
        """/etc/os-release."""
        from vmimage.facts.osrelease import read_os_release

        return read_os_release(self.target)

    @cached_property
    def packages(self) -> PackageDb:
        """Installed packages from dpkg or the RPM database."""
        from vmimage.facts import live
        from vmimage.facts.packages import read_packages

        return live.packages(self.target) or read_packages(self.target)

    @cached_property
    def sshd(self) -> SshdConfig:
        """sshd's effective configuration (Include-aware, first value wins)."""
        from vmimage.facts import live
        from vmimage.facts.sshd import read_sshd_config, with_effective

        config = read_sshd_config(self.target)
        effective = live.sshd_effective(self.target)
        return config if effective is None else with_effective(config, effective)

    @cached_property
    def kernel_cmdlines(self) -> list[KernelCmdline]:
        """Kernel command lines from the boot loader configuration, the default entry first;
        live, the one the running kernel was booted with (``/proc/cmdline``)."""
        from vmimage.facts import live
        from vmimage.facts.bootcfg import read_kernel_cmdlines

        running = live.cmdline(self.target)
        return [running] if running is not None else read_kernel_cmdlines(self.target)

    @cached_property
    def users(self) -> list[User]:
        """/etc/passwd joined with /etc/shadow."""
        from vmimage.facts.accounts import read_users

        return read_users(self.target)

    @cached_property
    def sudoers(self) -> list[SudoersLine]:
        """Every effective sudoers line, includes followed."""
        from vmimage.facts.accounts import read_sudoers

        return read_sudoers(self.target)

    @cached_property
    def waagent(self) -> WaagentConf:
        """/etc/waagent.conf."""
        from vmimage.facts.waagent import read_waagent_conf

        return read_waagent_conf(self.target)

    @cached_property
    def swap_sources(self) -> list[SwapSource]:
        """Every place that would create swap at boot, other than swap partitions; live, the
        swap in use (``/proc/swaps``), whatever made it."""
        from vmimage.facts import live
        from vmimage.facts.swap import swap_sources

        active = live.swaps(self.target)
        return active if active is not None else swap_sources(self.target)

    @cached_property
    def machine(self) -> str | None:
        """``uname -m`` of a live target; None offline (the ELF headers tell it there)."""
        from vmimage.facts import live

        return live.machine(self.target)

    @cached_property
    def provisioner(self) -> Provisioner:
        """Who would provision the image at first boot, and what would stop it."""
        from vmimage.facts.provisioner import read_provisioner

        return read_provisioner(self.target, self.waagent)

    @cached_property
    def addresses(self) -> list[Address] | None:
        """The IPv4 addresses a live target's interfaces hold (``ip -j addr``); None offline."""
        from vmimage.facts import live

        return live.addresses(self.target)

    @cached_property
    def fstab(self) -> list[FstabEntry]:
        """/etc/fstab entries."""
        text = self.read_text_or_none("/etc/fstab")
        return parse_fstab(text) if text is not None else []
