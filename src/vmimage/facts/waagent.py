"""``/etc/waagent.conf``, parsed exactly as the agent's own ``conf.py`` parses it.

Auto-update, swap on the resource disk, host-key regeneration and root-password deletion are
certification rules, and the agent reads its file in a particular way (WALinuxAgent
``azurelinuxagent/common/conf.py``): a line counts when it does not *start* with ``#`` and
holds ``=``; the value stops at the first ``#`` and loses surrounding quotes and spaces; a later
line overrides an earlier one; ``None`` means unset. A switch is on for ``y`` and off for ``n``
(either case) and anything else, ``yes`` and ``true`` included, leaves the code default. So
``ResourceDisk.EnableSwap=yes`` creates no swap, and a commented ``# AutoUpdate.Enabled=n``
leaves auto-update on.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from vmimage.targets.base import Target

PATH = "/etc/waagent.conf"

#: The agent's code defaults for switches (conf.py ``__SWITCH_OPTIONS__``, WALinuxAgent 2.15):
#: what applies when the key is absent, commented out, or not ``y``/``n``.
DEFAULTS: dict[str, bool] = {
    "AutoUpdate.Enabled": True,
    "ResourceDisk.Format": False,
    "ResourceDisk.EnableSwap": False,
    "ResourceDisk.EnableSwapEncryption": False,
    "Provisioning.RegenerateSshHostKeyPair": False,
    "Provisioning.DeleteRootPassword": False,
    "Provisioning.DecodeCustomData": False,
    "Provisioning.ExecuteCustomData": False,
    "Provisioning.MonitorHostName": False,
    "Provisioning.AllowResetSysUser": False,
    "Extensions.Enabled": True,
    "OS.EnableFirewall": False,
    "OS.EnableFIPS": False,
    "OS.EnableRDMA": False,
    "OS.AllowHTTP": False,
    "Logs.Verbose": False,
    "Logs.Console": True,
    "Logs.Collect": True,
    "EnableOverProvisioning": True,
    "DetectScvmmEnv": False,
}

#: Integer and string defaults the checks refer to (``OS.SshClientAliveInterval`` is what the
#: agent writes into sshd_config when it provisions).
VALUE_DEFAULTS: dict[str, str] = {
    "ResourceDisk.SwapSizeMB": "0",
    "OS.SshClientAliveInterval": "180",
    "ResourceDisk.MountPoint": "/mnt/resource",
    "Provisioning.Agent": "auto",
    "OS.SshDir": "/etc/ssh",
}


@dataclass(frozen=True, slots=True)
class WaagentSetting:
    """The line that sets a key last, and the value the agent takes from it."""

    key: str
    value: str
    line: int


@dataclass(frozen=True)
class WaagentConf:
    """The agent's configuration; ``path`` is None when the file does not exist."""

    path: str | None
    settings: dict[str, WaagentSetting] = field(default_factory=dict)

    def get(self, key: str) -> WaagentSetting | None:
        """The setting that wins (the last one), or None when the key is never set."""
        return self.settings.get(key)

    def flag(self, key: str, default: bool | None = None) -> bool:
        """The switch as the agent decides it; ``default`` None means the agent's own default."""
        if default is None:
            default = DEFAULTS.get(key, False)
        setting = self.settings.get(key)
        if setting is None:
            return default
        lowered = setting.value.lower()
        if lowered == "y":
            return True
        if lowered == "n":
            return False
        return default


def parse_waagent_conf(text: str, path: str | None = PATH) -> WaagentConf:
    """Parse the text as ``ConfigurationProvider.load`` does."""
    settings: dict[str, WaagentSetting] = {}
    for number, line in enumerate(text.split("\n"), start=1):
        if line.startswith("#") or "=" not in line:
            continue
        key, _, rest = line.partition("=")
        key = key.strip()
        value = rest.split("#")[0].strip('" ').strip()
        if value == "None":
            settings.pop(key, None)
            continue
        settings[key] = WaagentSetting(key, value, number)
    return WaagentConf(path, settings)


def read_waagent_conf(target: Target) -> WaagentConf:
    """``/etc/waagent.conf``, or an empty configuration (every default) when absent."""
    try:
        text = target.read_text(PATH)
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return WaagentConf(None)
    return parse_waagent_conf(text, PATH)
