#!/usr/bin/env bash
# Brings the kha-deploy test lab up: three masters on 172.16.86.0/24 (VIP 172.16.86.100 free).
# Idempotent: starts dockerd / apt-cacher-ng when not running, builds the images when missing or
# when their inputs changed, generates keys and certificates in lab/.state/, starts the hosts,
# waits until they are booted, writes lab/.state/known_hosts and the inventories.
#
#   bash lab/up.sh [--fresh] [--no-vip-cert | --vip-cert] [--rpm HOST|all ...] [--bastion] [HOST...]
#     --fresh         recreate HOSTs (all when none is named) from the image: fresh hosts
#     --rpm HOST      HOST is an RPM-family host (dnf + rpm, no apt; lab/image-rpm), repeatable;
#                     `--rpm all` for every host. Also starts the RPM repository (kha-lab-rpmrepo,
#                     172.16.86.20:8080). Without --rpm every host is Debian and the repository is
#                     removed: any host of the other family is recreated (the default lab).
#     --no-vip-cert   apiserver serving certificates WITHOUT the VIP in subjectAltName
#                     (same as LAB_CERT_NO_VIP=1); --vip-cert goes back to certificates with it.
#                     Changing this recreates every host.
#     --bastion       also a jump host, kha-lab-bastion (172.16.86.14): the host image, sshd, user kha
#                     by the lab key, no apiserver, not a master. Without --bastion it is removed.
#                     With --fresh and no HOST named, recreated too.
#     --wait          only wait until HOSTs are booted and rewrite known_hosts (no build, no start)
#     --net           only make sure VRRP multicast passes between the running hosts: repair the
#                     Docker host's forwarding rules, then send and receive it (exit 1 when it does not pass)
#   Env: LAB_APT_PROXY=none  no apt-cacher-ng; hosts then have no way to Debian's archive.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
lab_lock

fresh=0 wait_only=0 net_only=0 mode=vip names=() rpm_hosts=() bastion=0
[[ "${LAB_CERT_NO_VIP:-0}" == 1 ]] && mode=novip
while (($#)); do
  case "$1" in
    --fresh) fresh=1 ;;
    --no-vip-cert) mode=novip ;;
    --vip-cert) mode=vip ;;
    --wait) wait_only=1 ;;
    --net) net_only=1 ;;
    --rpm)
      shift
      case "${1:-}" in
        all) rpm_hosts=("${HOSTS[@]}") ;;
        master[1-3]) [[ " ${rpm_hosts[*]} " == *" $1 "* ]] || rpm_hosts+=("$1") ;;
        *) die "--rpm takes a host (${HOSTS[*]}) or all, not: ${1:-nothing}" ;;
      esac ;;
    --bastion) bastion=1 ;;
    -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
    master[1-3]) names+=("$1") ;;
    *) die "unknown argument: $1 (hosts are ${HOSTS[*]})" ;;
  esac
  shift
done
named=${#names[@]}
((named)) || names=("${HOSTS[@]}")

# What every lab needs: VRRP multicast passing between the hosts (checked live).
vrrp_path_ok() { vrrp_path_check master1 master2 master3 >&2 || die "VRRP multicast does not pass between the lab hosts: bash lab/diagnose.sh shows the Docker host's filter rules"; }

if ((net_only)); then
  ensure_lab_forwarding
  vrrp_path_ok
  exit 0
fi
if ((wait_only)); then
  ensure_lab_forwarding
  wait_hosts "${names[@]}" $( ((bastion)) && echo "$BASTION") || die "hosts did not boot: ${names[*]}"
  write_known_hosts
  exit 0
fi

# What the lab needs on this machine (installed from Debian's packages when missing, as root).
# A Docker engine that already answers is used as it is.
if docker_running; then
  ensure_packages debootstrap openssh-client openssl iproute2 $([[ "${LAB_APT_PROXY:-acng}" == none ]] || echo apt-cacher-ng)
else
  ensure_packages "${LAB_PACKAGES[@]}"
fi
if ! docker_running; then
  ensure_dockerd
  log "note: this dockerd (pid $(cat "$DOCKERD_PIDFILE")) keeps running after the lab is down; stop it with: kill $(cat "$DOCKERD_PIDFILE")"
fi
if [[ "${LAB_APT_PROXY:-acng}" != none ]] && ! acng_running && ! (exec 3<>/dev/tcp/127.0.0.1/$ACNG_PORT) 2>/dev/null; then
  ensure_acng
  log "note: apt-cacher-ng (pid $(cat "$ACNG_PIDFILE")) keeps running; stop it with: kill $(cat "$ACNG_PIDFILE")"
fi
mkdir -p "$LOG_DIR"

build_base
build_host_image
((${#rpm_hosts[@]} == 0)) || build_rpm_images
gen_state "$mode"

# The image each host runs: docker-compose.test.yml reads KHA_LAB_<HOST>_IMAGE.
declare -A want_image
for h in "${HOSTS[@]}"; do want_image[$h]="$HOST_IMAGE:latest"; done
for h in "${rpm_hosts[@]}"; do want_image[$h]="$RPM_HOST_IMAGE:latest"; done
for h in "${HOSTS[@]}"; do export "KHA_LAB_${h^^}_IMAGE=${want_image[$h]}"; done

# Hosts to recreate: the ones asked for with --fresh, and any running host whose lab files are of
# an older generation (new key, certificates of the other mode, ...), named or not.
recreate=()
((fresh)) && recreate=("${names[@]}")
for h in "${HOSTS[@]}"; do
  [[ " ${recreate[*]} " == *" $h "* ]] && continue
  # A host of the other family (Debian / RPM) than asked for: recreated, named or not.
  img=$(host_image_of "$h")
  if [[ -n "$img" && "$img" != "${want_image[$h]}" ]]; then
    recreate+=("$h")
    [[ " ${names[*]} " == *" $h "* ]] || names+=("$h")
    continue
  fi
  if [[ "$(host_state "$h")" == running ]]; then
    g=$(host_generation "$h")
    if [[ -n "$g" && "$g" != "$(cat "$STATE_DIR/hosts/$h/generation")" ]]; then
      recreate+=("$h")
      [[ " ${names[*]} " == *" $h "* ]] || names+=("$h")
    fi
  fi
done
if ((${#recreate[@]})); then
  log "recreating ${recreate[*]}"
  for h in "${recreate[@]}"; do docker rm -f "$(container_of "$h")" >/dev/null 2>&1 || true; done
fi
repo=$(container_of "$RPM_REPO_SERVICE")
if ((${#rpm_hosts[@]})); then
  log "starting the RPM repository ($repo, $RPM_REPO_IP:$RPM_REPO_PORT) for ${rpm_hosts[*]}"
  dc up -d --no-deps "$RPM_REPO_SERVICE" 2>&1 | grep -v -e 'is up-to-date' -e '^$' | sed 's/^/  [compose] /' >&2 || true
elif docker inspect "$repo" >/dev/null 2>&1; then
  log "removing the RPM repository ($repo): no RPM-family host"
  docker rm -f "$repo" >/dev/null
fi
log "starting ${names[*]}"
dc up -d --no-deps "${names[@]}" 2>&1 | grep -v -e 'is up-to-date' -e '^$' | sed 's/^/  [compose] /' >&2 || true
ensure_lab_forwarding
for h in "${names[@]}"; do
  [[ "$(host_state "$h")" == running ]] || die "$h is not running after compose up (state: $(host_state "$h"))"
done
# The jump host: only with --bastion. Its authorized_keys (the lab key, for kha) are mounted at
# /home/kha/.ssh; lab-init and the apiserver are masked on its systemd command line (compose).
bc=$(container_of "$BASTION") booting=("${names[@]}")
if ((bastion)); then
  install -d -m 0755 "$STATE_DIR/bastion" "$STATE_DIR/bastion/ssh"
  install -m 0644 "$STATE_DIR/id_ed25519.pub" "$STATE_DIR/bastion/ssh/authorized_keys"
  if ((fresh && !named)) && docker inspect "$bc" >/dev/null 2>&1; then log "recreating $BASTION"; docker rm -f "$bc" >/dev/null; fi
  log "starting $BASTION ($bc, $BASTION_IP)"
  dc up -d --no-deps "$BASTION" 2>&1 | grep -v -e 'is up-to-date' -e '^$' | sed 's/^/  [compose] /' >&2 || true
  [[ "$(host_state "$BASTION")" == running ]] || die "$BASTION is not running after compose up (state: $(host_state "$BASTION"))"
  booting+=("$BASTION")
elif docker inspect "$bc" >/dev/null 2>&1; then
  log "removing $BASTION ($bc): not asked for (--bastion)"
  docker rm -f "$bc" >/dev/null
fi
((${#rpm_hosts[@]} == 0)) || wait_rpm_repo
log "waiting for ${booting[*]} to boot"
wait_hosts "${booting[@]}" || die "hosts did not boot"
write_known_hosts
write_inventories
vrrp_path_ok
log "lab up: ${HOSTS[*]} = ${HOST_IP[master1]} ${HOST_IP[master2]} ${HOST_IP[master3]}, VIP $VIP (held by nobody until kha-deploy runs)"
((bastion == 0)) || log "jump host: $BASTION $BASTION_IP (user kha, the lab key; not in the inventories)"
((${#rpm_hosts[@]} == 0)) || log "RPM-family hosts (dnf + rpm): ${rpm_hosts[*]}; their repository: http://$RPM_REPO_IP:$RPM_REPO_PORT/ ($repo)"
log "inventory: $STATE_DIR/inventory.ini (root: inventory-root.ini), known_hosts: $STATE_DIR/known_hosts, key: $STATE_DIR/id_ed25519"
