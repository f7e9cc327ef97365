import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ConnectError, DeadlineError, HostKeyError, InterruptedError } from '../../src/errors.js';
import { BROKEN_MARK, LOCKED_EXIT, READY_MARK, lockScript } from '../../src/runner/lock.js';
import { scriptTag, shellQuote } from '../../src/shell.js';
import { wrapCommand } from '../../src/ssh/command.js';
import { connect, isSudoPasswordRequired, isSudoPasswordWrong, type ConnectOptions, type SshSession } from '../../src/ssh/session.js';
import type { HeldCommand, RemoteResult } from '../../src/types.js';
import { sshKeygen, tempDir, type TestKey } from './keygen.js';
import { alive, gone } from './procs.js';
import { startRelay, startTestServer, type TestServer } from './server.js';

const tmp = tempDir();
let clientKey: TestKey;
let server: TestServer;
let knownHosts: string; // trusts the server's key
let n = 0;

function freshFile(name = 'known_hosts'): string {
  const dir = join(tmp.dir, `kh${++n}`);
  mkdirSync(dir);
  return join(dir, name);
}

function options(over: Partial<ConnectOptions> = {}): ConnectOptions {
  return {
    host: 'cp-a',
    address: '127.0.0.1',
    port: server.port,
    user: 'kha',
    privateKeyFile: clientKey.file,
    become: false,
    knownHostsFile: knownHosts,
    acceptNewHostKeys: false,
    homeDir: join(tmp.dir, 'empty-home'),
    ...over,
  };
}

async function withSession<T>(over: Partial<ConnectOptions>, fn: (s: SshSession) => Promise<T>): Promise<T> {
  const s = await connect(options(over));
  try {
    return await fn(s);
  } finally {
    await s.close();
  }
}

async function rejectsWith<E extends Error>(p: Promise<unknown>, cls: new (...a: never[]) => E): Promise<E> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof cls, `expected ${cls.name}, got ${String(err)}`);
    return err;
  }
  assert.fail(`expected ${cls.name}, got success`);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function isHeld(x: HeldCommand | RemoteResult): x is HeldCommand {
  return 'release' in x;
}

before(async () => {
  clientKey = sshKeygen(tmp.dir, 'client', 'ed25519');
  server = await startTestServer({ dir: tmp.dir, clientKey });
  knownHosts = freshFile();
  writeFileSync(knownHosts, `[127.0.0.1]:${server.port} ${server.hostKey.pub}\n`);
});
after(async () => {
  await server.close();
  tmp.cleanup();
});

describe('host key verification', () => {
  it('(a) refuses an unknown host before authenticating, with the fingerprint ssh-keygen -lf prints', async () => {
    const file = freshFile();
    writeFileSync(file, '');
    const auths = server.auths.length;
    const execs = server.execs.length;
    const err = await rejectsWith(connect(options({ knownHostsFile: file })), HostKeyError);
    assert.equal(err.kind, 'unknown');
    assert.equal(err.host, 'cp-a');
    assert.equal(err.endpoint, `127.0.0.1:${server.port}`);
    assert.equal(err.fingerprint, server.hostKey.fingerprint);
    assert.deepEqual(err.knownFingerprints, []);
    assert.match(err.hint ?? '', new RegExp(server.hostKey.fingerprint.replace(/[+/]/g, '\\$&')));
    assert.ok(err.hint?.includes('ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub'));
    assert.ok(err.hint?.includes(`ssh-keyscan -p ${server.port} 127.0.0.1 >> ${file}`));
    assert.ok(err.hint?.includes('--accept-new-host-keys'));
    assert.equal(server.auths.length, auths, 'no authentication attempt reached the server');
    assert.equal(server.execs.length, execs, 'no command reached the server');
    assert.equal(readFileSync(file, 'utf8'), '', 'known_hosts untouched');
  });

  it('(a) a missing known_hosts file means unknown, and is not created', async () => {
    const file = join(tmp.dir, 'nowhere', 'known_hosts');
    const err = await rejectsWith(connect(options({ knownHostsFile: file })), HostKeyError);
    assert.equal(err.kind, 'unknown');
    assert.equal(existsSync(file), false);
  });

  it('(b) refuses a changed key with both fingerprints, even with acceptNewHostKeys', async () => {
    const wrong = sshKeygen(tmp.dir, `wrong${++n}`, 'ed25519');
    const file = freshFile();
    const content = `# mine\n[127.0.0.1]:${server.port} ${wrong.pub}\n`;
    writeFileSync(file, content);
    for (const acceptNewHostKeys of [false, true]) {
      const auths = server.auths.length;
      const err = await rejectsWith(connect(options({ knownHostsFile: file, acceptNewHostKeys })), HostKeyError);
      assert.equal(err.kind, 'changed');
      assert.equal(err.fingerprint, server.hostKey.fingerprint);
      assert.deepEqual(err.knownFingerprints, [wrong.fingerprint]);
      assert.ok(err.hint?.includes(`ssh-keygen -R '[127.0.0.1]:${server.port}' -f ${file}`));
      assert.match(err.hint ?? '', /attack/);
      assert.equal(server.auths.length, auths);
    }
    assert.equal(readFileSync(file, 'utf8'), content, 'a changed key is never appended');
  });

  it('refuses a key marked @revoked', async () => {
    const file = freshFile();
    writeFileSync(file, `@revoked * ${server.hostKey.pub}\n[127.0.0.1]:${server.port} ${server.hostKey.pub}\n`);
    const err = await rejectsWith(connect(options({ knownHostsFile: file, acceptNewHostKeys: true })), HostKeyError);
    assert.equal(err.kind, 'revoked');
  });

  it('matches an entry hashed by ssh-keygen -H', async () => {
    const file = freshFile();
    writeFileSync(file, `[127.0.0.1]:${server.port} ${server.hostKey.pub}\n`);
    execFileSync('ssh-keygen', ['-H', '-f', file], { stdio: 'ignore' });
    assert.doesNotMatch(readFileSync(file, 'utf8'), /127\.0\.0\.1/);
    await withSession({ knownHostsFile: file }, async (s) => assert.equal((await s.run('echo ok')).stdout, 'ok\n'));
  });

  it('(c) accept-new appends one line for an unknown host (creating file and 0700 dir), then matches it', async () => {
    const dir = join(tmp.dir, `newdir${++n}`, 'ssh');
    const file = join(dir, 'known_hosts');
    const sessions = await Promise.all([1, 2, 3].map(() => connect(options({ knownHostsFile: file, acceptNewHostKeys: true }))));
    await Promise.all(sessions.map((s) => s.close()));
    assert.equal(readFileSync(file, 'utf8'), `[127.0.0.1]:${server.port} ${server.hostKey.pub}\n`, 'exactly one line for three parallel connects');
    assert.equal(statSync(dir).mode & 0o777, 0o700);
    await withSession({ knownHostsFile: file }, async (s) => assert.equal((await s.run('echo again')).stdout, 'again\n'));
    await withSession({ knownHostsFile: file, acceptNewHostKeys: true }, async () => undefined);
    assert.equal(readFileSync(file, 'utf8').split('\n').length, 2, 'still one line');
  });

  it('(c) accept-new appends after existing lines without rewriting them', async () => {
    const file = freshFile();
    const other = sshKeygen(tmp.dir, `other${++n}`, 'ecdsa');
    writeFileSync(file, `otherhost ${other.pub}`); // no final newline
    await withSession({ knownHostsFile: file, acceptNewHostKeys: true }, async () => undefined);
    assert.equal(readFileSync(file, 'utf8'), `otherhost ${other.pub}\n[127.0.0.1]:${server.port} ${server.hostKey.pub}\n`);
  });

  it('offers only the key types known for the host (server with rsa + ed25519, known by rsa only)', async () => {
    const dir = join(tmp.dir, `multi${++n}`);
    mkdirSync(dir);
    const rsa = sshKeygen(dir, 'host_rsa', 'rsa');
    const multi = await startTestServer({ dir, clientKey, hostKey: rsa });
    try {
      const file = freshFile();
      writeFileSync(file, `[127.0.0.1]:${multi.port} ${rsa.pub}\n`);
      await withSession({ port: multi.port, knownHostsFile: file }, async (s) => assert.equal((await s.run('echo rsa')).stdout, 'rsa\n'));
    } finally {
      await multi.close();
    }
  });
});

describe('run', () => {
  it('(d) returns stdout, stderr and exit code of succeeding and failing commands, untrimmed', async () => {
    await withSession({}, async (s) => {
      assert.deepEqual(await s.run('printf " out \\n"; echo err >&2'), { code: 0, signal: null, stdout: ' out \n', stderr: 'err\n' });
      assert.deepEqual(await s.run('echo no >&2; exit 3'), { code: 3, signal: null, stdout: '', stderr: 'no\n' });
      const killed = await s.run('kill -TERM $$');
      assert.equal(killed.code, null);
      assert.equal(killed.signal, 'SIGTERM');
    });
  });

  it("(d) quoting survives ', $, backticks and newlines: exactly one shell interprets the script", async () => {
    const script = `printf '%s\\n' 'a'"'"'b' '$HOME' '\`id -u\`' "x\\$y"\necho "two $((1+1))"`;
    await withSession({}, async (s) => {
      const r = await s.run(script);
      assert.equal(r.stderr, '');
      assert.equal(r.stdout, "a'b\n$HOME\n`id -u`\nx$y\ntwo 2\n");
      assert.equal(server.execs.at(-1), wrapCommand(script, false, false).command);
    });
  });

  it('passes stdin and keeps multi-byte characters intact across chunks', async () => {
    await withSession({}, async (s) => {
      assert.equal((await s.run('cat', { stdin: "hello\nwörld '$x'" })).stdout, "hello\nwörld '$x'");
      const big = await s.run("i=0; while [ $i -lt 20000 ]; do printf 'ééé'; i=$((i+1)); done");
      assert.equal(big.stdout, 'é'.repeat(60000));
    });
  });

  it('(f) counts commands and shows each whole script (secrets masked) to onCommand; errors use the label', async () => {
    const seen: string[] = [];
    const multi = `${scriptTag('write', '/etc/x')}\necho one\necho auth_pass hunter2 >/dev/null\necho three`;
    await withSession({ onCommand: (c) => seen.push(c) }, async (s) => {
      assert.equal(s.commandCount, 0);
      await s.run('true');
      await s.run(multi, { label: 'write /etc/x' });
      const held = await s.hold('echo READY; cat', 'READY');
      assert.ok(isHeld(held));
      await held.release();
      assert.equal(s.commandCount, 3);
      const err = await rejectsWith(s.run(`${multi}\nsleep 5`, { label: 'slow write', timeoutMs: 200 }), DeadlineError);
      assert.match(err.message, /^slow write did not finish within 0\.2 s/);
      const unlabelled = await rejectsWith(s.run(`${multi}\nsleep 5`, { timeoutMs: 200 }), DeadlineError);
      assert.match(unlabelled.message, /^# kha-deploy write \/etc\/x\.\.\. did not finish/, 'the first line, not the whole script');
    });
    const masked = multi.replace('hunter2', '********');
    assert.deepEqual(seen.slice(0, 4), ['true', masked, 'echo READY; cat', `${masked}\nsleep 5`]);
    assert.match(seen[4] ?? '', /^# kha-deploy kill \d+\n/, 'the kill of a command past its deadline is shown too');
    assert.ok(!seen.join('\n').includes('hunter2'));
  });

  it('keeps concurrent channels under the limit and runs them all', async () => {
    const before = server.maxConcurrent;
    server.maxConcurrent = 0;
    await withSession({}, async (s) => {
      const results = await Promise.all(Array.from({ length: 20 }, (_, i) => s.run(`sleep 0.1; echo ${i}`)));
      assert.deepEqual(results.map((r) => r.stdout), Array.from({ length: 20 }, (_, i) => `${i}\n`));
    });
    assert.ok(server.maxConcurrent <= 8 && server.maxConcurrent >= 2, `max concurrent ${server.maxConcurrent}`);
    server.maxConcurrent = Math.max(before, server.maxConcurrent);
  });
});

describe('hold', () => {
  const lockScript = (lock: string) => `exec 9>${lock}\nflock -n 9 || { echo locked >&2; exit 75; }\necho held-by-me\necho @@READY\nexec cat >/dev/null`;

  it('(e) holds a flock until release; a second holder sees it taken; exit before the marker gives the result', async () => {
    const lock = join(tmp.dir, `lock${++n}`);
    await withSession({}, async (a) => {
      const held = await a.hold(lockScript(lock), '@@READY');
      assert.ok(isHeld(held));
      assert.equal(held.output, 'held-by-me\n');
      await withSession({}, async (b) => {
        const second = await b.hold(lockScript(lock), '@@READY');
        assert.ok(!isHeld(second));
        assert.equal(second.code, 75);
        assert.equal(second.stderr, 'locked\n');
        await held.release();
        await held.release(); // idempotent
        const third = await b.hold(lockScript(lock), '@@READY');
        assert.ok(isHeld(third));
        await third.release();
      });
    });
  });

  it('release closes the channel of a command that ignores EOF, within the timeout', async () => {
    await withSession({ releaseTimeoutMs: 300 }, async (s) => {
      const held = await s.hold('echo READY; exec sleep 30', 'READY');
      assert.ok(isHeld(held));
      const t0 = Date.now();
      await held.release();
      assert.ok(Date.now() - t0 < 2500, `release took ${Date.now() - t0} ms`);
      assert.equal((await s.run('echo still-usable')).stdout, 'still-usable\n');
    });
  });
});

describe('deadline and abort', () => {
  /** A script stuck in `wait` on a background sleep; it prints, then records its own pid and the sleep's. */
  function stuck(opts: { ignoreTerm?: boolean; then?: string } = {}) {
    const pidFile = join(tmp.dir, `pids${++n}`);
    const script = [
      ...(opts.ignoreTerm ? ["trap '' TERM"] : []), // sleep inherits the ignored TERM: only KILL ends them
      'echo started; echo warming >&2',
      `sleep 300 & echo "$$ $!" > ${shellQuote(pidFile)}`,
      'wait',
      ...(opts.then ? [opts.then] : []),
    ].join('\n');
    const pids = async () => {
      for (let i = 0; i < 100 && !existsSync(pidFile); i++) await sleep(20);
      return readFileSync(pidFile, 'utf8').trim().split(' ').map(Number) as [number, number];
    };
    return { script, pids };
  }

  it('past timeoutMs the process group is ended on the host; DeadlineError carries what it printed', async () => {
    const { script, pids } = stuck();
    await withSession({}, async (s) => {
      const execs = server.execs.length;
      const t0 = Date.now();
      const err = await rejectsWith(s.run(script, { timeoutMs: 500, label: 'stuck step' }), DeadlineError);
      const took = Date.now() - t0;
      assert.ok(took >= 450 && took < 2500, `took ${took} ms`);
      assert.equal(err.host, 'cp-a');
      assert.equal(err.step, 'ssh');
      assert.equal(err.timeoutMs, 500);
      assert.equal(err.message, 'stuck step did not finish within 0.5 s; it was ended on the host');
      assert.equal(err.seen, 'started\nwarming\n', 'stdout then stderr, without the process group line');
      const [shell, child] = await pids();
      assert.ok(await gone(child), 'the background sleep is gone (the server does not kill on channel close)');
      assert.ok(await gone(shell), 'the script is gone');
      assert.match(server.execs[execs + 1] ?? '', /^sh -c '# kha-deploy kill \d+\n/, 'ended from a second channel');
      assert.equal((await s.run('echo still-usable')).stdout, 'still-usable\n');
    });
  });

  it('a command that ignores TERM is KILLed after the grace', async () => {
    const { script, pids } = stuck({ ignoreTerm: true });
    await withSession({}, async (s) => {
      const t0 = Date.now();
      await rejectsWith(s.run(script, { timeoutMs: 300 }), DeadlineError);
      const took = Date.now() - t0;
      assert.ok(took >= 1200 && took < 3500, `took ${took} ms`);
      const [shell, child] = await pids();
      assert.ok(await gone(child));
      assert.ok(await gone(shell));
    });
  });

  it('abort (Ctrl-C) ends a stuck command on the host and rejects with InterruptedError within 2 s', async () => {
    const { script, pids } = stuck({ ignoreTerm: true });
    await withSession({}, async (s) => {
      const ac = new AbortController();
      const running = s.run(script, { signal: ac.signal, label: 'dnf install' });
      const [shell, child] = await pids();
      const t0 = Date.now();
      ac.abort();
      const err = await rejectsWith(running, InterruptedError);
      assert.ok(Date.now() - t0 < 2000, `returned after ${Date.now() - t0} ms`);
      assert.equal(err.message, 'interrupted: `dnf install` was ended on cp-a');
      assert.ok(await gone(child, 1500), 'the stuck child is gone');
      assert.ok(await gone(shell, 500));
    });
  });

  it('an already aborted signal sends nothing; a slot wait is given up on abort', async () => {
    await withSession({ maxChannels: 1 }, async (s) => {
      const execs = server.execs.length;
      const err = await rejectsWith(s.run('echo never', { signal: AbortSignal.abort() }), InterruptedError);
      assert.match(err.message, /^interrupted before `echo never` was sent to cp-a$/);
      assert.equal(server.execs.length, execs);
      assert.equal(s.commandCount, 0);
      const busy = s.run('sleep 0.5; echo busy');
      const ac = new AbortController();
      const queued = s.run('echo queued', { signal: ac.signal });
      setTimeout(() => ac.abort(), 50);
      await rejectsWith(queued, InterruptedError);
      assert.equal((await busy).stdout, 'busy\n');
      assert.equal((await s.run('echo next')).stdout, 'next\n', 'the slot was handed on');
      assert.ok(!server.execs.some((e) => e.includes('echo queued')));
    });
  });

  it('a fast command with a deadline and a signal is unaffected, and a later abort does nothing', async () => {
    await withSession({}, async (s) => {
      const ac = new AbortController();
      const execs = server.execs.length;
      assert.deepEqual(await s.run('echo quick; echo note >&2', { timeoutMs: 5000, signal: ac.signal }), { code: 0, signal: null, stdout: 'quick\n', stderr: 'note\n' });
      ac.abort();
      await sleep(100);
      assert.equal(server.execs.length, execs + 1, 'no kill was sent');
    });
  });

  it('hold: the deadline covers the part before the ready marker, not the holding', async () => {
    const { script, pids } = stuck({ then: 'echo READY' });
    await withSession({}, async (s) => {
      const err = await rejectsWith(s.hold(script, 'READY', { timeoutMs: 500 }), DeadlineError);
      assert.equal(err.seen, 'started\nwarming\n');
      const [shell, child] = await pids();
      assert.ok(await gone(child));
      assert.ok(await gone(shell));
      const pidFile = join(tmp.dir, `held${++n}`);
      const ac = new AbortController();
      const held = await s.hold(`echo $$ > ${shellQuote(pidFile)}; echo READY; exec cat >/dev/null`, 'READY', { timeoutMs: 300, signal: ac.signal });
      assert.ok(isHeld(held));
      const pid = Number(readFileSync(pidFile, 'utf8'));
      ac.abort();
      await sleep(700);
      assert.ok(alive(pid), 'held past its deadline and the abort');
      await held.release();
      assert.ok(await gone(pid));
    });
  });

  it('through sudo with a password: the group is ended (by a kill through sudo too), stderr stays clean', async () => {
    const password = 'pw-for-kill';
    server.env = { FAKE_SUDO_PASSWORD: password };
    try {
      const { script, pids } = stuck();
      await withSession({ become: true, becomePassword: password }, async (s) => {
        const execs = server.execs.length;
        const err = await rejectsWith(s.run(script, { timeoutMs: 500 }), DeadlineError);
        assert.equal(err.seen, 'started\nwarming\n', 'no prompt, start marker or process group line');
        const [shell, child] = await pids();
        assert.ok(await gone(child));
        assert.ok(await gone(shell));
        assert.match(server.execs[execs + 1] ?? '', /^sudo -S -p '\[kha-deploy sudo password [0-9a-f]+\]' -- sh -c '# kha-deploy kill \d+\n/);
      });
    } finally {
      server.env = {};
    }
  });
});

describe('heartbeat', () => {
  async function heldBytes(heartbeatMs: number | undefined, waitMs: number): Promise<string> {
    const file = join(tmp.dir, `beats${++n}`);
    return withSession({}, async (s) => {
      const held = await s.hold(`: > ${shellQuote(file)}; echo READY; head -c 3 > ${shellQuote(file)}; exec cat >/dev/null`, 'READY', heartbeatMs === undefined ? {} : { heartbeatMs });
      assert.ok(isHeld(held));
      const until = Date.now() + waitMs;
      while (Date.now() < until && readFileSync(file, 'utf8').length < 3) await sleep(20);
      await held.release();
      return readFileSync(file, 'utf8');
    });
  }

  it('hold writes a byte to stdin every heartbeatMs until release; 0 writes none', async () => {
    assert.equal(await heldBytes(100, 2000), '...');
    assert.equal(await heldBytes(0, 500), '');
  });

  it('default heartbeat is 5 s', async () => {
    assert.equal(await heldBytes(undefined, 1000), '', 'none within the first second');
  });
});

describe('become', () => {
  it('wraps with sudo -n and makes "password required" recognisable', async () => {
    server.env = {};
    await withSession({ become: true }, async (s) => {
      const r = await s.run('id -u');
      assert.equal(r.code, 1);
      assert.ok(isSudoPasswordRequired(r.stderr));
      assert.match(r.stderr, /^sudo: a password is required\nkha-deploy: .*KHA_BECOME_PASS.*--ask-become-pass\n$/);
      assert.equal(server.execs.at(-1), wrapCommand('id -u', true, false).command);
      assert.match(server.execs.at(-1) ?? '', /^sudo -n -- sh -c '/);
    });
    server.env = { FAKE_SUDO_NOPASSWD: '1' };
    await withSession({ become: true }, async (s) => assert.equal((await s.run('echo "as root"')).stdout, 'as root\n'));
    server.env = {};
  });

  it('(g) writes the password only after the sudo prompt, then stdin data; prompt and marker stripped; never shown', async () => {
    const password = "s3cr3t 'pw' $x";
    server.env = { FAKE_SUDO_PASSWORD: password };
    const seen: string[] = [];
    try {
      await withSession({ become: true, becomePassword: password, onCommand: (c) => seen.push(c) }, async (s) => {
        const r = await s.run('cat; echo done; echo warn >&2', { stdin: 'payload\n' });
        assert.deepEqual(r, { code: 0, signal: null, stdout: 'payload\ndone\n', stderr: 'warn\n' });
        assert.match(server.execs.at(-1) ?? '', /^sudo -S -p '\[kha-deploy sudo password [0-9a-f]+\]' -- sh -c /);
        const noStdin = await s.run('cat; echo end'); // stdin is closed after the password: cat ends
        assert.equal(noStdin.stdout, 'end\n');
        const held = await s.hold('echo READY; cat', 'READY');
        assert.ok(isHeld(held));
        await held.release();
      });
      assert.deepEqual(seen, ['cat; echo done; echo warn >&2', 'cat; echo end', 'echo READY; cat']);
      for (const text of [...seen, ...server.execs]) assert.ok(!text.includes(password));
    } finally {
      server.env = {};
    }
  });

  it('(g) a wrong password is reported clearly, not retried, and not echoed', async () => {
    server.env = { FAKE_SUDO_PASSWORD: 'right' };
    try {
      await withSession({ become: true, becomePassword: 'wrong-pw' }, async (s) => {
        const r = await s.run('echo never');
        assert.equal(r.code, 1);
        assert.equal(r.stdout, '');
        assert.ok(isSudoPasswordWrong(r.stderr), r.stderr);
        assert.ok(!r.stderr.includes('wrong-pw'));
        assert.ok(!r.stderr.includes('[kha-deploy sudo password'));
      });
    } finally {
      server.env = {};
    }
  });

  it('(g) when sudo does not prompt (NOPASSWD), stdin data reaches the command and the password is never written', async () => {
    server.env = { FAKE_SUDO_NOPASSWD: '1' };
    try {
      await withSession({ become: true, becomePassword: 'unused-pw' }, async (s) => {
        const r = await s.run('cat', { stdin: 'data only' });
        assert.deepEqual(r, { code: 0, signal: null, stdout: 'data only', stderr: '' });
      });
    } finally {
      server.env = {};
    }
  });
});

describe('connect errors', () => {
  it('encrypted key: clear error naming KHA_SSH_PASSPHRASE; works with the passphrase; wrong one refused', async () => {
    const dir = join(tmp.dir, `enc${++n}`);
    mkdirSync(dir);
    const enc = sshKeygen(dir, 'enc', 'ed25519', 'pass phrase');
    const encServer = await startTestServer({ dir, clientKey: enc, hostKey: server.hostKey });
    try {
      const file = freshFile();
      writeFileSync(file, `[127.0.0.1]:${encServer.port} ${server.hostKey.pub}\n`);
      const o = { port: encServer.port, knownHostsFile: file, privateKeyFile: enc.file };
      const err = await rejectsWith(connect(options(o)), ConnectError);
      assert.match(err.message, /encrypted/);
      assert.match(err.hint ?? '', /KHA_SSH_PASSPHRASE/);
      assert.equal(encServer.auths.length, 0);
      const bad = await rejectsWith(connect(options({ ...o, passphrase: 'not it' })), ConnectError);
      assert.ok(!`${bad.message} ${bad.hint}`.includes('not it'));
      await withSession({ ...o, passphrase: 'pass phrase' }, async (s) => assert.equal((await s.run('echo in')).stdout, 'in\n'));
    } finally {
      await encServer.close();
    }
  });

  it('authentication failure names user@address:port and what was tried', async () => {
    const stranger = sshKeygen(tmp.dir, `stranger${++n}`, 'ed25519');
    const err = await rejectsWith(connect(options({ privateKeyFile: stranger.file })), ConnectError);
    assert.match(err.message, new RegExp(`authentication failed for kha@127\\.0\\.0\\.1:${server.port} \\(tried: key ${stranger.file}\\)`));
    assert.match(err.hint ?? '', /authorized_keys/);
  });

  it('uses the default key ~/.ssh/id_ed25519 when no key file is given, and says so when there is none', async () => {
    const home = join(tmp.dir, `home${++n}`);
    mkdirSync(join(home, '.ssh'), { recursive: true });
    const err = await rejectsWith(connect(options({ privateKeyFile: undefined as never, homeDir: home })), ConnectError);
    assert.match(err.message, /no SSH credentials/);
    writeFileSync(join(home, '.ssh', 'id_ed25519'), readFileSync(clientKey.file), { mode: 0o600 });
    const { privateKeyFile: _unused, ...rest } = options({ homeDir: home });
    await withSession(rest, async (s) => assert.equal((await s.run('echo default')).stdout, 'default\n'));
  });

  it('authenticates through ssh-agent; a dead agent socket is skipped in favour of the default key', async () => {
    const dir = join(tmp.dir, `agent${++n}`);
    mkdirSync(dir);
    const sock = join(dir, 'agent.sock');
    const out = execFileSync('ssh-agent', ['-s', '-a', sock], { encoding: 'utf8' });
    const pid = Number(/SSH_AGENT_PID=(\d+)/.exec(out)?.[1]);
    try {
      execFileSync('ssh-add', [clientKey.file], { env: { ...process.env, SSH_AUTH_SOCK: sock }, stdio: 'ignore' });
      const { privateKeyFile: _k, ...viaAgent } = options({ agentSocket: sock });
      await withSession(viaAgent, async (s) => assert.equal((await s.run('echo agent')).stdout, 'agent\n'));
    } finally {
      process.kill(pid, 'SIGTERM');
    }
    const home = join(dir, 'home');
    mkdirSync(join(home, '.ssh'), { recursive: true });
    writeFileSync(join(home, '.ssh', 'id_ed25519'), readFileSync(clientKey.file), { mode: 0o600 });
    const { privateKeyFile: _k, ...deadAgent } = options({ agentSocket: join(dir, 'gone.sock'), homeDir: home });
    await withSession(deadAgent, async (s) => assert.equal((await s.run('echo key')).stdout, 'key\n'));
  });

  it('a host that offers none of the key types known for it is refused with a ConnectError', async () => {
    const ec = sshKeygen(tmp.dir, `ec${++n}`, 'ecdsa');
    const file = freshFile();
    writeFileSync(file, `[127.0.0.1]:${server.port} ${ec.pub}\n`);
    const err = await rejectsWith(connect(options({ knownHostsFile: file })), ConnectError);
    assert.match(err.message, /offers none of the host key types known for it \(ecdsa-sha2-nistp384\)/);
  });

  it('an unreadable known_hosts or a failed accept-new append is a ConnectError, not a crash', async () => {
    const blocker = join(tmp.dir, `blocker${++n}`);
    writeFileSync(blocker, 'a file, not a directory');
    const unreadable = await rejectsWith(connect(options({ knownHostsFile: join(blocker, 'known_hosts') })), ConnectError);
    assert.match(unreadable.message, /cannot read known_hosts file .*ENOTDIR/);
    // /proc/version reads fine (no entries) and refuses writes, even for root.
    const err = await rejectsWith(connect(options({ knownHostsFile: '/proc/version', acceptNewHostKeys: true })), ConnectError);
    assert.match(err.message, /cannot record the host key of kha@127\.0\.0\.1:\d+ in \/proc\/version/);
  });

  it('connection refused → ConnectError with the cause and a hint', async () => {
    const probe = net.createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
    const port = (probe.address() as net.AddressInfo).port;
    await new Promise<void>((r) => probe.close(() => r()));
    const err = await rejectsWith(connect(options({ port })), ConnectError);
    assert.match(err.message, new RegExp(`cannot connect to kha@127\\.0\\.0\\.1:${port}: connection refused`));
    assert.match(err.hint ?? '', /sshd running.*firewall.*ansible_host and ansible_port/);
  });

  it('a port that accepts TCP but never speaks SSH times out with a ConnectError', async () => {
    const silent = net.createServer((c) => c.on('error', () => undefined));
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    try {
      const port = (silent.address() as net.AddressInfo).port;
      const err = await rejectsWith(connect(options({ port, readyTimeoutMs: 400 })), ConnectError);
      assert.match(err.message, /no SSH handshake within 0\.4 s/);
    } finally {
      silent.close();
    }
  });
});

describe('connection lost', () => {
  async function viaRelay(fn: (s: SshSession, relay: Awaited<ReturnType<typeof startRelay>>) => Promise<void>) {
    const relay = await startRelay(server.port);
    const file = freshFile();
    writeFileSync(file, `[127.0.0.1]:${relay.port} ${server.hostKey.pub}\n`);
    const s = await connect(options({ port: relay.port, knownHostsFile: file, keepaliveIntervalMs: 200, keepaliveCountMax: 2 }));
    try {
      await fn(s, relay);
    } finally {
      await s.close();
      await relay.close();
    }
  }

  it('a silent network cut fails the pending command within the keepalive bound', async () => {
    await viaRelay(async (s, relay) => {
      assert.equal((await s.run('echo up')).stdout, 'up\n');
      const pending = s.run('sleep 30', { label: 'long step' });
      await new Promise((r) => setTimeout(r, 100));
      relay.freeze();
      const t0 = Date.now();
      const err = await rejectsWith(pending, ConnectError);
      assert.ok(Date.now() - t0 < 3000, `took ${Date.now() - t0} ms`);
      assert.match(err.message, /connection to kha@127\.0\.0\.1:\d+ was lost \(Keepalive timeout\) while running `long step`/);
      const after = await rejectsWith(s.run('echo again'), ConnectError);
      assert.match(after.message, /lost/);
    });
  });

  it('a run cut off without a word loses its lock after staleSeconds; a live run keeps it', async () => {
    const dir = join(tmp.dir, `runlock${++n}`);
    const lock = (owner: string) => lockScript('echo facts', owner, { dir, staleSeconds: 2 });
    await viaRelay(async (a, relay) => {
      const held = await a.hold(lock('run A'), READY_MARK, { heartbeatMs: 300 });
      assert.ok(isHeld(held));
      await withSession({}, async (b) => {
        await sleep(2500); // past staleSeconds: only the heartbeats keep it
        const refused = await b.hold(lock('run B'), READY_MARK);
        assert.ok(!isHeld(refused));
        assert.equal(refused.code, LOCKED_EXIT);
        assert.match(refused.stderr, /owner=run A\n$/);
        relay.freeze(); // the server keeps A's session: only the missing heartbeats can free the lock
        const t0 = Date.now();
        let taken = await b.hold(lock('run B'), READY_MARK);
        while (!isHeld(taken) && Date.now() - t0 < 6000) {
          await sleep(200);
          taken = await b.hold(lock('run B'), READY_MARK);
        }
        assert.ok(isHeld(taken), 'the lock came free');
        assert.ok(Date.now() - t0 >= 1200, `freed after ${Date.now() - t0} ms, before the bound`);
        await taken.release();
      });
      await held.release();
    });
  });

  it('--break-lock ends the other run\'s holder on the host; its hold ends', async () => {
    const dir = join(tmp.dir, `runlock${++n}`);
    await withSession({}, async (a) => {
      const held = await a.hold(lockScript('echo facts', 'run A', { dir }), READY_MARK);
      assert.ok(isHeld(held));
      await withSession({}, async (b) => {
        const taken = await b.hold(lockScript('echo facts', 'run B', { dir, breakLock: true }), READY_MARK);
        assert.ok(isHeld(taken));
        assert.match(taken.output, new RegExp(`^${BROKEN_MARK} pid=\\d+ pgid=\\d+ user=\\S+ from=\\S+ since=\\S+ owner=run A\nfacts\n$`));
        const t0 = Date.now();
        await held.release(); // A's command is already gone: release returns at once
        assert.ok(Date.now() - t0 < 1000, `release took ${Date.now() - t0} ms`);
        await taken.release();
      });
    });
  });

  it('abort returns within 2 s even when the host stopped answering (the kill cannot get through)', async () => {
    const relay = await startRelay(server.port);
    const file = freshFile();
    writeFileSync(file, `[127.0.0.1]:${relay.port} ${server.hostKey.pub}\n`);
    const s = await connect(options({ port: relay.port, knownHostsFile: file, keepaliveIntervalMs: 30_000 }));
    try {
      const ac = new AbortController();
      const running = s.run('echo started; sleep 30', { signal: ac.signal });
      await sleep(200);
      relay.freeze();
      const t0 = Date.now();
      ac.abort();
      await rejectsWith(running, InterruptedError);
      assert.ok(Date.now() - t0 < 2000, `returned after ${Date.now() - t0} ms`);
    } finally {
      await s.close();
      await relay.close();
    }
  });

  it('a reset connection fails pending runs and holds at once', async () => {
    await viaRelay(async (s, relay) => {
      const held = await s.hold('echo READY; cat', 'READY');
      assert.ok(isHeld(held));
      const pending = s.run('sleep 30');
      await new Promise((r) => setTimeout(r, 100));
      relay.cut();
      await rejectsWith(pending, ConnectError);
      await held.release(); // nothing left to release: returns
    });
  });
});
