// Pure pieces of remote command execution: how a script is wrapped (sh -c, sudo), how sudo's
// password prompt is recognised on stderr, how the hold ready marker is found. No I/O here.
import { randomBytes } from 'node:crypto';
import { shellQuote } from '../shell.js';

export interface WrappedCommand {
  /** The exec request sent to sshd. Never contains a password. */
  command: string;
  /** sudo -S -p prompt to wait for before writing the password (become with password only). */
  prompt?: string;
  /** Line the script prints on stderr once sudo let it run: only then is stdin data written. */
  startMarker?: string;
}

/**
 * `sh -c <script>`, through `sudo -n` when becoming (fails instead of prompting), or through
 * `sudo -S -p <unique prompt>` when a become password is known. With a password the script first
 * prints a unique marker on stderr, so stdin data is written only once sudo has finished reading:
 * with NOPASSWD or cached credentials sudo never prompts, and data written early would be taken
 * as the password (or the password taken as data).
 */
export function wrapCommand(script: string, become: boolean, withPassword: boolean, nonce = randomBytes(8).toString('hex')): WrappedCommand {
  if (!become) return { command: `sh -c ${shellQuote(script)}` };
  if (!withPassword) return { command: `sudo -n -- sh -c ${shellQuote(script)}` };
  const prompt = `[kha-deploy sudo password ${nonce}]`;
  const startMarker = `kha-deploy-started-${nonce}`;
  const inner = `printf '%s\\n' ${startMarker} >&2\n${script}`;
  return { command: `sudo -S -p ${shellQuote(prompt)} -- sh -c ${shellQuote(inner)}`, prompt, startMarker };
}

export type SudoEvent = 'password' | 'started' | 'wrong-password';

export const WRONG_PASSWORD_NOTE = 'kha-deploy: sudo asked for the become password again: it was not accepted (check KHA_BECOME_PASS)';
export const PASSWORD_REQUIRED_NOTE = 'kha-deploy: sudo on this host needs a password: set KHA_BECOME_PASS or rerun with --ask-become-pass';

/**
 * Watches a `sudo -S -p PROMPT` command's stderr. Emits 'password' at the first prompt (write the
 * password), 'started' when the script's start marker appears (write stdin data / close stdin),
 * 'wrong-password' at a second prompt (close stdin: never retry). text() is stderr without the
 * prompts and the marker line.
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
    text = text.replace(`${this.startMarker}\n`, '');
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

