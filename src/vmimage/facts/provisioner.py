"""Who would provision this image at its first boot on Azure, and what would stop it.

Read from the image the way the agent itself decides (WALinuxAgent 2.7.3,
``pa/provision/factory.py`` and ``default.py``): ``Provisioning.Agent`` in ``waagent.conf``
(``auto`` by default) picks cloud-init when it is ``cloud-init``, or ``auto`` with
``cloud-init-local.service`` enabled; ``disabled`` makes the agent report Ready *without*
creating the user; a leftover ``/var/lib/waagent/provisioned`` (an image not deprovisioned)
makes it skip provisioning. The older ``Provisioning.Enabled`` switch is not read by 2.7.3
(``conf.get_provision_enabled`` is ``Provisioning.Agent in (auto, waagent)``): an image that
relies on ``Provisioning.Enabled=n`` is provisioned all the same, and the verdict says so.

``vm boot --provision`` uses this to explain what it saw (a VM that never reported Ready, a
user that cannot log in), and to know which unit conditions keep the agent off a QEMU VM
(Debian's ``ConditionVirtualization=microsoft``), which it overrides on its private copy.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from vmimage.facts.services import AGENT_UNITS, ServiceState, service_state
from vmimage.facts.waagent import WaagentConf, read_waagent_conf
from vmimage.targets.base import Target

PROVISIONED_FILE = "/var/lib/waagent/provisioned"
CLOUD_INIT_UNIT = "cloud-init-local.service"
_CONDITION = re.compile(r"^\s*(Condition[A-Za-z]+)\s*=\s*(.*?)\s*$")


@dataclass(frozen=True)
class Provisioner:
    """The image's provisioning set-up, as its agent would read it at first boot."""

    agent: ServiceState
    cloud_init: ServiceState
    agent_setting: str  # Provisioning.Agent as the agent reads it ("auto" when unset)
    setting_source: str  # "waagent.conf line N", or "default"
    provisioned_file: bool
    conditions: tuple[tuple[str, str], ...]  # the agent unit's Condition*= lines

    @property
    def by(self) -> str:
        """``waagent``, ``cloud-init``, or ``nobody`` (nothing enabled would run)."""
        uses_cloud_init = self.agent_setting == "cloud-init" or (
            self.agent_setting == "auto" and self.cloud_init.enabled)
        if self.agent.enabled:
            return "cloud-init" if uses_cloud_init else "waagent"
        return "cloud-init" if self.cloud_init.enabled else "nobody"

    @property
    def virtualization_condition(self) -> str | None:
        """The agent unit's ``ConditionVirtualization=`` value (``microsoft`` on Debian)."""
        found = [v for k, v in self.conditions if k == "ConditionVirtualization" and v]
        return found[-1] if found else None

    def blockers(self) -> list[str]:
        """Why, read from the image, provisioning would not create the user (empty: nothing
        known stops it). Each is one sentence naming the file."""
        reasons = []
        if self.by == "nobody":
            reasons.append(f"neither the Azure agent ({self.agent.evidence}) nor cloud-init "
                           f"({self.cloud_init.evidence}) starts at boot")
        if self.by == "waagent" and self.agent_setting == "disabled":
            reasons.append(f"Provisioning.Agent=disabled ({self.setting_source}): the agent "
                           "reports Ready without creating the user")
        if self.by == "waagent" and self.provisioned_file:
            reasons.append(f"{PROVISIONED_FILE} is in the image (not deprovisioned): the agent "
                           "skips provisioning")
        return reasons


def _conditions(target: Target, path: str | None) -> tuple[tuple[str, str], ...]:
    """``Condition*=`` lines of the unit file's ``[Unit]`` section."""
    if path is None:
        return ()
    try:
        text = target.read_text(path)
    except OSError:
        return ()
    found, section = [], ""
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("["):
            section = stripped
            continue
        m = _CONDITION.match(line)
        if m and section == "[Unit]":
            found.append((m.group(1), m.group(2)))
    return tuple(found)


def read_provisioner(target: Target, conf: WaagentConf | None = None) -> Provisioner:
    """The image's provisioning set-up (see the module's docstring); ``conf`` when the
    caller has already read ``/etc/waagent.conf``."""
    conf = conf if conf is not None else read_waagent_conf(target)
    agent = service_state(target, *AGENT_UNITS)
    cloud_init = service_state(target, CLOUD_INIT_UNIT)
    setting = conf.get("Provisioning.Agent")
    if setting is not None:
        value, source = setting.value.lower(), f"{conf.path} line {setting.line}"
    else:
        value, source = "auto", "default"
    return Provisioner(agent, cloud_init, value, source, target.exists(PROVISIONED_FILE),
                       _conditions(target, agent.path))
