// Is a process really gone? process.kill(pid, 0) alone also succeeds for a zombie: an orphan waits
// there until init reaps it, and here init may take its time. A zombie has exited: it holds nothing.
import { readFileSync } from 'node:fs';

export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    return !/^\d+ \(.*\) Z /.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false; // reaped between the two looks
  }
}

/** Polls until `pid` is gone (or a zombie); false when it still runs after `ms`. */
export async function gone(pid: number, ms = 1000): Promise<boolean> {
  const until = Date.now() + ms;
  while (alive(pid)) {
    if (Date.now() > until) return false;
    await new Promise((r) => setTimeout(r, 25));
  }
  return true;
}
