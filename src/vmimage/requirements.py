"""Every requirement a check may cover, vendored as data.

The guide's IDs (``LNX-SWAP``) restate ``shared/docs/seed-guide.md``; ``CUR-*`` IDs name
today's rules the guide lacks (research §1.2, §3); Microsoft's test IDs
(``MS-41``), policy IDs (``MS-200.3.3.3``) and LISA test names (``LISA-verify_no_swap_on_osdisk``)
come from ``certification-research.md`` §1.1, §1.6, §2.1 and §1.5. They live here, not in the
docs folder, because the product never reads outside its package at run time; a test keeps this
table in step with the guide.

Microsoft's TestIDs 43 and 47 are missing from every published sample (research §7): they are
left out rather than guessed, so no check can claim to cover a test nobody has seen.
"""

from __future__ import annotations

from dataclasses import dataclass

GUIDE, CURRENT, MS_TOOL, MS_POLICY, LISA = "guide", "current", "ms-tool", "ms-policy", "lisa"


@dataclass(frozen=True, slots=True)
class Requirement:
    """One rule a check can cover: its ID, where it comes from, and what it says in one line."""

    id: str
    source: str  # GUIDE, CURRENT, MS_TOOL, MS_POLICY or LISA
    area: str  # the heading it sits under: "Linux VHD", "Microsoft certification tool"...
    section: str  # the guide's section number ("2.4"), or the research note's ("§1.1")
    text: str


# (area, section, ID, text) in the guide's order; section numbers as the guide gives them.
_GUIDE = (
    ("Offers and SKUs", "1, 1.2", "OFR-PARENT",
     "An offer is the parent of its SKUs; pushing an offer to staging pushes all its SKUs."),
    ("Offers and SKUs", "1", "OFR-URL",
     "Offer and SKU identifiers appear in public URLs, so they must be URL-safe."),
    ("Offers and SKUs", "1.2", "OFR-SKU-ID",
     "A SKU has an identifier unique within the publishing profile."),
    ("Offers and SKUs", "1", "OFR-SKU-DISKS",
     "A VM image is one OS disk and the fewest data disks needed, each its own VHD."),
    ("Offers and SKUs", "1.2", "OFR-SUMMARY",
     "Each SKU has a short, readable, customer-visible summary."),
    ("Offers and SKUs", "1.2, 3.1", "OFR-WIN-BASE",
     "A Windows SKU uses an approved Windows Server version."),
    ("Linux VHD", "2.1", "LNX-OS-SIZE",
     "The Linux OS disk is a fixed VHD of 30 to 50 GB (above 50 case by case), sparse."),
    ("Linux VHD", "2.1, 3.4", "DSK-DATA",
     "A data disk is a fixed VHD of at most 1 TB, and should be sparse."),
    ("Linux VHD", "2.2", "LNX-AGENT",
     "The latest Azure Linux agent is installed, from the distribution's package."),
    ("Linux VHD", "2.3", "LNX-KERNEL",
     "The kernel has Linux Integration Services (3.0 or newer) and the storvsc patch."),
    ("Linux VHD", "2.3", "LNX-PYTHON", "Python 2.6 or newer is installed."),
    ("Linux VHD", "2.3", "LNX-PYASN1", "The Python pyasn1 package is installed."),
    ("Linux VHD", "2.3", "LNX-OPENSSL", "OpenSSL is installed, 1.0 or newer recommended."),
    ("Linux VHD", "2.4", "LNX-LVM", "Logical Volume Manager is not used."),
    ("Linux VHD", "2.4", "LNX-ROOT-PART", "The OS disk has a single root partition."),
    ("Linux VHD", "2.4", "LNX-SWAP",
     "No swap partition on the OS or data disks, even one fstab does not mount."),
    ("Linux VHD", "2.5", "LNX-CMDLINE",
     "The kernel command line has console=ttyS0 earlyprintk=ttyS0 rootdelay=300."),
    ("Linux VHD", "2.6", "LNX-SSH",
     "An SSH server is enabled by default, with ClientAliveInterval 180 (30 to 235)."),
    ("Linux VHD", "2.7", "LNX-NM",
     "NetworkManager is disabled, except on CentOS 7.x and its derivatives."),
    ("Linux VHD", "2.7", "LNX-IFUPDOWN",
     "Networking can be controlled with the ifup and ifdown scripts."),
    ("Linux VHD", "2.7", "LNX-NET-CUSTOM",
     "No custom network configuration; /etc/resolv.conf is deleted last."),
    ("Linux VHD", "2.7", "LNX-DHCP", "The network device comes up at boot and uses DHCP."),
    ("Linux VHD", "2.7", "LNX-IPV6", "IPv6 is not relied on (unsupported on Azure in 2015)."),
    ("Linux VHD", "2.8", "LNX-PATCHES",
     "All security patches are installed and the distribution's guidance is followed."),
    ("Linux VHD", "2.8", "LNX-DEFAULT-ACCOUNTS",
     "No default accounts that stay the same across provisioned instances."),
    ("Linux VHD", "2.8", "LNX-HISTORY", "Bash history is cleared."),
    ("Linux VHD", "2.8", "LNX-IPTABLES", "iptables is included, with no rules enabled."),
    ("Linux VHD", "2.9", "LNX-GENERALIZED",
     "The image is deprovisioned: no resolv.conf nameservers, no DHCP leases, generic hostname."),
    ("Linux VHD", "2.9", "LNX-SSH-HOSTKEYS",
     "waagent.conf sets Provisioning.RegenerateSshHostKeyPair=y and no host keys remain."),
    ("Linux VHD", "2.9", "LNX-ROOT-PASSWORD",
     "waagent.conf sets Provisioning.DeleteRootPassword=y and root has no password."),
    ("Windows VHD", "3.1", "WIN-BASE", "The OS disk derives from an approved base image."),
    ("Windows VHD", "3.4", "WIN-OS-SIZE",
     "The Windows OS disk is a 128 GB fixed VHD, sparse, its base format and size kept."),
    ("Windows VHD", "3.4", "WIN-DATA", "Data disks are fixed VHDs of at most 1 TB, sparse."),
    ("Windows VHD", "3.5", "WIN-UPDATES",
     "Windows Update has run: the latest Critical and Important updates are installed."),
    ("Windows VHD", "3.6", "WIN-FIRSTBOOT",
     "First-boot configuration runs as self-deleting startup tasks using only C: and D:."),
    ("Windows VHD", "3.7", "WIN-SYSPREP",
     "The image is generalized with sysprep /generalize /oobe /shutdown."),
    ("Registering and deploying a VM image", "4.1", "REG-CREATE",
     "The generalized VHDs are registered as a user VM image (Create VM Image API)."),
    ("Registering and deploying a VM image", "4.1", "REG-ASYNC",
     "The registration is asynchronous: 202 Accepted, then poll the operation."),
    ("Registering and deploying a VM image", "4", "REG-GENERALIZED",
     "A generalized OS VHD is deployed only through a registered image."),
    ("Registering and deploying a VM image", "4.2", "REG-DEPLOY",
     "A VM is deployed from the user image by name, size, location and credentials."),
    ("Certification", "5.1", "CRT-TOOL",
     "A certification tool tests a running VM over SSH or PowerShell remoting."),
    ("Certification", "5.1", "CRT-RESULTS",
     "Every test reports pass, fail or warning; any failure means not certified."),
    ("Certification", "5.1", "CRT-QUESTIONNAIRE",
     "After the tests the publisher answers a questionnaire."),
    ("Certification", "5.1", "CRT-ARTIFACTS",
     "Results, logs and answers are downloadable and kept with the VHDs."),
    ("Shared access signature URIs", "5.2", "SAS-EACH", "Every VHD gets its own SAS URI."),
    ("Shared access signature URIs", "5.2", "SAS-PERM",
     "Read and List permissions only (sp=rl)."),
    ("Shared access signature URIs", "5.2", "SAS-DURATION",
     "Valid for at least 7 business days from creation."),
    ("Shared access signature URIs", "5.2", "SAS-START",
     "The start time is 15 minutes before now, against clock skew."),
    ("Shared access signature URIs", "5.2", "SAS-BLOB", "The URI names the .vhd file."),
    ("Shared access signature URIs", "5.2", "SAS-SCHEME",
     "The scheme (2015: not https; today: https) follows the profile."),
    ("Shared access signature URIs", "5.2", "SAS-WORKS",
     "The URI is tested: opening it starts a download."),
    ("Publishing-portal submission", "5.3", "PUB-OS",
     "The SKU states its OS family and an OS name (family, type, version, update)."),
    ("Publishing-portal submission", "5.3", "PUB-SIZES", "Exactly three recommended VM sizes."),
    ("Publishing-portal submission", "5.3", "PUB-VERSION",
     "Version X.Y.Z; within a SKU only the patch number grows."),
    ("Publishing-portal submission", "5.3", "PUB-VHD-URLS",
     "The OS VHD URL and each data disk's LUN VHD URL are SAS URIs."),
    ("Publishing-portal submission", "5.3", "PUB-CERT",
     "Test results are uploaded and certification requested per SKU image."),
    ("Publishing-portal submission", "5.3", "PUB-NEXT",
     "Then marketing content, pricing, staging, testing in staging, publishing."),
)

# Today's rules that the 2015 guide does not state (certification-research.md §1.2, §3).
_CURRENT = (
    ("§1.2", "CUR-FIRST-MIB",
     "The OS disk's first MiB holds only the MBR and GPT; no partition starts before LBA 2048."),
    ("§2.1", "CUR-WIN-RDP", "Remote Desktop is enabled and allowed through the firewall."),
    ("§2.1", "CUR-WIN-BITLOCKER", "No volume of the OS disk is BitLocker-encrypted."),
)

# Microsoft's certification tool and Self-Test API: TestID, exact TestCaseName, rule.
_MS_TOOL_LINUX = (
    ("39", "Linux Agent Version", "Azure Linux Agent 2.2.41 or newer is installed."),
    ("40", "Required Kernel Parameters", "console=ttyS0, earlyprintk=ttyS0, rootdelay=300."),
    ("41", "Swap Partition on OS Disk", "No swap partition on the OS disk."),
    ("42", "Root Partition on OS Disk", "A single root partition on the OS disk."),
    ("44", "OpenSSL Version", "OpenSSL 0.9.8 or newer."),
    ("45", "Python Version", "Python 2.6 or newer."),
    ("46", "Client Alive Interval", "ClientAliveInterval 180, at most 235."),
    ("48", "Bash History", "Bash history files at most 1 KB."),
    ("49", "OS Architecture", "A 64-bit OS (x86_64, amd64)."),
    ("50", "Security threats", "Not an OS version hit by GHOST (glibc CVE-2015-0235)."),
    ("51", "Auto Update", "The Linux agent's AutoUpdate is enabled."),
    ("52", "SACK Vulnerability patch verification",
     "The kernel has the SACK patches (CVE-2019-11477/11478/11479)."),
)
_MS_TOOL_WINDOWS = (
    ("1.1.4", "OS Architecture", "A 64-bit operating system."),
    ("1.1.5", "User account dependency", "No dependency on the administrator account."),
    ("1.1.6", "Failover Cluster", "The Failover Clustering feature is disabled."),
)
_MS_POLICY = (
    ("200.3.3.1", "ClientAliveInterval is set for SSH (policy 200.3.3.1)."),
    ("200.3.3.3", "No swap partition on the OS disk (policy 200.3.3.3)."),
    ("200.3.3.4", "The Linux agent is installed and enabled (policy 200.3.3.4)."),
    ("200.5.1", "Bash history is cleared (policy 200.5.1)."),
)
# LISA's AzureImageStandard suite: test method name, rule.
_LISA = (
    ("verify_no_swap_on_osdisk", "No swap partition or swap file on the OS disk."),
    ("verify_bash_history_is_empty", "Every user's shell history file is empty or absent."),
    ("verify_client_active_interval", "ClientAliveInterval is set, 0 < value < 236."),
    ("verify_serial_console_is_enabled", "console=ttyS0 (ttyAMA0 on arm64) on the cmdline."),
    ("verify_waagent_version", "waagent 2.2.53.1 or newer, or AutoUpdate enabled."),
    ("verify_python_version", "Python 3.9 or newer."),
    ("verify_openssl_version", "OpenSSL 3.0.0 or newer, or exactly 1.1.1 or 1.0.2."),
    ("verify_azure_64bit_os", "A 64-bit OS (x86_64, amd64, aarch64, arm64)."),
    ("verify_omi_version", "OMI, when installed, is 1.6.8.1 or newer (OMIGOD)."),
    ("verify_no_pre_exist_users",
     "No account but the deploy user has a password hash or authorized_keys."),
    ("verify_default_targetpw", "Defaults targetpw is not enabled in sudoers."),
    ("verify_grub", "grub has no libata.atapi_enabled=0 or reserve=0x1f0,0x8."),
    ("verify_repository_installed", "Update repositories are configured and reachable."),
    ("verify_os_update", "A full package update and reboot leave the VM healthy."),
    ("verify_resource_disk_readme_file", "The resource disk holds DATALOSS_WARNING_README.txt."),
    ("verify_resource_disk_file_system", "The resource disk is not NTFS."),
    ("verify_essential_kernel_modules", "CONFIG_WATCHDOG and CONFIG_CIFS are available."),
    ("verify_hv_kvp_daemon_installed", "The Hyper-V KVP daemon runs (Debian, Azure Linux)."),
    ("verify_network_manager_not_installed", "NetworkManager absent (Fedora family < RHEL 7)."),
    ("verify_network_file_configuration", "/etc/sysconfig/network has NETWORKING=yes."),
    ("verify_ifcfg_eth0", "ifcfg-eth0 has DEVICE=eth0, BOOTPROTO=dhcp, ONBOOT=yes."),
    ("verify_udev_rules_moved", "No persistent-net udev rules (70-/75-persistent-net)."),
    ("verify_dhcp_file_configuration", "SUSE: DHCLIENT_SET_HOSTNAME=\"no\"."),
    ("verify_yum_conf", "RHEL/CentOS < 6.6: http_caching=packages in yum.conf."),
    ("verify_boot_error_fail_warnings", "No unexpected error lines in dmesg or syslog."),
    ("verify_cloud_init_error_status", "Azure Linux: cloud-init ran without errors."),
)


def _build() -> dict[str, Requirement]:
    reqs = [Requirement(rid, GUIDE, area, section, text) for area, section, rid, text in _GUIDE]
    reqs += [Requirement(rid, CURRENT, "Current certification rules", section, text)
             for section, rid, text in _CURRENT]
    reqs += [Requirement(f"MS-{tid}", MS_TOOL, "Microsoft certification tool (Linux)", "§1.1",
                         f"{name}: {text}") for tid, name, text in _MS_TOOL_LINUX]
    reqs += [Requirement(f"MS-{tid}", MS_TOOL, "Microsoft certification tool (Windows)", "§2.1",
                         f"{name}: {text}") for tid, name, text in _MS_TOOL_WINDOWS]
    reqs += [Requirement(f"MS-{pid}", MS_POLICY, "Microsoft certification policy", "§1.6", text)
             for pid, text in _MS_POLICY]
    reqs += [Requirement(f"LISA-{name}", LISA, "LISA AzureImageStandard", "§1.5", text)
             for name, text in _LISA]
    table = {r.id: r for r in reqs}
    if len(table) != len(reqs):  # pragma: no cover - a typo in the tables above
        raise ValueError("duplicate requirement ID")
    return table


#: Every known requirement, guide first in the guide's order, then the external references.
REQUIREMENTS: dict[str, Requirement] = _build()


def guide_requirements() -> list[Requirement]:
    """The guide's own requirements, in its order: what coverage is measured against."""
    return [r for r in REQUIREMENTS.values() if r.source == GUIDE]


def unknown(ids: tuple[str, ...] | list[str]) -> list[str]:
    """The IDs of ``ids`` that name no known requirement (a typo in a check's ``covers``)."""
    return [i for i in ids if i not in REQUIREMENTS]
