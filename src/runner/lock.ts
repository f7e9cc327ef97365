// The per-host run lock: flock on fd 9 of a remote shell held for the whole run. The holder keeps it
// only while the run proves it is alive: SshSession.hold writes a heartbeat byte to its stdin every
// few seconds, and the holder exits (the kernel drops the lock) at EOF or when no byte came for
// staleSeconds, so a silent network cut that leaves sshd's session behind cannot keep the lock for hours.
import { pgidOfShell } from '../ssh/command.js';
import { scriptTag, shellQuote } from '../shell.js';
import { HostStepError, LockedError, type KhaError } from '../errors.js';
import { isSudoPasswordRequired, isSudoPasswordWrong } from '../ssh/command.js';
import type { HostSpec, RemoteResult } from '../types.js';

export const LOCK_DIR = '/run/lock';
export const READY_MARK = '@@KHA-READY';
/** stdout line (before the inner script's output) when --break-lock ended another run's holder. */
export const BROKEN_MARK = '@@KHA-LOCK-BROKEN';
/** Another run holds the lock (its owner record follows on stderr). */
export const LOCKED_EXIT = 75;
/** The host has no flock command. */
export const FLOCK_MISSING_EXIT = 76;
export const FLOCK_MISSING_MESSAGE = 'flock is missing on this host (util-linux)';
/** Default for LockOptions.staleSeconds: six missed heartbeats at SshSession.hold's default 5 s. */
export const STALE_SECONDS = 30;

export interface LockOptions {
  /** Directory of the lock and owner files (default /run/lock). */
  dir?: string;
  /** The holder gives the lock up when no heartbeat byte came for this long (default 30; 0 = only at EOF). */
  staleSeconds?: number;
  /** End the holder of a held lock (TERM, then KILL its process group) and take the lock. */
  breakLock?: boolean;
}

/**
 * Take the lock, record who holds it, run `inner` (the facts script), print READY_MARK, hold until
 * stdin ends or goes silent. The owner file holds one line:
 *   pid=HOLDER_PID pgid=HOLDER_PGID user=LOGIN_USER from=SSH_CLIENT_ADDRESS since=UTC_TIME owner=OWNER
 * Exit LOCKED_EXIT (record on stderr) when another run holds the lock, FLOCK_MISSING_EXIT without flock.
 */
export function lockScript(inner: string, owner: string, opts: LockOptions = {}): string {
  const dir = opts.dir ?? LOCK_DIR;
  const stale = opts.staleSeconds ?? STALE_SECONDS;
  if (!Number.isSafeInteger(stale) || stale < 0) throw new Error(`staleSeconds must be a whole number of seconds >= 0, got ${stale}`);
  const lockPath = `${dir}/kha-deploy.lock`;
  const lock = shellQuote(lockPath);
  const ownerFile = shellQuote(`${dir}/kha-deploy.owner`);
  const locked = [
    `  echo ${shellQuote(`another kha-deploy run holds ${lockPath}:`)} >&2`,
    `  cat ${ownerFile} >&2 2>/dev/null`,
    `  exit ${LOCKED_EXIT}`,
  ];
  return [
    scriptTag('lock', dir, ...(opts.breakLock ? ['break'] : [])),
    `command -v flock >/dev/null 2>&1 || { echo ${shellQuote(FLOCK_MISSING_MESSAGE)} >&2; exit ${FLOCK_MISSING_EXIT}; }`,
    `mkdir -p ${shellQuote(dir)}`,
    `exec 9>>${lock}`,
    pgidOfShell('kha_lk_pg'),
    'if ! flock -n 9; then',
    ...(opts.breakLock ? breakHeldLock(ownerFile, lockPath) : locked),
    'fi',
    ...ownerRecord(ownerFile, owner),
    inner,
    `echo ${READY_MARK}`,
    ...holdWhileFed(stale),
  ].join('\n');
}

/** The owner record of a lock broken by this run's lock script, from the output before READY_MARK. */
export function brokenLockOwner(output: string): string | undefined {
  const prefix = `${BROKEN_MARK} `;
  const line = output.split('\n').find((l) => l.startsWith(prefix));
  return line === undefined ? undefined : line.slice(prefix.length).replace(/\r$/, '');
}

/**
 * --break-lock: end the recorded holder's process group, then wait for the lock. The group is
 * killed only when the recorded pid still lives in the recorded group (no stray kill after pid reuse).
 */
function breakHeldLock(ownerFile: string, lockPath: string): string[] {
  return [
    `  kha_lk_rec=; read -r kha_lk_rec 2>/dev/null <${ownerFile}`,
    '  kha_lk_pid=${kha_lk_rec#pid=}; kha_lk_pid=${kha_lk_pid%% *}',
    '  kha_lk_gid=${kha_lk_rec#* pgid=}; kha_lk_gid=${kha_lk_gid%% *}',
    '  kha_lk_ok=',
    '  case "$kha_lk_pid:$kha_lk_gid" in',
    '    *[!0-9:]* | :* | *:) ;;',
    '    *)',
    '      kha_lk_s=; read -r kha_lk_s 2>/dev/null </proc/"$kha_lk_pid"/stat',
    '      kha_lk_s=${kha_lk_s##*) }; set -f; set -- $kha_lk_s; set +f',
    '      if [ "${3:-}" = "$kha_lk_gid" ] && [ "$kha_lk_gid" -gt 1 ] && [ "$kha_lk_gid" != "$kha_lk_pg" ]; then kha_lk_ok=1; fi',
    '      set -- ;;',
    '  esac',
    '  if [ -n "$kha_lk_ok" ]; then',
    '    kill -TERM -"$kha_lk_gid" 2>/dev/null',
    '    kha_lk_i=0',
    // Up to 2 s for the holder to go; a sleep without fractions waits 1 s once, then KILL.
    '    while kill -0 -"$kha_lk_gid" 2>/dev/null && [ "$kha_lk_i" -lt 20 ]; do sleep 0.1 2>/dev/null || { sleep 1; kha_lk_i=19; }; kha_lk_i=$((kha_lk_i + 1)); done',
    '    kill -KILL -"$kha_lk_gid" 2>/dev/null',
    '  fi',
    '  if ! flock -w 10 9; then',
    `    echo ${shellQuote(`could not break the kha-deploy run lock ${lockPath}: it is still held; its record:`)} >&2`,
    `    cat ${ownerFile} >&2 2>/dev/null`,
    `    exit ${LOCKED_EXIT}`,
    '  fi',
    `  printf '%s %s\\n' ${BROKEN_MARK} "\${kha_lk_rec:-(no owner record)}"`,
  ];
}

/**
 * Who holds the lock. Through sudo, SSH_CLIENT is gone (env_reset): it is read from the nearest
 * ancestor's environment (sudo or the login shell), which only root (or the same user) can read.
 */
function ownerRecord(ownerFile: string, owner: string): string[] {
  return [
    'kha_lk_from=${SSH_CLIENT%% *}; kha_lk_p=$PPID; kha_lk_i=0',
    'while [ -z "$kha_lk_from" ] && [ "$kha_lk_i" -lt 4 ] && [ "$kha_lk_p" -gt 1 ] 2>/dev/null; do',
    `  kha_lk_from=$(tr '\\000' '\\n' 2>/dev/null </proc/"$kha_lk_p"/environ | sed -n 's/^SSH_CLIENT=\\([^ ]*\\).*/\\1/p')`,
    '  kha_lk_s=; read -r kha_lk_s 2>/dev/null </proc/"$kha_lk_p"/stat',
    '  kha_lk_s=${kha_lk_s##*) }; set -f; set -- $kha_lk_s; set +f; kha_lk_p=${2:-0}; set --',
    '  kha_lk_i=$((kha_lk_i + 1))',
    'done',
    'kha_lk_user=${SUDO_USER:-$(id -un 2>/dev/null)}',
    `printf 'pid=%s pgid=%s user=%s from=%s since=%s owner=%s\\n' "$$" "\${kha_lk_pg:--}" "\${kha_lk_user:--}" "\${kha_lk_from:--}" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" ${shellQuote(owner.replace(/[\r\n]+/g, ' '))} >${ownerFile}`,
  ];
}

/**
 * Hold until stdin ends or stays silent for `stale` seconds. POSIX sh has no `read -t`: each byte is
 * awaited by `timeout N head -c 1`; the appended x tells a byte (even a newline) from EOF or timeout.
 * fd 9 is closed there: timeout puts itself in its own process group, so a kill of the holder's
 * group would miss it, and it must not keep the lock.
 */
function holdWhileFed(stale: number): string[] {
  const fallback = 'exec cat >/dev/null';
  if (stale === 0) return [fallback];
  return [
    'if command -v timeout >/dev/null 2>&1; then',
    `  while kha_lk_b=$(exec 9>&-; timeout ${stale} head -c 1; echo x) && [ "$kha_lk_b" != x ]; do :; done`,
    '  exit 0',
    'fi',
    fallback, // no coreutils timeout: held until EOF, as before heartbeats
  ];
}

/** Why the lock + facts command ended before its ready marker, as the error an operator can act on. */
export function lockRefusal(host: Pick<HostSpec, 'name' | 'user'>, res: RemoteResult, lockedHint: string): KhaError {
  const name = host.name;
  if (res.code === LOCKED_EXIT) {
    return new LockedError(name, 'lock', 'another kha-deploy run is working on this master', { seen: res.stderr.trim(), hint: lockedHint });
  }
  if (res.code === FLOCK_MISSING_EXIT) {
    return new HostStepError(name, 'lock', `flock is missing on ${name} (util-linux)`, { seen: res.stderr.trim(), hint: 'install util-linux on the host (it provides flock), then rerun' });
  }
  const sudo = isSudoPasswordRequired(res.stderr) || isSudoPasswordWrong(res.stderr);
  return new HostStepError(name, 'facts', sudo ? 'sudo on the host did not accept the become credentials' : `reading the host's facts failed (exit ${res.code})`, {
    seen: (res.stderr || res.stdout).trim(),
    hint: sudo
      ? `sudo requires a password for ${host.user}: pass it with --ask-become-pass or KHA_BECOME_PASS, or give the user NOPASSWD sudo`
      : 'the facts command needs a POSIX sh, flock, ip and systemctl on the host',
  });
}
