// Pure pieces of remote command execution: how a script is wrapped (sh -c, sudo), how sudo's
// password prompt is recognised on stderr, how the hold ready marker is found. No I/O here.
import { randomBytes } from 'node:crypto';
import { scriptTag, shellQuote } from '../shell.js';

export interface WrappedCommand {
  /** The exec request sent to sshd. Never contains a password. */
  command: string;
  /** sudo -S -p prompt to wait for before writing the password (become with password only). */
  prompt?: string;
  /** Line the script prints on stderr once sudo let it run: only then is stdin data written. */
  startMarker?: string;
}

/** First stderr line of every wrapped script: `@@KHA-PGID <process group id>`. */
export const PGID_MARK = '@@KHA-PGID';

/**
 * Shell code that sets `var` to the process group id of the running shell, read from /proc (no `ps`:
 * procps may be absent); `var` stays empty without /proc. Field 5 of /proc/PID/stat, counted after
 * the `(comm)` field, which may itself contain spaces and parentheses. Clobbers "$@".
 */
export function pgidOfShell(v: string): string {
  return `${v}=; if read -r ${v} 2>/dev/null </proc/$$/stat; then ${v}=\${${v}##*) }; set -f; set -- $${v}; set +f; ${v}=$3; set --; fi`;
}

/**
 * `sh -c <script>`, through `sudo -n` when becoming (fails instead of prompting), or through
 * `sudo -S -p <unique prompt>` when a become password is known. With a password the script first
 * prints a unique marker on stderr, so stdin data is written only once sudo has finished reading:
 * with NOPASSWD or cached credentials sudo never prompts, and data written early would be taken
 * as the password (or the password taken as data).
 *
 * Every script first prints `@@KHA-PGID <pgid>` on stderr: the group holding the script and its
 * children, which the session ends (from a second channel) when the command outlives its deadline.
 * A leading `# kha-deploy …` tag line stays the first line, so the host's process list names it.
 */
export function wrapCommand(script: string, become: boolean, withPassword: boolean, nonce = randomBytes(8).toString('hex')): WrappedCommand {
  const tagged = /^# kha-deploy [^\n]*\n/.exec(script);
  const tag = tagged ? tagged[0] : '';
  const body = script.slice(tag.length);
  // One line, so the script's own line numbers (in sh's error messages) move by exactly one.
  const pgid = `${pgidOfShell('kha_pg')}; [ -z "$kha_pg" ] || printf '${PGID_MARK} %s\\n' "$kha_pg" >&2; unset kha_pg`;
  if (!become) return { command: `sh -c ${shellQuote(`${tag}${pgid}\n${body}`)}` };
  if (!withPassword) return { command: `sudo -n -- sh -c ${shellQuote(`${tag}${pgid}\n${body}`)}` };
  const prompt = `[kha-deploy sudo password ${nonce}]`;
  const startMarker = `kha-deploy-started-${nonce}`;
  const inner = `${tag}${pgid}; printf '%s\\n' ${startMarker} >&2\n${body}`;
  return { command: `sudo -S -p ${shellQuote(prompt)} -- sh -c ${shellQuote(inner)}`, prompt, startMarker };
}

/** The process group id from the marker line on stderr (text so far), once the whole line arrived. */
export function findPgid(stderr: string): number | undefined {
  const m = new RegExp(`${PGID_MARK} (\\d+)\\n`).exec(stderr);
  const pgid = m ? Number(m[1]) : NaN;
  return Number.isSafeInteger(pgid) && pgid > 1 ? pgid : undefined; // 0/1 would mean "every process"
}

/** stderr without the (first) marker line. */
export function stripPgidLine(stderr: string): string {
  return stderr.replace(new RegExp(`${PGID_MARK} \\d*\\n`), '');
}

/**
 * Ends process group `pgid` on the host: TERM, up to 1 s for it to go, then KILL. Sent on a second
 * channel, because closing a channel does not end what runs in it (sshd only closes its pipes).
 */
export function killScript(pgid: number): string {
  if (!Number.isSafeInteger(pgid) || pgid <= 1) throw new Error(`refusing to kill process group ${pgid}`);
  // dash's kill takes no `--`: a negative operand after an explicit signal is a process group.
  return [
    scriptTag('kill', pgid),
    `kill -TERM -${pgid} 2>/dev/null || exit 0`,
    'kha_i=0',
    `while kill -0 -${pgid} 2>/dev/null; do`,
    `  if [ "$kha_i" -ge 10 ]; then kill -KILL -${pgid} 2>/dev/null; exit 0; fi`,
    // A sleep without fractions waits 1 s once, then KILL.
    '  sleep 0.1 2>/dev/null || { sleep 1; kha_i=9; }',
    '  kha_i=$((kha_i + 1))',
    'done',
  ].join('\n');
}

export type SudoEvent = 'password' | 'started' | 'wrong-password';

export const WRONG_PASSWORD_NOTE = 'kha-deploy: sudo asked for the become password again: it was not accepted (check KHA_BECOME_PASS)';
export const PASSWORD_REQUIRED_NOTE = 'kha-deploy: sudo on this host needs a password: set KHA_BECOME_PASS or rerun with --ask-become-pass';

/**
 * Watches a `sudo -S -p PROMPT` command's stderr. Emits 'password' at the first prompt (write the
 * password), 'started' when the script's start marker appears (write stdin data / close stdin),
 * 'wrong-password' at a second prompt (close stdin: never retry). text() is stderr without the
 * prompts, the start marker line and the process group line.
 */
export class SudoPromptWatcher {
  private readonly chunks: Buffer[] = [];
  private seen = '';
  private prompts = 0;
  private started = false;
  private wrong = false;

  constructor(
    private readonly prompt: string,
    private readonly startMarker: string,
  ) {}

  push(chunk: Buffer): SudoEvent[] {
    this.chunks.push(chunk);
    this.seen += chunk.toString('latin1'); // prompt and marker are ASCII: byte-exact search
    const events: SudoEvent[] = [];
    const prompts = this.seen.split(this.prompt).length - 1;
    if (prompts > this.prompts) {
      if (this.prompts === 0) events.push('password');
      if (prompts >= 2 && !this.wrong) {
        this.wrong = true;
        events.push('wrong-password');
      }
      this.prompts = prompts;
    }
    if (!this.started && this.seen.includes(`${this.startMarker}\n`)) {
      this.started = true;
      events.push('started');
    }
    return events;
  }

  get passwordRejected(): boolean {
    return this.wrong;
  }

  text(): string {
    let text = Buffer.concat(this.chunks).toString('utf8').split(this.prompt).join('');
    text = stripPgidLine(text.replace(`${this.startMarker}\n`, ''));
    if (this.wrong) text += `${text === '' || text.endsWith('\n') ? '' : '\n'}${WRONG_PASSWORD_NOTE}\n`;
    return text;
  }
}

/** True when `sudo -n` refused because the host wants a password (no NOPASSWD, no cached credentials). */
export function isSudoPasswordRequired(stderr: string): boolean {
  return /sudo: (a password is required|a terminal is required to read the password)/.test(stderr);
}

/** stderr of a `sudo -n` command, with a note saying how to give the password when sudo wanted one. */
export function withSudoNote(stderr: string): string {
  if (!isSudoPasswordRequired(stderr) || stderr.includes(PASSWORD_REQUIRED_NOTE)) return stderr;
  return `${stderr}${stderr === '' || stderr.endsWith('\n') ? '' : '\n'}${PASSWORD_REQUIRED_NOTE}\n`;
}

/** True when the become password was refused (sudo prompted a second time). */
export function isSudoPasswordWrong(stderr: string): boolean {
  return stderr.includes(WRONG_PASSWORD_NOTE);
}

/** Offset of the complete line equal to `marker` in `text` (a trailing \r is tolerated), or -1. */
export function findReadyLine(text: string, marker: string): number {
  let start = 0;
  while (start < text.length) {
    const end = text.indexOf('\n', start);
    if (end < 0) return -1;
    const line = text.slice(start, end);
    if (line === marker || line === `${marker}\r`) return start;
    start = end + 1;
  }
  return -1;
}

