#!/bin/sh
# scripts/vagrant-user-hook.sh ROOTFS AUTHORIZED_KEYS — an mmdebstrap customize hook (runs
# outside the chroot) shared by the fleet image (fleet-image.sh) and the VM box (vm-box.sh):
# what Vagrant expects of a machine it logs in to.
#   - user vagrant, passwordless sudo, Vagrant's insecure public key(s) (Vagrant swaps
#     in a fresh key on the first `vagrant up`);
#   - sshd with host keys made at first boot (unique per machine), no reverse DNS wait.
set -eu
root="$1"; keys="$2"
ch() { chroot "$root" "$@"; }

ch useradd --create-home --shell /bin/bash --user-group vagrant
echo 'vagrant:vagrant' | ch chpasswd
printf 'vagrant ALL=(ALL) NOPASSWD: ALL\nDefaults:vagrant !requiretty\n' > "$root/etc/sudoers.d/vagrant"
chmod 0440 "$root/etc/sudoers.d/vagrant"
install -d -m 0700 "$root/home/vagrant/.ssh"
install -m 0600 "$keys" "$root/home/vagrant/.ssh/authorized_keys"
ch chown -R vagrant:vagrant /home/vagrant/.ssh

rm -f "$root"/etc/ssh/ssh_host_*
cat > "$root/etc/systemd/system/ssh-hostkeys.service" <<'UNIT'
[Unit]
Description=Generate SSH host keys (unique per machine)
Before=ssh.service
ConditionPathExists=!/etc/ssh/ssh_host_ed25519_key

[Service]
Type=oneshot
ExecStart=/usr/bin/ssh-keygen -A

[Install]
WantedBy=multi-user.target ssh.service
UNIT
ch systemctl enable ssh.service ssh-hostkeys.service
printf 'UseDNS no\n' > "$root/etc/ssh/sshd_config.d/vagrant.conf"
