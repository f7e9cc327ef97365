import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { HostApplier, rollbackScript, serviceScript, writeFileScript } from '../src/apply.js';
import { DeadlineError, HostStepError } from '../src/errors.js';
import { STATE_DIR } from '../src/facts.js';
import type { Operation, PlannedStep, Remote, RemoteResult, RunEvent, RunOptions } from '../src/types.js';

// Stub systemctl (systemd 219's format), pgrep, journalctl, sync and an instant sleep; see each file.
const STUB_BIN = fileURLToPath(new URL('./fixtures/stub-bin', import.meta.url));

/** A scratch "host": `stub` holds the stubs' state and log, `state` stands in for STATE_DIR. */
function stubHost() {
  const dir = mkdtempSync(join(tmpdir(), 'kha-host-'));
  const h = { dir, stub: join(dir, 'stub'), state: join(dir, 'state') };
  mkdirSync(h.stub);
  return {
    ...h,
    /** Write a stub state file (MainPID, children-PID, on-VERB hook, journal, sync-old). */
    set: (name: string, content: string) => writeFileSync(join(h.stub, name), content),
    log: () => (existsSync(join(h.stub, 'log')) ? readFileSync(join(h.stub, 'log'), 'utf8').split('\n').filter(Boolean) : []),
    /** Run a script as the host would, with the stubs first on PATH and STATE_DIR moved into the scratch dir. */
    sh: (script: string, input?: string) =>
      spawnSync('sh', ['-c', script.replaceAll(STATE_DIR, h.state)], {
        input,
        encoding: 'utf8',
        env: { ...process.env, PATH: `${STUB_BIN}:${process.env.PATH}`, KHA_STUB_DIR: h.stub },
      }),
  };
}

// The write script is executed for real by the local sh: it is the code that runs on the hosts.
function write(path: string, content: string, stdin = content, keep = 3, validate = 'grep -q "^valid" {file}') {
  const script = writeFileScript({ op: 'write-file', path, content, mode: '0640', validate }, keep);
  return spawnSync('sh', ['-c', script], { input: stdin, encoding: 'utf8' });
}

describe('writeFileScript', () => {
  it('creates a new file with the mode and reports no backup', () => {
    const dir = mkdtempSync(join(tmpdir(), 'kha-apply-'));
    const r = write(join(dir, 'haproxy.cfg'), 'valid one\n');
    assert.equal(r.status, 0, r.stderr);
    assert.equal(readFileSync(join(dir, 'haproxy.cfg'), 'utf8'), 'valid one\n');
    assert.equal(spawnSync('stat', ['-c', '%a', join(dir, 'haproxy.cfg')], { encoding: 'utf8' }).stdout.trim(), '640');
    assert.match(r.stdout, /^backup=$/m);
    // There was no file: the empty marker says so (kha-deploy remove then deletes ours).
    assert.deepEqual(readdirSync(dir).sort(), ['haproxy.cfg', 'haproxy.cfg.kha-original-absent']);
  });

  it('keeps the previous file as a timestamped backup and prunes old backups', () => {
    const dir = mkdtempSync(join(tmpdir(), 'kha-apply-'));
    const p = join(dir, 'haproxy.cfg');
    for (let i = 1; i <= 5; i++) assert.equal(write(p, `valid v${i}\n`, undefined, 3).status, 0);
    assert.equal(readFileSync(p, 'utf8'), 'valid v5\n');
    const backups = readdirSync(dir).filter((f) => f.includes('.kha-backup-')).sort();
    assert.equal(backups.length, 3);
    assert.deepEqual(
      backups.map((b) => readFileSync(join(dir, b), 'utf8')),
      ['valid v2\n', 'valid v3\n', 'valid v4\n'],
    );
  });

  it('leaves the old file untouched and shows the validator output when validation fails', () => {
    const dir = mkdtempSync(join(tmpdir(), 'kha-apply-'));
    const p = join(dir, 'keepalived.conf');
    writeFileSync(p, 'old\n');
    const r = write(p, 'broken\n', undefined, 3, 'sh -c "echo line 3: unknown keyword >&2; exit 1" -- {file}');
    assert.equal(r.status, 65);
    assert.match(r.stderr, /line 3: unknown keyword/);
    assert.equal(readFileSync(p, 'utf8'), 'old\n');
    assert.deepEqual(readdirSync(dir), ['keepalived.conf']);
  });

  it('refuses content that arrived incomplete (a dropped connection) and leaves no temp file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'kha-apply-'));
    const p = join(dir, 'haproxy.cfg');
    writeFileSync(p, 'valid old\n');
    const r = write(p, 'valid complete content\nserver s2\n', 'valid complete content\n');
    assert.equal(r.status, 66);
    assert.match(r.stderr, /incomplete/);
    assert.equal(readFileSync(p, 'utf8'), 'valid old\n');
    assert.deepEqual(readdirSync(dir), ['haproxy.cfg']);
  });

  it('quotes hostile paths', () => {
    const dir = mkdtempSync(join(tmpdir(), "kha apply '$(touch pwned)"));
    const r = write(join(dir, 'x.cfg'), 'valid\n');
    assert.equal(r.status, 0, r.stderr);
    assert.ok(existsSync(join(dir, 'x.cfg')));
    assert.ok(!existsSync('pwned'));
  });
});


describe('writeFileScript: the file from before the first write is kept aside for kha-deploy remove', () => {
  const OURS = (v: string) => `valid ${v}\n# Rendered by kha-deploy from playbooks/templates/x.tmpl.\n`;
  const scratch = () => mkdtempSync(join(tmpdir(), 'kha-orig-'));
  const list = (dir: string) => readdirSync(dir).filter((f) => !f.includes('.kha-backup-')).sort();

  it('an existing file is copied as FILE.kha-original (content, mode and mtime) on the first write, and never again', () => {
    const dir = scratch();
    const p = join(dir, 'haproxy.cfg');
    writeFileSync(p, 'the distribution default\n', { mode: 0o600 });
    spawnSync('touch', ['-d', '2020-01-02 03:04:05', p]);
    const before = statSync(p);
    assert.equal(write(p, OURS('v1')).status, 0);
    const orig = join(dir, 'haproxy.cfg.kha-original');
    assert.equal(readFileSync(orig, 'utf8'), 'the distribution default\n');
    assert.equal(statSync(orig).mode & 0o777, 0o600);
    assert.equal(statSync(orig).mtimeMs, before.mtimeMs);
    // Later writes (past the backup limit: the original's backup is pruned) leave the record alone.
    for (let i = 2; i <= 6; i++) assert.equal(write(p, OURS(`v${i}`), undefined, 3).status, 0);
    assert.equal(readFileSync(orig, 'utf8'), 'the distribution default\n');
    assert.deepEqual(list(dir), ['haproxy.cfg', 'haproxy.cfg.kha-original']);
  });

  it('no file before: an empty FILE.kha-original-absent, kept as it is by later writes', () => {
    const dir = scratch();
    const p = join(dir, 'keepalived.conf');
    assert.equal(write(p, OURS('v1')).status, 0);
    assert.equal(write(p, OURS('v2')).status, 0);
    assert.deepEqual(list(dir), ['keepalived.conf', 'keepalived.conf.kha-original-absent']);
    assert.equal(readFileSync(join(dir, 'keepalived.conf.kha-original-absent'), 'utf8'), '');
  });

  it('a write the validator refuses, or whose content arrived incomplete, records nothing', () => {
    const dir = scratch();
    const p = join(dir, 'keepalived.conf');
    writeFileSync(p, 'old\n');
    assert.equal(write(p, 'broken\n').status, 65);
    assert.equal(write(p, 'valid whole\n', 'valid wh').status, 66);
    assert.deepEqual(readdirSync(dir), ['keepalived.conf']);
  });

  describe('a host deployed by a kha-deploy that kept no record: the first write after the upgrade infers it', () => {
    it('ours in place, the oldest backup is not ours: that backup is the original', () => {
      const dir = scratch();
      const p = join(dir, 'haproxy.cfg');
      writeFileSync(`${p}.kha-backup-20240101T000000.000000001Z`, 'the distribution default\n');
      writeFileSync(`${p}.kha-backup-20240102T000000.000000001Z`, OURS('old1'));
      writeFileSync(p, OURS('old2'));
      assert.equal(write(p, OURS('new')).status, 0);
      assert.equal(readFileSync(`${p}.kha-original`, 'utf8'), 'the distribution default\n');
    });

    it('ours in place without any backup: kha-deploy created it, there was none', () => {
      const dir = scratch();
      const p = join(dir, 'keepalived.conf');
      writeFileSync(p, OURS('old'));
      assert.equal(write(p, OURS('new')).status, 0);
      assert.deepEqual(list(dir), ['keepalived.conf', 'keepalived.conf.kha-original-absent']);
    });

    it('only our own backups, fewer than the limit (nothing pruned): there was none', () => {
      const dir = scratch();
      const p = join(dir, 'keepalived.conf');
      writeFileSync(`${p}.kha-backup-20240101T000000.000000001Z`, OURS('old1'));
      writeFileSync(p, OURS('old2'));
      assert.equal(write(p, OURS('new'), undefined, 3).status, 0);
      assert.deepEqual(list(dir), ['keepalived.conf', 'keepalived.conf.kha-original-absent']);
    });

    it('only our own backups, as many as the limit (the original may have been pruned): no record, remove says so', () => {
      const dir = scratch();
      const p = join(dir, 'keepalived.conf');
      for (let i = 1; i <= 3; i++) writeFileSync(`${p}.kha-backup-2024010${i}T000000.000000001Z`, OURS(`old${i}`));
      writeFileSync(p, OURS('old4'));
      assert.equal(write(p, OURS('new'), undefined, 3).status, 0);
      assert.deepEqual(list(dir), ['keepalived.conf']);
    });

    it('a file named kha-deploy-* is ours by its name (the tmpfiles entry carries no mark)', () => {
      const dir = scratch();
      const p = join(dir, 'kha-deploy-haproxy.conf');
      writeFileSync(p, 'valid d /run/haproxy 0755 root root -\n');
      assert.equal(write(p, 'valid d /run/haproxy 0755 root root -\n# changed\n').status, 0);
      assert.deepEqual(list(dir), ['kha-deploy-haproxy.conf', 'kha-deploy-haproxy.conf.kha-original-absent']);
    });
  });
});

describe('writeFileScript: fsync and signals', () => {
  it('flushes the temp file (sync -- FILE) before the rename', () => {
    const h = stubHost();
    const p = join(h.dir, 'haproxy.cfg');
    const r = h.sh(writeFileScript({ op: 'write-file', path: p, content: 'valid\n', mode: '0640' }, 3), 'valid\n');
    assert.equal(r.status, 0, r.stderr);
    assert.equal(readFileSync(p, 'utf8'), 'valid\n');
    // The argument is the temp name: the data was flushed before it became the live file.
    assert.deepEqual(h.log().filter((l) => l.startsWith('sync')).map((l) => l.replace(/kha-tmp\.\w+$/, 'kha-tmp.X')), [`sync -- ${h.dir}/.haproxy.cfg.kha-tmp.X`]);
  });

  it('falls back to a plain sync where sync takes no file argument', () => {
    const h = stubHost();
    h.set('sync-old', '');
    const p = join(h.dir, 'haproxy.cfg');
    const r = h.sh(writeFileScript({ op: 'write-file', path: p, content: 'valid\n', mode: '0640' }, 3), 'valid\n');
    assert.equal(r.status, 0, r.stderr);
    assert.equal(readFileSync(p, 'utf8'), 'valid\n');
    assert.deepEqual(h.log().filter((l) => l.startsWith('sync')).map((l) => l.replace(/ .*/, ' FILE')), ['sync FILE', 'sync']);
  });

  /** Start the write script with stdin open and part of the content sent; resolves once it waits in `cat`. */
  async function startWrite(p: string, content: string, detached: boolean) {
    const script = writeFileScript({ op: 'write-file', path: p, content, mode: '0640' }, 3);
    const child = spawn('sh', ['-c', script], { detached, stdio: ['pipe', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const exited = new Promise<{ code: number | null; stderr: string }>((resolve) => child.on('close', (code) => resolve({ code, stderr })));
    child.stdin.write(content.slice(0, 6));
    const dir = p.replace(/\/[^/]+$/, '');
    for (let i = 0; i < 200 && !readdirSync(dir).some((f) => f.includes('.kha-tmp.')); i++) await new Promise((r) => setTimeout(r, 10));
    assert.ok(readdirSync(dir).some((f) => f.includes('.kha-tmp.')), 'the script never created its temp file');
    return { child, exited };
  }

  for (const [sig, code] of [['SIGTERM', 143], ['SIGINT', 130]] as const) {
    it(`${sig} to the process group (as the session ends a command) → exit ${code}, old file untouched, nothing left`, async () => {
      const dir = mkdtempSync(join(tmpdir(), 'kha-apply-'));
      const p = join(dir, 'haproxy.cfg');
      writeFileSync(p, 'valid old\n');
      const { child, exited } = await startWrite(p, 'valid new content\n', true);
      process.kill(-child.pid!, sig);
      const r = await exited;
      assert.equal(r.code, code, r.stderr);
      assert.equal(readFileSync(p, 'utf8'), 'valid old\n');
      assert.deepEqual(readdirSync(dir), ['haproxy.cfg']);
    });

    it(`${sig} to the shell alone ends the script once cat returns, even though the whole content then arrives`, async () => {
      const dir = mkdtempSync(join(tmpdir(), 'kha-apply-'));
      const p = join(dir, 'haproxy.cfg');
      writeFileSync(p, 'valid old\n');
      const content = 'valid new content\n';
      const { child, exited } = await startWrite(p, content, false);
      child.kill(sig);
      // Give sh time to take the signal while it waits for cat; then complete stdin.
      await new Promise((r) => setTimeout(r, 100));
      child.stdin.end(content.slice(6));
      const r = await exited;
      assert.equal(r.code, code, r.stderr);
      assert.equal(readFileSync(p, 'utf8'), 'valid old\n');
      assert.deepEqual(readdirSync(dir), ['haproxy.cfg']);
    });
  }
});

describe('serviceScript, run against a stub systemd 219', () => {
  const applied = (h: ReturnType<typeof stubHost>, unit: string) => (existsSync(join(h.state, `${unit}.applied`)) ? readFileSync(join(h.state, `${unit}.applied`), 'utf8') : null);

  it('haproxy reload: a new worker under MainPID means done; the unit is checked and the hash recorded', () => {
    const h = stubHost();
    h.set('MainPID', '100');
    h.set('children-100', '101\n');
    h.set('on-reload', `echo 102 >> "$d/children-100"\n`);
    const r = h.sh(serviceScript({ op: 'service', unit: 'haproxy', action: 'reload', recordApplied: 'abc123' }));
    assert.equal(r.status, 0, r.stderr);
    const systemctl = h.log().filter((l) => l.startsWith('systemctl'));
    assert.ok(systemctl.includes('systemctl show -p MainPID haproxy.service'), systemctl.join('\n'));
    assert.ok(systemctl.includes('systemctl reload haproxy.service'));
    assert.ok(systemctl.includes('systemctl is-active --quiet haproxy.service'));
    assert.ok(!systemctl.some((l) => /restart|--value/.test(l)), systemctl.join('\n'));
    assert.equal(applied(h, 'haproxy'), 'abc123\n');
  });

  it('haproxy reload that keeps the old worker fails with the reason and records nothing', () => {
    const h = stubHost();
    h.set('MainPID', '100');
    h.set('children-100', '101\n');
    const r = h.sh(serviceScript({ op: 'service', unit: 'haproxy', action: 'reload', recordApplied: 'abc123' }));
    assert.equal(r.status, 3);
    assert.match(r.stderr, /^haproxy kept its old worker: the new configuration was not loaded$/m);
    assert.ok(h.log().includes('systemctl reload haproxy.service'));
    assert.equal(applied(h, 'haproxy'), null);
  });

  it('keepalived reload: reload, never restart, is-active checked, hash recorded', () => {
    const h = stubHost();
    const r = h.sh(serviceScript({ op: 'service', unit: 'keepalived', action: 'reload', recordApplied: 'f00d' }));
    assert.equal(r.status, 0, r.stderr);
    const systemctl = h.log().filter((l) => l.startsWith('systemctl'));
    assert.deepEqual(systemctl, ['systemctl reload keepalived.service', 'systemctl is-active --quiet keepalived.service']);
    assert.equal(applied(h, 'keepalived'), 'f00d\n');
  });

  it('a unit that is not active after the reload fails the script and records nothing', () => {
    const h = stubHost();
    h.set('on-is-active', 'exit 3\n');
    const r = h.sh(serviceScript({ op: 'service', unit: 'keepalived', action: 'reload', recordApplied: 'f00d' }));
    assert.equal(r.status, 3);
    assert.match(r.stderr, /^keepalived is not active after reload$/m);
    assert.equal(applied(h, 'keepalived'), null);
  });
});

describe('rollbackScript', () => {
  function setup() {
    const h = stubHost();
    const p = join(h.dir, 'haproxy.cfg');
    const backup = `${p}.kha-backup-20240101T000000.000000000Z`;
    writeFileSync(p, 'new\n', { mode: 0o644 });
    writeFileSync(backup, 'old\n', { mode: 0o640 });
    mkdirSync(h.state);
    writeFileSync(join(h.state, 'haproxy.applied'), 'abc123\n');
    // What the unit would load when restarted, and whether the state file still claimed the new config then.
    h.set('on-restart', `cat ${p} > "$d/at-restart"; if [ -e ${join(h.state, 'haproxy.applied')} ]; then echo yes; else echo no; fi > "$d/applied-at-restart"\n`);
    return { h, p, backup };
  }

  it('puts the backup back through a synced temp file and a rename, forgets the applied hash, restarts the unit', () => {
    const { h, p, backup } = setup();
    const inode = statSync(p).ino;
    const r = h.sh(rollbackScript(p, backup, 'haproxy'));
    assert.equal(r.status, 0, r.stderr);
    assert.equal(readFileSync(p, 'utf8'), 'old\n');
    assert.equal((statSync(p).mode & 0o777).toString(8), '640');
    // A new inode: the file was renamed into place, not copied over the live one.
    assert.notEqual(statSync(p).ino, inode);
    assert.equal(readFileSync(backup, 'utf8'), 'old\n');
    assert.deepEqual(readdirSync(h.dir).filter((f) => f.includes('kha-tmp')), []);
    assert.ok(h.log().some((l) => l.startsWith(`sync -- ${h.dir}/.haproxy.cfg.kha-tmp.`)), h.log().join('\n'));
    assert.ok(h.log().includes('systemctl restart haproxy.service'));
    assert.equal(readFileSync(join(h.stub, 'at-restart'), 'utf8'), 'old\n');
    assert.equal(readFileSync(join(h.stub, 'applied-at-restart'), 'utf8'), 'no\n');
    assert.ok(!existsSync(join(h.state, 'haproxy.applied')));
  });

  it('fails when the restart fails, with the file restored and no applied hash left', () => {
    const { h, p, backup } = setup();
    h.set('on-restart', 'exit 1\n');
    const r = h.sh(rollbackScript(p, backup, 'haproxy'));
    assert.notEqual(r.status, 0);
    assert.equal(readFileSync(p, 'utf8'), 'old\n');
    assert.ok(!existsSync(join(h.state, 'haproxy.applied')));
  });

  it('starts with its tag line', () => {
    assert.equal(rollbackScript('/etc/haproxy/haproxy.cfg', '/etc/haproxy/haproxy.cfg.kha-backup-X', 'haproxy').split('\n')[0], '# kha-deploy rollback haproxy /etc/haproxy/haproxy.cfg');
  });
});

describe('HostApplier', () => {
  type Call = { tag: string; opts: RunOptions };
  function fakeRemote(run: (script: string, opts: RunOptions) => Promise<RemoteResult>): Remote & { calls: Call[] } {
    const calls: Call[] = [];
    return {
      host: 'm1',
      calls,
      get commandCount() {
        return calls.length;
      },
      run: (script, opts = {}) => {
        calls.push({ tag: script.split('\n')[0]!, opts });
        return run(script, opts);
      },
      hold: () => Promise.reject(new Error('not used')),
      close: async () => undefined,
    };
  }
  const step = (id: string, ops: Operation[], timeoutMs = 120_000): PlannedStep => ({ id, title: id, ops, timeoutMs, reason: 'test' });
  const ok = (stdout = ''): RemoteResult => ({ code: 0, signal: null, stdout, stderr: '' });

  it('passes the step deadline and the abort signal to every command', async () => {
    const ctrl = new AbortController();
    const remote = fakeRemote(async () => ok());
    const a = new HostApplier({ remote, emit: () => undefined, keepBackups: 3, signal: ctrl.signal });
    await a.step(step('rundir', [{ op: 'run', script: '# kha-deploy rundir /run/haproxy\ntrue', description: 'create /run/haproxy' }], 30_000));
    await a.step(step('units', [{ op: 'service', unit: 'keepalived', action: 'reload' }], 60_000));
    assert.deepEqual(
      remote.calls.map((c) => [c.tag, c.opts.timeoutMs, c.opts.signal === ctrl.signal]),
      [
        ['# kha-deploy rundir /run/haproxy', 30_000, true],
        ['# kha-deploy service keepalived reload', 60_000, true],
      ],
    );
  });

  it('a session deadline in the packages step becomes the step\'s DeadlineError naming the op, with the lock hint', async () => {
    const remote = fakeRemote(async () => {
      throw new DeadlineError('m1', 'ssh', 300_000, 'Waiting for cache lock: Could not get lock /var/lib/dpkg/lock-frontend');
    });
    const events: RunEvent[] = [];
    const a = new HostApplier({ remote, emit: (e) => events.push(e), keepBackups: 3 });
    const err = await a.step(step('packages', [{ op: 'run', script: '# kha-deploy packages apt keepalived\ntrue', description: 'install keepalived with apt-get' }], 300_000)).then(
      () => assert.fail('no error'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof DeadlineError);
    assert.equal(err.step, 'packages');
    assert.equal(err.host, 'm1');
    assert.equal(err.timeoutMs, 300_000);
    assert.equal(err.message, 'install keepalived with apt-get did not finish within 300 s; it was ended on the host');
    assert.match(err.hint!, /package lock/);
    assert.match(err.hint!, /mirror/);
    assert.match(err.seen!, /Could not get lock/);
    assert.deepEqual(events.at(-1), { type: 'step-end', host: 'm1', step: 'packages', title: 'packages', status: 'failed' });
  });

  it('a deadline in a service op says the unit did not settle', async () => {
    const remote = fakeRemote(async () => {
      throw new DeadlineError('m1', 'ssh', 60_000, '');
    });
    const a = new HostApplier({ remote, emit: () => undefined, keepBackups: 3 });
    await assert.rejects(a.step(step('units', [{ op: 'service', unit: 'haproxy', action: 'reload' }], 60_000)), (e: unknown) => {
      assert.ok(e instanceof DeadlineError);
      assert.equal(e.step, 'units');
      assert.equal(e.message, 'systemctl reload haproxy did not finish within 60 s; it was ended on the host');
      assert.match(e.hint!, /haproxy did not settle/);
      return true;
    });
  });

  it('other session errors pass through unchanged', async () => {
    const lost = new HostStepError('m1', 'ssh', 'connection lost');
    const a = new HostApplier({ remote: fakeRemote(async () => Promise.reject(lost)), emit: () => undefined, keepBackups: 3 });
    await assert.rejects(a.step(step('rundir', [{ op: 'run', script: 'true', description: 'x' }])), (e) => e === lost);
  });

  it('turns each @@KHA-WARN line of a run op into a warning event', async () => {
    const remote = fakeRemote(async () => ok('Reading package lists...\n@@KHA-WARN apt-get update failed for https://apt.kubernetes.io; installed from the other sources\nSetting up haproxy\n'));
    const events: RunEvent[] = [];
    const a = new HostApplier({ remote, emit: (e) => events.push(e), keepBackups: 3 });
    assert.equal(await a.step(step('packages', [{ op: 'run', script: 'true', description: 'install haproxy with apt-get' }])), 'changed');
    assert.deepEqual(
      events.filter((e) => e.type === 'warning'),
      [{ type: 'warning', host: 'm1', message: 'apt-get update failed for https://apt.kubernetes.io; installed from the other sources' }],
    );
  });

  it('a failed reload: journal and rollback run under short bounds, the previous file comes back (scripts run under sh)', async () => {
    const h = stubHost();
    const p = join(h.dir, 'haproxy.cfg');
    writeFileSync(p, 'valid old\n');
    h.set('MainPID', '100');
    h.set('children-100', '101\n');
    h.set('journal', 'haproxy[101]: [ALERT] cannot bind socket [0.0.0.0:8443]\n');
    const remote = fakeRemote(async (script, opts) => {
      const r = h.sh(script, opts.stdin);
      return { code: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr };
    });
    const ctrl = new AbortController();
    const a = new HostApplier({ remote, emit: () => undefined, keepBackups: 3, signal: ctrl.signal });
    assert.equal(await a.step(step('haproxy-config', [{ op: 'write-file', path: p, content: 'valid new\n', mode: '0644', unit: 'haproxy' }], 30_000)), 'changed');
    assert.equal(readFileSync(p, 'utf8'), 'valid new\n');
    await assert.rejects(a.step(step('units', [{ op: 'service', unit: 'haproxy', action: 'reload', recordApplied: 'abc' }], 60_000)), (e: unknown) => {
      assert.ok(e instanceof HostStepError);
      assert.equal(e.message, 'haproxy did not come up after reload; the previous config was restored and haproxy restarted with it');
      assert.match(e.seen!, /kept its old worker/);
      assert.match(e.seen!, /cannot bind socket/);
      return true;
    });
    assert.equal(readFileSync(p, 'utf8'), 'valid old\n');
    assert.ok(h.log().includes('systemctl restart haproxy.service'));
    assert.deepEqual(
      remote.calls.map((c) => [c.tag.split(' ').slice(0, 3).join(' '), c.opts.timeoutMs, c.opts.signal === ctrl.signal]),
      [
        ['# kha-deploy write', 30_000, true],
        ['# kha-deploy service', 60_000, true],
        ['# kha-deploy journal', 15_000, true],
        ['# kha-deploy rollback', 30_000, true],
      ],
    );
  });
});
