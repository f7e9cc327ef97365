// Runs the kha-deploy CLI under a real pseudo-terminal (util-linux `script`), as an operator meets
// it: stdout is a TTY (the task tree renders), and Ctrl-C is the byte 0x03 typed into the terminal,
// turned into SIGINT by the terminal's line discipline, not a signal sent by the test.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { shellJoin } from '../../src/shell.js';
import { waiterOn } from './cli.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

export interface PtyRun {
  /** Everything the terminal showed so far, ANSI escapes removed. */
  screen(): string;
  /** Type bytes into the terminal (e.g. '\x03' for Ctrl-C). */
  type(bytes: string): void;
  waitFor(re: RegExp, timeoutMs?: number): Promise<void>;
  done: Promise<{ code: number | null; screen: string; endedAt: number }>;
}

/** Strips colour, cursor movement and other CSI/OSC sequences. */
export function stripAnsi(text: string): string {
  return text.replace(/\x1b\[[0-9;?]*[ -/]*[@-~]/g, '').replace(/\x1b\][^\x07]*\x07/g, '').replace(/\x1b[()][A-Z0-9]/g, '').replace(/\r/g, '');
}

export function startCliInPty(args: string[], opts: { cols?: number; rows?: number; env?: Record<string, string> } = {}): PtyRun {
  const cli = shellJoin([process.execPath, '--import', 'tsx', 'src/main.ts', ...args]);
  // A pty made by `script` from a pipe has 0 columns: give it a real size first.
  const inner = `stty cols ${opts.cols ?? 120} rows ${opts.rows ?? 40}; exec ${cli}`;
  const child = spawn('script', ['-qfec', inner, '/dev/null'], { cwd: ROOT, env: { ...process.env, ...opts.env, TERM: 'xterm-256color' }, stdio: ['pipe', 'pipe', 'pipe'] });
  let raw = '';
  const listeners = new Set<() => void>();
  const onData = (b: Buffer) => {
    raw += b.toString('utf8');
    listeners.forEach((l) => l());
  };
  child.stdout.on('data', onData);
  child.stderr.on('data', onData);
  let ended = false;
  const done = new Promise<{ code: number | null; screen: string; endedAt: number }>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => {
      ended = true;
      listeners.forEach((l) => l());
      resolve({ code, screen: stripAnsi(raw), endedAt: Date.now() });
    });
  });
  const waitFor = waiterOn(listeners, () => stripAnsi(raw), () => ended, 'the terminal showed');
  return { screen: () => stripAnsi(raw), type: (b) => child.stdin.write(b), waitFor, done };
}
