#!/usr/bin/env bash
# Runs inside the build VM as Packer's shutdown command, as root: generalizes the image
# (what `waagent -deprovision` does, plus cloud-init's state and the build account), then
# powers off. Packer waits for the VM to stop; vmimage then checks what is left.
set -euo pipefail
rm -f -- "$0"

# The build account and what cloud-init set up for it (sudo rule, password logins).
rm -f /etc/sudoers.d/90-cloud-init-users /etc/ssh/sshd_config.d/50-cloud-init.conf
userdel --force --remove packer

# Host keys, the root password, resolv.conf, DHCP leases, the agent's state.
waagent -force -deprovision

# cloud-init runs again from scratch on the first boot in Azure.
cloud-init clean --logs --seed

# One machine-id per VM, no history, no logs from the build.
truncate -s 0 /etc/machine-id
rm -f /var/lib/dbus/machine-id /root/.bash_history
find /var/log -type f -exec truncate -s 0 {} +
sync
shutdown -P now
