// The per-host run lock: flock held by a remote `cat` for the whole run. When the run dies, sshd
// closes the channel, cat sees EOF and the kernel drops the lock: no stale lock to clean up.
import { shellQuote } from '../shell.js';

export const LOCK_FILE = '/run/lock/kha-deploy.lock';
export const OWNER_FILE = '/run/lock/kha-deploy.owner';
export const READY_MARK = '@@KHA-READY';
export const LOCKED_EXIT = 75;

/** Take the lock, record who holds it, run `inner` (the facts script), print READY_MARK, hold. */
export function lockScript(inner: string, owner: string): string {
  return [
    'mkdir -p /run/lock',
    `exec 9>>${LOCK_FILE}`,
    `if ! flock -n 9; then echo "another kha-deploy run holds ${LOCK_FILE}:" >&2; cat ${OWNER_FILE} >&2 2>/dev/null; exit ${LOCKED_EXIT}; fi`,
    `printf '%s\\n' ${shellQuote(owner)} > ${OWNER_FILE}`,
    inner,
    `echo ${READY_MARK}`,
    'exec cat >/dev/null',
  ].join('\n');
}
