import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, it } from 'node:test';
import {
  BROKEN_MARK,
  FLOCK_MISSING_EXIT,
  FLOCK_MISSING_MESSAGE,
  LOCKED_EXIT,
  READY_MARK,
  brokenLockOwner,
  lockScript,
  type LockOptions,
} from '../../src/runner/lock.js';
import { alive, gone } from '../ssh/procs.js';

// Runs the real script under the local sh + flock: the lock is the kernel's, not a simulation.
// Holders are spawned detached (a session and process group of their own), as sshd runs commands.

const RECORD = /^pid=(\d+) pgid=(\d+) user=(\S+) from=(\S+) since=(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ) owner=(.*)$/;

function lockDir(): string {
  return mkdtempSync(join(tmpdir(), 'kha-lock-'));
}

interface Holder {
  child: ChildProcessWithoutNullStreams;
  /** stdout up to and including the ready line. */
  out: string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

const holders = new Set<ChildProcessWithoutNullStreams>();
// A failed assertion must not leave a holder (and this test process) waiting on an open stdin.
afterEach(() => {
  for (const child of holders) {
    child.stdin.destroy();
    try {
      process.kill(-child.pid!, 'SIGKILL');
    } catch {
      /* already gone */
    }
  }
  holders.clear();
});

async function startHolder(inner: string, owner: string, opts: LockOptions, env: Record<string, string> = {}): Promise<Holder> {
  const child = spawn('sh', ['-c', lockScript(inner, owner, opts)], { detached: true, env: { ...process.env, ...env } });
  holders.add(child);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => child.on('exit', (code, signal) => r({ code, signal })));
  let out = '';
  let err = '';
  child.stderr.on('data', (b: Buffer) => (err += b.toString()));
  await new Promise<void>((resolve, reject) => {
    child.stdout.on('data', (b: Buffer) => {
      out += b.toString();
      if (out.includes(`${READY_MARK}\n`)) resolve();
    });
    void exited.then(() => reject(new Error(`holder exited before ${READY_MARK}: ${out}${err}`)));
  });
  return { child, out, exited };
}

function tryLock(dir: string, opts: Omit<LockOptions, 'dir'> = {}, inner = 'echo got-it') {
  const r = spawnSync('sh', ['-c', lockScript(inner, 'probe', { dir, ...opts })], { input: '', encoding: 'utf8' });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  return Promise.race([p, new Promise<never>((_r, reject) => setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms).unref())]);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('run lock', () => {
  it('holds the lock until stdin closes, refuses a second run meanwhile (with the record), and frees it after', async () => {
    const dir = lockDir();
    const first = await startHolder('echo facts-here', 'kha-deploy pid 42 by alice@laptop', { dir }, { SSH_CLIENT: '10.1.2.3 50000 22', SUDO_USER: 'alice' });
    assert.equal(first.out, `facts-here\n${READY_MARK}\n`);
    const record = readFileSync(join(dir, 'kha-deploy.owner'), 'utf8');
    const m = RECORD.exec(record.trimEnd());
    assert.ok(m && record.endsWith('\n') && record.split('\n').length === 2, record);
    assert.equal(Number(m[1]), first.child.pid, 'the holder shell');
    assert.equal(Number(m[2]), first.child.pid, 'detached: its own process group');
    assert.equal(m[3], 'alice');
    assert.equal(m[4], '10.1.2.3');
    assert.ok(Math.abs(Date.parse(m[5]!) - Date.now()) < 60_000);
    assert.equal(m[6], 'kha-deploy pid 42 by alice@laptop');

    const second = tryLock(dir, {}, 'echo should-not-run');
    assert.equal(second.code, LOCKED_EXIT);
    assert.equal(second.stdout, '');
    assert.equal(second.stderr, `another kha-deploy run holds ${dir}/kha-deploy.lock:\n${record}`);

    first.child.stdin.end();
    assert.deepEqual(await within(first.exited, 2000, 'holder at EOF'), { code: 0, signal: null });
    const third = tryLock(dir);
    assert.equal(third.code, 0);
    assert.match(third.stdout, /^got-it\n@@KHA-READY\n$/);
  });

  it('records where the run connects from when sudo dropped SSH_CLIENT (read from the parent)', async () => {
    const dir = lockDir();
    // The outer sh has SSH_CLIENT, as sudo does; the lock shell does not (env_reset). `; :` keeps sh from exec'ing.
    const script = lockScript('true', 'via sudo', { dir, staleSeconds: 0 });
    const r = spawnSync('sh', ['-c', 'env -u SSH_CLIENT sh -c "$LOCK"; :'], {
      input: '',
      encoding: 'utf8',
      env: { ...process.env, SSH_CLIENT: '192.0.2.7 41000 22', LOCK: script },
    });
    assert.equal(r.status, 0, r.stderr);
    assert.match(readFileSync(join(dir, 'kha-deploy.owner'), 'utf8'), / from=192\.0\.2\.7 since=/);
  });

  it('a holder whose stdin stays open but silent gives the lock up after staleSeconds', async () => {
    const dir = lockDir();
    const holder = await startHolder('true', 'silent run', { dir, staleSeconds: 2 });
    const t0 = Date.now();
    assert.equal(tryLock(dir).code, LOCKED_EXIT);
    // stdin is never written nor closed: like sshd's end of a connection cut without a word.
    assert.deepEqual(await within(holder.exited, 4000, 'silent holder'), { code: 0, signal: null });
    const took = Date.now() - t0;
    assert.ok(took >= 1500, `gave up after ${took} ms, before the bound`);
    assert.equal(tryLock(dir).code, 0);
    holder.child.stdin.end();
  });

  it('a holder fed heartbeats keeps the lock past staleSeconds, even with a newline byte', async () => {
    const dir = lockDir();
    const holder = await startHolder('true', 'live run', { dir, staleSeconds: 1 });
    const beats = setInterval(() => holder.child.stdin.write('.'), 200);
    try {
      for (let i = 0; i < 6; i++) {
        await sleep(500);
        assert.equal(tryLock(dir).code, LOCKED_EXIT, `free after ${(i + 1) * 0.5} s of heartbeats`);
        if (i === 2) holder.child.stdin.write('\n');
      }
    } finally {
      clearInterval(beats);
    }
    assert.deepEqual(await within(holder.exited, 3000, 'holder once heartbeats stop'), { code: 0, signal: null });
    assert.equal(tryLock(dir).code, 0);
    holder.child.stdin.end();
  });

  it('--break-lock ends the holder and its children, takes the lock and says whose it was', async () => {
    const dir = lockDir();
    const pidFile = join(dir, 'child.pid');
    // A child started before READY inherits the lock's fd: it must go too, or the lock stays held.
    const holder = await startHolder(`sleep 300 & echo $! > '${pidFile}'`, 'kha-deploy pid 7 by bob@ci', { dir });
    const childPid = Number(readFileSync(pidFile, 'utf8'));
    assert.ok(alive(childPid));
    const record = readFileSync(join(dir, 'kha-deploy.owner'), 'utf8').trimEnd();

    const broke = spawnSync('sh', ['-c', lockScript('echo facts-two', 'kha-deploy pid 8 by carol@desk', { dir, breakLock: true })], { input: '', encoding: 'utf8' });
    assert.equal(broke.status, 0, broke.stderr);
    assert.equal(broke.stdout, `${BROKEN_MARK} ${record}\nfacts-two\n${READY_MARK}\n`);
    assert.equal(brokenLockOwner(broke.stdout), record);
    assert.deepEqual(await within(holder.exited, 1000, 'broken holder'), { code: null, signal: 'SIGTERM' });
    assert.ok(await gone(childPid), "the holder's child (same process group) is gone");
    assert.match(readFileSync(join(dir, 'kha-deploy.owner'), 'utf8'), /owner=kha-deploy pid 8 by carol@desk\n$/);
    holder.child.stdin.end();
  });

  it('--break-lock on a free lock just takes it, and prints no broken line', () => {
    const dir = lockDir();
    const r = tryLock(dir, { breakLock: true });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `got-it\n${READY_MARK}\n`);
    assert.equal(brokenLockOwner(r.stdout), undefined);
  });

  it('a host without flock gets its own exit code and message, not "another run holds the lock"', () => {
    const dir = lockDir();
    const bin = join(dir, 'bin');
    mkdirSync(bin);
    // sh's tools but no flock: the script may use any of them before it notices.
    for (const tool of ['sh', 'mkdir', 'cat', 'id', 'date', 'tr', 'sed', 'timeout', 'head', 'sleep', 'kill']) {
      const found = spawnSync('sh', ['-c', `command -v ${tool}`], { encoding: 'utf8' }).stdout.trim();
      if (found.startsWith('/')) symlinkSync(found, join(bin, tool));
    }
    assert.ok(existsSync(join(bin, 'sh')));
    const r = spawnSync(join(bin, 'sh'), ['-c', lockScript('echo never', 'probe', { dir: join(dir, 'lock') })], { input: '', encoding: 'utf8', env: { PATH: bin } });
    assert.equal(r.status, FLOCK_MISSING_EXIT);
    assert.equal(r.stderr, `${FLOCK_MISSING_MESSAGE}\n`);
    assert.equal(r.stdout, '');
    assert.doesNotMatch(r.stderr, /another kha-deploy run/);
  });

  it('brokenLockOwner reads the line before the facts, and nothing else', () => {
    assert.equal(brokenLockOwner(`${BROKEN_MARK} pid=1 pgid=1 user=a from=- since=x owner=o p\r\nfacts\n`), 'pid=1 pgid=1 user=a from=- since=x owner=o p');
    assert.equal(brokenLockOwner(`facts\n${READY_MARK}\n`), undefined);
    assert.equal(brokenLockOwner(`x ${BROKEN_MARK} y\n`), undefined);
  });

  it('the script starts with its tag line and refuses a bad staleSeconds', () => {
    assert.match(lockScript('true', 'o', { breakLock: true }), /^# kha-deploy lock \/run\/lock break\n/);
    assert.throws(() => lockScript('true', 'o', { staleSeconds: 1.5 }), /staleSeconds/);
  });
});
