#!/usr/bin/env bash
# Prints the lab's network state for a failed e2e run: the Docker host's filter rules with their
# counters, the lab bridge and its ports, and a live VRRP multicast check between the hosts (what
# keepalived needs). Read-only; never fails the caller.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source lab/lib.sh
echo "=== lab diagnostics ($(date -u +%FT%TZ))"
docker_running || { echo "no Docker engine answers"; exit 0; }
docker ps -a --format '{{.Names}} {{.Status}} {{.Networks}}' 2>&1
bridge=$(docker network inspect -f '{{index .Options "com.docker.network.bridge.name"}}' "$NETWORK" 2>/dev/null)
echo "--- bridge ${bridge:-?}: multicast_snooping=$(cat /sys/class/net/$bridge/bridge/multicast_snooping 2>/dev/null) bridge-nf-call-iptables=$(cat /proc/sys/net/bridge/bridge-nf-call-iptables 2>/dev/null)"
bridge link show 2>&1 | grep -F "master $bridge" || true
for chain in DOCKER-USER FORWARD DOCKER-ISOLATION-STAGE-1 INPUT OUTPUT; do
  echo "--- iptables -L $chain -v -n"
  iptables -L "$chain" -v -n 2>&1 | head -25
done
echo "--- VRRP multicast from master1 to master2 and master3"
recv='import socket, struct, sys
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, 112)
s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, struct.pack("4s4s", socket.inet_aton("224.0.0.18"), socket.inet_aton(sys.argv[1])))
s.settimeout(4)
try:
    while True:
        data, addr = s.recvfrom(2048)
        if data[20:28] == b"kha-diag":
            print("received from", addr[0]); break
except socket.timeout:
    print("NOTHING received")'
send='import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, 112)
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 255)
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(sys.argv[1]))
for _ in range(6):
    s.sendto(b"kha-diag", ("224.0.0.18", 0)); time.sleep(0.25)'
for h in master2 master3; do
  (printf '%s: ' "$h"; timeout 10 docker exec "kha-lab-$h" python3 -c "$recv" "${HOST_IP[$h]}" 2>&1) &
done
sleep 0.7
timeout 10 docker exec kha-lab-master1 python3 -c "$send" "${HOST_IP[master1]}" 2>&1
wait
echo "--- keepalived on each host"
for h in "${HOSTS[@]}"; do
  echo "$h: keepalived $(docker exec "kha-lab-$h" systemctl is-active keepalived 2>&1), VIP here: $(docker exec "kha-lab-$h" ip -o addr show 2>&1 | grep -c " ${VIP}/")"
  docker exec "kha-lab-$h" journalctl -u keepalived -n 8 --no-pager -o short-iso 2>&1 | sed 's/^/    /'
done
exit 0
