#!/bin/bash
# Builds the lab's RPM repository: keepalived, haproxy and curl RPMs made with rpmbuild from
# Debian's binary packages (apt-get download), then createrepo_c. Runs inside the `rpmbuild` stage
# of lab/image-rpm/Dockerfile, with rpm and createrepo-c installed there.
#   build.sh OUT_DIR RELEASE_DIR   (the repository; kha-lab-release.rpm for the host image)
# The RPMs carry Debian's binaries (their shared libraries come with the lab's RPM host image) and
# the packaging of CentOS/RHEL where kha-deploy can tell the difference: units under
# /usr/lib/systemd/system, /etc/sysconfig files, a default config each, and for haproxy NO
# /run/haproxy and NO tmpfiles.d entry. No service starts or is enabled on install.
set -euo pipefail
out=$1 rel_out=$2
src=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
work=$(mktemp -d /tmp/kha-rpm.XXXXXX)
mkdir -p "$work/debs" "$out" "$rel_out"
chmod 0755 "$work" "$work/debs" # apt-get download fetches as _apt
cd "$work/debs"
apt-get download keepalived haproxy curl
for p in keepalived haproxy curl; do
  deb=$(ls "${p}"_*.deb)
  v=$(dpkg-deb -f "$deb" Version)        # 1:2.2.7-1+b2
  up=${v#*:}; up=${up%-*}                # 2.2.7
  rel=${v##*-}; rel=${rel//[^A-Za-z0-9.+]/.}  # 1+b2
  mkdir -p "$work/root-$p"
  dpkg-deb -x "$deb" "$work/root-$p"
  echo "== $p $up-$rel.khalab from $deb"
  rpmbuild -bb --quiet \
    --define "_topdir $work/rpmbuild" --define "debroot $work/root-$p" --define "srcdir $src" \
    --define "pkgversion $up" --define "pkgrelease $rel.khalab" "$src/$p.spec"
done
find "$work/rpmbuild/RPMS" -name '*.rpm' -exec cp {} "$out/" \;
# The release package goes into the host image, not the repository.
rpmbuild -bb --quiet --define "_topdir $work/rpmbuild-release" "$src/kha-lab-release.spec"
find "$work/rpmbuild-release/RPMS" -name '*.rpm' -exec cp {} "$rel_out/" \;
createrepo_c --quiet "$out"
ls -l "$out"
rm -rf "$work"
