#!/usr/bin/env bash
# Runs inside the build VM, as root (Packer's shell provisioner, through sudo): makes Debian
# 12's generic cloud image an Azure image, following Microsoft's "Prepare a Debian VHD for
# Azure" and the rules vmimage checks (docs/checks.md).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

apt-get update -q
apt-get -y -q full-upgrade                               # today's security updates
apt-get -y -q install --no-install-recommends waagent hyperv-daemons openssh-server iptables

# The Azure agent handles extensions and the resource disk; cloud-init provisions the VM
# (Provisioning.Agent=auto picks it). No swap on the OS disk, nor on the resource disk.
conf=/etc/waagent.conf
set_conf() {
  if grep -q "^#\?\s*$1=" "$conf"; then
    sed -i -E "s|^#?\s*$1=.*|$1=$2|" "$conf"
  else
    echo "$1=$2" >> "$conf"
  fi
}
set_conf Provisioning.Agent auto
set_conf Provisioning.RegenerateSshHostKeyPair y
set_conf Provisioning.DeleteRootPassword y
set_conf ResourceDisk.Format n
set_conf ResourceDisk.EnableSwap n
set_conf AutoUpdate.Enabled y
systemctl enable walinuxagent.service

# cloud-init: Azure's datasource only (the NoCloud seed served the build, not the image).
cat > /etc/cloud/cloud.cfg.d/90-azure.cfg << 'CFG'
datasource_list: [ Azure ]
CFG

# sshd: ClientAliveInterval in the main file, where Microsoft's test tool reads it.
sed -i -E '/^#?\s*ClientAliveInterval/d' /etc/ssh/sshd_config
echo 'ClientAliveInterval 180' >> /etc/ssh/sshd_config

# The serial console Azure's boot diagnostics read. No rootdelay=300: azure-current does not
# ask for it, and Debian's initramfs would sleep the whole 300 s at every boot.
cat > /etc/default/grub.d/50-azure.cfg << 'CFG'
GRUB_CMDLINE_LINUX="console=tty1 console=ttyS0,115200n8 earlyprintk=ttyS0,115200"
GRUB_TIMEOUT=1
CFG
update-grub

# Hyper-V storage and network drivers in the initramfs.
printf '%s\n' hv_vmbus hv_storvsc hv_netvsc >> /etc/initramfs-tools/modules
update-initramfs -u

# No swap on the OS disk.
swapoff -a
sed -i -E '/\sswap\s/d' /etc/fstab

# Nothing in the udev rules that pins the build VM's NIC.
rm -f /etc/udev/rules.d/70-persistent-net.rules

apt-get -y -q autoremove --purge
apt-get -y -q clean
