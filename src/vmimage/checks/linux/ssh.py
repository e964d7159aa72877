"""SSH: the server included and enabled, its keep-alive, no host keys baked into the image."""

from __future__ import annotations

import re

from vmimage.checks.context import CheckContext
from vmimage.checks.linux.common import is_file
from vmimage.facts.services import SSH_UNITS, service_state
from vmimage.findings import Evidence, Outcome, Severity, passed, skipped, violated
from vmimage.rules import rule


def _sshd_installed(ctx: CheckContext) -> bool:
    return is_file(ctx, "/usr/sbin/sshd")


@rule(id="LINUX-SSH-ENABLED", title="An SSH server is installed and enabled",
       severity=Severity.WARNING, covers=("LNX-SSH",),
       remediation="Install openssh-server and enable it (systemctl enable ssh); where SSH is "
                   "blocked on purpose, declare the image locked down in Partner Center.",
       needs=("filesystem",))
def ssh_enabled(ctx: CheckContext) -> Outcome:
    """The guide 'strongly recommends' SSH; the certification tool logs in over it."""
    assert ctx.target is not None
    if not _sshd_installed(ctx):
        return violated("no SSH server: /usr/sbin/sshd is absent",
                        Evidence(path="/usr/sbin/sshd", seen="absent", required="installed"))
    state = service_state(ctx.target, *SSH_UNITS)
    ev = Evidence(path=state.evidence, seen=f"{state.unit}: enabled={state.enabled} "
                  f"masked={state.masked}", required="enabled")
    if state.enabled and not state.masked:
        return passed(f"sshd installed, {state.unit} enabled", ev)
    return violated(f"sshd is installed but {state.unit} is not enabled", ev)


@rule(id="LINUX-SSH-CLIENT-ALIVE", title="sshd sets ClientAliveInterval 180 (30 to 235)",
       severity=Severity.FAIL,
       covers=("LNX-SSH", "MS-46", "LISA-verify_client_active_interval", "MS-200.3.3.1"),
       remediation="Put `ClientAliveInterval 180` in /etc/ssh/sshd_config itself (Microsoft's "
                   "tool reads only the main file) and make sure no earlier drop-in overrides it.",
       needs=("filesystem",))
def ssh_client_alive(ctx: CheckContext) -> Outcome:
    """sshd takes the first value it reads, Include files included (rulings)."""
    if not _sshd_installed(ctx):
        return skipped("no SSH server installed: where SSH is blocked, the option is not needed")
    config = ctx.system.sshd
    low, high = ctx.profile.number("client_alive_min"), ctx.profile.number("client_alive_max")
    best = ctx.profile.number("client_alive_recommended")
    setting = config.get("ClientAliveInterval")
    required = f"ClientAliveInterval {best} ({low} to {high})"
    if setting is None:
        return violated("ClientAliveInterval is not set (sshd's default 0 sends no keep-alive)",
                        Evidence(path="/etc/ssh/sshd_config", seen="not set", required=required))
    ev = Evidence(path=setting.path, line=setting.line, seen=f"ClientAliveInterval "
                  f"{setting.value}", required=required)
    try:
        value = int(setting.value)
    except ValueError:
        return violated(f"ClientAliveInterval {setting.value!r} is not a number", ev)
    if not low <= value <= high:
        return violated(f"ClientAliveInterval {value} is outside {low} to {high}", ev)
    if ctx.profile.flag("ssh_dropin_only_is_warning"):
        main = config.in_main_file("ClientAliveInterval")
        if setting.path != "/etc/ssh/sshd_config" and main is None:
            return violated(f"ClientAliveInterval {value} is set only in {setting.path}; "
                            "Microsoft's tool greps /etc/ssh/sshd_config and will not see it",
                            ev, severity=Severity.WARNING)
        if value != best:
            return violated(f"ClientAliveInterval {value} is accepted, but the tool warns on "
                            f"anything but {best}", ev, severity=Severity.WARNING)
    return passed(f"ClientAliveInterval {value}", ev)


@rule(id="LINUX-SSH-HOSTKEYS-ABSENT", title="No SSH host keys are baked into the image",
       severity=Severity.FAIL, covers=("LNX-SSH-HOSTKEYS", "LNX-GENERALIZED"),
       remediation="Delete /etc/ssh/ssh_host_*key* as the last step (waagent -deprovision does "
                   "when Provisioning.RegenerateSshHostKeyPair=y).",
       needs=("filesystem", "at-rest"))
def ssh_hostkeys_absent(ctx: CheckContext) -> Outcome:
    """Shared host keys let one customer's VM impersonate another's."""
    assert ctx.target is not None
    keys = ctx.target.glob("/etc/ssh/ssh_host_*key*")
    if keys:
        return violated(f"{len(keys)} host key file(s) present",
                        Evidence(path=keys[0], seen=", ".join(keys), required="none"))
    return passed("no SSH host keys in /etc/ssh", Evidence(path="/etc/ssh", seen="none"))


#: Units that make host keys before sshd: Fedora/RHEL's sshd-keygen, cloud-init (its ssh
#: module runs in cloud-init.service, ordered before sshd).
_KEYGEN_UNITS = ("sshd-keygen.target", "sshd-keygen@.service", "sshd-keygen.service",
                 "cloud-init.service")


def _keygen_units(ctx: CheckContext) -> list[str]:
    """Enabled units (in /etc/systemd/system/*.wants) whose unit file runs ssh-keygen."""
    assert ctx.target is not None
    found = []
    for wants in ctx.target.glob("/etc/systemd/system/*.wants"):
        for name in ctx.target.iterdir(wants):
            try:
                text = ctx.target.read_text(f"{wants}/{name}")
            except OSError:
                continue
            if re.search(r"(?m)^\s*ExecStart(Pre)?\s*=.*\bssh-keygen\b", text):
                found.append(f"{wants}/{name}")
    return found


@rule(id="LINUX-SSH-HOSTKEYS-AT-BOOT",
      title="Host keys are made at first boot before sshd starts",
      severity=Severity.FAIL, covers=("LNX-SSH-HOSTKEYS", "REG-DEPLOY"),
      remediation="Have the keys made before sshd starts: cloud-init, the distribution's "
                  "sshd-keygen units, or a oneshot unit (Before=ssh.service, "
                  "ConditionPathExistsGlob=!/etc/ssh/ssh_host_*_key, ExecStart=ssh-keygen -A) "
                  "enabled. The agent's regeneration alone comes too late on Debian.",
      needs=("filesystem",))
def ssh_hostkeys_at_boot(ctx: CheckContext) -> Outcome:
    """A generalized image has no host keys; Debian's ssh.service then fails at boot, and
    waagent 2.7.3 regenerates the keys only after multi-user.target and restarts sshd with
    ``systemctl try-reload-or-restart``, which does not start a failed unit: the VM reports
    Ready and nobody can log in (seen by ``vm boot --provision``)."""
    assert ctx.target is not None
    keys = ctx.target.glob("/etc/ssh/ssh_host_*_key")
    if keys:
        return passed(f"{len(keys)} host key(s) present: sshd starts with them",
                      Evidence(path=keys[0], seen="present"))
    sshd = service_state(ctx.target, *SSH_UNITS)
    if not sshd.installed:
        return skipped("no SSH server unit: LINUX-SSH-ENABLED says why",
                       Evidence(path=sshd.evidence))
    unit_text = ""
    if sshd.path is not None:
        try:
            unit_text = ctx.target.read_text(sshd.path)
        except OSError:
            unit_text = ""
    if re.search(r"ssh-?keygen", unit_text):
        return passed(f"{sshd.unit} makes its host keys itself",
                      Evidence(path=sshd.path, seen="ssh-keygen / sshd-keygen"))
    for unit in _KEYGEN_UNITS:
        state = service_state(ctx.target, unit)
        if state.enabled:
            return passed(f"{unit} makes the host keys at boot",
                          Evidence(path=state.evidence, seen="enabled"))
    made_by = _keygen_units(ctx)
    if made_by:
        return passed("an enabled unit runs ssh-keygen at boot",
                      Evidence(path=made_by[0], seen="ssh-keygen"))
    return violated("no SSH host keys in the image and nothing makes them before sshd starts: "
                    f"{sshd.unit} fails at first boot, and the agent's later regeneration does "
                    "not start it again",
                    Evidence(path="/etc/ssh", seen="no ssh_host_*_key; no ssh-keygen unit, "
                             "sshd-keygen or cloud-init enabled",
                             required="keys made before sshd"))
