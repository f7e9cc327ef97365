# shellcheck shell=bash
# Shared settings and functions for the kha-deploy test lab (sourced by lab/*.sh and .ci/run).
# Traffic stays on loopback and the lab subnet; apt in the hosts goes through apt-cacher-ng on
# the lab gateway, which alone talks to Debian's archive.

LAB_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(cd "$LAB_DIR/.." && pwd)"
STATE_DIR="$LAB_DIR/.state"
COMPOSE_FILE="$REPO_DIR/docker-compose.test.yml"
PROJECT=kha-lab
NETWORK="${PROJECT}_labnet"
SUBNET=172.16.86.0/24
GATEWAY=172.16.86.1
VIP=172.16.86.100
# A second VIP, free and listed in the apiserver certificates too (--vip-cert): a change of `vip` on a
# running cluster (test/e2e/vip-change.test.ts) gates on kubectl through it.
SPARE_VIP=172.16.86.101
HOSTS=(master1 master2 master3)
declare -A HOST_IP=([master1]=172.16.86.11 [master2]=172.16.86.12 [master3]=172.16.86.13)
# Jump host (`lab/up.sh --bastion` only): the host image, sshd and user kha, not a master.
BASTION=bastion
BASTION_IP=172.16.86.14
BASE_IMAGE=kha-lab-base:bookworm
HOST_IMAGE=kha-lab-host
# RPM family (lab/image-rpm, lab/rpm): hosts with dnf + rpm instead of apt, and their repository.
RPM_HOST_IMAGE=kha-lab-host-rpm
RPM_REPO_IMAGE=kha-lab-rpmrepo
RPM_REPO_SERVICE=rpmrepo
RPM_REPO_IP=172.16.86.20
RPM_REPO_PORT=8080
ACNG_PORT=3142
RUN_DIR=/run/kha-lab            # PID files of the daemons the lab starts
LOG_DIR=/var/log/kha-lab
DOCKERD_PIDFILE="$RUN_DIR/dockerd.pid"
ACNG_PIDFILE="$RUN_DIR/apt-cacher-ng.pid"
ACNG_CACHE=${LAB_ACNG_CACHE:-/var/cache/apt-cacher-ng}

_t0=$(date +%s)
log() { printf '[lab %4ss] %s\n' "$(($(date +%s) - _t0))" "$*" >&2; }
die() { printf '[lab] ERROR: %s\n' "$*" >&2; exit 1; }

container_of() { echo "${PROJECT}-$1"; }

# docker-compose v1 (Debian's package) when present, else the v2 plugin.
dc() {
  if command -v docker-compose >/dev/null 2>&1; then
    docker-compose -p "$PROJECT" -f "$COMPOSE_FILE" "$@"
  else
    docker compose -p "$PROJECT" -f "$COMPOSE_FILE" "$@"
  fi
}

# Debian packages the lab needs on the machine.
LAB_PACKAGES=(docker.io docker-compose debootstrap apt-cacher-ng openssh-client openssl iproute2 ansible-core)

pkg_installed() { dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null | grep -qx installed; }

# ensure_packages PKG...: installs the missing ones from Debian's archive (as root), keeping
# their maintainer scripts from starting services (the lab starts dockerd/apt-cacher-ng itself).
ensure_packages() {
  local p missing=() policy=""
  for p in "$@"; do pkg_installed "$p" || missing+=("$p"); done
  ((${#missing[@]})) || return 0
  [[ $(id -u) == 0 ]] || die "missing Debian packages: ${missing[*]} (install them as root: apt-get install ${missing[*]})"
  log "installing Debian packages: ${missing[*]}"
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && policy=1
  fi
  local rc=0
  { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"; } >&2 || rc=$?
  [[ -n "$policy" ]] && rm -f /usr/sbin/policy-rc.d
  ((rc == 0)) || die "installing ${missing[*]} failed"
  for p in "${missing[@]}"; do pkg_installed "$p" || die "$p is still not installed"; done
}

# One lab/up.sh or lab/down.sh at a time on this machine (the hosts' names are machine-wide).
# Daemons started under the lock inherit no fd (without_inherited_fds), so they never hold it.
lab_lock() {
  mkdir -p "$RUN_DIR"
  exec 9>"$RUN_DIR/lab.lock"
  if ! flock -n 9; then
    log "waiting for another lab/up.sh or lab/down.sh to finish"
    flock -w 900 9 || die "$RUN_DIR/lab.lock is still held after 15 min"
  fi
}

docker_running() { docker info >/dev/null 2>&1; }

# without_inherited_fds CMD...: exec CMD with only stdin, stdout and stderr open. The daemons the
# lab starts outlive the command that started them, so they must not keep its files open, above
# all a lock: `flock LOCK bash lab/up.sh` hands its lock fd down, and a dockerd that inherited it
# would hold that lock for as long as it runs.
without_inherited_fds() {
  local fd
  for fd in /proc/$BASHPID/fd/*; do
    fd=${fd##*/}
    if [[ $fd =~ ^[0-9]+$ ]] && ((fd > 2)); then eval "exec $fd>&-" 2>/dev/null || true; fi
  done
  exec "$@"
}

# Start dockerd in the background when no engine answers. Prints nothing on stdout; records the
# PID in $DOCKERD_PIDFILE (only when this call started it). Returns 0 when an engine answers.
ensure_dockerd() {
  if docker_running; then return 0; fi
  command -v dockerd >/dev/null 2>&1 || die "no Docker engine answers and dockerd is not installed (apt-get install docker.io)"
  mkdir -p "$RUN_DIR" "$LOG_DIR"
  # A dockerd that was killed leaves its pid file; dockerd refuses to start while that PID exists as any process.
  local stale; stale=$(tr -dc 0-9 </var/run/docker.pid 2>/dev/null) || true
  if [[ -n "$stale" && "$(cat "/proc/$stale/comm" 2>/dev/null)" != dockerd ]]; then rm -f /var/run/docker.pid; fi
  log "starting dockerd (log: $LOG_DIR/dockerd.log)"
  # --bridge=none: no default docker0 bridge on 172.17/16; the lab uses its own network and
  # image builds use the host network (apt through the local apt-cacher-ng).
  local pid i
  (without_inherited_fds setsid dockerd --bridge=none) >>"$LOG_DIR/dockerd.log" 2>&1 </dev/null &
  pid=$!
  for i in $(seq 1 60); do
    if docker_running; then
      echo "$pid" >"$DOCKERD_PIDFILE"
      log "dockerd up (pid $pid)"
      return 0
    fi
    kill -0 "$pid" 2>/dev/null || { tail -20 "$LOG_DIR/dockerd.log" >&2; die "dockerd exited"; }
    sleep 0.5
  done
  kill "$pid" 2>/dev/null || true
  die "dockerd did not answer within 30 s (see $LOG_DIR/dockerd.log)"
}

# True when the PID in $ACNG_PIDFILE is a live apt-cacher-ng (not a stale file or a reused PID).
acng_running() {
  local pid
  [[ -s "$ACNG_PIDFILE" ]] || return 1
  pid=$(tr -dc 0-9 <"$ACNG_PIDFILE")
  [[ -n "$pid" && "$(cat "/proc/$pid/comm" 2>/dev/null)" == apt-cacher-ng ]]
}

# apt-cacher-ng with the lab's own config (no remapping), listening on all addresses so that
# image builds (host network, 127.0.0.1) and the lab hosts (gateway 172.16.86.1) reach it.
ensure_acng() {
  [[ "${LAB_APT_PROXY:-acng}" == none ]] && return 0
  if acng_running; then return 0; fi
  if (exec 3<>/dev/tcp/127.0.0.1/$ACNG_PORT) 2>/dev/null; then
    log "something already listens on :$ACNG_PORT; using it as the apt proxy"
    return 0
  fi
  command -v apt-cacher-ng >/dev/null 2>&1 || die "apt-cacher-ng is not installed (apt-get install apt-cacher-ng), or set LAB_APT_PROXY=none"
  mkdir -p "$RUN_DIR" "$LOG_DIR/acng" "$ACNG_CACHE"
  log "starting apt-cacher-ng on :$ACNG_PORT (cache $ACNG_CACHE)"
  (without_inherited_fds apt-cacher-ng -c "$LAB_DIR/acng" ForeGround=0 Port="$ACNG_PORT" BindAddress=0.0.0.0 \
    PidFile="$ACNG_PIDFILE" CacheDir="$ACNG_CACHE" LogDir="$LOG_DIR/acng") </dev/null >>"$LOG_DIR/acng/stdout.log" 2>&1 \
    || die "apt-cacher-ng failed to start"
  local i
  for i in $(seq 1 40); do
    if (exec 3<>/dev/tcp/127.0.0.1/$ACNG_PORT) 2>/dev/null && acng_running; then return 0; fi
    sleep 0.25
  done
  die "apt-cacher-ng did not listen on :$ACNG_PORT"
}

# The machine's Debian archive entries (main archive and security only; no third-party
# repositories), as one-line "deb URI SUITE COMPONENTS" entries.
debian_sources() {
  local f out=""
  shopt -s nullglob
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [[ -f $f ]] || continue
    out+=$(awk '$1=="deb" { i=2; if ($2 ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
      uri=$i; sub(/\/+$/, "", uri)
      if (uri ~ /\/debian(-security)?$/) { line="deb " uri; for (j=i+1; j<=NF; j++) { if ($j ~ /^#/) break; line=line " " $j }; print line } }' "$f")$'\n'
  done
  for f in /etc/apt/sources.list.d/*.sources; do
    out+=$(awk 'function flush() { if (types ~ /(^| )deb( |$)/ && enabled != "no") {
          n=split(uris, U, " "); m=split(suites, S, " ")
          for (a=1; a<=n; a++) { u=U[a]; sub(/\/+$/, "", u); if (u !~ /\/debian(-security)?$/) continue
            for (b=1; b<=m; b++) print "deb " u " " S[b] " " comps } }
        types=""; uris=""; suites=""; comps=""; enabled="" }
      /^[ \t]*#/ { next }
      /^[ \t]*$/ { flush(); next }
      { key=$1; sub(/:$/, "", key); $1=""; sub(/^ +/, ""); v=$0
        if (key=="Types") types=v; else if (key=="URIs") uris=v; else if (key=="Suites") suites=v
        else if (key=="Components") comps=v; else if (key=="Enabled") enabled=tolower(v) }
      END { flush() }' "$f")$'\n'
  done
  shopt -u nullglob
  printf '%s' "$out" | awk 'NF && !seen[$0]++'
}

debian_mirror() {
  debian_sources | awk '$2 ~ /\/debian$/ && $3 == "bookworm" { print $2; exit }'
}

# ---------------------------------------------------------------------------------------------
# Images

image_exists() { docker image inspect "$1" >/dev/null 2>&1; }

apt_proxy_for_build() {
  if [[ "${LAB_APT_PROXY:-acng}" == none ]]; then echo ""; else echo "http://127.0.0.1:$ACNG_PORT"; fi
}

# Base image: debootstrap --variant=minbase bookworm from the machine's Debian mirror, then
# `docker import`. Built only when missing.
build_base() {
  if image_exists "$BASE_IMAGE"; then return 0; fi
  mkdir -p "$LOG_DIR"
  command -v debootstrap >/dev/null 2>&1 || die "debootstrap is not installed (apt-get install debootstrap)"
  local mirror proxy root
  mirror=$(debian_mirror)
  [[ -n "$mirror" ]] || die "found no Debian bookworm archive entry in /etc/apt/sources.list*"
  proxy=$(apt_proxy_for_build)
  root=$(mktemp -d /var/tmp/kha-lab-rootfs.XXXXXX)
  log "building $BASE_IMAGE: debootstrap --variant=minbase bookworm from $mirror${proxy:+ (via $proxy)}"
  if ! http_proxy="$proxy" debootstrap --variant=minbase bookworm "$root" "$mirror" >"$LOG_DIR/debootstrap.log" 2>&1; then
    tail -20 "$LOG_DIR/debootstrap.log" >&2
    rm -rf "$root"
    die "debootstrap failed (full log: $LOG_DIR/debootstrap.log)"
  fi
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/tmp/* || true
  log "importing $BASE_IMAGE ($(du -sh "$root" | cut -f1))"
  tar -C "$root" --numeric-owner -c . | docker import --change 'CMD ["/bin/bash"]' \
    --message "debootstrap --variant=minbase bookworm $mirror" - "$BASE_IMAGE" >/dev/null
  rm -rf "$root"
  log "built $BASE_IMAGE"
}

# Build context for the host image: lab/image/* plus sources.list from the machine's Debian entries.
host_image_context() {
  local ctx=$1
  cp "$LAB_DIR"/image/* "$ctx"/
  { echo "# Debian archive entries of the machine that built this lab image"; debian_sources; } >"$ctx/sources.list"
}

# Hash of everything the host image is built from: the context files and the base image's ID.
host_image_hash() {
  local ctx=$1
  { docker image inspect -f '{{.Id}}' "$BASE_IMAGE"; (cd "$ctx" && find . -type f -print0 | sort -z | xargs -0 sha256sum); } \
    | sha256sum | cut -c1-16
}

# Host image kha-lab-host:<hash> tagged :latest; rebuilt only when its inputs change.
build_host_image() {
  local ctx hash have
  mkdir -p "$LOG_DIR"
  ctx=$(mktemp -d /tmp/kha-lab-ctx.XXXXXX)
  host_image_context "$ctx"
  hash=$(host_image_hash "$ctx")
  have=$(docker image inspect -f '{{index .Config.Labels "kha.lab.inputs"}}' "$HOST_IMAGE:latest" 2>/dev/null || true)
  if [[ "$have" == "$hash" ]]; then rm -rf "$ctx"; return 0; fi
  if image_exists "$HOST_IMAGE:$hash"; then
    docker tag "$HOST_IMAGE:$hash" "$HOST_IMAGE:latest"
    rm -rf "$ctx"; prune_host_images "$hash"; return 0
  fi
  log "building $HOST_IMAGE:$hash (inputs changed or image missing)"
  local proxy; proxy=$(apt_proxy_for_build)
  # Legacy builder: FROM a local image never pulls; host network reaches the local apt proxy.
  # Progress: the builder's "Step N/M" lines; the whole output goes to $LOG_DIR/host-image-build.log.
  DOCKER_BUILDKIT=0 docker build --network host --build-arg "APT_PROXY=$proxy" \
      --label "kha.lab.inputs=$hash" -t "$HOST_IMAGE:$hash" -t "$HOST_IMAGE:latest" "$ctx" 2>&1 \
    | tee "$LOG_DIR/host-image-build.log" \
    | sed -u -n 's/^\(Step [0-9]*\/[0-9]* : .\{0,90\}\).*/  [build] \1/p' >&2 || true
  if ! image_exists "$HOST_IMAGE:$hash"; then
    tail -30 "$LOG_DIR/host-image-build.log" >&2
    rm -rf "$ctx"
    die "building $HOST_IMAGE failed (full log: $LOG_DIR/host-image-build.log)"
  fi
  rm -rf "$ctx"
  log "built $HOST_IMAGE:$hash"
  prune_host_images "$hash"
}

# Remove host images of older inputs (those no container uses; docker refuses the others).
prune_host_images() {
  local keep=$1 tag
  for tag in $(docker images "$HOST_IMAGE" --format '{{.Tag}}'); do
    [[ "$tag" == "$keep" || "$tag" == latest ]] && continue
    docker rmi "$HOST_IMAGE:$tag" >/dev/null 2>&1 || true
  done
}

# RPM-family images, both from lab/image-rpm/Dockerfile FROM the current host image:
# kha-lab-rpmrepo:<hash> (the repository with the keepalived, haproxy and curl RPMs that
# lab/rpm/build.sh makes from Debian's binaries) and kha-lab-host-rpm:<hash> (dnf + rpm, no apt),
# each also tagged :latest; rebuilt only when lab/image-rpm/*, lab/rpm/* or the host image change.
build_rpm_images() {
  local ctx hash have host_tag proxy t0
  host_tag=$(docker image inspect -f '{{index .Config.Labels "kha.lab.inputs"}}' "$HOST_IMAGE:latest" 2>/dev/null) || true
  [[ -n "$host_tag" ]] && image_exists "$HOST_IMAGE:$host_tag" || die "no $HOST_IMAGE image to build the RPM-family images from (build_host_image first)"
  mkdir -p "$LOG_DIR"
  ctx=$(mktemp -d /tmp/kha-lab-rpm-ctx.XXXXXX)
  cp "$LAB_DIR"/image-rpm/* "$ctx"/
  mkdir "$ctx/rpm" && cp "$LAB_DIR"/rpm/* "$ctx/rpm/"
  hash=$({ docker image inspect -f '{{.Id}}' "$HOST_IMAGE:$host_tag"; (cd "$ctx" && find . -type f -print0 | sort -z | xargs -0 sha256sum); } | sha256sum | cut -c1-16)
  have=$(docker image inspect -f '{{index .Config.Labels "kha.lab.inputs"}}' "$RPM_HOST_IMAGE:latest" 2>/dev/null || true)
  if [[ "$have" == "$hash" && "$(docker image inspect -f '{{index .Config.Labels "kha.lab.inputs"}}' "$RPM_REPO_IMAGE:latest" 2>/dev/null)" == "$hash" ]]; then
    rm -rf "$ctx"; return 0
  fi
  log "building $RPM_REPO_IMAGE:$hash and $RPM_HOST_IMAGE:$hash (RPMs from Debian's binaries; log: $LOG_DIR/rpm-image-build.log)"
  proxy=$(apt_proxy_for_build)
  t0=$(date +%s)
  : >"$LOG_DIR/rpm-image-build.log"
  local target image
  for target in repo host; do
    if [[ $target == repo ]]; then image=$RPM_REPO_IMAGE; else image=$RPM_HOST_IMAGE; fi
    DOCKER_BUILDKIT=0 docker build --network host --build-arg "APT_PROXY=$proxy" --build-arg "HOST_IMAGE=$HOST_IMAGE:$host_tag" \
        --target "$target" --label "kha.lab.inputs=$hash" -t "$image:$hash" -t "$image:latest" "$ctx" 2>&1 \
      | tee -a "$LOG_DIR/rpm-image-build.log" \
      | sed -u -n -e 's/^\(Step [0-9]*\/[0-9]* : .\{0,90\}\).*/  [build-rpm] \1/p' -e 's/^\(== .*\)/  [build-rpm] \1/p' >&2 || true
    if ! image_exists "$image:$hash"; then
      tail -30 "$LOG_DIR/rpm-image-build.log" >&2
      rm -rf "$ctx"
      die "building $image failed (full log: $LOG_DIR/rpm-image-build.log)"
    fi
  done
  rm -rf "$ctx"
  log "built $RPM_REPO_IMAGE:$hash and $RPM_HOST_IMAGE:$hash in $(($(date +%s) - t0)) s"
  local img tag
  for img in "$RPM_REPO_IMAGE" "$RPM_HOST_IMAGE"; do
    for tag in $(docker images "$img" --format '{{.Tag}}'); do
      [[ "$tag" == "$hash" || "$tag" == latest ]] && continue
      docker rmi "$img:$tag" >/dev/null 2>&1 || true
    done
  done
}

# The image a host's container runs ("" when there is no container).
host_image_of() { docker inspect -f '{{.Config.Image}}' "$(container_of "$1")" 2>/dev/null || true; }

# Waits until the RPM repository answers on the lab network (from this machine, the gateway).
wait_rpm_repo() {
  local i
  for i in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/$RPM_REPO_IP/$RPM_REPO_PORT") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  docker logs --tail 20 "$(container_of "$RPM_REPO_SERVICE")" >&2 || true
  die "the RPM repository does not answer on $RPM_REPO_IP:$RPM_REPO_PORT"
}

# ---------------------------------------------------------------------------------------------
# State: lab key, CA, certificates, per-host files, known_hosts, inventories

_cert() { # _cert NAME CN EXT_FILE  (key + cert signed by the lab CA, in the current directory)
  openssl ecparam -name prime256v1 -genkey -noout -out "$1.key" 2>/dev/null
  chmod 600 "$1.key"
  openssl req -new -key "$1.key" -subj "$2" -out "$1.csr" 2>/dev/null
  openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -set_serial "0x$(openssl rand -hex 16)" \
    -days 825 -sha256 -extfile "$3" -out "$1.crt" 2>/dev/null
  rm -f "$1.csr"
}

# gen_state MODE (vip|novip): creates what is missing; regenerates serving certificates when the
# mode changes. Writes lab/.state/hosts/<host>/ (mounted read-only at /lab in that host).
gen_state() {
  local mode=$1 h
  mkdir -p "$STATE_DIR/certs" "$STATE_DIR/hosts"
  chmod 700 "$STATE_DIR"
  if [[ ! -f "$STATE_DIR/id_ed25519" ]]; then
    log "generating the lab SSH key"
    ssh-keygen -q -t ed25519 -N '' -C kha-lab -f "$STATE_DIR/id_ed25519"
  fi
  (
    cd "$STATE_DIR/certs"
    if [[ ! -f ca.crt || ! -f ca.key ]]; then
      log "generating the lab CA"
      openssl ecparam -name prime256v1 -genkey -noout -out ca.key 2>/dev/null
      chmod 600 ca.key
      cat >ca.cnf <<CNF
[req]
distinguished_name = dn
prompt = no
x509_extensions = v3_ca
[dn]
CN = kha-lab-ca
[v3_ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign,digitalSignature
subjectKeyIdentifier = hash
CNF
      openssl req -x509 -new -config ca.cnf -key ca.key -days 3650 -sha256 -out ca.crt 2>/dev/null
      rm -f ca.cnf admin.* mode ./*/apiserver.*
    fi
    if [[ ! -f admin.crt ]]; then
      printf '%s\n' "basicConstraints = CA:FALSE" "keyUsage = critical,digitalSignature,keyEncipherment" \
        "extendedKeyUsage = clientAuth" "authorityKeyIdentifier = keyid" >admin.ext
      _cert admin "/O=system:masters/CN=kubernetes-admin" admin.ext
      rm -f admin.ext
    fi
    # certs/mode records what the serving certificates list besides the hosts' own names ("novip", or
    # "vip" and the VIPs): any difference (the other mode, a VIP added) regenerates them, which changes
    # every host's generation, so lab/up.sh recreates the hosts once.
    local want=$mode
    [[ $mode == vip ]] && want="vip $VIP $SPARE_VIP"
    if [[ "$(cat mode 2>/dev/null)" != "$want" ]]; then
      log "generating apiserver serving certificates (VIPs in subjectAltName: $([[ $mode == vip ]] && echo "$VIP $SPARE_VIP" || echo NONE))"
      for h in "${HOSTS[@]}"; do
        mkdir -p "$h"
        local san="IP:${HOST_IP[$h]},IP:127.0.0.1,DNS:$h,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc"
        [[ $mode == vip ]] && san="$san,IP:$VIP,IP:$SPARE_VIP"
        printf '%s\n' "basicConstraints = CA:FALSE" "keyUsage = critical,digitalSignature,keyEncipherment" \
          "extendedKeyUsage = serverAuth" "authorityKeyIdentifier = keyid" "subjectAltName = $san" >"$h/apiserver.ext"
        (cd "$h" && ln -sf ../ca.crt ca.crt && ln -sf ../ca.key ca.key && _cert apiserver "/CN=kube-apiserver" apiserver.ext && rm -f ca.crt ca.key apiserver.ext)
      done
      echo "$want" >mode
    fi
    cat >admin.conf <<CONF
apiVersion: v1
kind: Config
clusters:
- cluster:
    certificate-authority-data: $(base64 -w0 ca.crt)
    server: https://$VIP:8443
  name: kubernetes
contexts:
- context:
    cluster: kubernetes
    user: kubernetes-admin
  name: kubernetes-admin@kubernetes
current-context: kubernetes-admin@kubernetes
preferences: {}
users:
- name: kubernetes-admin
  user:
    client-certificate-data: $(base64 -w0 admin.crt)
    client-key-data: $(base64 -w0 admin.key)
CONF
    chmod 600 admin.conf
  )
  for h in "${HOSTS[@]}"; do
    local d="$STATE_DIR/hosts/$h"
    mkdir -p "$d/pki"
    cp "$STATE_DIR/id_ed25519.pub" "$d/authorized_keys"
    cp "$STATE_DIR/certs/ca.crt" "$d/pki/ca.crt"
    cp "$STATE_DIR/certs/$h/apiserver.crt" "$STATE_DIR/certs/$h/apiserver.key" "$d/pki/"
    cp "$STATE_DIR/certs/admin.conf" "$d/admin.conf"
    if [[ "${LAB_APT_PROXY:-acng}" == none ]]; then
      rm -f "$d/apt-proxy.conf"
    else
      echo "Acquire::http::Proxy \"http://$GATEWAY:$ACNG_PORT/\";" >"$d/apt-proxy.conf"
    fi
    (cd "$d" && find . -type f ! -name generation -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16) >"$d/generation.new"
    if cmp -s "$d/generation.new" "$d/generation"; then rm -f "$d/generation.new"; else mv "$d/generation.new" "$d/generation"; fi
  done
}

# ---------------------------------------------------------------------------------------------
# Hosts

host_state() { docker inspect -f '{{.State.Status}}' "$(container_of "$1")" 2>/dev/null || echo missing; }

# Generation of lab files a running host has installed (empty when unknown).
host_generation() { docker exec "$(container_of "$1")" cat /var/lib/kha-lab/generation 2>/dev/null || true; }

# wait_booted HOST [TIMEOUT_S]: systemd finished booting (running; degraded is reported) and
# lab-init, ssh and kube-apiserver are active (the bastion: ssh only).
wait_booted() {
  local h=$1 c deadline st units want
  c=$(container_of "$h")
  deadline=$(($(date +%s) + ${2:-90}))
  while :; do
    st=$(docker exec "$c" systemctl is-system-running 2>/dev/null || true)
    case "$st" in
      running|degraded)
        if [[ $h == "$BASTION" ]]; then want="ssh.service"; else want="lab-init.service ssh.service kube-apiserver.service"; fi
        units=$(docker exec "$c" systemctl is-active $want 2>/dev/null | tr '\n' ' ' || true)
        if [[ "$units" == "$(printf 'active %.0s' $want)" ]]; then
          if [[ "$st" == degraded ]]; then
            log "WARNING: $h is degraded; failed units: $(docker exec "$c" systemctl list-units --failed --plain --no-legend | awk '{print $1}' | tr '\n' ' ')"
          fi
          return 0
        fi ;;
    esac
    if (($(date +%s) > deadline)); then
      log "$h did not boot: system=$st units=${units:-?}"
      docker exec "$c" systemctl list-units --failed --plain --no-legend >&2 || true
      docker exec "$c" journalctl -b --no-pager -n 40 >&2 || true
      return 1
    fi
    sleep 0.3
  done
}

wait_hosts() { # wait_hosts HOST...: in parallel
  local h pids=() rc=0
  for h in "$@"; do wait_booted "$h" & pids+=($!); done
  for p in "${pids[@]}"; do wait "$p" || rc=1; done
  return $rc
}

# known_hosts from the hosts' own public keys, read through docker (out of band, not ssh-keyscan).
# A host that is not running keeps the lines it had.
write_known_hosts() {
  local h ip tmp="$STATE_DIR/known_hosts.tmp"
  : >"$tmp"
  for h in "${HOSTS[@]}"; do
    ip=${HOST_IP[$h]}
    if [[ "$(host_state "$h")" == running ]]; then
      docker exec "$(container_of "$h")" sh -c 'cat /etc/ssh/ssh_host_*_key.pub' \
        | awk -v ip="$ip" 'NF >= 2 { print ip, $1, $2 }' >>"$tmp" || die "reading $h's host keys failed"
    elif [[ -f "$STATE_DIR/known_hosts" ]]; then
      awk -v ip="$ip" '$1 == ip' "$STATE_DIR/known_hosts" >>"$tmp"
    fi
  done
  # The bastion: its keys while it runs, none once it is removed (a plain lab/up.sh).
  if [[ "$(host_state "$BASTION")" == running ]]; then
    docker exec "$(container_of "$BASTION")" sh -c 'cat /etc/ssh/ssh_host_*_key.pub' \
      | awk -v ip="$BASTION_IP" 'NF >= 2 { print ip, $1, $2 }' >>"$tmp" || die "reading $BASTION's host keys failed"
  elif docker inspect "$(container_of "$BASTION")" >/dev/null 2>&1 && [[ -f "$STATE_DIR/known_hosts" ]]; then
    awk -v ip="$BASTION_IP" '$1 == ip' "$STATE_DIR/known_hosts" >>"$tmp"
  fi
  mv "$tmp" "$STATE_DIR/known_hosts"
}

write_inventories() {
  local h key="$STATE_DIR/id_ed25519"
  {
    echo "# kha-deploy lab inventory, generated by lab/up.sh (sudo user kha, key-only SSH)"
    echo "[masters]"
    for h in "${HOSTS[@]}"; do
      if [[ $h == master1 ]]; then echo "$h ansible_host=${HOST_IP[$h]} priority=150"; else echo "$h ansible_host=${HOST_IP[$h]}"; fi
    done
    echo
    echo "[masters:vars]"
    echo "vip=$VIP"
    echo
    echo "[all:vars]"
    echo "ansible_user=kha"
    echo "ansible_become=true"
    echo "ansible_ssh_private_key_file=$key"
  } >"$STATE_DIR/inventory.ini"
  sed -e 's/(sudo user kha, key-only SSH)/(root login, key-only SSH)/' -e 's/^ansible_user=kha$/ansible_user=root/' \
    -e '/^ansible_become=true$/d' "$STATE_DIR/inventory.ini" >"$STATE_DIR/inventory-root.ini"
}

# The lab network is internal, and Docker then drops bridged packets to addresses outside the
# subnet (DOCKER-ISOLATION-STAGE-1): VRRP's multicast to 224.0.0.18 among them. An ACCEPT in
# DOCKER-USER lets host-to-host traffic through, but only while FORWARD jumps to DOCKER-USER
# before the isolation chain: a dockerd 20.10 restarted with the lab network still in its store
# puts the isolation jump first and never moves DOCKER-USER back (the CI split brains), so the
# order is checked and repaired here, as dockerd itself arranges it when it creates a network.
ensure_lab_forwarding() {
  local bridge first
  bridge=$(docker network inspect -f '{{index .Options "com.docker.network.bridge.name"}}' "$NETWORK" 2>/dev/null) || true
  [[ -n "$bridge" ]] || die "the lab network $NETWORK does not exist (bash lab/up.sh creates it)"
  if ! iptables -w 5 -C DOCKER-USER -i "$bridge" -o "$bridge" -j ACCEPT 2>/dev/null; then
    iptables -w 5 -I DOCKER-USER -i "$bridge" -o "$bridge" -j ACCEPT || die "cannot allow VRRP multicast between lab hosts (iptables)"
  fi
  first=$(iptables -w 5 -S FORWARD | sed -n '/^-A /{p;q}')
  if [[ "$first" != "-A FORWARD -j DOCKER-USER" ]]; then
    log "FORWARD's first rule was '${first:-none}', not the jump to DOCKER-USER: moving that jump to the top"
    iptables -w 5 -D FORWARD -j DOCKER-USER 2>/dev/null || true
    iptables -w 5 -I FORWARD 1 -j DOCKER-USER || die "cannot put the DOCKER-USER jump first in FORWARD (iptables)"
  fi
}

# vrrp_path_check FROM TO...: sends VRRP-protocol (IP 112) multicast to 224.0.0.18 from host FROM
# and prints, per host TO, whether it arrived: what keepalived needs between masters. Exit 1 when
# any TO heard nothing.
VRRP_RECV='import socket, struct, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, 112)
s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, struct.pack("4s4s", socket.inet_aton("224.0.0.18"), socket.inet_aton(sys.argv[1])))
end = time.time() + 3
try:
    while True:
        s.settimeout(max(0.01, end - time.time()))
        data, addr = s.recvfrom(2048)
        if data[20:28] == b"kha-diag":
            print("received from", addr[0]); break
except socket.timeout:
    print("NOTHING received"); sys.exit(1)'
VRRP_SEND='import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, 112)
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 255)
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(sys.argv[1]))
for _ in range(10):
    s.sendto(b"kha-diag", ("224.0.0.18", 0)); time.sleep(0.2)'
vrrp_path_check() {
  local from=$1 h rc=0 pids=() out
  shift
  out=$(mktemp -d)
  for h in "$@"; do
    timeout 10 docker exec "$(container_of "$h")" python3 -c "$VRRP_RECV" "${HOST_IP[$h]}" >"$out/$h" 2>&1 &
    pids+=($!)
  done
  sleep 0.4
  timeout 10 docker exec "$(container_of "$from")" python3 -c "$VRRP_SEND" "${HOST_IP[$from]}" >/dev/null 2>&1 &
  local sender=$!
  for i in "${!pids[@]}"; do wait "${pids[$i]}" || rc=1; done
  kill "$sender" 2>/dev/null; wait "$sender" 2>/dev/null
  for h in "$@"; do echo "$from -> $h: $(tr '\n' ' ' <"$out/$h")"; done
  rm -rf "$out"
  return "$rc"
}
