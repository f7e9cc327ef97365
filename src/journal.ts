// The last journal lines of a unit, for error messages: what the host said when something failed.
import { scriptTag } from './shell.js';
import type { ManagedUnit, Remote, RunOptions } from './types.js';

/** Last `lines` of the unit's journal ('' when the host cannot be asked: the error being explained matters more); bounded, so an error never waits on a hung journal. */
export async function journalTail(remote: Remote | undefined, unit: ManagedUnit, lines: number, opts: Omit<RunOptions, 'stdin' | 'label'> = { timeoutMs: 15_000 }): Promise<string> {
  if (!remote) return '';
  try {
    const res = await remote.run(`${scriptTag('journal', unit)}\njournalctl -u ${unit}.service -n ${lines} --no-pager -o short-iso 2>&1 || true`, {
      label: `journalctl -u ${unit}`,
      ...opts,
    });
    return res.stdout.trim();
  } catch {
    return '';
  }
}
