"""``ovf-env.xml``: the provisioning document Azure puts on a new VM's DVD, for a local VM.

Azure tells a Linux VM its host name, its user and how that user logs in through this one
document (the agents then read the rest from WireServer). The structure follows what both
readers of Debian 12 require (the provisioning-protocol notes, section 1):

- waagent 2.7.3 (``azurelinuxagent.common.protocol.ovfenv.OvfEnv``) finds elements at any
  depth by namespace, and refuses the document without Environment, ProvisioningSection,
  Version, LinuxProvisioningConfigurationSet, HostName, UserName, PlatformSettingsSection,
  PlatformSettings or ProvisionGuestAgent;
- cloud-init (``cloudinit.sources.helpers.azure.OvfEnvXml``) uses direct-child paths, so the
  nesting must be exactly Azure's, and it base64-decodes CustomData.

``Environment`` is in the DMTF OVF environment namespace, everything else in the Windows Azure
namespace with the prefix ``wa``, as Azure writes it. The document is built with
:mod:`xml.dom.minidom`, never by pasting strings, so any password or key text is escaped.

The input is checked as Azure checks it when a VM is created, so that what boots locally is
what Azure would accept; each refusal is an :class:`~vmimage.errors.InputError` naming the
field. The password is the plain text Azure sends (waagent hashes it itself): it never appears
in a message or a ``repr``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import struct
from dataclasses import dataclass, field
from xml.dom import minidom

from vmimage.errors import InputError

OVF_NS = "http://schemas.dmtf.org/ovf/environment/1"
WA_NS = "http://schemas.microsoft.com/windowsazure"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"

#: RFC 1123 host name label: letters, digits, inner hyphens. 63 characters, not the 64 Azure and
#: the kernel (HOST_NAME_MAX) allow: waagent publishes the name through DHCP (``send host-name``)
#: for Azure's DNS, where a 64-character label is invalid (RFC 1035 2.3.4).
_HOSTNAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
#: Azure's rule for a Linux user name: letters, digits, '_' and '-', not starting with a digit or
#: a hyphen. 32 characters at most, not Azure's 64: Debian 12's useradd (shadow 4.13), which
#: waagent runs, refuses a 33-character name (tried: exit status 3).
_USERNAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]{0,31}")
MAX_USERNAME = 32
#: Azure's disallowed ``adminUsername`` values (Compute REST API, OSProfile.adminUsername).
AZURE_RESERVED_USERNAMES = frozenset({
    "administrator", "admin", "user", "user1", "test", "user2", "test1", "user3", "admin1", "1",
    "123", "a", "actuser", "adm", "admin2", "aspnet", "backup", "console", "david", "guest", "john",
    "owner", "root", "server", "sql", "support", "support_388945a0", "sys", "test2", "test3",
    "user4", "user5",
})
#: Accounts a Debian 12 image already has (base-passwd's fixed list, and the system users of
#: systemd, dbus and openssh): waagent's useradd skips an existing user and then gives it the
#: password and sudo rights, which must never happen to a system account.
DEBIAN_SYSTEM_USERNAMES = frozenset({
    "root", "daemon", "bin", "sys", "sync", "games", "man", "lp", "mail", "news", "uucp", "proxy",
    "www-data", "backup", "list", "irc", "gnats", "nobody", "_apt", "systemd-network",
    "systemd-resolve", "systemd-timesync", "systemd-coredump", "messagebus", "sshd", "polkitd",
})
#: Azure's Linux ``adminPassword`` rules: 6-72 characters, 3 of 4 character classes, not one of
#: these values (Compute REST API, OSProfile.adminPassword).
AZURE_DISALLOWED_PASSWORDS = frozenset({
    "abc@123", "P@$$w0rd", "P@ssw0rd", "P@ssword123", "Pa$$word", "pass@word1", "Password!",
    "Password1", "Password22", "iloveyou!",
})
MIN_PASSWORD, MAX_PASSWORD = 6, 72
#: Azure decodes customData to at most 65535 bytes (Compute REST API, OSProfile.customData).
MAX_CUSTOM_DATA = 65535
#: What Azure's own documents carry: waagent reads none of it, cloud-init reads PreprovisionedVm.
KMS_SERVER = "kms.core.windows.net"


def _default_key_path(username: str) -> str:
    return f"/home/{username}/.ssh/authorized_keys"


@dataclass(frozen=True)
class Provisioning:
    """What Azure's provisioning DVD tells the VM, checked on construction.

    ``ssh_key_path`` defaults to ``/home/<username>/.ssh/authorized_keys`` (see
    :attr:`key_path`), the path Azure itself writes; any absolute path is accepted.
    ``disable_password_auth`` (Azure's default for Linux) needs a key; a VM with password
    logins needs a password, as on Azure.
    ``custom_data`` is the raw bytes (base64-encoded in the document); empty means none.

    Raises:
        InputError: a field Azure (or waagent, or Debian's useradd) would refuse; the source
            is the field name and the message never contains the password.
    """

    hostname: str
    username: str
    password: str | None = field(default=None, repr=False)
    ssh_public_key: str | None = None
    ssh_key_path: str | None = None
    disable_password_auth: bool = True
    custom_data: bytes | None = field(default=None, repr=False)
    provision_guest_agent: bool = True

    def __post_init__(self) -> None:
        _check_hostname(self.hostname)
        _check_username(self.username)
        if self.password is not None:
            _check_password(self.password)
        if self.ssh_public_key is not None:
            _key_parts(self.ssh_public_key)
        _check_path(self.key_path)
        if self.disable_password_auth and self.ssh_public_key is None:
            raise InputError("ssh_public_key", "password logins are disabled and there is no SSH "
                                               "public key: no one could log in (Azure refuses this)")
        if not self.disable_password_auth and self.password is None:
            raise InputError("password", "password logins are enabled and there is no password "
                                         "(Azure requires one)")
        if self.custom_data is not None and len(self.custom_data) > MAX_CUSTOM_DATA:
            raise InputError("custom_data", f"{len(self.custom_data)} bytes; Azure accepts at most "
                                            f"{MAX_CUSTOM_DATA}")

    @property
    def key_path(self) -> str:
        """Where waagent writes the key: ``ssh_key_path`` or the user's authorized_keys."""
        return self.ssh_key_path or _default_key_path(self.username)


def _check_hostname(hostname: str) -> None:
    if _HOSTNAME.fullmatch(hostname) is None:
        raise InputError("hostname", f"{hostname!r} is not a host name: 1-63 letters, digits and "
                                     "hyphens, not starting or ending with a hyphen (RFC 1123)")


def _check_username(username: str) -> None:
    if not 1 <= len(username) <= MAX_USERNAME:
        raise InputError("username", f"{len(username)} characters: 1-{MAX_USERNAME} (Azure allows 64, "
                                     "but Debian's useradd refuses more than 32)")
    if _USERNAME.fullmatch(username) is None:
        raise InputError("username", f"{username!r}: only letters, digits, '_' and '-', not starting "
                                     "with a digit or a hyphen")
    if username.lower() in AZURE_RESERVED_USERNAMES:
        raise InputError("username", f"{username!r} is one of the user names Azure refuses")
    if username in DEBIAN_SYSTEM_USERNAMES:
        raise InputError("username", f"{username!r} is a system account of Debian: waagent would give "
                                     "it a password and sudo rights")


def _check_password(password: str) -> None:
    """Azure's Linux rules; every message is about the password, never quotes it."""
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise InputError("password", f"{len(password)} characters; Azure requires "
                                     f"{MIN_PASSWORD}-{MAX_PASSWORD} for Linux")
    if any(not " " <= c <= "~" for c in password):
        raise InputError("password", "contains a character other than printable ASCII (a control "
                                     "character cannot be carried by XML or chpasswd)")
    classes = sum((any(c.islower() for c in password), any(c.isupper() for c in password),
                   any(c.isdigit() for c in password), any(not c.isalnum() for c in password)))
    if classes < 3:
        raise InputError("password", "too simple: Azure requires 3 of lower case, upper case, "
                                     "digits and special characters")
    if password in AZURE_DISALLOWED_PASSWORDS:
        raise InputError("password", "is one of the common passwords Azure refuses")


def _key_parts(key: str) -> tuple[str, bytes]:
    """``(type, blob)`` of an OpenSSH public key line ``type base64 [comment]``.

    Raises:
        InputError: not one line of a public key whose type starts with ``ssh-``, or a blob that
            is not base64 of a key of that type.
    """
    text = key.strip()
    if not text or any(not _xml_char(c) or c in "\r\n" for c in text):
        raise InputError("ssh_public_key", "must be one line: an OpenSSH public key (type, base64, "
                                           "comment)")
    parts = text.split()
    kind = parts[0]
    if kind.startswith(("ecdsa-", "sk-")):
        raise InputError("ssh_public_key", f"a {kind} key: waagent 2.7.3 writes a public key only if "
                                           "it starts with 'ssh-' and fails provisioning otherwise; "
                                           "use an ssh-ed25519 or ssh-rsa key")
    if not kind.startswith("ssh-"):
        raise InputError("ssh_public_key", "not an OpenSSH public key line ('ssh-ed25519 AAAA... "
                                           "comment'; no options before the type)")
    if len(parts) < 2:
        raise InputError("ssh_public_key", f"a {kind} key without its base64 data")
    try:
        blob = base64.b64decode(parts[1], validate=True)
    except (binascii.Error, ValueError):
        raise InputError("ssh_public_key", f"the data of the {kind} key is not base64") from None
    # The blob starts with the key type as an SSH string: a pasted, truncated or mislabelled key
    # is caught here rather than by sshd at the first login.
    if len(blob) < 4 or blob[4:4 + struct.unpack(">I", blob[:4])[0]] != kind.encode("utf-8"):
        raise InputError("ssh_public_key", f"the data of the key is not a {kind} key")
    return kind, blob


def _xml_char(c: str) -> bool:
    """A character XML 1.0 can carry (its ``Char`` production), as ElementTree and minidom do not
    check: they would write a document no parser reads."""
    o = ord(c)
    return (o >= 0x20 or c in "\t\n\r") and not 0xD800 <= o <= 0xDFFF and o not in (0xFFFE, 0xFFFF)


def _check_path(path: str) -> None:
    if not path.startswith("/") or any(ord(c) < 0x20 or c == "\x7f" for c in path) or len(path) > 4096:
        raise InputError("ssh_key_path", f"{path!r}: an absolute path on the VM is needed")


def key_fingerprint(key: str) -> str:
    """The ``Fingerprint`` written with a key: upper-case hex SHA-1 of the key's blob.

    Azure puts the thumbprint of a certificate there (40 upper-case hex digits); with the key's
    ``Value`` present, waagent never reads it and cloud-init only looks it up among the goal
    state's certificates, so any value of that shape works. This one at least identifies the key.
    """
    return hashlib.sha1(_key_parts(key)[1], usedforsecurity=False).hexdigest().upper()


def ovf_env_xml(p: Provisioning) -> bytes:
    """The ``ovf-env.xml`` document (UTF-8) Azure would write for ``p``."""
    doc = minidom.Document()
    env = doc.createElementNS(OVF_NS, "Environment")
    doc.appendChild(env)
    env.setAttribute("xmlns", OVF_NS)
    env.setAttribute("xmlns:wa", WA_NS)
    env.setAttribute("xmlns:xsi", XSI_NS)

    def add(parent: minidom.Element, name: str, text: str | None = None) -> minidom.Element:
        element = doc.createElementNS(WA_NS, f"wa:{name}")
        if text is not None:
            element.appendChild(doc.createTextNode(text))
        parent.appendChild(element)
        return element

    section = add(env, "ProvisioningSection")
    add(section, "Version", "1.0")
    conf = add(section, "LinuxProvisioningConfigurationSet")
    add(conf, "ConfigurationSetType", "LinuxProvisioningConfiguration")
    add(conf, "HostName", p.hostname)
    add(conf, "UserName", p.username)
    if p.password is not None:
        add(conf, "UserPassword", p.password)
    add(conf, "DisableSshPasswordAuthentication", "true" if p.disable_password_auth else "false")
    if p.ssh_public_key is not None:
        key = add(add(add(conf, "SSH"), "PublicKeys"), "PublicKey")
        add(key, "Fingerprint", key_fingerprint(p.ssh_public_key))
        add(key, "Path", p.key_path)
        add(key, "Value", p.ssh_public_key.strip())
    if p.custom_data:
        add(conf, "CustomData", base64.b64encode(p.custom_data).decode("ascii"))

    platform = add(env, "PlatformSettingsSection")
    add(platform, "Version", "1.0")
    settings = add(platform, "PlatformSettings")
    add(settings, "KmsServerHostname", KMS_SERVER)
    add(settings, "ProvisionGuestAgent", "true" if p.provision_guest_agent else "false")
    add(settings, "GuestAgentPackageName").setAttribute("xsi:nil", "true")
    add(settings, "PreprovisionedVm", "false")
    return doc.toprettyxml(indent="  ", encoding="utf-8")
