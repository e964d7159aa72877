"""Generalization leftovers that waagent -deprovision does not remove (certification-research §4)."""

from __future__ import annotations

from vmimage.checks.context import CheckContext
from vmimage.findings import Evidence, Outcome, Severity, passed, violated
from vmimage.rules import rule
from vmimage.targets.base import UnreadableError


@rule(id="LINUX-MACHINE-ID-EMPTY", title="/etc/machine-id is empty", severity=Severity.WARNING,
       covers=("LNX-GENERALIZED",),
       remediation="Truncate /etc/machine-id (`: > /etc/machine-id`) and delete "
                   "/var/lib/dbus/machine-id; systemd writes a fresh one on first boot.",
       needs=("filesystem", "at-rest"))
def machine_id_empty(ctx: CheckContext) -> Outcome:
    """Every VM from an image with a machine-id shares it: DHCP client IDs and journald clash."""
    assert ctx.target is not None
    try:
        value = ctx.target.read_text("/etc/machine-id").strip()
    except UnreadableError:
        raise  # there but unreadable (a loop, a FIFO, damage): skip, never "absent"
    except OSError:
        return passed("/etc/machine-id is absent", Evidence(path="/etc/machine-id",
                                                            seen="absent"))
    ev = Evidence(path="/etc/machine-id", line=1, seen=value or "(empty)", required="empty")
    if value in ("", "uninitialized"):
        return passed("/etc/machine-id is empty", ev)
    return violated("/etc/machine-id holds an ID every VM will share", ev)


@rule(id="LINUX-CLOUD-INIT-CLEAN", title="No cloud-init instance state",
       severity=Severity.WARNING, covers=("LNX-GENERALIZED",),
       remediation="Run `cloud-init clean --logs` before capturing the image.",
       needs=("filesystem", "at-rest"))
def cloud_init_clean(ctx: CheckContext) -> Outcome:
    """Left-over instance state makes cloud-init skip provisioning on the customer's VM."""
    assert ctx.target is not None
    instances = ctx.target.glob("/var/lib/cloud/instances/*")
    if instances:
        return violated(f"{len(instances)} cloud-init instance(s) recorded",
                        Evidence(path=instances[0], seen=", ".join(instances), required="none"))
    return passed("no cloud-init instance state", Evidence(path="/var/lib/cloud/instances"))
