#!/usr/bin/env bash
# Tears the kha-deploy test lab down: removes the hosts, the bastion, the RPM repository and the lab network. Keeps the images,
# lab/.state/ (key, CA) and the daemons (dockerd, apt-cacher-ng).
#   bash lab/down.sh [--purge]    --purge also deletes lab/.state/ (key, CA, certificates)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
lab_lock
purge=0
[[ "${1:-}" == --purge ]] && purge=1
if docker_running; then
  for h in "${HOSTS[@]}" "$BASTION" "$RPM_REPO_SERVICE"; do docker rm -f "$(container_of "$h")" >/dev/null 2>&1 || true; done
  bridge=$(docker network inspect -f '{{index .Options "com.docker.network.bridge.name"}}' "$NETWORK" 2>/dev/null || true)
  while [[ -n "$bridge" ]] && iptables -D DOCKER-USER -i "$bridge" -o "$bridge" -j ACCEPT 2>/dev/null; do :; done
  dc down --remove-orphans 2>&1 | sed 's/^/  [compose] /' >&2 || true
  docker network rm "$NETWORK" >/dev/null 2>&1 || true
  log "lab down"
else
  log "no Docker engine answers: nothing to tear down"
fi
if ((purge)); then rm -rf "$STATE_DIR"; log "removed $STATE_DIR"; fi
