// The per-host run lock: flock held by a remote `cat` for the whole run. When the run dies, sshd
// closes the channel, cat sees EOF and the kernel drops the lock: no stale lock to clean up.
import { scriptTag, shellQuote } from '../shell.js';

export const LOCK_DIR = '/run/lock';
export const READY_MARK = '@@KHA-READY';
export const LOCKED_EXIT = 75;

/** Take the lock, record who holds it, run `inner` (the facts script), print READY_MARK, hold. */
export function lockScript(inner: string, owner: string, dir = LOCK_DIR): string {
  const lock = shellQuote(`${dir}/kha-deploy.lock`);
  const ownerFile = shellQuote(`${dir}/kha-deploy.owner`);
  return [
    scriptTag('lock', dir),
    `mkdir -p ${shellQuote(dir)}`,
    `exec 9>>${lock}`,
    `if ! flock -n 9; then echo "another kha-deploy run holds ${dir}/kha-deploy.lock:" >&2; cat ${ownerFile} >&2 2>/dev/null; exit ${LOCKED_EXIT}; fi`,
    `printf '%s\\n' ${shellQuote(owner)} > ${ownerFile}`,
    inner,
    `echo ${READY_MARK}`,
    'exec cat >/dev/null',
  ].join('\n');
}
