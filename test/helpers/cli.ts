// Runs the kha-deploy CLI from source, as an operator would run the bin, and captures everything.
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  json?: any;
}

export interface RunningCli {
  child: ChildProcess;
  /** stdout + stderr so far. */
  output(): string;
  /** Resolves once the combined output matches `re`; rejects after timeoutMs or when the run ends first. */
  waitFor(re: RegExp, timeoutMs?: number): Promise<void>;
  done: Promise<CliResult>;
}

export function startCli(args: string[], opts: { env?: Record<string, string>; timeoutMs?: number } = {}): RunningCli {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts', ...args], {
    cwd: ROOT,
    env: { ...process.env, ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  let combined = '';
  const listeners = new Set<() => void>();
  const notify = () => listeners.forEach((l) => l());
  child.stdout!.on('data', (b: Buffer) => {
    stdout += b.toString();
    combined += b.toString();
    notify();
  });
  child.stderr!.on('data', (b: Buffer) => {
    stderr += b.toString();
    combined += b.toString();
    notify();
  });
  const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 300_000);
  let ended = false;
  const done = new Promise<CliResult>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => {
      ended = true;
      clearTimeout(timer);
      notify();
      const res: CliResult = { code, signal, stdout, stderr };
      if (args.includes('json')) {
        try {
          res.json = JSON.parse(stdout);
        } catch {
          /* left undefined: the test's assertion on json shows stdout */
        }
      }
      resolve(res);
    });
  });
  const waitFor = waiterOn(listeners, () => combined, () => ended, 'kha-deploy printed');
  return { child, output: () => combined, waitFor, done };
}

/**
 * waitFor(re, timeoutMs) over output that grows: resolves once text() matches `re`, rejects when the
 * program ended first or after timeoutMs. `listeners` are called on every new chunk and at the end.
 */
export function waiterOn(listeners: Set<() => void>, text: () => string, ended: () => boolean, what: string): (re: RegExp, timeoutMs?: number) => Promise<void> {
  return (re, timeoutMs = 120_000) =>
    new Promise<void>((resolve, reject) => {
      const check = () => {
        if (re.test(text())) {
          cleanup();
          resolve();
        } else if (ended()) {
          cleanup();
          reject(new Error(`the program ended before ${what} ${re}:\n${text()}`));
        }
      };
      const t = setTimeout(() => {
        cleanup();
        reject(new Error(`timed out waiting until ${what} ${re}:\n${text()}`));
      }, timeoutMs);
      const cleanup = () => {
        clearTimeout(t);
        listeners.delete(check);
      };
      listeners.add(check);
      check();
    });
}

export function runCli(args: string[], opts: { env?: Record<string, string>; timeoutMs?: number } = {}): Promise<CliResult> {
  return startCli(args, opts).done;
}

export function describeRun(r: CliResult): string {
  return `exit ${r.code}${r.signal ? ` (signal ${r.signal})` : ''}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`;
}
