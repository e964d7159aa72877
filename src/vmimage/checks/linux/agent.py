"""The Azure Linux agent: installed, recent, enabled, auto-updating, configured as the guide asks."""

from __future__ import annotations

import posixpath

from vmimage.checks.context import CheckContext
from vmimage.checks.linux.common import is_file
from vmimage.facts.packages import InstalledPackage
from vmimage.facts.programs import find_tools
from vmimage.facts.services import AGENT_UNITS, service_state
from vmimage.facts.versions import upstream_version, version_at_least
from vmimage.findings import Evidence, Outcome, Severity, passed, skipped, violated
from vmimage.rules import rule

#: Debian calls the agent waagent; other distributions walinuxagent or WALinuxAgent (rulings).
AGENT_PACKAGES = ("waagent", "walinuxagent", "WALinuxAgent")

def agent_package(ctx: CheckContext) -> InstalledPackage | None:
    """The installed agent package, whatever the distribution names it."""
    return ctx.system.packages.first(*AGENT_PACKAGES)


@rule(id="LINUX-AGENT-VERSION", title="A recent Azure Linux agent is installed",
       severity=Severity.FAIL,
       covers=("LNX-AGENT", "MS-39", "LISA-verify_waagent_version"),
       remediation="Install the distribution's agent package (Debian: waagent, Ubuntu: "
                   "walinuxagent, RHEL/SUSE: WALinuxAgent) at or above the profile's minimum, or "
                   "enable AutoUpdate.Enabled=y in /etc/waagent.conf.",
       needs=("filesystem",))
def agent_version(ctx: CheckContext) -> Outcome:
    """Microsoft's tool wants 2.2.41+, LISA 2.2.53.1+ unless the agent updates itself."""
    minimum = ctx.profile.text("agent_min_version")
    pkg = agent_package(ctx)
    if pkg is None:
        if is_file(ctx, "/usr/sbin/waagent"):
            return skipped("/usr/sbin/waagent exists but no package owns it: its version cannot "
                           "be read offline", Evidence(path="/usr/sbin/waagent"))
        return violated("the Azure Linux agent is not installed",
                        Evidence(path=ctx.system.packages.path, seen="no waagent/walinuxagent/"
                                 "WALinuxAgent package", required=f">= {minimum}"))
    ev = Evidence(path=ctx.system.packages.path, seen=f"{pkg.name} {pkg.version}",
                  required=f">= {minimum}")
    if version_at_least(pkg.manager, pkg.version, minimum):
        return passed(f"{pkg.name} {upstream_version(pkg.version)} >= {minimum}", ev)
    if ctx.system.waagent.flag("AutoUpdate.Enabled", True):
        return passed(f"{pkg.name} {upstream_version(pkg.version)} is below {minimum} but "
                      "AutoUpdate is enabled, so the agent updates itself at boot", ev)
    return violated(f"{pkg.name} {upstream_version(pkg.version)} is older than {minimum} and "
                    "AutoUpdate is disabled", ev)


@rule(id="LINUX-AGENT-ENABLED", title="The Azure Linux agent service is enabled at boot",
       severity=Severity.FAIL, covers=("LNX-AGENT", "MS-200.3.3.4"),
       remediation="systemctl enable walinuxagent (waagent on Debian); certification policy "
                   "200.3.3.4 requires the agent installed and enabled.",
       needs=("filesystem",))
def agent_enabled(ctx: CheckContext) -> Outcome:
    """An installed but disabled agent never provisions the VM."""
    assert ctx.target is not None
    state = service_state(ctx.target, *AGENT_UNITS)
    ev = Evidence(path=state.evidence, seen=f"{state.unit}: installed={state.installed} "
                  f"enabled={state.enabled} masked={state.masked}", required="enabled")
    if not state.installed:
        return violated("no walinuxagent/waagent service unit is installed", ev)
    if state.masked or not state.enabled:
        return violated(f"{state.unit} is {'masked' if state.masked else 'not enabled'}", ev)
    return passed(f"{state.unit} is enabled", ev)


@rule(id="LINUX-AGENT-AUTOUPDATE", title="The agent updates itself (AutoUpdate.Enabled)",
       severity=Severity.WARNING, covers=("LNX-AGENT", "MS-51"),
       remediation="Set AutoUpdate.Enabled=y in /etc/waagent.conf (or leave it unset: the "
                   "agent's default is y).",
       needs=("filesystem",))
def agent_autoupdate(ctx: CheckContext) -> Outcome:
    """Microsoft's test 51 reports whether the agent keeps itself current."""
    conf = ctx.system.waagent
    if conf.path is None:
        return skipped("/etc/waagent.conf is absent")
    setting = conf.get("AutoUpdate.Enabled")
    ev = Evidence(path=conf.path, line=setting.line if setting else None,
                  seen=f"AutoUpdate.Enabled={setting.value}" if setting else "not set (default y)",
                  required="y")
    if conf.flag("AutoUpdate.Enabled", True):
        return passed("AutoUpdate is enabled", ev)
    return violated("AutoUpdate.Enabled=n: the agent stays at its packaged version", ev)


def _conf_flag(ctx: CheckContext, key: str) -> Outcome:
    conf = ctx.system.waagent
    if conf.path is None:
        return violated("/etc/waagent.conf is absent", Evidence(path="/etc/waagent.conf",
                                                                  seen="missing",
                                                                  required=f"{key}=y"))
    setting = conf.get(key)
    ev = Evidence(path=conf.path, line=setting.line if setting else None,
                  seen=f"{key}={setting.value}" if setting else "not set (agent default n)",
                  required=f"{key}=y")
    if conf.flag(key, False):
        return passed(f"{key}=y", ev)
    return violated(f"{key} is not y", ev)


@rule(id="LINUX-AGENT-REGENERATE-HOSTKEYS", title="waagent.conf regenerates SSH host keys",
       severity=Severity.FAIL, covers=("LNX-SSH-HOSTKEYS",),
       remediation="Set Provisioning.RegenerateSshHostKeyPair=y in /etc/waagent.conf.",
       needs=("filesystem",))
def agent_regenerate_hostkeys(ctx: CheckContext) -> Outcome:
    """Every VM from the image must get its own host keys, or all share one identity."""
    return _conf_flag(ctx, "Provisioning.RegenerateSshHostKeyPair")


@rule(id="LINUX-AGENT-DELETE-ROOT-PASSWORD", title="waagent.conf deletes the root password",
       severity=Severity.FAIL, covers=("LNX-ROOT-PASSWORD",),
       remediation="Set Provisioning.DeleteRootPassword=y in /etc/waagent.conf.",
       needs=("filesystem",))
def agent_delete_root_password(ctx: CheckContext) -> Outcome:
    """The guide asks the agent to remove root's password at provisioning."""
    return _conf_flag(ctx, "Provisioning.DeleteRootPassword")


#: What waagent 2.x runs while it provisions (``pa/provision/default.py``, the default and
#: Debian osutil): mount, umount and eject for the DVD, openssl for the transport certificate,
#: useradd for the user, ssh-keygen for the host keys. A missing one is not a logged error:
#: ``eject`` raises FileNotFoundError, the daemon dies (waagent 2.7.3 under Python 3.10+ even
#: fails to format the traceback) and the VM never reports Ready (seen by vm boot --provision on
#: a minbase Debian 12 with only waagent's dependencies installed).
PROVISIONING_TOOLS = ("mount", "umount", "eject", "openssl", "useradd", "ssh-keygen")
_PATH = ("/usr/sbin", "/usr/bin", "/sbin", "/bin")


@rule(id="LINUX-AGENT-PROVISIONING-TOOLS",
      title="The programs the agent runs while provisioning are installed",
      severity=Severity.FAIL, covers=("LNX-AGENT", "REG-DEPLOY"),
      remediation="Install them (Debian/Ubuntu: apt-get install eject mount openssl passwd "
                  "openssh-client; RHEL: util-linux, openssl, shadow-utils, openssh): the agent's "
                  "package does not depend on all of them.",
      needs=("filesystem",))
def agent_provisioning_tools(ctx: CheckContext) -> Outcome:
    """A minimal image with the agent's package alone can lack ``eject``; the agent then
    crashes after reading the DVD and the deployment times out (OSProvisioningTimedOut)."""
    assert ctx.target is not None
    prov = ctx.system.provisioner
    if not prov.agent.installed or prov.by == "cloud-init":
        return skipped("the Azure agent does not provision this image (it is "
                       f"{'not installed' if not prov.agent.installed else 'cloud-init'}): "
                       "cloud-init's own needs are not checked", Evidence(path=prov.agent.evidence))
    found, missing = find_tools(ctx.target, *(tuple(f"{d}/{tool}" for d in _PATH)
                                              for tool in PROVISIONING_TOOLS))
    if missing:
        names = [posixpath.basename(m) for m in missing]
        return violated(f"{', '.join(names)} not found in {', '.join(_PATH)}: the agent "
                        "cannot finish provisioning",
                        Evidence(path=_PATH[0], seen="missing: " + ", ".join(names),
                                 required=", ".join(PROVISIONING_TOOLS)))
    return passed(f"{', '.join(PROVISIONING_TOOLS)} are installed",
                  Evidence(path=next(f for f in found if f.endswith("/eject")), seen="present"))
