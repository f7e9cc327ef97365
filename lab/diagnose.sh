#!/usr/bin/env bash
# Prints the lab's network state for a failed e2e run: each host's keepalived journal, the Docker
# host's filter rules with their counters, the lab bridge and its ports, then (last, where a
# truncated CI log still shows it) a summary with a live VRRP multicast check between the hosts.
# Read-only; never fails the caller.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source lab/lib.sh
echo "=== lab diagnostics ($(date -u +%FT%TZ))"
docker_running || { echo "no Docker engine answers"; exit 0; }
docker ps -a --format '{{.Names}} {{.Status}} {{.Networks}}' 2>&1
echo "--- keepalived on each host"
holders=()
for h in "${HOSTS[@]}"; do
  n=$(docker exec "$(container_of "$h")" ip -o addr show 2>&1 | grep -c " ${VIP}/")
  ((n > 0)) && holders+=("$h")
  echo "$h: keepalived $(docker exec "$(container_of "$h")" systemctl is-active keepalived 2>&1), VIP here: $n"
  docker exec "$(container_of "$h")" journalctl -u keepalived -n 8 --no-pager -o short-iso 2>&1 | sed 's/^/    /'
done
bridge=$(docker network inspect -f '{{index .Options "com.docker.network.bridge.name"}}' "$NETWORK" 2>/dev/null)
echo "--- bridge ${bridge:-?}: multicast_snooping=$(cat /sys/class/net/$bridge/bridge/multicast_snooping 2>/dev/null) bridge-nf-call-iptables=$(cat /proc/sys/net/bridge/bridge-nf-call-iptables 2>/dev/null)"
bridge link show 2>&1 | grep -F "master $bridge" || true
for chain in FORWARD DOCKER-USER DOCKER-ISOLATION-STAGE-1 INPUT OUTPUT; do
  echo "--- iptables -L $chain -v -n"
  iptables -w 5 -L "$chain" -v -n 2>&1 | head -25
done
echo "=== summary"
echo "FORWARD's first rule: $(iptables -w 5 -S FORWARD 2>&1 | sed -n '/^-A /{p;q}') (VRRP between the hosts needs: -A FORWARD -j DOCKER-USER)"
echo "DOCKER-USER: $(iptables -w 5 -S DOCKER-USER 2>&1 | grep -c -- "-i ${bridge:-?} -o ${bridge:-?} -j ACCEPT") host-to-host ACCEPT rule(s)"
echo "VIP $VIP held by: ${holders[*]:-nobody}"
vrrp_path_check master1 master2 master3 2>&1
exit 0
