#!/bin/bash
# Installs the files lab/up.sh prepared for this host (mounted read-only at /lab) once per lab
# generation, the way provisioning would: authorized keys for root, kha and khapw; the lab CA and
# this host's apiserver serving certificate; /etc/kubernetes/admin.conf (root, 0600); the apt proxy.
set -euo pipefail
gen=$(cat /lab/generation)
if [[ -f /var/lib/kha-lab/generation && "$(cat /var/lib/kha-lab/generation)" == "$gen" ]]; then
  exit 0
fi
for u in root kha khapw; do
  home=$(getent passwd "$u" | cut -d: -f6)
  install -d -m 0700 -o "$u" -g "$u" "$home/.ssh"
  install -m 0600 -o "$u" -g "$u" /lab/authorized_keys "$home/.ssh/authorized_keys"
done
install -d -m 0755 /etc/kubernetes/pki
install -m 0644 /lab/pki/ca.crt /etc/kubernetes/pki/ca.crt
install -m 0644 /lab/pki/apiserver.crt /etc/kubernetes/pki/apiserver.crt
install -m 0600 /lab/pki/apiserver.key /etc/kubernetes/pki/apiserver.key
install -m 0600 -o root -g root /lab/admin.conf /etc/kubernetes/admin.conf
if [[ -f /lab/apt-proxy.conf ]]; then
  install -m 0644 /lab/apt-proxy.conf /etc/apt/apt.conf.d/01proxy
else
  rm -f /etc/apt/apt.conf.d/01proxy
fi
echo "$gen" >/var/lib/kha-lab/generation
